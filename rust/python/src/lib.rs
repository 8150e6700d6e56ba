//! `tickfan._core`: the PyO3 binding of `tickfan-core`. Thin wrappers only; errors become
//! Python exceptions in `error.rs` alone.

mod candles;
mod core;
mod error;
mod frame;
mod lane;
mod pylist;

use pyo3::prelude::*;
use pyo3::types::PyDict;

/// The frame text of a decimal (see the module doc of the spec). Negative units get a
/// leading `-`; decimals outside 0..=12 raise `InvalidArgument`.
#[pyfunction]
fn format_units(py: Python<'_>, units: i64, decimals: i64) -> PyResult<String> {
    if !(0..=tickfan_core::MAX_DECIMALS as i64).contains(&decimals) {
        return Err(error::invalid(
            py,
            format!(
                "decimals must be between 0 and {}",
                tickfan_core::MAX_DECIMALS
            ),
        ));
    }
    Ok(tickfan_core::format_units_signed(units, decimals as u32))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("IMPLEMENTATION", "rust")?;
    let intervals = PyDict::new(py);
    let capacity = PyDict::new(py);
    for (i, (name, ms)) in tickfan_core::INTERVALS.iter().enumerate() {
        intervals.set_item(name, ms)?;
        capacity.set_item(name, tickfan_core::DEFAULT_CANDLE_CAPACITY[i])?;
    }
    m.add("INTERVALS", intervals)?;
    m.add("DEFAULT_CANDLE_CAPACITY", capacity)?;
    m.add("MAX_UNITS", tickfan_core::MAX_UNITS)?;
    m.add("MAX_DECIMALS", tickfan_core::MAX_DECIMALS)?;
    m.add("MIN_INTERVAL_MS", tickfan_core::MIN_INTERVAL_MS)?;
    m.add("MAX_INTERVAL_MS", tickfan_core::MAX_INTERVAL_MS)?;
    m.add_class::<core::PyCore>()?;
    m.add_class::<lane::FastLane>()?;
    m.add_function(wrap_pyfunction!(format_units, m)?)?;
    Ok(())
}
