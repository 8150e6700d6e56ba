//! `tickfan._core.Core`: a thin wrapper over `tickfan_core::Core<PyFrame>`. It converts
//! arguments (per-item for ticks, so wrong types get the spec's messages, not TypeError) and
//! results; all behaviour lives in the core crate.

use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use tickfan_core::{
    CandleRing, Config, Core, Num, RawTick, Resume, SymbolCheckpoint, SymbolSpec, TickItem, Ts,
};

/// A candle of a checkpoint in units: `(open_ms, open, high, low, close, volume)`.
type Bar = (u64, u64, u64, u64, u64, u128);

use crate::candles::CandleCache;
use crate::error::IntoPyResult;
use crate::frame::PyFrame;

/// The core as the binding and the fast lane share it.
pub type SharedCore = Arc<Mutex<Core<PyFrame>>>;

/// Lock the shared core; a panic elsewhere while it was held does not poison it for good
/// (every core method leaves it consistent or refuses before changing it).
pub fn lock(core: &SharedCore) -> MutexGuard<'_, Core<PyFrame>> {
    core.lock().unwrap_or_else(|e| e.into_inner())
}
use crate::pylist;

#[pyclass(module = "tickfan._core", name = "Core")]
pub struct PyCore {
    /// Shared with the fast lane's threads (`lane.rs`), which drain their connections' queues.
    /// Lock order: a lane thread never attaches to the interpreter, so a Python call may wait
    /// for this lock while attached; nothing waits for the interpreter while holding it.
    inner: SharedCore,
    /// Tuples of final candles already handed out (see `candles.rs`).
    candles: CandleCache,
    /// The int object of each live connection id, at `id - 1` (ids are 1, 2, 3, ... and never
    /// reused): `take_ready` lists one per woken writer, sharing these rather than building
    /// 10,000 new ints per hand-off. Dropped on disconnect.
    ids: Vec<Option<Py<PyInt>>>,
}

/// An int or float (bool excluded) as the core sees it: `float(value)`, +-inf for an int too
/// large for a float.
fn number(obj: &Bound<'_, PyAny>) -> Num {
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Num::Float(f.value());
    }
    if obj.is_instance_of::<PyBool>() || !obj.is_instance_of::<PyInt>() {
        return Num::Other;
    }
    match obj.extract::<f64>() {
        Ok(v) => Num::Float(v),
        Err(_) => match obj.gt(0) {
            Ok(true) => Num::Float(f64::INFINITY),
            _ => Num::Float(f64::NEG_INFINITY),
        },
    }
}

/// An argument converted with [`number`]; extraction never fails.
pub struct Number(Num);

impl<'a, 'py> FromPyObject<'a, 'py> for Number {
    type Error = PyErr;
    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        Ok(Number(number(&obj)))
    }
}

fn timestamp(obj: &Bound<'_, PyAny>) -> Ts {
    if obj.is_instance_of::<PyBool>() || !obj.is_instance_of::<PyInt>() {
        return Ts::Invalid;
    }
    obj.extract::<i64>().map_or(Ts::Invalid, Ts::Int)
}

/// The four fields of a tick item, or None when it is not a 4-tuple/4-list.
fn fields<'py>(item: &Bound<'py, PyAny>) -> PyResult<Option<[Bound<'py, PyAny>; 4]>> {
    if let Ok(t) = item.cast::<PyTuple>() {
        if t.len() == 4 {
            return Ok(Some([
                t.get_item(0)?,
                t.get_item(1)?,
                t.get_item(2)?,
                t.get_item(3)?,
            ]));
        }
    } else if let Ok(l) = item.cast::<PyList>() {
        if l.len() == 4 {
            return Ok(Some([
                l.get_item(0)?,
                l.get_item(1)?,
                l.get_item(2)?,
                l.get_item(3)?,
            ]));
        }
    }
    Ok(None)
}

struct Parsed<'py> {
    symbol: Bound<'py, PyAny>,
    /// `str(symbol)` when the symbol is not a str (for the unknown-symbol message).
    text: Option<String>,
    price: Num,
    size: Num,
    ts: Ts,
}

/// A name argument as text: a str as is, anything else as its `str()` (never a known name
/// in practice, so it gets the spec's unknown-name error).
fn text(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    match obj.cast::<PyString>() {
        Ok(s) => Ok(s.to_str()?.to_owned()),
        Err(_) => Ok(obj.str()?.to_str()?.to_owned()),
    }
}

/// A sequence of str (not a str itself), or TypeError.
fn strs<'py>(seq: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyString>>> {
    if seq.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(
            "symbols must be a sequence of str, not a str",
        ));
    }
    let mut out = Vec::new();
    for item in seq.try_iter()? {
        out.push(item?.cast_into::<PyString>()?);
    }
    Ok(out)
}

impl PyCore {
    fn core(&self) -> MutexGuard<'_, Core<PyFrame>> {
        lock(&self.inner)
    }

    /// The shared core, for the fast lane.
    pub fn shared(&self) -> SharedCore {
        Arc::clone(&self.inner)
    }

    fn id_slot(&mut self, conn_id: i64) -> Option<&mut Option<Py<PyInt>>> {
        let i = usize::try_from(conn_id).ok()?.checked_sub(1)?;
        self.ids.get_mut(i)
    }

    /// Connection ids as a list of their shared int objects.
    pub(crate) fn id_list<'py>(
        &mut self,
        py: Python<'py>,
        ids: &[u64],
    ) -> PyResult<Bound<'py, PyList>> {
        let list = pylist::with_len(py, ids.len())?;
        for (i, &id) in ids.iter().enumerate() {
            let obj = match self.id_slot(id as i64) {
                Some(Some(obj)) => obj.bind(py).clone(),
                // Not expected (the core lists live ids only): a new int of the same value.
                _ => id.into_pyobject(py)?,
            };
            pylist::put(&list, i, obj.into_any());
        }
        Ok(list)
    }
}

#[pymethods]
impl PyCore {
    #[new]
    #[pyo3(signature = (
        symbols, *, high_freq_per_s=Number(Num::Float(20.0)), candle_capacity=None, max_queue_frames=10_000,
        max_queue_bytes=8 * 1024 * 1024, max_symbols_per_connection=100, max_ts_skew_ms=None,
        resume_window_ms=60_000, resume_max_ticks=100_000, high_water_frames=None,
        low_water_frames=0, degrade_interval_ms=1000, slow_consumer_grace_ms=0, degrade_after_ms=None
    ),
    text_signature = "(symbols, *, high_freq_per_s=20.0, candle_capacity=None, max_queue_frames=10000, max_queue_bytes=8388608, max_symbols_per_connection=100, max_ts_skew_ms=None, resume_window_ms=60000, resume_max_ticks=100000, high_water_frames=None, low_water_frames=0, degrade_interval_ms=1000, slow_consumer_grace_ms=0, degrade_after_ms=None)")]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        symbols: &Bound<'_, PyAny>,
        high_freq_per_s: Number,
        candle_capacity: Option<&Bound<'_, PyAny>>,
        max_queue_frames: i64,
        max_queue_bytes: i64,
        max_symbols_per_connection: i64,
        max_ts_skew_ms: Option<i64>,
        resume_window_ms: i64,
        resume_max_ticks: i64,
        high_water_frames: Option<i64>,
        low_water_frames: i64,
        degrade_interval_ms: i64,
        slow_consumer_grace_ms: i64,
        degrade_after_ms: Option<i64>,
    ) -> PyResult<Self> {
        let mut specs = Vec::new();
        for item in symbols.try_iter()? {
            // Any 3-item iterable, like Python's `name, pd, sd = item`.
            let fields = item?.try_iter()?.collect::<PyResult<Vec<_>>>()?;
            let [name, pd, sd] = <[Bound<'_, PyAny>; 3]>::try_from(fields).map_err(|f| {
                PyValueError::new_err(format!("expected 3 values to unpack, got {}", f.len()))
            })?;
            // A name that is not a str, or decimals that are not an int (bool counts as
            // int, as in Python), get the core's messages in the core's order.
            let (name, name_is_str) = match name.cast::<PyString>() {
                Ok(s) => (s.to_str()?.to_owned(), true),
                Err(_) => (name.str()?.to_str()?.to_owned(), false),
            };
            let decimals = |d: &Bound<'_, PyAny>| {
                if d.is_instance_of::<PyInt>() {
                    d.extract::<i64>().unwrap_or(-1)
                } else {
                    -1
                }
            };
            specs.push(SymbolSpec {
                name,
                name_is_str,
                price_decimals: decimals(&pd),
                size_decimals: decimals(&sd),
            });
        }
        let mut overrides = Vec::new();
        if let Some(mapping) = candle_capacity {
            for kv in mapping.call_method0("items")?.try_iter()? {
                let (name, cap): (String, i64) = kv?.extract()?;
                overrides.push((name, cap));
            }
        }
        // Not a number: NaN, which the core rejects in its order of checks.
        let high_freq_per_s = match high_freq_per_s.0 {
            Num::Float(v) => v,
            Num::Other => f64::NAN,
        };
        let cfg = Config {
            high_freq_per_s,
            candle_capacity: overrides,
            max_queue_frames,
            max_queue_bytes,
            max_symbols_per_connection,
            max_ts_skew_ms,
            resume_window_ms,
            resume_max_ticks,
            high_water_frames,
            low_water_frames,
            degrade_interval_ms,
            slow_consumer_grace_ms,
            degrade_after_ms,
        };
        Ok(PyCore {
            inner: Arc::new(Mutex::new(Core::new(specs, cfg).py_err(py)?)),
            candles: CandleCache::default(),
            ids: Vec::new(),
        })
    }

    fn symbols(&self) -> Vec<(String, i64, i64)> {
        self.core()
            .symbols()
            .iter()
            .map(|s| (s.name.clone(), s.price_decimals, s.size_decimals))
            .collect()
    }

    fn ingest(&mut self, py: Python<'_>, ticks: &Bound<'_, PyAny>, now_ms: i64) -> PyResult<usize> {
        if ticks.is_instance_of::<PyString>() || ticks.is_instance_of::<PyBytes>() {
            return Err(PyTypeError::new_err(
                "ticks must be a sequence of [symbol, price, size, ts]",
            ));
        }
        let mut parsed: Vec<Option<Parsed<'_>>> = Vec::new();
        for item in ticks.try_iter()? {
            let item = item?;
            parsed.push(match fields(&item)? {
                None => None,
                Some([symbol, price, size, ts]) => {
                    let text = match symbol.cast::<PyString>() {
                        Ok(_) => None,
                        Err(_) => Some(symbol.str()?.to_string()),
                    };
                    Some(Parsed {
                        price: number(&price),
                        size: number(&size),
                        ts: timestamp(&ts),
                        symbol,
                        text,
                    })
                }
            });
        }
        let mut items = Vec::with_capacity(parsed.len());
        for p in &parsed {
            items.push(match p {
                None => TickItem::Malformed,
                Some(p) => {
                    let name = match p.symbol.cast::<PyString>() {
                        Ok(s) => Some(s.to_str()?),
                        Err(_) => None,
                    };
                    TickItem::Tick(RawTick {
                        symbol: name,
                        symbol_text: name.or(p.text.as_deref()).unwrap_or(""),
                        price: p.price,
                        size: p.size,
                        ts: p.ts,
                    })
                }
            });
        }
        self.core().ingest(&items, now_ms).py_err(py)
    }

    fn latest(
        &self,
        py: Python<'_>,
        symbol: &Bound<'_, PyAny>,
    ) -> PyResult<Option<(u64, u64, f64, f64)>> {
        let latest = self.core().latest(&text(symbol)?).py_err(py)?;
        Ok(latest.map(|t| (t.seq, t.ts, t.price, t.size)))
    }

    #[allow(clippy::type_complexity)]
    fn checkpoint(&self) -> Vec<(String, u64, u64, Vec<(u64, u64, u64)>, Vec<(i64, Vec<Bar>)>)> {
        self.core()
            .checkpoint()
            .into_iter()
            .map(|cp| {
                let candles = cp
                    .candles
                    .into_iter()
                    .map(|r| (r.newest_evicted.map_or(-1, |v| v as i64), r.bars))
                    .collect();
                (cp.symbol, cp.seq, cp.ring_base, cp.ring, candles)
            })
            .collect()
    }

    #[allow(clippy::type_complexity)]
    fn restore(
        &mut self,
        py: Python<'_>,
        state: Vec<(String, u64, u64, Vec<(u64, u64, u64)>, Vec<(i64, Vec<Bar>)>)>,
    ) -> PyResult<()> {
        let state = state
            .into_iter()
            .map(|(symbol, seq, ring_base, ring, candles)| SymbolCheckpoint {
                symbol,
                seq,
                ring_base,
                ring,
                candles: candles
                    .into_iter()
                    .map(|(evicted, bars)| CandleRing {
                        newest_evicted: u64::try_from(evicted).ok(),
                        bars,
                    })
                    .collect(),
            })
            .collect();
        self.core().restore(state).py_err(py)
    }

    fn is_high_frequency(&self, py: Python<'_>, symbol: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.core().is_high_frequency(&text(symbol)?).py_err(py)
    }

    fn connect<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyInt>> {
        let id = self.core().connect();
        let obj = id.into_pyobject(py)?;
        // Ids are consecutive from 1: slot `id - 1` is the next one.
        debug_assert_eq!(self.ids.len() as u64 + 1, id);
        self.ids.push(Some(obj.clone().unbind()));
        Ok(obj)
    }

    fn disconnect(&mut self, conn_id: i64) {
        self.core().disconnect(conn_id);
        if let Some(slot) = self.id_slot(conn_id) {
            *slot = None;
        }
    }

    #[pyo3(signature = (conn_id, symbols, mode="auto", interval_ms=None, now_ms=0))]
    #[allow(clippy::type_complexity)]
    fn subscribe<'py>(
        &mut self,
        py: Python<'py>,
        conn_id: i64,
        symbols: &Bound<'py, PyAny>,
        mode: &str,
        interval_ms: Option<&Bound<'py, PyAny>>,
        now_ms: i64,
    ) -> PyResult<(Vec<String>, Vec<String>, Bound<'py, PyList>)> {
        let objs = strs(symbols)?;
        let names = objs
            .iter()
            .map(|s| s.to_str())
            .collect::<PyResult<Vec<&str>>>()?;
        // A non-int or out-of-range interval must give the spec's InvalidArgument, so map it
        // to a value the core rejects (only when the mode uses an interval).
        let interval = match interval_ms {
            None => None,
            Some(v) if v.is_instance_of::<PyBool>() => Some(i64::MIN),
            Some(v) => Some(v.extract::<i64>().unwrap_or(i64::MIN)),
        };
        let (known, unknown, snapshots) = self
            .core()
            .subscribe(conn_id, &names, mode, interval, now_ms)
            .py_err(py)?;
        let known = known
            .into_iter()
            .map(|i| self.core().symbol_name(i).to_owned())
            .collect();
        let snapshots = PyList::new(py, snapshots.into_iter().map(|f| f.to_py(py)))?;
        Ok((known, unknown, snapshots))
    }

    fn unsubscribe(
        &mut self,
        py: Python<'_>,
        conn_id: i64,
        symbols: &Bound<'_, PyAny>,
    ) -> PyResult<Vec<String>> {
        let objs = strs(symbols)?;
        let names = objs
            .iter()
            .map(|s| s.to_str())
            .collect::<PyResult<Vec<&str>>>()?;
        let removed = self.core().unsubscribe(conn_id, &names).py_err(py)?;
        Ok(removed
            .into_iter()
            .map(|i| self.core().symbol_name(i).to_owned())
            .collect())
    }

    fn subscriptions(
        &self,
        py: Python<'_>,
        conn_id: i64,
    ) -> PyResult<Vec<(String, &'static str, u32)>> {
        let subs = self.core().subscriptions(conn_id).py_err(py)?;
        Ok(subs
            .into_iter()
            .map(|(i, mode, iv)| (self.core().symbol_name(i).to_owned(), mode.name(), iv))
            .collect())
    }

    fn ring_range(
        &self,
        py: Python<'_>,
        symbol: &Bound<'_, PyAny>,
    ) -> PyResult<Option<(u64, u64)>> {
        self.core().ring_range(&text(symbol)?).py_err(py)
    }

    #[allow(clippy::type_complexity)]
    fn resume<'py>(
        &mut self,
        py: Python<'py>,
        conn_id: i64,
        symbol: &Bound<'py, PyAny>,
        last_seq: &Bound<'py, PyAny>,
        epoch_matches: bool,
    ) -> PyResult<(Bound<'py, PyList>, Option<(u64, Option<u64>, &'static str)>)> {
        // A non-int (or bool) last_seq gets the spec's InvalidArgument, like a negative one;
        // an int too large for i64 is beyond any seq: nothing to send.
        let last = if last_seq.is_instance_of::<PyBool>() || !last_seq.is_instance_of::<PyInt>() {
            -1
        } else {
            last_seq.extract::<i64>().unwrap_or(i64::MAX)
        };
        let resumed = self
            .core()
            .resume(conn_id, &text(symbol)?, last, epoch_matches)
            .py_err(py)?;
        match resumed {
            Resume::Resumed(frames) => Ok((
                PyList::new(py, frames.into_iter().map(|f| f.to_py(py)))?,
                None,
            )),
            Resume::Gap {
                from_seq,
                to_seq,
                reason,
            } => Ok((PyList::empty(py), Some((from_seq, to_seq, reason.name())))),
        }
    }

    fn push(&mut self, py: Python<'_>, conn_id: i64, frame: Bound<'_, PyString>) -> PyResult<bool> {
        self.core()
            .push(conn_id, PyFrame::from_py(frame)?)
            .py_err(py)
    }

    #[pyo3(signature = (conn_id, max_frames=1024))]
    fn drain<'py>(
        &mut self,
        py: Python<'py>,
        conn_id: i64,
        max_frames: i64,
    ) -> PyResult<Bound<'py, PyList>> {
        // Sized first: the frames leave the queue only once their list exists.
        let mut core = self.core();
        let n = core.drain_len(conn_id, max_frames);
        let list = pylist::with_len(py, n)?;
        if n > 0 {
            let frames = core.drain_frames(conn_id, max_frames);
            // Every slot must be filled (an empty one would crash the caller).
            assert_eq!(frames.len(), n, "drain_len and drain_frames disagree");
            for (i, f) in frames.enumerate() {
                pylist::put(&list, i, f.to_py(py).into_any());
            }
        }
        core.after_drain(conn_id);
        Ok(list)
    }

    fn queued(&self, py: Python<'_>, conn_id: i64) -> PyResult<(usize, usize)> {
        self.core().queued(conn_id).py_err(py)
    }

    fn take_ready<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let ids = self.core().take_ready();
        self.id_list(py, &ids)
    }

    #[pyo3(signature = (now_ms=0))]
    fn take_overflowed<'py>(
        &mut self,
        py: Python<'py>,
        now_ms: i64,
    ) -> PyResult<Bound<'py, PyList>> {
        let ids = self.core().take_overflowed(now_ms);
        self.id_list(py, &ids)
    }

    fn flush(&mut self, now_ms: i64) {
        self.core().flush(now_ms)
    }

    fn next_deadline_ms(&self) -> Option<i64> {
        self.core().next_deadline_ms()
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.core().stats();
        let d = PyDict::new(py);
        d.set_item("ticks_in", s.ticks_in)?;
        d.set_item("frames_queued", s.frames_queued)?;
        d.set_item("bytes_queued", s.bytes_queued)?;
        d.set_item("dropped", s.dropped)?;
        d.set_item("connections", s.connections)?;
        d.set_item("subscriptions", s.subscriptions)?;
        d.set_item("alerts", s.alerts)?;
        Ok(d)
    }

    fn backfill<'py>(
        &mut self,
        py: Python<'py>,
        symbol: &Bound<'py, PyAny>,
        interval: &Bound<'py, PyAny>,
        since_ms: i64,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let core = lock(&self.inner);
        let view = core
            .backfill_view(&text(symbol)?, &text(interval)?, since_ms)
            .py_err(py)?;
        self.candles.answer(py, &view)
    }

    fn recent_candles<'py>(
        &mut self,
        py: Python<'py>,
        symbol: &Bound<'py, PyAny>,
        interval: &Bound<'py, PyAny>,
        limit: i64,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let core = lock(&self.inner);
        let view = core
            .recent_candles_view(&text(symbol)?, &text(interval)?, limit)
            .py_err(py)?;
        self.candles.answer(py, &view)
    }

    fn add_alert(
        &mut self,
        py: Python<'_>,
        alert_id: i64,
        symbol: &Bound<'_, PyAny>,
        direction: &Bound<'_, PyAny>,
        level: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let level = match number(level) {
            Num::Float(v) => Some(v),
            Num::Other => None,
        };
        let direction = direction
            .cast::<PyString>()
            .ok()
            .map(|d| d.to_str())
            .transpose()?
            .unwrap_or("");
        self.core()
            .add_alert(alert_id, &text(symbol)?, direction, level)
            .py_err(py)
    }

    fn remove_alert(&mut self, alert_id: i64) -> bool {
        self.core().remove_alert(alert_id)
    }

    fn take_fired(&mut self) -> Vec<(i64, String, u64, u64, f64)> {
        let mut core = self.core();
        let fired = core.take_fired();
        fired
            .into_iter()
            .map(|f| {
                (
                    f.alert_id,
                    core.symbol_name(f.symbol).to_owned(),
                    f.seq,
                    f.ts,
                    f.price,
                )
            })
            .collect()
    }
}
