//! Connections and their bounded outbound FIFOs.
//!
//! Connection ids are 1, 2, 3, ... and never reused, so the table is a `Vec` indexed by
//! `id - 1`: the fan-out hot path reaches a subscriber's queue with one bounds-checked index,
//! no hashing.

use std::collections::{BTreeMap, VecDeque};

use crate::fanout::Sub;
use crate::frame::Frame;

pub(crate) struct Conn<F> {
    pub frames: VecDeque<F>,
    pub bytes: usize,
    /// To be closed: a frame without a seq range did not fit, or the grace ran out. Every
    /// later frame is dropped.
    pub overflowed: bool,
    /// Over the hard limit: market data is dropped (and its seq ranges noted in `skipped`)
    /// until a drain leaves the queue at most half full.
    pub over: bool,
    /// When `over` began: the `now_ms` of the first `take_overflowed` that saw it.
    pub over_since: Option<i64>,
    /// While `over`, by symbol index: the first and last seq of the market data dropped.
    pub skipped: BTreeMap<usize, (u64, u64)>,
    /// Already listed in `Outbound::ready` since the last `take_ready`.
    pub in_ready: bool,
    /// Subscriptions by symbol index (universe order).
    pub subs: BTreeMap<usize, Sub>,
    /// Past the high-water mark: tick and auto subscriptions conflated.
    pub degraded: bool,
    /// Listed in `Outbound::to_degrade`.
    pub noted: bool,
    /// While degraded, by symbol index: the subscription to restore and the first seq
    /// conflation may have skipped.
    pub restore: BTreeMap<usize, (Sub, u64)>,
    /// The clock when the queue last went non-empty (or the connection last recovered with
    /// frames still queued): the start of the age the age rule measures.
    pub busy_since: i64,
    /// The clock when the connection was last degraded.
    pub degraded_at: i64,
}

/// Counters exposed by `stats()`.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counters {
    pub frames_queued: u64,
    pub bytes_queued: u64,
    pub dropped: u64,
}

pub(crate) struct Outbound<F> {
    conns: Vec<Option<Box<Conn<F>>>>,
    pub live: usize,
    pub ready: Vec<u64>,
    pub overflowed: Vec<u64>,
    /// Connections that went `over` and are not reported yet.
    pub over: Vec<u64>,
    /// How long a connection may stay `over` before it is reported by `take_overflowed`.
    grace_ms: i64,
    pub counters: Counters,
    max_frames: usize,
    max_bytes: usize,
    /// The high-water mark (frames): a queue reaching it notes its connection for degrading.
    high: usize,
    pub to_degrade: Vec<u64>,
    /// The age rule: a queue not empty for this many ms notes its connection (None: off).
    degrade_after: Option<i64>,
    /// The latest `now_ms` a timed core call brought (never goes back): the time of every
    /// age decision, also in the calls that take no `now_ms`. `i64::MIN` until the first one,
    /// which then stamps the ages started before it.
    pub clock: i64,
    /// `(id, busy_since)` of queues that went non-empty, in clock order; an entry whose
    /// `busy_since` no longer matches its connection's is stale.
    aging: VecDeque<(u64, i64)>,
    /// Always empty: what draining an unknown connection iterates.
    empty: VecDeque<F>,
}

impl<F: Frame> Outbound<F> {
    pub fn new(
        max_frames: usize,
        max_bytes: usize,
        high: usize,
        grace_ms: i64,
        degrade_after: Option<i64>,
    ) -> Self {
        Outbound {
            degrade_after,
            clock: i64::MIN,
            aging: VecDeque::new(),
            high,
            over: Vec::new(),
            grace_ms,
            to_degrade: Vec::new(),
            conns: Vec::new(),
            live: 0,
            ready: Vec::new(),
            overflowed: Vec::new(),
            counters: Counters::default(),
            max_frames,
            max_bytes,
            empty: VecDeque::new(),
        }
    }

    /// `(max_frames, max_bytes)` of every queue.
    pub fn limits(&self) -> (usize, usize) {
        (self.max_frames, self.max_bytes)
    }

    pub fn connect(&mut self) -> u64 {
        self.conns.push(Some(Box::new(Conn {
            frames: VecDeque::new(),
            bytes: 0,
            overflowed: false,
            over: false,
            over_since: None,
            skipped: BTreeMap::new(),
            in_ready: false,
            subs: BTreeMap::new(),
            degraded: false,
            noted: false,
            restore: BTreeMap::new(),
            busy_since: 0,
            degraded_at: 0,
        })));
        self.live += 1;
        self.conns.len() as u64
    }

    #[inline]
    fn slot(&self, id: i64) -> Option<usize> {
        let i = usize::try_from(id).ok()?.checked_sub(1)?;
        (i < self.conns.len()).then_some(i)
    }

    #[inline]
    pub fn get(&self, id: i64) -> Option<&Conn<F>> {
        self.conns.get(self.slot(id)?)?.as_deref()
    }

    #[inline]
    pub fn get_mut(&mut self, id: i64) -> Option<&mut Conn<F>> {
        let i = self.slot(id)?;
        self.conns[i].as_deref_mut()
    }

    pub fn remove(&mut self, id: i64) -> Option<Box<Conn<F>>> {
        let i = self.slot(id)?;
        let conn = self.conns[i].take();
        if conn.is_some() {
            self.live -= 1;
        }
        conn
    }

    /// Queue `frame` (a control frame: no seq range) to connection `id`. Returns whether it was
    /// queued; a frame that does not fit overflows the connection for good.
    #[inline]
    pub fn push(&mut self, id: u64, frame: &F) -> bool {
        let Some(Some(conn)) = self.conns.get_mut((id as usize).wrapping_sub(1)) else {
            return false;
        };
        let len = frame.len();
        if conn.overflowed {
            self.counters.dropped += 1;
            return false;
        }
        if conn.frames.len() >= self.max_frames || conn.bytes + len > self.max_bytes {
            conn.overflowed = true;
            self.overflowed.push(id);
            self.counters.dropped += 1;
            return false;
        }
        if conn.frames.is_empty() {
            Self::start_age(conn, id, self.clock, self.degrade_after, &mut self.aging);
        }
        Self::queue(
            conn,
            id,
            frame,
            len,
            self.high,
            &mut self.ready,
            &mut self.to_degrade,
            &mut self.counters,
        );
        true
    }

    /// Queue market data of symbol `sym`, seqs `first ..= last`, to connection `id`. A frame
    /// that does not fit, and every data frame while the connection is `over`, is dropped and
    /// its range noted for the `gap` of the recovery.
    #[inline]
    pub fn push_data(&mut self, id: u64, frame: &F, sym: usize, first: u64, last: u64) -> bool {
        let Some(Some(conn)) = self.conns.get_mut((id as usize).wrapping_sub(1)) else {
            return false;
        };
        let len = frame.len();
        if conn.overflowed {
            self.counters.dropped += 1;
            return false;
        }
        if conn.over || conn.frames.len() >= self.max_frames || conn.bytes + len > self.max_bytes {
            if !conn.over {
                conn.over = true;
                conn.over_since = None;
                self.over.push(id);
            }
            conn.skipped
                .entry(sym)
                .and_modify(|r| r.1 = r.1.max(last))
                .or_insert((first, last));
            self.counters.dropped += 1;
            return false;
        }
        if conn.frames.is_empty() {
            Self::start_age(conn, id, self.clock, self.degrade_after, &mut self.aging);
        }
        Self::queue(
            conn,
            id,
            frame,
            len,
            self.high,
            &mut self.ready,
            &mut self.to_degrade,
            &mut self.counters,
        );
        true
    }

    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn queue(
        conn: &mut Conn<F>,
        id: u64,
        frame: &F,
        len: usize,
        high: usize,
        ready: &mut Vec<u64>,
        to_degrade: &mut Vec<u64>,
        counters: &mut Counters,
    ) {
        if conn.frames.is_empty() && !conn.in_ready {
            conn.in_ready = true;
            ready.push(id);
        }
        conn.frames.push_back(frame.clone());
        conn.bytes += len;
        counters.frames_queued += 1;
        counters.bytes_queued += len as u64;
        if conn.frames.len() >= high && !conn.degraded && !conn.noted {
            conn.noted = true;
            to_degrade.push(id);
        }
    }

    /// Advance the clock to `now_ms` (a `now_ms` behind it is ignored).
    pub fn advance(&mut self, now_ms: i64) {
        if self.clock == i64::MIN {
            for entry in self.aging.iter_mut() {
                entry.1 = now_ms;
                if let Some(Some(conn)) = self.conns.get_mut((entry.0 as usize).wrapping_sub(1)) {
                    if conn.busy_since == i64::MIN {
                        conn.busy_since = now_ms;
                    }
                }
            }
        }
        self.clock = self.clock.max(now_ms);
    }

    /// The age of `conn`'s queue starts now (the clock): listed for `note_aged`.
    #[inline]
    fn start_age(
        conn: &mut Conn<F>,
        id: u64,
        clock: i64,
        after: Option<i64>,
        aging: &mut VecDeque<(u64, i64)>,
    ) {
        conn.busy_since = clock;
        if after.is_some() {
            aging.push_back((id, clock));
        }
    }

    /// A connection that recovered with frames still queued: its age starts again now.
    pub fn restart_age(&mut self, id: i64) {
        let (clock, after) = (self.clock, self.degrade_after);
        let Some(i) = self.slot(id) else {
            return;
        };
        let Some(conn) = self.conns[i].as_deref_mut() else {
            return;
        };
        if !conn.frames.is_empty() {
            Self::start_age(conn, id as u64, clock, after, &mut self.aging);
        }
    }

    /// The age rule: note for degrading (`to_degrade`) every connection whose queue has not
    /// been empty since `degrade_after` ms or more before the clock and that is not degraded.
    pub fn note_aged(&mut self) {
        let Some(after) = self.degrade_after else {
            return;
        };
        while let Some(&(id, since)) = self.aging.front() {
            if self.clock.saturating_sub(since) < after {
                break;
            }
            self.aging.pop_front();
            let Some(Some(conn)) = self.conns.get_mut((id as usize).wrapping_sub(1)) else {
                continue;
            };
            if conn.busy_since == since && !conn.frames.is_empty() && !conn.degraded && !conn.noted
            {
                conn.noted = true;
                self.to_degrade.push(id);
            }
        }
    }

    /// Whether connection `id` is `over` and its queue is now at most half full (frames and
    /// bytes): it then leaves the over state; the caller reports `skipped`.
    pub fn leaves_over(&mut self, id: i64) -> Option<BTreeMap<usize, (u64, u64)>> {
        let (max_frames, max_bytes) = (self.max_frames, self.max_bytes);
        let conn = self.get_mut(id)?;
        if !conn.over
            || conn.overflowed
            || conn.frames.len() > max_frames / 2
            || conn.bytes > max_bytes / 2
        {
            return None;
        }
        conn.over = false;
        conn.over_since = None;
        Some(std::mem::take(&mut conn.skipped))
    }

    /// Remove up to `max` frames, oldest first.
    pub fn drain(&mut self, id: i64, max: usize) -> Vec<F> {
        self.drain_frames(id, max).collect()
    }

    /// Remove up to `max` frames, oldest first, as a draining iterator.
    pub fn drain_frames(
        &mut self,
        id: i64,
        max: usize,
    ) -> std::collections::vec_deque::Drain<'_, F> {
        let i = self.slot(id).filter(|&i| self.conns[i].is_some());
        let Some(conn) = i.and_then(|i| self.conns[i].as_deref_mut()) else {
            return self.empty.drain(..);
        };
        let n = max.min(conn.frames.len());
        conn.bytes -= conn.frames.range(..n).map(Frame::len).sum::<usize>();
        conn.frames.drain(..n)
    }

    /// Ids listed since the last call that still exist, sorted and without duplicates.
    pub fn take_ready(&mut self) -> Vec<u64> {
        let mut ids = std::mem::take(&mut self.ready);
        ids.retain(|&id| match self.get_mut(id as i64) {
            Some(c) => {
                c.in_ready = false;
                true
            }
            None => false,
        });
        ids.sort_unstable();
        ids
    }

    /// Connections to close, each reported once: those whose control frame did not fit, and
    /// those `over` for `grace_ms` or more at `now_ms` (an over state is timed from the first
    /// call that sees it).
    pub fn take_overflowed(&mut self, now_ms: i64) -> Vec<u64> {
        let grace = self.grace_ms;
        let mut ids = std::mem::take(&mut self.overflowed);
        let mut still = Vec::new();
        for id in std::mem::take(&mut self.over) {
            let Some(conn) = self.get_mut(id as i64) else {
                continue;
            };
            if !conn.over || conn.overflowed {
                continue;
            }
            let since = *conn.over_since.get_or_insert(now_ms);
            if now_ms.saturating_sub(since) >= grace {
                conn.overflowed = true;
                ids.push(id);
            } else {
                still.push(id);
            }
        }
        still.sort_unstable();
        still.dedup();
        self.over = still;
        ids.retain(|&id| self.get(id as i64).is_some());
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn f(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    #[test]
    fn limits_overflow_for_good_and_ready_reports_once() {
        let mut out: Outbound<Arc<str>> = Outbound::new(2, 10, usize::MAX, 0, None);
        let a = out.connect();
        let b = out.connect();
        assert!(out.push(a, &f("1234")));
        assert!(out.push(a, &f("1234")));
        assert!(!out.push(a, &f("1"))); // frame limit
        assert!(!out.push(a, &f("1"))); // overflowed for good
        assert!(!out.push(b, &f("12345678901"))); // byte limit
        assert_eq!(out.counters.dropped, 3);
        assert_eq!(out.take_overflowed(0), vec![a, b]);
        assert_eq!(out.take_overflowed(0), Vec::<u64>::new());
        assert_eq!(out.take_ready(), vec![a]);
        assert_eq!(out.drain(a as i64, 1).len(), 1);
        assert_eq!(out.get(a as i64).unwrap().bytes, 4);
        assert_eq!(out.take_ready(), Vec::<u64>::new());
        assert_eq!(out.drain(99, 5).len(), 0);
    }
}
