//! Result lists and tuples built with the lowest-level calls the stable ABI offers: the list
//! is allocated at its final size and each slot is filled by moving an owned reference in
//! (`PyList_SetItem` steals it), with no intermediate Rust collection.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use tickfan_core::Candle;

/// A new list of `n` empty slots; every slot must be filled with [`put`] before the list
/// reaches Python code.
pub fn with_len(py: Python<'_>, n: usize) -> PyResult<Bound<'_, PyList>> {
    // SAFETY: PyList_New returns a new reference or NULL with an exception set.
    unsafe {
        Ok(
            Bound::from_owned_ptr_or_err(py, ffi::PyList_New(n as ffi::Py_ssize_t))?
                .cast_into_unchecked(),
        )
    }
}

/// Move `item` into slot `i` (< the list's length, not yet filled) of a list from
/// [`with_len`].
#[inline]
pub fn put(list: &Bound<'_, PyList>, i: usize, item: Bound<'_, PyAny>) {
    // SAFETY: `list` is a list; PyList_SetItem steals the reference and only fails for an
    // index out of range, which the callers rule out (the slot is NULL, so nothing leaks).
    unsafe {
        ffi::PyList_SetItem(list.as_ptr(), i as ffi::Py_ssize_t, item.into_ptr());
    }
}

/// `(open_ms, open, high, low, close, volume)`: an int and five floats.
pub fn candle<'py>(py: Python<'py>, c: &Candle) -> PyResult<Bound<'py, PyTuple>> {
    // SAFETY: each constructor returns a new reference or NULL with an exception set; the
    // tuple is owned by `t` from the start, so an error drops it (and the items set so far).
    // PyTuple_SetItem steals the item and cannot fail on a fresh tuple with index < 6.
    unsafe {
        let t = Bound::from_owned_ptr_or_err(py, ffi::PyTuple_New(6))?;
        let items = [
            ffi::PyLong_FromUnsignedLongLong(c.open_ms),
            ffi::PyFloat_FromDouble(c.open),
            ffi::PyFloat_FromDouble(c.high),
            ffi::PyFloat_FromDouble(c.low),
            ffi::PyFloat_FromDouble(c.close),
            ffi::PyFloat_FromDouble(c.volume),
        ];
        let mut failed = false;
        for (i, item) in items.into_iter().enumerate() {
            if item.is_null() {
                failed = true;
            } else {
                ffi::PyTuple_SetItem(t.as_ptr(), i as ffi::Py_ssize_t, item);
            }
        }
        if failed {
            return Err(PyErr::fetch(py));
        }
        Ok(t.cast_into_unchecked())
    }
}
