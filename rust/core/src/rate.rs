//! Per-symbol tick rate over the last 10 buckets of 100 ms of the caller's clock (`now_ms`).

use std::collections::VecDeque;

const BUCKET_MS: i64 = 100;
const BUCKETS: i64 = 10;

/// `(bucket, ticks)` pairs, oldest first. With a non-decreasing clock this holds at most 10
/// entries; a clock that steps back only makes the count ignore "future" buckets.
#[derive(Debug, Default)]
pub(crate) struct Rate {
    buckets: VecDeque<(i64, u32)>,
}

impl Rate {
    /// Count one tick at `now_ms`; return the number of ticks whose bucket lies in the last
    /// 10 buckets up to the current one (both included), this tick counted.
    pub fn add(&mut self, now_ms: i64) -> u64 {
        let b = now_ms.div_euclid(BUCKET_MS);
        let oldest = b.saturating_sub(BUCKETS - 1);
        self.buckets.retain(|&(k, _)| k >= oldest);
        match self.buckets.iter_mut().find(|(k, _)| *k == b) {
            Some((_, n)) => *n += 1,
            None => self.buckets.push_back((b, 1)),
        }
        self.buckets
            .iter()
            .filter(|(k, _)| *k <= b)
            .map(|&(_, n)| n as u64)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_ten_buckets_including_the_current_one() {
        let mut r = Rate::default();
        assert_eq!(r.add(0), 1);
        assert_eq!(r.add(99), 2);
        assert_eq!(r.add(100), 3);
        assert_eq!(r.add(999), 4); // bucket 9: buckets 0..=9 count
        assert_eq!(r.add(1000), 3); // bucket 10: bucket 0 (two ticks) drops out
        assert_eq!(r.add(1999), 2); // bucket 19: only buckets 10..=19
        assert_eq!(r.add(-50), 1); // clock stepped back: later buckets are ignored
    }
}
