//! The resume ring: each symbol's recent ticks, so a reconnecting client can get exactly the
//! ticks after its `last_seq` (tick-level resume).
//!
//! A tick is held while it is among the symbol's last `resume_max_ticks` and its `ts` is less
//! than `resume_window_ms` before the latest tick's `ts`. Eviction runs on tick time, not the
//! server clock, so every node that applies the same ticks holds the same ring.

use std::collections::VecDeque;

use crate::batch::encode_batch;
use crate::core::{latest_frame, Core};
use crate::error::{Error, Result};
use crate::fanout::Mode;
use crate::frame::{ascii, encode_market_data, Frame};

/// Contiguous recent ticks `base ..` of one symbol: `(ts, price units, size units)`.
#[derive(Debug, Default)]
pub(crate) struct Ring {
    base: u64,
    ticks: VecDeque<(u64, u64, u64)>,
}

impl Ring {
    /// Append tick `seq` (always the symbol's next), then evict by count and age.
    pub fn push(&mut self, seq: u64, ts: u64, price: u64, size: u64, window_ms: u64, max: usize) {
        if self.ticks.is_empty() {
            self.base = seq;
        }
        self.ticks.push_back((ts, price, size));
        while let Some(&(first_ts, _, _)) = self.ticks.front() {
            if self.ticks.len() > max || ts.saturating_sub(first_ts) >= window_ms {
                self.ticks.pop_front();
                self.base += 1;
            } else {
                break;
            }
        }
    }

    /// `(base, ticks)` for a checkpoint.
    pub fn export(&self) -> (u64, Vec<(u64, u64, u64)>) {
        (self.base, self.ticks.iter().copied().collect())
    }

    /// Hold `ticks` from seq `base` (non-empty), then evict by count and age as `push` does.
    pub fn load(&mut self, base: u64, ticks: Vec<(u64, u64, u64)>, window_ms: u64, max: usize) {
        self.base = base;
        self.ticks = ticks.into();
        let latest = self.ticks.back().map_or(0, |t| t.0);
        while let Some(&(first_ts, _, _)) = self.ticks.front() {
            if self.ticks.len() > max.max(1) || latest.saturating_sub(first_ts) >= window_ms.max(1)
            {
                self.ticks.pop_front();
                self.base += 1;
            } else {
                break;
            }
        }
    }

    /// `(first, last)` seq held, or None before the first tick.
    pub fn range(&self) -> Option<(u64, u64)> {
        (!self.ticks.is_empty()).then(|| (self.base, self.base + self.ticks.len() as u64 - 1))
    }

    /// Ticks `start ..= end` (all held: the caller checked the range).
    fn slice(&self, start: u64, end: u64) -> Vec<(u64, u64, u64)> {
        let lo = (start - self.base) as usize;
        let hi = (end - self.base) as usize;
        self.ticks.range(lo..=hi).copied().collect()
    }
}

/// Why a resume could not be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapReason {
    Evicted,
    Epoch,
}

impl GapReason {
    pub fn name(self) -> &'static str {
        match self {
            GapReason::Evicted => "evicted",
            GapReason::Epoch => "epoch",
        }
    }
}

/// The answer to `resume`: the frames to queue after the ack, or the gap the client cannot get.
#[derive(Debug)]
pub enum Resume<F> {
    Resumed(Vec<F>),
    Gap {
        from_seq: u64,
        to_seq: Option<u64>,
        reason: GapReason,
    },
}

impl<F: Frame> Core<F> {
    /// `(first, last)` seq of the symbol's resume ring, or None before its first tick.
    pub fn ring_range(&self, symbol: &str) -> Result<Option<(u64, u64)>> {
        let sym = self.universe.lookup(symbol)?;
        Ok(self.syms[sym].ring.range())
    }

    /// The ticks after `last_seq` of a symbol `conn` subscribes to, encoded in its mode, or the
    /// gap (see the spec).
    pub fn resume(
        &mut self,
        conn: i64,
        symbol: &str,
        last_seq: i64,
        epoch_matches: bool,
    ) -> Result<Resume<F>> {
        let c = self.out.get(conn).ok_or(Error::UnknownConnection(conn))?;
        let sym = self.universe.lookup(symbol)?;
        let Some(sub) = c.subs.get(&sym).copied() else {
            return Err(Error::invalid(format!("not subscribed to '{symbol}'")));
        };
        if last_seq < 0 {
            return Err(Error::invalid("last_seq must be an integer >= 0"));
        }
        let (queued_frames, queued_bytes) = (c.frames.len(), c.bytes);
        let last = last_seq as u64;
        let s = &mut self.syms[sym];
        let seq = s.seq;
        if !epoch_matches {
            return Ok(Resume::Gap {
                from_seq: last + 1,
                to_seq: (seq > 0).then_some(seq),
                reason: GapReason::Epoch,
            });
        }
        if last >= seq {
            return Ok(Resume::Resumed(Vec::new()));
        }
        let evicted = Resume::Gap {
            from_seq: last + 1,
            to_seq: Some(seq),
            reason: GapReason::Evicted,
        };
        match s.ring.range() {
            Some((first, _)) if first <= last + 1 => {}
            _ => return Ok(evicted),
        }
        let batched = match sub.mode {
            Mode::Batch => true,
            Mode::Auto => s.hf,
            Mode::Tick | Mode::Conflate => false,
        };
        let buf = &mut self.buf;
        let frames: Vec<F> = if sub.mode == Mode::Conflate {
            latest_frame(&mut s.latest, &s.name, s.pd, s.sd, buf)
                .into_iter()
                .collect()
        } else if batched {
            encode_batch(
                buf,
                &s.name,
                s.pd,
                s.sd,
                last + 1,
                &s.ring.slice(last + 1, seq),
            );
            vec![F::from_ascii(ascii(buf))]
        } else {
            s.ring
                .slice(last + 1, seq)
                .iter()
                .zip(last + 1..)
                .map(|(&(ts, price, size), n)| {
                    encode_market_data(buf, &s.name, n, ts, price, s.pd, size, s.sd);
                    F::from_ascii(ascii(buf))
                })
                .collect()
        };
        let bytes: usize = frames.iter().map(Frame::len).sum();
        let (max_frames, max_bytes) = self.out.limits();
        if queued_frames + frames.len() > max_frames || queued_bytes + bytes > max_bytes {
            return Ok(evicted);
        }
        Ok(Resume::Resumed(frames))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_evicts_by_count_and_tick_age() {
        let mut r = Ring::default();
        assert_eq!(r.range(), None);
        for seq in 1..=5 {
            r.push(seq, 1000 + seq * 10, 1, 1, 1_000_000, 3);
        }
        assert_eq!(r.range(), Some((3, 5)));
        r.push(6, 1060 + 25, 1, 1, 35, 3);
        // ts 1085: ticks with ts <= 1050 are 35 ms old or more.
        assert_eq!(r.range(), Some((6, 6)));
        assert_eq!(r.slice(6, 6), vec![(1085, 1, 1)]);
    }
}
