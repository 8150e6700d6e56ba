//! The one error type of the core. The binding maps each variant to its `tickfan.errors` class.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// `InvalidArgument` with this exact message.
    InvalidArgument(String),
    /// `UnknownSymbol`: the symbol as given (display text when it was not a str).
    UnknownSymbol(String),
    /// `UnknownConnection` for this id.
    UnknownConnection(i64),
    /// `TooManySymbols`: the per-connection limit.
    TooManySymbols(usize),
    /// `TickRejected`: `(index, message)` for every invalid item, and the item count.
    TickRejected {
        total: usize,
        errors: Vec<(usize, String)>,
    },
}

impl Error {
    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }

    /// The message the Python exception carries, identical in both cores.
    pub fn message(&self) -> String {
        match self {
            Error::InvalidArgument(m) => m.clone(),
            Error::UnknownSymbol(s) => unknown_symbol_message(s),
            Error::UnknownConnection(id) => format!("unknown connection {id}"),
            Error::TooManySymbols(n) => format!("at most {n} symbols per connection"),
            Error::TickRejected { total, errors } => {
                format!("{} of {} ticks rejected", errors.len(), total)
            }
        }
    }
}

pub(crate) fn unknown_symbol_message(name: &str) -> String {
    format!("unknown symbol '{name}'")
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;
