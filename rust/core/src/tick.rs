//! Tick validation (all or nothing, spec messages) and application: seq, candles, latest,
//! rate and the auto switch, fan-out of `market_data`, window opening and alerts.

use crate::candles::{CandleView, Interval};
use crate::core::{latest_frame, Core, LatestTick};
use crate::error::{unknown_symbol_message, Error, Result};
use crate::fanout::{BATCH, CONFLATE};
use crate::frame::Frame;
use crate::{Candle, MAX_UNITS, POW10};

/// A price or size as the caller gave it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Num {
    /// A float, or `float(int)` of an int (an int too large for a float is +-inf).
    Float(f64),
    /// Not an int or float (bools count as not a number).
    Other,
}

/// A tick timestamp as the caller gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ts {
    Int(i64),
    /// Not an int, a bool, or an int outside the i64 range.
    Invalid,
}

#[derive(Debug, Clone, Copy)]
pub struct RawTick<'a> {
    /// The symbol name, None when it was not a str.
    pub symbol: Option<&'a str>,
    /// Text for the unknown-symbol message (the name itself for a str).
    pub symbol_text: &'a str,
    pub price: Num,
    pub size: Num,
    pub ts: Ts,
}

/// One item of an `ingest` call.
#[derive(Debug, Clone, Copy)]
pub enum TickItem<'a> {
    /// Not a 4-tuple or 4-list.
    Malformed,
    Tick(RawTick<'a>),
}

/// `latest()`: `(seq, ts, price, size)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latest {
    pub seq: u64,
    pub ts: u64,
    pub price: f64,
    pub size: f64,
}

/// A fired alert: `(alert_id, symbol index, seq, ts, price)` of the tick that fired it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fired {
    pub alert_id: i64,
    pub symbol: usize,
    pub seq: u64,
    pub ts: u64,
    pub price: f64,
}

#[derive(Debug, Clone, Copy)]
struct Valid {
    sym: usize,
    ts: u64,
    price: u64,
    size: u64,
}

enum Units {
    Ok(u64),
    TooManyDecimals,
    OutOfRange,
}

/// `units = round(v * 10**d)` (ties to even, like Python's `round`), accepted only if
/// `float(units) / POW10[d] == v`. A product that overflows to infinity has no units: it
/// fails the decimals check, as `round(inf)` cannot be an int in Python.
fn to_units(v: Num, d: u32) -> Units {
    let Num::Float(v) = v else {
        return Units::TooManyDecimals;
    };
    let p = POW10[d as usize];
    let r = (v * p).round_ties_even();
    if !r.is_finite() {
        return Units::TooManyDecimals;
    }
    if r / p != v {
        return Units::TooManyDecimals;
    }
    if r > MAX_UNITS as f64 {
        return Units::OutOfRange;
    }
    // 0 <= r <= 2**53 - 1 and integral: the conversion is exact (-0.0 becomes 0).
    Units::Ok(r as u64)
}

fn positive(v: Num) -> bool {
    match v {
        Num::Float(f) => f.is_finite() && f > 0.0,
        Num::Other => false,
    }
}

fn non_negative(v: Num) -> bool {
    match v {
        Num::Float(f) => f.is_finite() && f >= 0.0,
        Num::Other => false,
    }
}

impl<F: Frame> Core<F> {
    fn check(&self, item: &TickItem<'_>, now_ms: i64) -> std::result::Result<Valid, String> {
        let TickItem::Tick(t) = item else {
            return Err("tick must be [symbol, price, size, ts]".into());
        };
        let Some(sym) = t.symbol.and_then(|n| self.universe.find(n)) else {
            return Err(unknown_symbol_message(t.symbol_text));
        };
        if !positive(t.price) {
            return Err("price must be a finite number > 0".into());
        }
        if !non_negative(t.size) {
            return Err("size must be a finite number >= 0".into());
        }
        let ts = match t.ts {
            Ts::Int(v) if v >= 0 => v as u64,
            _ => return Err("ts must be an integer >= 0".into()),
        };
        if let Some(skew) = self.max_ts_skew_ms {
            // ts <= i64::MAX, so a saturated limit never refuses.
            if ts as i64 > now_ms.saturating_add(skew) {
                return Err(format!(
                    "ts {ts} is more than {skew} ms ahead of the server clock ({now_ms})"
                ));
            }
        }
        let s = &self.syms[sym];
        let price = to_units(t.price, s.pd);
        let size = to_units(t.size, s.sd);
        if matches!(price, Units::TooManyDecimals) {
            return Err(format!("price has more than {} decimals", s.pd));
        }
        if matches!(size, Units::TooManyDecimals) {
            return Err(format!("size has more than {} decimals", s.sd));
        }
        let Units::Ok(price) = price else {
            return Err("price out of range".into());
        };
        let Units::Ok(size) = size else {
            return Err("size out of range".into());
        };
        if let Some(prev) = self.pending_ts[sym].or(s.last_ts) {
            if ts < prev {
                return Err(format!(
                    "ts {ts} is earlier than the previous tick's ts {prev}"
                ));
            }
        }
        Ok(Valid {
            sym,
            ts,
            price,
            size,
        })
    }

    /// Validate and apply ticks, all or nothing; returns how many were applied.
    pub fn ingest(&mut self, items: &[TickItem<'_>], now_ms: i64) -> Result<usize> {
        let mut valid = Vec::with_capacity(items.len());
        let mut errors = Vec::new();
        // `pending_ts`: per symbol, the ts of this call's latest valid item so far. Reset for
        // the touched symbols only, so a call costs nothing per universe symbol.
        for (i, item) in items.iter().enumerate() {
            match self.check(item, now_ms) {
                Ok(v) => {
                    self.pending_ts[v.sym] = Some(v.ts);
                    valid.push(v);
                }
                Err(msg) => errors.push((i, msg)),
            }
        }
        for v in &valid {
            self.pending_ts[v.sym] = None;
        }
        if !errors.is_empty() {
            return Err(Error::TickRejected {
                total: items.len(),
                errors,
            });
        }
        self.out.advance(now_ms);
        for v in &valid {
            self.apply(*v, now_ms);
        }
        self.out.note_aged();
        self.degrade_noted();
        self.batch_cache.clear();
        Ok(valid.len())
    }

    fn apply(&mut self, t: Valid, now_ms: i64) {
        let seq = self.syms[t.sym].seq + 1;
        let (window_ms, max_ticks) = (self.ring_window_ms, self.ring_max_ticks);
        let rate = {
            let s = &mut self.syms[t.sym];
            s.seq = seq;
            s.ring
                .push(seq, t.ts, t.price, t.size, window_ms, max_ticks);
            s.last_ts = Some(t.ts);
            s.candles.update(t.ts, t.price, t.size);
            s.rate.add(now_ms)
        };
        let (was_hf, thr) = (self.syms[t.sym].hf, self.high_freq_per_s);
        let became_hf = !was_hf && rate as f64 > thr;
        let stopped_hf = was_hf && rate as f64 <= thr / 2.0;
        if stopped_hf {
            self.end_high_frequency(t.sym, seq - 1);
        }
        let Core {
            syms,
            out,
            buf,
            windows,
            ..
        } = self;
        let s = &mut syms[t.sym];
        if became_hf {
            s.hf = true;
        }
        let hf = s.hf;
        if s.fan.needs_history(hf) {
            s.history.push(seq, t.ts, t.price, t.size);
        }
        s.latest = Some(LatestTick {
            seq,
            ts: t.ts,
            price: t.price,
            size: t.size,
            frame: None,
        });

        let to_auto = !hf && !s.fan.auto_conns.is_empty();
        let conflate_idle = s.fan.conflate.iter().any(|g| g.deadline.is_none());
        if !s.fan.tick_conns.is_empty() || to_auto || conflate_idle {
            if let Some(f) = latest_frame(&mut s.latest, &s.name, s.pd, s.sd, buf) {
                for &c in &s.fan.tick_conns {
                    out.push_data(c, &f, t.sym, seq, seq);
                }
                if to_auto {
                    for &c in &s.fan.auto_conns {
                        out.push_data(c, &f, t.sym, seq, seq);
                    }
                }
                for g in s.fan.conflate.iter_mut().filter(|g| g.deadline.is_none()) {
                    for m in &mut g.members {
                        out.push_data(m.conn, &f, t.sym, seq, seq);
                        m.pos = seq;
                    }
                    g.last_sent = seq;
                    let d = now_ms.saturating_add(g.interval_ms as i64);
                    g.deadline = Some(d);
                    windows.insert((d, t.sym, CONFLATE, g.interval_ms));
                }
            }
        }
        for g in &mut s.fan.batch {
            if became_hf {
                for m in g.members.iter_mut().filter(|m| m.auto) {
                    m.pos = seq;
                }
            }
            if g.deadline.is_none() && (g.n_batch > 0 || (hf && g.n_auto > 0)) {
                let d = now_ms.saturating_add(g.interval_ms as i64);
                g.deadline = Some(d);
                windows.insert((d, t.sym, BATCH, g.interval_ms));
            }
        }

        let price = t.price as f64 / POW10[s.pd as usize];
        let mut ids = Vec::new();
        self.alerts.check(&mut s.alerts, price, &mut ids);
        for alert_id in ids {
            self.fired.push(Fired {
                alert_id,
                symbol: t.sym,
                seq,
                ts: t.ts,
                price,
            });
        }
        self.ticks_in += 1;
    }

    /// The symbol stops being high-frequency at tick `last + 1`: queue every auto member's
    /// pending range up to `last` before that tick's own frame goes out.
    fn end_high_frequency(&mut self, sym: usize, last: u64) {
        self.syms[sym].hf = false;
        let Core {
            syms,
            out,
            buf,
            batch_cache,
            windows,
            ..
        } = self;
        let s = &mut syms[sym];
        for g in &mut s.fan.batch {
            if !g.batching(false) {
                if let Some(d) = g.deadline.take() {
                    windows.remove(&(d, sym, BATCH, g.interval_ms));
                }
            }
            for m in g.members.iter_mut().filter(|m| m.auto) {
                if m.pos <= last {
                    let frame =
                        batch_cache.get(buf, sym, &s.name, s.pd, s.sd, &s.history, m.pos, last);
                    if let Some(f) = frame {
                        out.push_data(m.conn, &f, sym, m.pos, last);
                    }
                }
                m.pos = last + 2;
            }
        }
        s.trim_history();
    }

    /// `(seq, ts, price, size)` of the symbol's latest tick.
    pub fn latest(&self, symbol: &str) -> Result<Option<Latest>> {
        let s = &self.syms[self.universe.lookup(symbol)?];
        Ok(s.latest.as_ref().map(|t| Latest {
            seq: t.seq,
            ts: t.ts,
            price: t.price as f64 / POW10[s.pd as usize],
            size: t.size as f64 / POW10[s.sd as usize],
        }))
    }

    pub fn is_high_frequency(&self, symbol: &str) -> Result<bool> {
        Ok(self.syms[self.universe.lookup(symbol)?].hf)
    }

    fn candle_args(&self, symbol: &str, interval: &str) -> Result<(usize, Interval)> {
        let sym = self.universe.lookup(symbol)?;
        let iv = Interval::parse(interval)
            .ok_or_else(|| Error::invalid(format!("unknown candle interval '{interval}'")))?;
        Ok((sym, iv))
    }

    pub fn backfill(
        &self,
        symbol: &str,
        interval: &str,
        since_ms: i64,
    ) -> Result<(Vec<Candle>, bool)> {
        let v = self.backfill_view(symbol, interval, since_ms)?;
        Ok((v.to_vec(), v.complete))
    }

    pub fn recent_candles(
        &self,
        symbol: &str,
        interval: &str,
        limit: i64,
    ) -> Result<(Vec<Candle>, bool)> {
        let v = self.recent_candles_view(symbol, interval, limit)?;
        Ok((v.to_vec(), v.complete))
    }

    /// [`Core::backfill`] as an unconverted view, with the (symbol index, interval index)
    /// of the ring it reads.
    pub fn backfill_view(
        &self,
        symbol: &str,
        interval: &str,
        since_ms: i64,
    ) -> Result<CandleView<'_>> {
        let (sym, iv) = self.candle_args(symbol, interval)?;
        let s = &self.syms[sym];
        Ok(s.candles
            .backfill_view(iv, since_ms, s.pd, s.sd)
            .at(sym, iv))
    }

    /// [`Core::recent_candles`] as an unconverted view (see [`Core::backfill_view`]).
    pub fn recent_candles_view(
        &self,
        symbol: &str,
        interval: &str,
        limit: i64,
    ) -> Result<CandleView<'_>> {
        let (sym, iv) = self.candle_args(symbol, interval)?;
        if limit < 1 {
            return Err(Error::invalid("limit must be >= 1"));
        }
        let s = &self.syms[sym];
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        Ok(s.candles.recent_view(iv, limit, s.pd, s.sd).at(sym, iv))
    }

    /// Arm a price alert (spec order of checks: symbol, direction, level, id).
    pub fn add_alert(
        &mut self,
        alert_id: i64,
        symbol: &str,
        direction: &str,
        level: Option<f64>,
    ) -> Result<()> {
        let sym = self.universe.lookup(symbol)?;
        let above = match direction {
            "above" => true,
            "below" => false,
            _ => return Err(Error::invalid("direction must be above or below")),
        };
        let level = match level {
            Some(l) if l.is_finite() && l > 0.0 => l,
            _ => return Err(Error::invalid("level must be a finite number > 0")),
        };
        if self.alerts.contains(alert_id) {
            return Err(Error::invalid(format!("alert {alert_id} already exists")));
        }
        self.alerts
            .add(&mut self.syms[sym].alerts, sym, alert_id, above, level);
        Ok(())
    }

    pub fn remove_alert(&mut self, alert_id: i64) -> bool {
        match self.alerts.remove(alert_id) {
            Some(sym) => {
                self.alerts.note_stale(&mut self.syms[sym].alerts);
                true
            }
            None => false,
        }
    }

    pub fn take_fired(&mut self) -> Vec<Fired> {
        std::mem::take(&mut self.fired)
    }
}
