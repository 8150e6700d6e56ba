//! The binding's frame handle: shared bytes, usable on any thread without the interpreter.
//!
//! One encoded frame is one `Arc`; every subscriber's queue holds a clone (a reference count,
//! no Python). A writer outside Python (the fast lane) writes `bytes()` as they are. The
//! Granian path needs a Python `str`: [`PyFrame::to_py`] creates it on the first drain of the
//! frame and caches it in the frame, so every later subscriber gets the same object
//! (`drain(a)[0] is drain(b)[0]`): one `str` per frame, not one per subscriber.
//!
//! A cached `str` is a Python object inside a shared frame, so the last clone of such a frame
//! must be dropped while attached to the interpreter; a thread that never attaches hands the
//! frames it is done with to [`PyFrame::needs_interpreter`]'s owner instead of dropping them.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use pyo3::prelude::*;
use pyo3::types::PyString;
use tickfan_core::Frame;

struct Shared {
    /// UTF-8 text (always built from a `str`).
    text: Bytes,
    /// `len()` of the text as Python counts it (characters), as the twin counts queue bytes.
    len: usize,
    py: OnceLock<Py<PyString>>,
}

#[derive(Clone)]
pub struct PyFrame(Arc<Shared>);

impl PyFrame {
    /// A frame queued from Python (an ack, an error, a channel's own message): its `str` is
    /// already there, so it is cached from the start and comes back as the same object.
    pub fn from_py(obj: Bound<'_, PyString>) -> PyResult<Self> {
        let text = Bytes::copy_from_slice(obj.to_str()?.as_bytes());
        let len = obj.len()?;
        let py = OnceLock::new();
        let _ = py.set(obj.unbind());
        Ok(PyFrame(Arc::new(Shared { text, len, py })))
    }

    /// The frame as a Python `str`: created once per frame, shared by every later call.
    pub fn to_py<'py>(&self, py: Python<'py>) -> Bound<'py, PyString> {
        self.0
            .py
            .get_or_init(|| PyString::new(py, self.text()).unbind())
            .bind(py)
            .clone()
    }

    fn text(&self) -> &str {
        // Built from a `str` only, so this never fails.
        std::str::from_utf8(&self.0.text).unwrap_or("")
    }

    /// The encoded UTF-8 text as shared bytes (a reference count, no copy).
    pub fn bytes(&self) -> Bytes {
        self.0.text.clone()
    }

    /// Whether dropping this clone may release a Python object (it holds a cached `str`; any
    /// other clone may be dropped meanwhile): such a clone is dropped while attached.
    pub fn needs_interpreter(&self) -> bool {
        self.0.py.get().is_some()
    }
}

impl Frame for PyFrame {
    fn from_ascii(text: &str) -> Self {
        PyFrame(Arc::new(Shared {
            text: Bytes::copy_from_slice(text.as_bytes()),
            len: text.len(),
            py: OnceLock::new(),
        }))
    }

    fn len(&self) -> usize {
        self.0.len
    }
}
