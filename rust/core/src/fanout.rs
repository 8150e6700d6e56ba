//! Subscriptions, batch/conflate groups and their windows, and `flush`.
//!
//! Per symbol the subscribers are kept by mode in compact sorted vectors of connection ids
//! (`tick_conns`, `auto_conns`) and in groups `(interval_ms)` whose members carry their
//! position (next seq for batch/auto, last received seq for conflate). Fan-out walks these
//! vectors and indexes the connection table; nothing is hashed per subscriber.

use std::collections::HashSet;

use crate::core::{latest_frame, Core, SymbolState};
use crate::error::{Error, Result};
use crate::frame::Frame;
use crate::{
    DEFAULT_BATCH_INTERVAL_MS, DEFAULT_CONFLATE_INTERVAL_MS, MAX_INTERVAL_MS, MIN_INTERVAL_MS,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Tick,
    Batch,
    Conflate,
    Auto,
}

impl Mode {
    pub fn parse(name: &str) -> Option<Mode> {
        Some(match name {
            "tick" => Mode::Tick,
            "batch" => Mode::Batch,
            "conflate" => Mode::Conflate,
            "auto" => Mode::Auto,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Tick => "tick",
            Mode::Batch => "batch",
            Mode::Conflate => "conflate",
            Mode::Auto => "auto",
        }
    }
}

/// One connection's subscription to one symbol. `interval_ms` is 0 for tick mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sub {
    pub mode: Mode,
    pub interval_ms: u32,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Member {
    pub conn: u64,
    /// An auto-mode member of a batch group (batched only while the symbol is high-frequency).
    pub auto: bool,
    /// Batch group: next seq to send. Conflate group: last seq received.
    pub pos: u64,
}

#[derive(Debug)]
pub(crate) struct Group {
    pub interval_ms: u32,
    pub deadline: Option<i64>,
    /// Conflate: the last seq the group sent.
    pub last_sent: u64,
    /// Sorted by connection id.
    pub members: Vec<Member>,
    pub n_batch: usize,
    pub n_auto: usize,
}

impl Group {
    /// Whether a member of this batch group takes the symbol in batches now; only an active
    /// group keeps a window open.
    pub fn batching(&self, hf: bool) -> bool {
        self.n_batch > 0 || (hf && self.n_auto > 0)
    }
}

/// Window kinds, in flush order within one deadline and symbol.
pub(crate) const BATCH: u8 = 0;
pub(crate) const CONFLATE: u8 = 1;

/// `(deadline, symbol index, kind, interval_ms)`: the flush order of the spec.
pub(crate) type WindowKey = (i64, usize, u8, u32);

#[derive(Debug, Default)]
pub(crate) struct SymbolFanout {
    pub tick_conns: Vec<u64>,
    pub auto_conns: Vec<u64>,
    pub batch: Vec<Group>,
    pub conflate: Vec<Group>,
    /// Batch-mode subscribers of the symbol (all groups).
    pub n_batch: usize,
}

impl SymbolFanout {
    /// Whether applied ticks must be kept for batch frames.
    pub fn needs_history(&self, hf: bool) -> bool {
        self.n_batch > 0 || (hf && !self.auto_conns.is_empty())
    }
}

/// A `gap` for ticks `first ..= last` this connection skipped while it read too slowly
/// (degraded, or over the hard limit): the contract's reason `evicted`.
fn gap_frame(name: &str, first: u64, last: u64) -> String {
    format!(
        "{{\"type\":\"gap\",\"symbol\":\"{name}\",\"from_seq\":{first},\"to_seq\":{last},\"reason\":\"evicted\"}}"
    )
}

fn insert_sorted(v: &mut Vec<u64>, id: u64) {
    if let Err(i) = v.binary_search(&id) {
        v.insert(i, id);
    }
}

fn remove_sorted(v: &mut Vec<u64>, id: u64) {
    if let Ok(i) = v.binary_search(&id) {
        v.remove(i);
    }
}

impl<F: Frame> SymbolState<F> {
    /// Forget batch history nobody needs any more.
    pub(crate) fn trim_history(&mut self) {
        let hf = self.hf;
        let min = self
            .fan
            .batch
            .iter()
            .flat_map(|g| g.members.iter())
            .filter(|m| !m.auto || hf)
            .map(|m| m.pos)
            .min();
        match min {
            Some(seq) => self.history.trim(seq),
            None => self.history.clear(),
        }
    }
}

impl<F: Frame> Core<F> {
    /// Register a connection; ids are 1, 2, 3, ... and never reused.
    pub fn connect(&mut self) -> u64 {
        self.out.connect()
    }

    /// Forget a connection, its subscriptions and its queue. Unknown ids are ignored.
    pub fn disconnect(&mut self, conn: i64) {
        if let Some(c) = self.out.remove(conn) {
            for (&sym, &sub) in &c.subs {
                self.detach(conn as u64, sym, sub);
            }
            self.subscriptions -= c.subs.len();
        }
    }

    /// Subscribe `conn` to the known symbols of `symbols` (see the spec). Returns the known
    /// symbol indexes in request order, the unknown names, and the snapshot frames.
    pub fn subscribe(
        &mut self,
        conn: i64,
        symbols: &[&str],
        mode: &str,
        interval_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<(Vec<usize>, Vec<String>, Vec<F>)> {
        let c = self.out.get(conn).ok_or(Error::UnknownConnection(conn))?;
        let mode = Mode::parse(mode)
            .ok_or_else(|| Error::invalid("mode must be one of tick, batch, conflate, auto"))?;
        let interval_ms = match mode {
            Mode::Tick => 0,
            _ => {
                let default = if mode == Mode::Conflate {
                    DEFAULT_CONFLATE_INTERVAL_MS
                } else {
                    DEFAULT_BATCH_INTERVAL_MS
                };
                let v = interval_ms.unwrap_or(default as i64);
                if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&v) {
                    return Err(Error::invalid(format!(
                        "interval_ms must be between {MIN_INTERVAL_MS} and {MAX_INTERVAL_MS}"
                    )));
                }
                v as u32
            }
        };
        let mut known = Vec::new();
        let mut unknown = Vec::new();
        let mut seen_known = HashSet::new();
        let mut seen_unknown = HashSet::new();
        for &name in symbols {
            match self.universe.find(name) {
                Some(i) => {
                    if seen_known.insert(i) {
                        known.push(i);
                    }
                }
                None => {
                    if seen_unknown.insert(name) {
                        unknown.push(name.to_owned());
                    }
                }
            }
        }
        let new = known.iter().filter(|i| !c.subs.contains_key(i)).count();
        if c.subs.len() + new > self.max_symbols {
            return Err(Error::TooManySymbols(self.max_symbols));
        }
        self.out.advance(now_ms);
        let id = conn as u64;
        let sub = Sub { mode, interval_ms };
        let mut snapshots = Vec::new();
        for &sym in &known {
            let Some(c) = self.out.get_mut(conn) else {
                break;
            };
            c.restore.remove(&sym);
            let old = c.subs.insert(sym, sub);
            let latest = self.syms[sym].seq;
            let mut conflate_pos = latest;
            match old {
                Some(old) => {
                    let member = self.detach(id, sym, old);
                    if let Some(m) = member {
                        match old.mode {
                            Mode::Conflate => conflate_pos = m.pos,
                            _ if (!m.auto || self.syms[sym].hf) && m.pos <= latest => {
                                self.queue_batch(id, sym, m.pos, latest);
                            }
                            _ => {}
                        }
                    }
                }
                None => {
                    self.subscriptions += 1;
                    let s = &mut self.syms[sym];
                    if let Some(f) = latest_frame(&mut s.latest, &s.name, s.pd, s.sd, &mut self.buf)
                    {
                        snapshots.push(f);
                    }
                }
            }
            self.attach(id, sym, sub, conflate_pos);
        }
        self.out.note_aged();
        self.degrade_noted();
        self.batch_cache.clear();
        Ok((known, unknown, snapshots))
    }

    /// Drop subscriptions; returns the symbol indexes that were subscribed, in request order.
    pub fn unsubscribe(&mut self, conn: i64, symbols: &[&str]) -> Result<Vec<usize>> {
        let c = self
            .out
            .get_mut(conn)
            .ok_or(Error::UnknownConnection(conn))?;
        let mut removed = Vec::new();
        for &name in symbols {
            if let Some(sym) = self.universe.find(name) {
                if let Some(sub) = c.subs.remove(&sym) {
                    c.restore.remove(&sym);
                    removed.push((sym, sub));
                }
            }
        }
        for &(sym, sub) in &removed {
            self.detach(conn as u64, sym, sub);
        }
        self.subscriptions -= removed.len();
        Ok(removed.into_iter().map(|(sym, _)| sym).collect())
    }

    /// `(symbol index, mode, interval_ms)` in universe order.
    pub fn subscriptions(&self, conn: i64) -> Result<Vec<(usize, Mode, u32)>> {
        let c = self.out.get(conn).ok_or(Error::UnknownConnection(conn))?;
        Ok(c.subs
            .iter()
            .map(|(&sym, s)| (sym, s.mode, s.interval_ms))
            .collect())
    }

    /// Queue a control frame under the same limits; false if it was dropped.
    pub fn push(&mut self, conn: i64, frame: F) -> Result<bool> {
        if self.out.get(conn).is_none() {
            return Err(Error::UnknownConnection(conn));
        }
        let ok = self.out.push(conn as u64, &frame);
        self.degrade_noted();
        self.batch_cache.clear();
        Ok(ok)
    }

    /// Remove and return up to `max_frames` frames, oldest first; unknown ids give none.
    pub fn drain(&mut self, conn: i64, max_frames: i64) -> Vec<F> {
        let frames = self
            .out
            .drain(conn, usize::try_from(max_frames).unwrap_or(0));
        self.after_drain(conn);
        frames
    }

    /// After a drain (of `drain_frames`): a degraded connection whose queue is down to the
    /// low-water mark, and that has been degraded for the hold (age rule on), recovers.
    pub fn after_drain(&mut self, conn: i64) {
        if let Some(skipped) = self.out.leaves_over(conn) {
            self.out.restart_age(conn);
            for (sym, (first, last)) in skipped {
                let text = gap_frame(&self.syms[sym].name, first, last);
                self.out.push(conn as u64, &F::from_ascii(&text));
            }
        }
        let clock = self.out.clock;
        let Some(c) = self.out.get_mut(conn) else {
            return;
        };
        if !c.degraded
            || c.frames.len() > self.low_water
            || clock.saturating_sub(c.degraded_at) < self.recover_hold_ms
        {
            return;
        }
        c.degraded = false;
        let restore = std::mem::take(&mut c.restore);
        self.out.restart_age(conn);
        let id = conn as u64;
        for (sym, (orig, skipped)) in restore {
            let Some(c) = self.out.get_mut(conn) else {
                return;
            };
            let Some(cur) = c.subs.insert(sym, orig) else {
                continue;
            };
            self.detach(id, sym, cur);
            let latest = self.syms[sym].seq;
            self.attach(id, sym, orig, latest);
            if skipped <= latest {
                let text = gap_frame(&self.syms[sym].name, skipped, latest);
                self.out.push(id, &F::from_ascii(&text));
            }
        }
    }

    /// Connections noted at the high-water mark or by the age rule (ascending id) become degraded: their tick
    /// and auto subscriptions are conflated, and they get one `degraded` frame.
    pub(crate) fn degrade_noted(&mut self) {
        if self.out.to_degrade.is_empty() {
            return;
        }
        let mut ids = std::mem::take(&mut self.out.to_degrade);
        ids.sort_unstable();
        let clock = self.out.clock;
        for id in ids {
            let conn = id as i64;
            let Some(c) = self.out.get_mut(conn) else {
                continue;
            };
            c.noted = false;
            if c.over || c.overflowed {
                // Its market data is being dropped already; noted again by the next frame
                // queued at the mark once it has drained.
                continue;
            }
            c.degraded = true;
            c.degraded_at = clock;
            let subs: Vec<(usize, Sub)> = c
                .subs
                .iter()
                .filter(|(_, s)| matches!(s.mode, Mode::Tick | Mode::Auto))
                .map(|(&sym, &s)| (sym, s))
                .collect();
            let mut names = Vec::new();
            for (sym, old) in subs {
                let latest = self.syms[sym].seq;
                if let Some(m) = self.detach(id, sym, old) {
                    if m.auto && self.syms[sym].hf && m.pos <= latest {
                        self.queue_batch(id, sym, m.pos, latest);
                    }
                }
                let sub = Sub {
                    mode: Mode::Conflate,
                    interval_ms: self.degrade_interval_ms,
                };
                self.attach(id, sym, sub, latest);
                if let Some(c) = self.out.get_mut(conn) {
                    c.subs.insert(sym, sub);
                    c.restore.insert(sym, (old, latest + 1));
                }
                names.push(self.syms[sym].name.to_string());
            }
            if !names.is_empty() {
                let text = format!(
                    "{{\"type\":\"degraded\",\"symbols\":[\"{}\"]}}",
                    names.join("\",\"")
                );
                self.out.push(id, &F::from_ascii(&text));
            }
        }
    }

    /// Remove up to `max_frames` frames, oldest first, as an exact-size iterator (lets the
    /// binding build its result list without an intermediate Vec). Unknown ids give none.
    pub fn drain_frames(
        &mut self,
        conn: i64,
        max_frames: i64,
    ) -> std::collections::vec_deque::Drain<'_, F> {
        self.out
            .drain_frames(conn, usize::try_from(max_frames).unwrap_or(0))
    }

    /// Number of frames `drain` would return (lets the binding skip empty queues cheaply).
    pub fn drain_len(&self, conn: i64, max_frames: i64) -> usize {
        self.out.get(conn).map_or(0, |c| {
            usize::try_from(max_frames).unwrap_or(0).min(c.frames.len())
        })
    }

    /// `(frames, bytes)` queued.
    pub fn queued(&self, conn: i64) -> Result<(usize, usize)> {
        let c = self.out.get(conn).ok_or(Error::UnknownConnection(conn))?;
        Ok((c.frames.len(), c.bytes))
    }

    pub fn take_ready(&mut self) -> Vec<u64> {
        self.out.take_ready()
    }

    /// Connections to close as slow consumers (see `Outbound::take_overflowed`).
    pub fn take_overflowed(&mut self, now_ms: i64) -> Vec<u64> {
        self.out.take_overflowed(now_ms)
    }

    /// The earliest deadline of an open window.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.windows.first().map(|k| k.0)
    }

    /// Close every window whose deadline <= `now_ms`, in (deadline, symbol, kind, interval)
    /// order. A conflate window that sends reopens at `now_ms + interval` (> `now_ms`), so
    /// the loop ends.
    pub fn flush(&mut self, now_ms: i64) {
        self.out.advance(now_ms);
        while let Some(&(deadline, sym, kind, interval)) = self.windows.first() {
            if deadline > now_ms {
                break;
            }
            self.windows.pop_first();
            if kind == BATCH {
                self.close_batch_window(sym, interval);
            } else {
                self.close_conflate_window(sym, interval, now_ms);
            }
        }
        self.out.note_aged();
        self.degrade_noted();
        self.batch_cache.clear();
    }

    fn close_batch_window(&mut self, sym: usize, interval: u32) {
        let Core {
            syms,
            out,
            buf,
            batch_cache,
            ..
        } = self;
        let s = &mut syms[sym];
        let Some(g) = s.fan.batch.iter_mut().find(|g| g.interval_ms == interval) else {
            return;
        };
        g.deadline = None;
        let (latest, hf) = (s.seq, s.hf);
        for m in &mut g.members {
            if (m.auto && !hf) || m.pos > latest {
                continue;
            }
            let frame = batch_cache.get(buf, sym, &s.name, s.pd, s.sd, &s.history, m.pos, latest);
            if let Some(f) = frame {
                out.push_data(m.conn, &f, sym, m.pos, latest);
            }
            m.pos = latest + 1;
        }
        s.trim_history();
    }

    fn close_conflate_window(&mut self, sym: usize, interval: u32, now_ms: i64) {
        let Core {
            syms,
            out,
            buf,
            windows,
            ..
        } = self;
        let s = &mut syms[sym];
        let Some(g) = s
            .fan
            .conflate
            .iter_mut()
            .find(|g| g.interval_ms == interval)
        else {
            return;
        };
        g.deadline = None;
        let seq = s.seq;
        if seq <= g.last_sent {
            return;
        }
        if let Some(f) = latest_frame(&mut s.latest, &s.name, s.pd, s.sd, buf) {
            for m in &mut g.members {
                if m.pos < seq {
                    out.push_data(m.conn, &f, sym, seq, seq);
                    m.pos = seq;
                }
            }
        }
        g.last_sent = seq;
        let d = now_ms.saturating_add(interval as i64);
        g.deadline = Some(d);
        windows.insert((d, sym, CONFLATE, interval));
    }

    /// Queue ticks `start ..= end` of `sym` to `conn` as one batch frame.
    pub(crate) fn queue_batch(&mut self, conn: u64, sym: usize, start: u64, end: u64) {
        let s = &self.syms[sym];
        let frame = self.batch_cache.get(
            &mut self.buf,
            sym,
            &s.name,
            s.pd,
            s.sd,
            &s.history,
            start,
            end,
        );
        if let Some(f) = frame {
            self.out.push_data(conn, &f, sym, start, end);
        }
    }

    /// Add `conn` to the lists and group of `sub`. `conflate_pos` is the last seq the
    /// connection holds (its snapshot, or what it had as a conflate member).
    fn attach(&mut self, conn: u64, sym: usize, sub: Sub, conflate_pos: u64) {
        let s = &mut self.syms[sym];
        let next = s.seq + 1;
        let (groups, member) = match sub.mode {
            Mode::Tick => {
                insert_sorted(&mut s.fan.tick_conns, conn);
                return;
            }
            Mode::Auto => {
                insert_sorted(&mut s.fan.auto_conns, conn);
                (
                    &mut s.fan.batch,
                    Member {
                        conn,
                        auto: true,
                        pos: next,
                    },
                )
            }
            Mode::Batch => {
                s.fan.n_batch += 1;
                (
                    &mut s.fan.batch,
                    Member {
                        conn,
                        auto: false,
                        pos: next,
                    },
                )
            }
            Mode::Conflate => (
                &mut s.fan.conflate,
                Member {
                    conn,
                    auto: false,
                    pos: conflate_pos,
                },
            ),
        };
        let gi = match groups.iter().position(|g| g.interval_ms == sub.interval_ms) {
            Some(i) => i,
            None => {
                groups.push(Group {
                    interval_ms: sub.interval_ms,
                    deadline: None,
                    last_sent: 0,
                    members: Vec::new(),
                    n_batch: 0,
                    n_auto: 0,
                });
                groups.len() - 1
            }
        };
        let g = &mut groups[gi];
        match g.members.binary_search_by_key(&conn, |m| m.conn) {
            Ok(i) => g.members[i] = member,
            Err(i) => g.members.insert(i, member),
        }
        if member.auto {
            g.n_auto += 1;
        } else if sub.mode == Mode::Batch {
            g.n_batch += 1;
        }
    }

    /// Remove `conn` from the lists and group of `sub`; returns its group membership. A group
    /// left without members is dropped with its window.
    fn detach(&mut self, conn: u64, sym: usize, sub: Sub) -> Option<Member> {
        let s = &mut self.syms[sym];
        let (groups, kind) = match sub.mode {
            Mode::Tick => {
                remove_sorted(&mut s.fan.tick_conns, conn);
                return None;
            }
            Mode::Auto => {
                remove_sorted(&mut s.fan.auto_conns, conn);
                (&mut s.fan.batch, BATCH)
            }
            Mode::Batch => {
                s.fan.n_batch -= 1;
                (&mut s.fan.batch, BATCH)
            }
            Mode::Conflate => (&mut s.fan.conflate, CONFLATE),
        };
        let gi = groups
            .iter()
            .position(|g| g.interval_ms == sub.interval_ms)?;
        let g = &mut groups[gi];
        let i = g.members.binary_search_by_key(&conn, |m| m.conn).ok()?;
        let m = g.members.remove(i);
        if m.auto {
            g.n_auto -= 1;
        } else if sub.mode == Mode::Batch {
            g.n_batch -= 1;
        }
        let active = if kind == BATCH {
            g.batching(s.hf)
        } else {
            !g.members.is_empty()
        };
        if !active {
            if let Some(d) = g.deadline.take() {
                self.windows.remove(&(d, sym, kind, g.interval_ms));
            }
        }
        if g.members.is_empty() {
            groups.remove(gi);
        }
        Some(m)
    }
}
