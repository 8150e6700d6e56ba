//! Checkpoints: a symbol's tick state in units, so a node that joins a cluster loads it and then
//! applies the log after it, instead of the whole log (`Core::checkpoint`, `Core::restore`).
//! The rate (auto mode), subscriptions and alerts are not part of it.

use crate::candles::{CandleRing, INTERVALS};
use crate::core::{Core, LatestTick};
use crate::error::{Error, Result};
use crate::frame::Frame;

/// One traded symbol's tick state: its seq, its resume ring (`ring_base ..= seq`, the latest
/// tick last) and its candles per interval of [`INTERVALS`], in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolCheckpoint {
    pub symbol: String,
    pub seq: u64,
    pub ring_base: u64,
    pub ring: Vec<(u64, u64, u64)>,
    pub candles: Vec<CandleRing>,
}

impl<F: Frame> Core<F> {
    /// The state of every symbol that has traded, in universe order.
    pub fn checkpoint(&self) -> Vec<SymbolCheckpoint> {
        self.syms
            .iter()
            .filter(|s| s.seq > 0)
            .map(|s| {
                let (ring_base, ring) = s.ring.export();
                SymbolCheckpoint {
                    symbol: s.name.to_string(),
                    seq: s.seq,
                    ring_base,
                    ring,
                    candles: s.candles.export(),
                }
            })
            .collect()
    }

    /// Load a checkpoint into a core that has applied no tick; everything is checked first.
    pub fn restore(&mut self, state: Vec<SymbolCheckpoint>) -> Result<()> {
        if self.ticks_in > 0 || self.syms.iter().any(|s| s.seq > 0) {
            return Err(Error::invalid(
                "restore needs a core that has applied no tick",
            ));
        }
        let mut loaded = Vec::with_capacity(state.len());
        for cp in state {
            let i = self.universe.lookup(&cp.symbol)?;
            let consistent = cp.seq >= 1
                && cp.ring_base >= 1
                && !cp.ring.is_empty()
                && cp.ring_base.checked_add(cp.ring.len() as u64 - 1) == Some(cp.seq)
                && cp.candles.len() == INTERVALS.len();
            if !consistent {
                return Err(Error::invalid(format!(
                    "invalid checkpoint of '{}'",
                    self.syms[i].name
                )));
            }
            loaded.push((i, cp));
        }
        let (window_ms, max_ticks) = (self.ring_window_ms, self.ring_max_ticks);
        for (i, cp) in loaded {
            let s = &mut self.syms[i];
            let &(ts, price, size) = cp.ring.last().expect("checked non-empty");
            s.seq = cp.seq;
            s.last_ts = Some(ts);
            s.latest = Some(LatestTick {
                seq: cp.seq,
                ts,
                price,
                size,
                frame: None,
            });
            s.ring.load(cp.ring_base, cp.ring, window_ms, max_ticks);
            s.candles.load(cp.candles);
        }
        Ok(())
    }
}
