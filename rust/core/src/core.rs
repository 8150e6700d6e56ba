//! The composition root: [`Core`] owns the universe, per-symbol state, connections, windows
//! and alerts. Behaviour lives in the concept modules (`tick`, `fanout`, `batch`, `candles`,
//! `alerts`, `queue`); this file holds the state and construction.

use std::collections::BTreeSet;

use crate::alerts::{AlertBook, SymbolAlerts};
use crate::batch::{BatchCache, History};
use crate::candles::{Candles, DEFAULT_CAPACITY, INTERVALS};
use crate::error::{Error, Result};
use crate::fanout::{SymbolFanout, WindowKey};
use crate::frame::{ascii, encode_market_data, Frame};
use crate::queue::Outbound;
use crate::rate::Rate;
use crate::ring::Ring;
use crate::tick::Fired;
use crate::universe::{SymbolSpec, Universe};

/// Construction options; `Default` gives the spec's defaults.
#[derive(Debug, Clone)]
pub struct Config {
    pub high_freq_per_s: f64,
    /// Overrides of `DEFAULT_CANDLE_CAPACITY` by interval name, applied in order.
    pub candle_capacity: Vec<(String, i64)>,
    pub max_queue_frames: i64,
    pub max_queue_bytes: i64,
    pub max_symbols_per_connection: i64,
    /// Ticks whose `ts` is more than this many ms after `now_ms` are refused (None: no bound).
    pub max_ts_skew_ms: Option<i64>,
    /// The resume ring holds ticks less than this many ms (of tick time) older than the latest.
    pub resume_window_ms: i64,
    /// ... and at most this many ticks per symbol.
    pub resume_max_ticks: i64,
    /// A queue reaching this many frames degrades its connection (None: never).
    pub high_water_frames: Option<i64>,
    /// A degraded connection whose queue drains to this many frames recovers.
    pub low_water_frames: i64,
    /// Conflation interval of degraded subscriptions.
    pub degrade_interval_ms: i64,
    /// How long a connection may stay over the hard queue limit (market data dropped) before
    /// `take_overflowed` reports it.
    pub slow_consumer_grace_ms: i64,
    /// A connection whose queue has not been empty for this many ms (of the injected clock)
    /// is degraded like at the high-water mark, and a degraded connection then recovers no
    /// sooner than `degrade_interval_ms` after it was degraded (None: no age rule, no hold).
    pub degrade_after_ms: Option<i64>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            high_freq_per_s: 20.0,
            candle_capacity: Vec::new(),
            max_queue_frames: 10_000,
            max_queue_bytes: 8 * 1024 * 1024,
            max_symbols_per_connection: 100,
            max_ts_skew_ms: None,
            resume_window_ms: 60_000,
            resume_max_ticks: 100_000,
            high_water_frames: None,
            low_water_frames: 0,
            degrade_interval_ms: 1000,
            slow_consumer_grace_ms: 0,
            degrade_after_ms: None,
        }
    }
}

/// `stats()`: counters since construction and current gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub ticks_in: u64,
    pub frames_queued: u64,
    pub bytes_queued: u64,
    pub dropped: u64,
    pub connections: u64,
    pub subscriptions: u64,
    pub alerts: u64,
}

/// The latest applied tick of a symbol; its `market_data` frame is encoded on first use and
/// then shared (fan-out and subscribe snapshots hand out the same frame).
pub(crate) struct LatestTick<F> {
    pub seq: u64,
    pub ts: u64,
    pub price: u64,
    pub size: u64,
    pub frame: Option<F>,
}

pub(crate) struct SymbolState<F> {
    pub name: Box<str>,
    pub pd: u32,
    pub sd: u32,
    pub seq: u64,
    pub last_ts: Option<u64>,
    pub latest: Option<LatestTick<F>>,
    pub rate: Rate,
    pub hf: bool,
    pub fan: SymbolFanout,
    pub history: History,
    pub ring: Ring,
    pub candles: Candles,
    pub alerts: SymbolAlerts,
}

/// The latest tick's frame, encoding it on first use.
pub(crate) fn latest_frame<F: Frame>(
    latest: &mut Option<LatestTick<F>>,
    name: &str,
    pd: u32,
    sd: u32,
    buf: &mut Vec<u8>,
) -> Option<F> {
    let t = latest.as_mut()?;
    if t.frame.is_none() {
        encode_market_data(buf, name, t.seq, t.ts, t.price, pd, t.size, sd);
        t.frame = Some(F::from_ascii(ascii(buf)));
    }
    t.frame.clone()
}

pub struct Core<F: Frame> {
    pub(crate) high_freq_per_s: f64,
    pub(crate) max_symbols: usize,
    pub(crate) max_ts_skew_ms: Option<i64>,
    pub(crate) ring_window_ms: u64,
    pub(crate) ring_max_ticks: usize,
    pub(crate) low_water: usize,
    pub(crate) degrade_interval_ms: u32,
    /// How long a degraded connection stays degraded at least (0 without the age rule).
    pub(crate) recover_hold_ms: i64,
    pub(crate) universe: Universe,
    pub(crate) syms: Vec<SymbolState<F>>,
    pub(crate) out: Outbound<F>,
    pub(crate) windows: BTreeSet<WindowKey>,
    pub(crate) alerts: AlertBook,
    pub(crate) fired: Vec<Fired>,
    pub(crate) ticks_in: u64,
    pub(crate) subscriptions: usize,
    /// Per symbol: ts of the latest valid item of the `ingest` being validated.
    pub(crate) pending_ts: Vec<Option<u64>>,
    /// Reused encoder buffer.
    pub(crate) buf: Vec<u8>,
    pub(crate) batch_cache: BatchCache<F>,
}

impl<F: Frame> Core<F> {
    /// Validate the universe and options and build an empty core. Checked in the spec's order:
    /// symbols, candle capacities, `high_freq_per_s`, queue limits, symbols per connection,
    /// `max_ts_skew_ms`, `resume_window_ms`, `resume_max_ticks`, the water marks,
    /// `degrade_interval_ms`, `slow_consumer_grace_ms`, `degrade_after_ms`.
    pub fn new(symbols: Vec<SymbolSpec>, cfg: Config) -> Result<Self> {
        let universe = Universe::new(symbols)?;
        let mut capacity = DEFAULT_CAPACITY;
        for (name, cap) in &cfg.candle_capacity {
            let Some(i) = INTERVALS.iter().position(|(n, _)| n == name) else {
                return Err(Error::invalid(format!("unknown candle interval '{name}'")));
            };
            if *cap < 1 {
                return Err(Error::invalid("candle capacity must be >= 1"));
            }
            capacity[i] = usize::try_from(*cap).unwrap_or(usize::MAX);
        }
        if !(cfg.high_freq_per_s.is_finite() && cfg.high_freq_per_s > 0.0) {
            return Err(Error::invalid(
                "high_freq_per_s must be a finite number > 0",
            ));
        }
        if cfg.max_queue_frames < 1 || cfg.max_queue_bytes < 1 {
            return Err(Error::invalid("queue limits must be >= 1"));
        }
        if cfg.max_symbols_per_connection < 1 {
            return Err(Error::invalid("max_symbols_per_connection must be >= 1"));
        }
        if cfg.max_ts_skew_ms.is_some_and(|skew| skew < 0) {
            return Err(Error::invalid("max_ts_skew_ms must be >= 0"));
        }
        if cfg.resume_window_ms < 1 {
            return Err(Error::invalid("resume_window_ms must be >= 1"));
        }
        if cfg.resume_max_ticks < 1 {
            return Err(Error::invalid("resume_max_ticks must be >= 1"));
        }
        if cfg.high_water_frames.is_some_and(|h| h < 1) {
            return Err(Error::invalid("high_water_frames must be >= 1"));
        }
        if cfg.low_water_frames < 0
            || cfg
                .high_water_frames
                .is_some_and(|h| cfg.low_water_frames >= h)
        {
            return Err(Error::invalid(
                "low_water_frames must be >= 0 and below high_water_frames",
            ));
        }
        if !(crate::MIN_INTERVAL_MS..=crate::MAX_INTERVAL_MS).contains(&cfg.degrade_interval_ms) {
            return Err(Error::invalid(format!(
                "degrade_interval_ms must be between {} and {}",
                crate::MIN_INTERVAL_MS,
                crate::MAX_INTERVAL_MS
            )));
        }
        if cfg.slow_consumer_grace_ms < 0 {
            return Err(Error::invalid("slow_consumer_grace_ms must be >= 0"));
        }
        if cfg.degrade_after_ms.is_some_and(|a| a < 1) {
            return Err(Error::invalid("degrade_after_ms must be >= 1"));
        }
        let syms: Vec<SymbolState<F>> = universe
            .specs
            .iter()
            .map(|s| SymbolState {
                name: Box::from(s.name.as_str()),
                // Validated to 0..=MAX_DECIMALS by Universe::new.
                pd: s.price_decimals as u32,
                sd: s.size_decimals as u32,
                seq: 0,
                last_ts: None,
                latest: None,
                rate: Rate::default(),
                hf: false,
                fan: SymbolFanout::default(),
                history: History::default(),
                ring: Ring::default(),
                candles: Candles::new(capacity),
                alerts: SymbolAlerts::default(),
            })
            .collect();
        let to_usize = |v: i64| usize::try_from(v).unwrap_or(usize::MAX);
        Ok(Core {
            high_freq_per_s: cfg.high_freq_per_s,
            max_symbols: to_usize(cfg.max_symbols_per_connection),
            max_ts_skew_ms: cfg.max_ts_skew_ms,
            ring_window_ms: cfg.resume_window_ms as u64,
            ring_max_ticks: to_usize(cfg.resume_max_ticks),
            low_water: to_usize(cfg.low_water_frames),
            degrade_interval_ms: cfg.degrade_interval_ms as u32,
            recover_hold_ms: cfg.degrade_after_ms.map_or(0, |_| cfg.degrade_interval_ms),
            pending_ts: vec![None; syms.len()],
            universe,
            syms,
            out: Outbound::new(
                to_usize(cfg.max_queue_frames),
                to_usize(cfg.max_queue_bytes),
                cfg.high_water_frames.map_or(usize::MAX, to_usize),
                cfg.slow_consumer_grace_ms,
                cfg.degrade_after_ms,
            ),
            windows: BTreeSet::new(),
            alerts: AlertBook::default(),
            fired: Vec::new(),
            ticks_in: 0,
            subscriptions: 0,
            buf: Vec::with_capacity(256),
            batch_cache: BatchCache::default(),
        })
    }

    /// The universe as given, in order.
    pub fn symbols(&self) -> &[SymbolSpec] {
        &self.universe.specs
    }

    /// Name of the symbol at `index` (indexes come from this core's own answers).
    pub fn symbol_name(&self, index: usize) -> &str {
        &self.syms[index].name
    }

    pub fn stats(&self) -> Stats {
        let c = self.out.counters;
        Stats {
            ticks_in: self.ticks_in,
            frames_queued: c.frames_queued,
            bytes_queued: c.bytes_queued,
            dropped: c.dropped,
            connections: self.out.live as u64,
            subscriptions: self.subscriptions as u64,
            alerts: self.alerts.len() as u64,
        }
    }
}
