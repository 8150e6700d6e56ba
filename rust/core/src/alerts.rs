//! Price alerts: per symbol and direction a heap of levels, so checking a tick costs
//! O(log n + k) for k fired alerts. Removal is lazy (a token marks the live entry); stale
//! entries are compacted once they outnumber the live ones.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// Positive finite floats order like their bit patterns, so heaps hold `u64` keys.
type Key = (u64, i64, u64); // (level bits, alert id, token)

#[derive(Debug, Default)]
pub(crate) struct SymbolAlerts {
    above: BinaryHeap<Reverse<Key>>,
    below: BinaryHeap<Key>,
    stale: usize,
}

#[derive(Debug, Clone, Copy)]
struct Armed {
    sym: usize,
    token: u64,
}

#[derive(Debug, Default)]
pub(crate) struct AlertBook {
    armed: HashMap<i64, Armed>,
    next_token: u64,
}

impl AlertBook {
    pub fn len(&self) -> usize {
        self.armed.len()
    }

    pub fn contains(&self, id: i64) -> bool {
        self.armed.contains_key(&id)
    }

    /// Arm alert `id` (caller validated everything; `level` is finite and > 0).
    pub fn add(&mut self, sa: &mut SymbolAlerts, sym: usize, id: i64, above: bool, level: f64) {
        self.next_token += 1;
        let token = self.next_token;
        self.armed.insert(id, Armed { sym, token });
        let key = (level.to_bits(), id, token);
        if above {
            sa.above.push(Reverse(key));
        } else {
            sa.below.push(key);
        }
    }

    /// Disarm; returns the symbol whose heaps now hold a stale entry.
    pub fn remove(&mut self, id: i64) -> Option<usize> {
        self.armed.remove(&id).map(|a| a.sym)
    }

    fn take(&mut self, id: i64, token: u64) -> bool {
        match self.armed.get(&id) {
            Some(a) if a.token == token => {
                self.armed.remove(&id);
                true
            }
            _ => false,
        }
    }

    /// Pop every alert of this symbol that `price` fires; ids appended sorted.
    pub fn check(&mut self, sa: &mut SymbolAlerts, price: f64, fired: &mut Vec<i64>) {
        let start = fired.len();
        while let Some(&Reverse((bits, id, token))) = sa.above.peek() {
            if f64::from_bits(bits) > price {
                break;
            }
            sa.above.pop();
            if self.take(id, token) {
                fired.push(id);
            } else {
                sa.stale = sa.stale.saturating_sub(1);
            }
        }
        while let Some(&(bits, id, token)) = sa.below.peek() {
            if f64::from_bits(bits) < price {
                break;
            }
            sa.below.pop();
            if self.take(id, token) {
                fired.push(id);
            } else {
                sa.stale = sa.stale.saturating_sub(1);
            }
        }
        fired[start..].sort_unstable();
    }

    /// Note a stale entry in `sa`; rebuild its heaps when stale entries dominate.
    pub fn note_stale(&self, sa: &mut SymbolAlerts) {
        sa.stale += 1;
        let total = sa.above.len() + sa.below.len();
        if sa.stale > 64 && sa.stale * 2 > total {
            let live =
                |id: i64, token: u64| matches!(self.armed.get(&id), Some(a) if a.token == token);
            sa.above.retain(|Reverse((_, id, t))| live(*id, *t));
            sa.below.retain(|(_, id, t)| live(*id, *t));
            sa.stale = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_once_in_id_order_and_skips_removed() {
        let mut book = AlertBook::default();
        let mut sa = SymbolAlerts::default();
        book.add(&mut sa, 0, 3, true, 100.0);
        book.add(&mut sa, 0, 1, true, 101.0);
        book.add(&mut sa, 0, 2, true, 99.5);
        book.add(&mut sa, 0, 7, false, 90.0);
        book.add(&mut sa, 0, 8, false, 95.0);
        let mut fired = Vec::new();
        book.check(&mut sa, 99.0, &mut fired);
        assert!(fired.is_empty());
        book.check(&mut sa, 100.0, &mut fired);
        assert_eq!(fired, vec![2, 3]);
        assert_eq!(book.remove(1), Some(0));
        book.note_stale(&mut sa);
        book.add(&mut sa, 0, 1, true, 150.0); // same id re-armed at another level
        fired.clear();
        book.check(&mut sa, 120.0, &mut fired);
        assert!(fired.is_empty());
        book.check(&mut sa, 95.0, &mut fired);
        assert_eq!(fired, vec![8]);
        fired.clear();
        book.check(&mut sa, 150.0, &mut fired);
        assert_eq!(fired, vec![1]);
        assert_eq!(book.len(), 1);
        assert!(book.contains(7) && !book.contains(8));
    }

    #[test]
    fn stale_entries_are_compacted() {
        let mut book = AlertBook::default();
        let mut sa = SymbolAlerts::default();
        for i in 0..1000 {
            book.add(&mut sa, 0, i, i % 2 == 0, 10.0 + i as f64);
            book.remove(i);
            book.note_stale(&mut sa);
        }
        assert!(sa.above.len() + sa.below.len() <= 130);
    }
}
