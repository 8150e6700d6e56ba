//! The one place core errors become Python exceptions: the classes of `tickfan.errors`, with
//! the core's messages (identical to the Python twin's).

use pyo3::prelude::*;
use pyo3::types::PyList;
use tickfan_core::Error;

fn class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    py.import("tickfan.errors")?.getattr(name)
}

/// Build the `tickfan.errors` exception for `err` (an ImportError if that module is missing).
pub fn to_py(py: Python<'_>, err: Error) -> PyErr {
    let message = err.message();
    let built = match err {
        Error::InvalidArgument(_) => class(py, "InvalidArgument").and_then(|c| c.call1((message,))),
        Error::UnknownSymbol(symbol) => {
            class(py, "UnknownSymbol").and_then(|c| c.call1((message, symbol)))
        }
        Error::UnknownConnection(_) => {
            class(py, "UnknownConnection").and_then(|c| c.call1((message,)))
        }
        Error::TooManySymbols(_) => class(py, "TooManySymbols").and_then(|c| c.call1((message,))),
        Error::TickRejected { errors, .. } => PyList::new(py, errors)
            .and_then(|list| class(py, "TickRejected").and_then(|c| c.call1((message, list)))),
    };
    match built {
        Ok(exc) => PyErr::from_value(exc),
        Err(e) => e,
    }
}

/// `Result<T, Error>` -> `PyResult<T>`.
pub trait IntoPyResult<T> {
    fn py_err(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for Result<T, Error> {
    fn py_err(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_py(py, e))
    }
}

/// `InvalidArgument(message)` raised from the binding itself (argument conversion).
pub fn invalid(py: Python<'_>, message: impl Into<String>) -> PyErr {
    to_py(py, Error::InvalidArgument(message.into()))
}
