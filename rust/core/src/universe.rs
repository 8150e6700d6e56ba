//! The symbol universe: names, decimals, and the name -> index map every lookup goes through.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::MAX_DECIMALS;

/// One symbol as configured: `(name, price_decimals, size_decimals)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolSpec {
    pub name: String,
    /// False when the caller's name was not a string (`name` is then its text, and the
    /// symbol is rejected as an invalid name).
    pub name_is_str: bool,
    pub price_decimals: i64,
    pub size_decimals: i64,
}

/// A validated universe. Symbol indexes (`usize`) are positions in the configured order; the
/// rest of the core stores indexes, never names.
#[derive(Debug)]
pub(crate) struct Universe {
    pub specs: Vec<SymbolSpec>,
    index: HashMap<Box<str>, usize>,
}

/// `[A-Za-z0-9._:/-]{1,32}`: names that never need JSON escaping.
pub(crate) fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'/' | b'-'))
}

impl Universe {
    pub fn new(specs: Vec<SymbolSpec>) -> Result<Self> {
        if specs.is_empty() {
            return Err(Error::invalid("symbol universe is empty"));
        }
        let mut index = HashMap::with_capacity(specs.len());
        for (i, s) in specs.iter().enumerate() {
            if !s.name_is_str || !valid_name(&s.name) {
                return Err(Error::invalid(format!("invalid symbol name '{}'", s.name)));
            }
            if index.insert(Box::from(s.name.as_str()), i).is_some() {
                return Err(Error::invalid(format!("duplicate symbol '{}'", s.name)));
            }
            let ok = |d: i64| (0..=MAX_DECIMALS as i64).contains(&d);
            if !ok(s.price_decimals) || !ok(s.size_decimals) {
                return Err(Error::invalid(format!(
                    "decimals of '{}' must be between 0 and {MAX_DECIMALS}",
                    s.name
                )));
            }
        }
        Ok(Universe { specs, index })
    }

    #[inline]
    pub fn find(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    pub fn lookup(&self, name: &str) -> Result<usize> {
        self.find(name)
            .ok_or_else(|| Error::UnknownSymbol(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, p: i64, s: i64) -> SymbolSpec {
        SymbolSpec {
            name: name.into(),
            name_is_str: true,
            price_decimals: p,
            size_decimals: s,
        }
    }

    #[test]
    fn names_and_decimals_are_validated() {
        assert!(valid_name("BTC/USD") && valid_name("a.b_c:d-e") && !valid_name(""));
        assert!(!valid_name("BTC USD") && !valid_name("\"") && !valid_name(&"A".repeat(33)));
        let msg = |v: Vec<SymbolSpec>| Universe::new(v).unwrap_err().message();
        assert_eq!(msg(vec![]), "symbol universe is empty");
        assert_eq!(
            msg(vec![spec("A", 2, 2), spec("A", 2, 2)]),
            "duplicate symbol 'A'"
        );
        assert_eq!(msg(vec![spec("a b", 2, 2)]), "invalid symbol name 'a b'");
        assert_eq!(
            msg(vec![spec("A", 13, 2)]),
            "decimals of 'A' must be between 0 and 12"
        );
        assert_eq!(
            msg(vec![spec("A", 2, -1)]),
            "decimals of 'A' must be between 0 and 12"
        );
        let u = Universe::new(vec![spec("A", 0, 12), spec("B", 2, 8)]).unwrap();
        assert_eq!(u.find("B"), Some(1));
        assert_eq!(u.lookup("C").unwrap_err().message(), "unknown symbol 'C'");
    }
}
