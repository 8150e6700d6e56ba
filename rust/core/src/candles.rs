//! OHLCV candles per symbol and interval in fixed-capacity rings, keyed by the tick's `ts`.
//!
//! Ticks never go back in time within a symbol, so each ring is sorted by open time and
//! lookups are binary searches. Only the newest evicted open time is remembered: it is all
//! `complete` needs.

use std::collections::VecDeque;

use crate::POW10;

/// Candle intervals and their length in ms, in the spec's order.
pub const INTERVALS: [(&str, u64); 4] = [
    ("1s", 1000),
    ("1m", 60_000),
    ("5m", 300_000),
    ("1h", 3_600_000),
];
pub const DEFAULT_CAPACITY: [usize; 4] = [3600, 1440, 2016, 720];

/// An index into [`INTERVALS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval(pub(crate) usize);

impl Interval {
    pub fn parse(name: &str) -> Option<Interval> {
        INTERVALS.iter().position(|(n, _)| *n == name).map(Interval)
    }
}

/// `(open time ms, open, high, low, close, volume)` as floats computed from units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candle {
    pub open_ms: u64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

/// One interval's candles in a checkpoint: bars are `(open_ms, open, high, low, close, volume)`
/// in units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CandleRing {
    pub newest_evicted: Option<u64>,
    pub bars: Vec<(u64, u64, u64, u64, u64, u128)>,
}

#[derive(Debug, Clone, Copy)]
struct Bar {
    open_ms: u64,
    open: u64,
    high: u64,
    low: u64,
    close: u64,
    /// Sum of size units; u128 so no realistic tick count can overflow it.
    volume: u128,
}

#[derive(Debug)]
struct Ring {
    len_ms: u64,
    cap: usize,
    bars: VecDeque<Bar>,
    newest_evicted: Option<u64>,
}

#[derive(Debug)]
pub(crate) struct Candles {
    rings: [Ring; 4],
}

impl Candles {
    pub fn new(capacity: [usize; 4]) -> Self {
        let ring = |i: usize| Ring {
            len_ms: INTERVALS[i].1,
            cap: capacity[i],
            bars: VecDeque::new(),
            newest_evicted: None,
        };
        Candles {
            rings: [ring(0), ring(1), ring(2), ring(3)],
        }
    }

    pub fn update(&mut self, ts: u64, price: u64, size: u64) {
        for r in &mut self.rings {
            let open_ms = ts - ts % r.len_ms;
            match r.bars.back_mut() {
                Some(b) if b.open_ms == open_ms => {
                    b.high = b.high.max(price);
                    b.low = b.low.min(price);
                    b.close = price;
                    b.volume += size as u128;
                }
                Some(b) if b.open_ms > open_ms => {} // unreachable: ts is non-decreasing
                _ => {
                    r.bars.push_back(Bar {
                        open_ms,
                        open: price,
                        high: price,
                        low: price,
                        close: price,
                        volume: size as u128,
                    });
                    if r.bars.len() > r.cap {
                        r.newest_evicted = r.bars.pop_front().map(|b| b.open_ms);
                    }
                }
            }
        }
    }

    /// Per interval: the newest evicted open time and the held bars in units, oldest first.
    pub fn export(&self) -> Vec<CandleRing> {
        self.rings
            .iter()
            .map(|r| CandleRing {
                newest_evicted: r.newest_evicted,
                bars: r
                    .bars
                    .iter()
                    .map(|b| (b.open_ms, b.open, b.high, b.low, b.close, b.volume))
                    .collect(),
            })
            .collect()
    }

    /// Replace every ring with an exported one (4 of them), cut to this ring's capacity (the
    /// bars cut count as evicted).
    pub fn load(&mut self, rings: Vec<CandleRing>) {
        for (r, exported) in self.rings.iter_mut().zip(rings) {
            r.newest_evicted = exported.newest_evicted;
            r.bars.clear();
            for (open_ms, open, high, low, close, volume) in exported.bars {
                r.bars.push_back(Bar {
                    open_ms,
                    open,
                    high,
                    low,
                    close,
                    volume,
                });
                if r.bars.len() > r.cap {
                    r.newest_evicted = r.bars.pop_front().map(|b| b.open_ms);
                }
            }
        }
    }

    /// Candles with open time >= the open of the candle containing `since_ms` (< 0 acts as 0).
    #[cfg(test)]
    pub fn backfill(&self, iv: Interval, since_ms: i64, pd: u32, sd: u32) -> (Vec<Candle>, bool) {
        let v = self.backfill_view(iv, since_ms, pd, sd);
        (v.to_vec(), v.complete)
    }

    /// The most recent `limit` (>= 1) candles, oldest first.
    #[cfg(test)]
    pub fn recent(&self, iv: Interval, limit: usize, pd: u32, sd: u32) -> (Vec<Candle>, bool) {
        let v = self.recent_view(iv, limit, pd, sd);
        (v.to_vec(), v.complete)
    }

    /// [`Candles::backfill`] without converting anything yet.
    pub fn backfill_view(&self, iv: Interval, since_ms: i64, pd: u32, sd: u32) -> CandleView<'_> {
        let r = &self.rings[iv.0];
        let since = since_ms.max(0) as u64;
        let start = since - since % r.len_ms;
        let (first, complete) = if matches!(r.newest_evicted, Some(e) if e >= start) {
            (0, false)
        } else {
            (r.bars.partition_point(|b| b.open_ms < start), true)
        };
        CandleView {
            bars: &r.bars,
            first,
            pd,
            sd,
            complete,
            symbol: 0,
            interval: iv.0,
        }
    }

    /// [`Candles::recent`] without converting anything yet.
    pub fn recent_view(&self, iv: Interval, limit: usize, pd: u32, sd: u32) -> CandleView<'_> {
        let r = &self.rings[iv.0];
        let n = limit.min(r.bars.len());
        CandleView {
            bars: &r.bars,
            first: r.bars.len() - n,
            pd,
            sd,
            complete: n == limit || r.newest_evicted.is_none(),
            symbol: 0,
            interval: iv.0,
        }
    }
}

/// The answer of a backfill or recent-candles query: the newest candles of one ring (always a
/// suffix of it), converted to floats on demand, so a caller that caches converted candles
/// (the binding caches their Python tuples) only converts what it has not seen.
///
/// Ticks arrive in `ts` order, so only the newest candle held can still change: every other
/// one is final, and stays so until it is evicted (after which it is older than
/// [`CandleView::oldest_held_ms`]).
pub struct CandleView<'a> {
    bars: &'a VecDeque<Bar>,
    first: usize,
    pd: u32,
    sd: u32,
    pub complete: bool,
    /// Index of the symbol (universe order) and of the interval ([`INTERVALS`] order) whose
    /// ring this is: a key for caches of converted candles.
    pub symbol: usize,
    pub interval: usize,
}

impl CandleView<'_> {
    pub(crate) fn at(self, symbol: usize, iv: Interval) -> Self {
        CandleView {
            symbol,
            interval: iv.0,
            ..self
        }
    }

    pub fn len(&self) -> usize {
        self.bars.len() - self.first
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Open time of candle `i` (0 = oldest in the answer).
    #[inline]
    pub fn open_ms(&self, i: usize) -> u64 {
        self.bars[self.first + i].open_ms
    }

    /// Candle `i` as floats.
    #[inline]
    pub fn candle(&self, i: usize) -> Candle {
        to_candle(&self.bars[self.first + i], self.pd, self.sd)
    }

    /// Whether candle `i` can no longer change (every candle but the newest held).
    #[inline]
    pub fn is_final(&self, i: usize) -> bool {
        self.first + i + 1 < self.bars.len()
    }

    /// Open time of the oldest candle the ring still holds (not only in this answer); None
    /// when it holds none. Candles with an older open time have been evicted.
    pub fn oldest_held_ms(&self) -> Option<u64> {
        self.bars.front().map(|b| b.open_ms)
    }

    pub fn to_vec(&self) -> Vec<Candle> {
        self.bars
            .range(self.first..)
            .map(|b| to_candle(b, self.pd, self.sd))
            .collect()
    }
}

fn to_candle(b: &Bar, pd: u32, sd: u32) -> Candle {
    let p = POW10[pd as usize];
    Candle {
        open_ms: b.open_ms,
        open: b.open as f64 / p,
        high: b.high as f64 / p,
        low: b.low as f64 / p,
        close: b.close as f64 / p,
        // `as` rounds to nearest, ties to even: the same float as Python's float(int).
        volume: b.volume as f64 / POW10[sd as usize],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opens(v: &(Vec<Candle>, bool)) -> (Vec<u64>, bool) {
        (v.0.iter().map(|c| c.open_ms).collect(), v.1)
    }

    #[test]
    fn ohlcv_from_units() {
        let mut c = Candles::new([3, 3, 3, 3]);
        c.update(1000, 105, 1);
        c.update(1500, 110, 2);
        c.update(1999, 95, 3);
        c.update(2000, 100, 4);
        let (bars, complete) = c.backfill(Interval(0), 0, 1, 0);
        assert!(complete);
        assert_eq!(
            bars[0],
            Candle {
                open_ms: 1000,
                open: 10.5,
                high: 11.0,
                low: 9.5,
                close: 9.5,
                volume: 6.0
            }
        );
        assert_eq!(bars[1].open_ms, 2000);
        let (m, _) = c.backfill(Interval(1), 0, 1, 0);
        assert_eq!((m.len(), m[0].volume, m[0].close), (1, 10.0, 10.0));
    }

    #[test]
    fn ring_eviction_and_complete_flag() {
        let mut c = Candles::new([3, 3, 3, 3]);
        let iv = Interval(0);
        for s in [1u64, 2, 5, 9] {
            c.update(s * 1000 + 7, 1, 1);
        }
        // held: 2000, 5000, 9000; 1000 evicted.
        assert_eq!(
            opens(&c.backfill(iv, 0, 0, 0)),
            (vec![2000, 5000, 9000], false)
        );
        assert_eq!(
            opens(&c.backfill(iv, -5, 0, 0)),
            (vec![2000, 5000, 9000], false)
        );
        assert_eq!(
            opens(&c.backfill(iv, 1999, 0, 0)),
            (vec![2000, 5000, 9000], false)
        );
        assert_eq!(
            opens(&c.backfill(iv, 2000, 0, 0)),
            (vec![2000, 5000, 9000], true)
        );
        assert_eq!(
            opens(&c.backfill(iv, 2500, 0, 0)),
            (vec![2000, 5000, 9000], true)
        );
        assert_eq!(opens(&c.backfill(iv, 3000, 0, 0)), (vec![5000, 9000], true));
        assert_eq!(opens(&c.backfill(iv, 9999, 0, 0)), (vec![9000], true));
        assert_eq!(opens(&c.backfill(iv, 10_000, 0, 0)), (vec![], true));
        assert_eq!(opens(&c.recent(iv, 2, 0, 0)), (vec![5000, 9000], true));
        assert_eq!(
            opens(&c.recent(iv, 3, 0, 0)),
            (vec![2000, 5000, 9000], true)
        );
        assert_eq!(
            opens(&c.recent(iv, 4, 0, 0)),
            (vec![2000, 5000, 9000], false)
        );
        let empty = Candles::new([3, 3, 3, 3]);
        assert_eq!(opens(&empty.recent(iv, 4, 0, 0)), (vec![], true));
    }

    #[test]
    fn views_mark_all_but_the_newest_final_and_know_the_oldest_held() {
        let mut c = Candles::new([3, 3, 3, 3]);
        let iv = Interval(0);
        assert_eq!(c.backfill_view(iv, 0, 0, 0).oldest_held_ms(), None);
        for s in [1u64, 2, 5, 9] {
            c.update(s * 1000 + 7, s, 1);
        }
        let v = c.backfill_view(iv, 5000, 0, 0);
        assert_eq!((v.len(), v.open_ms(0), v.open_ms(1)), (2, 5000, 9000));
        assert_eq!((v.is_final(0), v.is_final(1)), (true, false));
        assert_eq!(v.oldest_held_ms(), Some(2000));
        assert_eq!(v.candle(1).close, 9.0);
        assert_eq!(v.to_vec(), c.backfill(iv, 5000, 0, 0).0);
        let r = c.recent_view(iv, 3, 0, 0);
        assert_eq!(
            (r.len(), r.open_ms(0), r.is_final(1), r.is_final(2)),
            (3, 2000, true, false)
        );
        // Once a newer candle opens, the previous newest becomes final.
        c.update(9999, 4, 1);
        c.update(10_000, 4, 1);
        let v = c.backfill_view(iv, 9000, 0, 0);
        assert_eq!(
            (v.is_final(0), v.is_final(1), v.oldest_held_ms()),
            (true, false, Some(5000))
        );
    }

    #[test]
    fn volume_rounds_like_python_float_of_int() {
        let mut c = Candles::new([3, 3, 3, 3]);
        let big = crate::MAX_UNITS;
        c.update(0, 1, big);
        c.update(1, 1, big);
        c.update(2, 1, 3);
        let v = c.recent(Interval(0), 1, 0, 0).0[0].volume;
        assert_eq!(v, (2 * big as u128 + 3) as f64);
        assert_eq!(v, 18014398509481984.0);
    }
}
