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
    /// A new reference to the same str (the fan-out hot path: one per subscriber).
    fn clone(&self) -> Self {
        // SAFETY: frames live inside `PyCore`, whose methods only run when called from
        // Python, i.e. while this thread is attached to the interpreter; cloning happens only
        // inside those methods. Skipping `Python::attach` saves its thread-local bookkeeping
        // per subscriber (measured: /tmp bench "one tick to 10,000 tick subscribers").
        let py = unsafe { Python::assume_attached() };
        PyFrame {
            obj: self.obj.clone_ref(py),
            len: self.len,
        }
    }
}

impl Frame for PyFrame {
    fn from_ascii(text: &str) -> Self {
        Python::attach(|py| PyFrame {
            obj: PyString::new(py, text).unbind(),
            len: text.len(),
        })
    }

    fn len(&self) -> usize {
        self.len
    }
}
