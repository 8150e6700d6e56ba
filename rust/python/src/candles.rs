//! The Python tuples of final candles, cached so that a backfill builds only what changed.
//!
//! A ring's candles arrive in open-time order and only the newest one held can still change
//! (see `tickfan_core::CandleView`), so the tuple of any other candle is built once and then
//! shared by every answer that includes it. Per ring, the cache is a contiguous run of final
//! candles, oldest first: every answer is a suffix of its ring, so the run either overlaps the
//! answer from its first candle on (reuse, then extend with the newly final candles) or does
//! not overlap it at all (restart the run at the answer). Evicted candles are dropped from the
//! run's front, so it never holds more tuples than the ring holds candles. The newest candle
//! is always converted afresh.

use std::collections::VecDeque;

use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use tickfan_core::{CandleView, INTERVALS};

use crate::pylist;

struct Cached {
    open_ms: u64,
    tuple: Py<PyTuple>,
}

#[derive(Default)]
pub struct CandleCache {
    /// By symbol index, then interval index.
    runs: Vec<[VecDeque<Cached>; INTERVALS.len()]>,
}

impl CandleCache {
    /// The `(candles, complete)` answer of `view`, reusing and extending the cache.
    pub fn answer<'py>(
        &mut self,
        py: Python<'py>,
        view: &CandleView<'_>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let list = self.list(py, view)?;
        (list, view.complete).into_pyobject(py)
    }

    fn list<'py>(
        &mut self,
        py: Python<'py>,
        view: &CandleView<'_>,
    ) -> PyResult<Bound<'py, PyList>> {
        let n = view.len();
        let list = pylist::with_len(py, n)?;
        if n == 0 {
            return Ok(list);
        }
        if self.runs.len() <= view.symbol {
            self.runs.resize_with(view.symbol + 1, Default::default);
        }
        let run = &mut self.runs[view.symbol][view.interval];
        // Evicted candles go (n > 0, so the ring holds at least one candle).
        let oldest = view.oldest_held_ms().unwrap_or(0);
        while run.front().is_some_and(|c| c.open_ms < oldest) {
            run.pop_front();
        }
        let first = view.open_ms(0);
        let mut start = run.partition_point(|c| c.open_ms < first);
        // run[start..] must be the answer's first candles, all final; anything else (no
        // overlap, or a run that is not what it should be) restarts the run here.
        let hits = run.len() - start;
        let overlaps = hits > 0
            && hits < n
            && (0..hits).all(|i| run[start + i].open_ms == view.open_ms(i) && view.is_final(i));
        let hits = if overlaps {
            hits
        } else {
            run.clear();
            start = 0;
            0
        };
        for i in 0..hits {
            pylist::put(&list, i, run[start + i].tuple.bind(py).clone().into_any());
        }
        for i in hits..n {
            let t = pylist::candle(py, &view.candle(i))?;
            if view.is_final(i) {
                run.push_back(Cached {
                    open_ms: view.open_ms(i),
                    tuple: t.clone().unbind(),
                });
            }
            pylist::put(&list, i, t.into_any());
        }
        Ok(list)
    }
}
