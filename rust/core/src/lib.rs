//! tickfan-core: the sans-I/O heart of tickfan.
//!
//! Ticks and subscription changes go in; encoded JSON text frames come out of bounded
//! per-connection queues. Nothing here performs I/O, awaits, or knows about Python: the PyO3
//! binding (`rust/python`) wraps [`Core`] and supplies its own [`Frame`] handle so that one
//! encoded frame is shared, not copied, by every subscriber that receives it.
//!
//! The behaviour is specified in `python/tickfan/_core.pyi`; the pure-Python twin implements
//! the same contract and differential tests hold the two to the byte.

mod alerts;
mod batch;
mod candles;
mod checkpoint;
mod core;
mod error;
mod fanout;
mod frame;
mod queue;
mod rate;
mod ring;
mod tick;
mod universe;

pub use crate::core::{Config, Core, Stats};
pub use candles::{
    Candle, CandleRing, CandleView, Interval, DEFAULT_CAPACITY as DEFAULT_CANDLE_CAPACITY,
    INTERVALS,
};
pub use checkpoint::SymbolCheckpoint;
pub use error::Error;
pub use fanout::Mode;
pub use frame::{format_units, format_units_signed, Frame};
pub use ring::{GapReason, Resume};
pub use tick::{Fired, Latest, Num, RawTick, TickItem, Ts};
pub use universe::SymbolSpec;

/// The largest integer price or size in units of `10**-decimals` (2**53 - 1).
pub const MAX_UNITS: u64 = (1 << 53) - 1;
/// The most decimals a symbol may declare for price or size.
pub const MAX_DECIMALS: u32 = 12;
/// Bounds of a batch or conflate interval.
pub const MIN_INTERVAL_MS: i64 = 10;
pub const MAX_INTERVAL_MS: i64 = 60_000;
/// Default intervals when a subscription names none.
pub const DEFAULT_BATCH_INTERVAL_MS: u32 = 50;
pub const DEFAULT_CONFLATE_INTERVAL_MS: u32 = 1000;

/// `POW10[d]` is the float `10.0**d`, exact for every `d` used here.
pub const POW10: [f64; 13] = [
    1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12,
];
