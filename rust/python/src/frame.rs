//! The binding's frame handle: a Python `str`. One encoded frame becomes one `str` object and
//! every subscriber's queue holds a new reference to it, so `drain(a)[0] is drain(b)[0]`.

use pyo3::prelude::*;
use pyo3::types::PyString;
use tickfan_core::Frame;

pub struct PyFrame {
    pub obj: Py<PyString>,
    /// `len()` of the str (frames are ASCII, so also its byte count).
    pub len: usize,
}

impl Clone for PyFrame {
    /// A new reference to the same str. Core methods only run while attached to the
    /// interpreter (they are called from Python), so attaching here is a thread-local check.
    fn clone(&self) -> Self {
        Python::attach(|py| PyFrame { obj: self.obj.clone_ref(py), len: self.len })
    }
}

impl Frame for PyFrame {
    fn from_ascii(text: &str) -> Self {
        Python::attach(|py| PyFrame { obj: PyString::new(py, text).unbind(), len: text.len() })
    }

    fn len(&self) -> usize {
        self.len
    }
}
