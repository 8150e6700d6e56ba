//! Property tests of the core (`cargo test`, proptest): the tick validator on arbitrary input
//! never panics and answers exactly as the spec (`_core.pyi`, `Core.ingest`) says, all or
//! nothing; and batch frames, decoded by the protocol's rules, carry exactly the ticks a
//! tick-mode subscriber of the same symbol receives.

use std::sync::Arc;

use proptest::prelude::*;
use tickfan_core::{
    format_units, Config, Core, Error, Num, RawTick, SymbolSpec, TickItem, Ts, MAX_UNITS, POW10,
};

type C = Core<Arc<str>>;

/// Cases per property: `PROPTEST_CASES` if set (a deeper run), else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// name, price decimals, size decimals
const UNIVERSE: [(&str, u32, u32); 3] = [("BTC/USD", 2, 8), ("ETH/USD", 0, 12), ("X", 12, 0)];

fn core(max_ts_skew_ms: Option<i64>) -> C {
    let specs = UNIVERSE
        .iter()
        .map(|&(name, pd, sd)| SymbolSpec {
            name: name.into(),
            name_is_str: true,
            price_decimals: pd as i64,
            size_decimals: sd as i64,
        })
        .collect();
    let cfg = Config {
        max_ts_skew_ms,
        ..Config::default()
    };
    Core::new(specs, cfg).unwrap()
}

/// An `ingest` item as the binding builds it from any Python value.
#[derive(Debug, Clone)]
enum Item {
    Malformed,
    Tick {
        symbol: Option<String>,
        text: String,
        price: Num,
        size: Num,
        ts: Ts,
    },
}

impl Item {
    fn as_tick_item(&self) -> TickItem<'_> {
        match self {
            Item::Malformed => TickItem::Malformed,
            Item::Tick {
                symbol,
                text,
                price,
                size,
                ts,
            } => TickItem::Tick(RawTick {
                symbol: symbol.as_deref(),
                symbol_text: text,
                price: *price,
                size: *size,
                ts: *ts,
            }),
        }
    }
}

/// A float that fits `d` decimals: `units / 10**d`.
fn exact(d: u32) -> impl Strategy<Value = f64> {
    prop_oneof![0u64..=1000, 0u64..=MAX_UNITS].prop_map(move |u| u as f64 / POW10[d as usize])
}

fn num() -> impl Strategy<Value = Num> {
    prop_oneof![
        1 => Just(Num::Other),
        3 => any::<u64>().prop_map(|bits| Num::Float(f64::from_bits(bits))), // NaN, inf, -0.0, subnormals...
        2 => any::<f64>().prop_map(Num::Float),
        6 => (0..=12u32).prop_flat_map(exact).prop_map(Num::Float),
        1 => prop_oneof![Just(0.0), Just(-0.0), Just(f64::INFINITY), Just(f64::NAN), Just(9007199254740992.0), Just(0.005)]
            .prop_map(Num::Float),
    ]
}

fn ts() -> impl Strategy<Value = Ts> {
    prop_oneof![
        1 => Just(Ts::Invalid),
        1 => any::<i64>().prop_map(Ts::Int),
        6 => (-2i64..50).prop_map(Ts::Int), // small, so the order rule is exercised
    ]
}

fn item() -> impl Strategy<Value = Item> {
    let known = prop::sample::select(UNIVERSE.iter().map(|u| u.0).collect::<Vec<_>>())
        .prop_map(|s| (Some(s.to_string()), s.to_string()));
    let any_str = any::<String>().prop_map(|s| (Some(s.clone()), s));
    let not_str = "[0-9]{1,4}|None|\\[\\]".prop_map(|t| (None, t));
    let symbol = prop_oneof![6 => known, 2 => any_str, 1 => not_str];
    prop_oneof![
        1 => Just(Item::Malformed),
        12 => (symbol, num(), num(), ts()).prop_map(|((symbol, text), price, size, ts)| Item::Tick { symbol, text, price, size, ts }),
    ]
}

enum Units {
    Ok(u64),
    TooManyDecimals,
    OutOfRange,
}

/// The spec: `units = round(v * 10**d)` (ties to even) must convert back exactly, and be at
/// most MAX_UNITS; a non-finite product fails the decimals check.
fn units(v: f64, d: u32) -> Units {
    let p = POW10[d as usize];
    let r = (v * p).round_ties_even();
    if !r.is_finite() || r / p != v {
        Units::TooManyDecimals
    } else if r > MAX_UNITS as f64 {
        Units::OutOfRange
    } else {
        Units::Ok(r as u64)
    }
}

/// What the spec says `ingest` answers: per item the first rule broken, in the spec's order,
/// against the state after every earlier valid item of the call. `last_ts` is per symbol.
fn expected(
    items: &[Item],
    last_ts: &[Option<u64>],
    skew: Option<i64>,
    now_ms: i64,
) -> Result<Vec<(usize, u64, u64, u64)>, Vec<(usize, String)>> {
    let mut pending = last_ts.to_vec();
    let mut valid = Vec::new();
    let mut errors = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Item::Tick {
            symbol,
            text,
            price,
            size,
            ts,
        } = item
        else {
            errors.push((i, "tick must be [symbol, price, size, ts]".to_string()));
            continue;
        };
        let Some(sym) = symbol
            .as_deref()
            .and_then(|s| UNIVERSE.iter().position(|u| u.0 == s))
        else {
            errors.push((i, format!("unknown symbol '{text}'")));
            continue;
        };
        let (_, pd, sd) = UNIVERSE[sym];
        let price = match price {
            Num::Float(v) if v.is_finite() && *v > 0.0 => *v,
            _ => {
                errors.push((i, "price must be a finite number > 0".into()));
                continue;
            }
        };
        let size = match size {
            Num::Float(v) if v.is_finite() && *v >= 0.0 => *v,
            _ => {
                errors.push((i, "size must be a finite number >= 0".into()));
                continue;
            }
        };
        let ts = match ts {
            Ts::Int(v) if *v >= 0 => *v as u64,
            _ => {
                errors.push((i, "ts must be an integer >= 0".into()));
                continue;
            }
        };
        if let Some(skew) = skew {
            if i128::from(ts) > i128::from(now_ms) + i128::from(skew) {
                errors.push((
                    i,
                    format!("ts {ts} is more than {skew} ms ahead of the server clock ({now_ms})"),
                ));
                continue;
            }
        }
        let (pu, su) = (units(price, pd), units(size, sd));
        let message = match (&pu, &su) {
            (Units::TooManyDecimals, _) => Some(format!("price has more than {pd} decimals")),
            (_, Units::TooManyDecimals) => Some(format!("size has more than {sd} decimals")),
            (Units::OutOfRange, _) => Some("price out of range".to_string()),
            (_, Units::OutOfRange) => Some("size out of range".to_string()),
            _ => None,
        };
        if let Some(m) = message {
            errors.push((i, m));
            continue;
        }
        if let Some(prev) = pending[sym] {
            if ts < prev {
                errors.push((
                    i,
                    format!("ts {ts} is earlier than the previous tick's ts {prev}"),
                ));
                continue;
            }
        }
        pending[sym] = Some(ts);
        let (Units::Ok(pu), Units::Ok(su)) = (pu, su) else {
            unreachable!()
        };
        valid.push((sym, ts, pu, su));
    }
    if errors.is_empty() {
        Ok(valid)
    } else {
        Err(errors)
    }
}

fn snapshot(c: &C) -> Vec<Option<(u64, u64, f64, f64)>> {
    UNIVERSE
        .iter()
        .map(|u| {
            c.latest(u.0)
                .unwrap()
                .map(|l| (l.seq, l.ts, l.price, l.size))
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(1000), ..ProptestConfig::default() })]

    /// Arbitrary calls, one after another on one core: each answer is the spec's, a refused
    /// call changes nothing, an accepted one applies every item in order.
    #[test]
    fn tick_validator_agrees_with_its_spec(
        skew in prop_oneof![Just(None), Just(Some(0i64)), (0i64..60).prop_map(Some), Just(Some(i64::MAX))],
        calls in prop::collection::vec((prop::collection::vec(item(), 0..12), -5i64..50), 1..6),
    ) {
        let mut c = core(skew);
        let mut last_ts: Vec<Option<u64>> = vec![None; UNIVERSE.len()];
        let mut seq = vec![0u64; UNIVERSE.len()];
        for (items, now_ms) in &calls {
            let now_ms = *now_ms;
            let raw: Vec<TickItem<'_>> = items.iter().map(Item::as_tick_item).collect();
            let before = (snapshot(&c), c.stats().ticks_in);
            let answer = c.ingest(&raw, now_ms);
            match expected(items, &last_ts, skew, now_ms) {
                Err(errors) => {
                    prop_assert_eq!(answer, Err(Error::TickRejected { total: items.len(), errors }));
                    prop_assert_eq!((snapshot(&c), c.stats().ticks_in), before);
                }
                Ok(valid) => {
                    prop_assert_eq!(answer, Ok(valid.len()));
                    prop_assert_eq!(c.stats().ticks_in, before.1 + valid.len() as u64);
                    for &(sym, ts, _, _) in &valid {
                        seq[sym] += 1;
                        last_ts[sym] = Some(ts);
                    }
                    for (sym, u) in UNIVERSE.iter().enumerate() {
                        if let Some(&(_, ts, pu, su)) = valid.iter().rev().find(|v| v.0 == sym) {
                            let latest = c.latest(u.0).unwrap().unwrap();
                            prop_assert_eq!(
                                (latest.seq, latest.ts, latest.price, latest.size),
                                (seq[sym], ts, pu as f64 / POW10[u.1 as usize], su as f64 / POW10[u.2 as usize])
                            );
                        }
                    }
                }
            }
        }
    }
}

fn small_or_any() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..=10, 0u64..=MAX_UNITS]
}

/// `market_data` text back to `(seq, ts, price units, size units)` for decimals `pd`, `sd`.
fn decode_tick(frame: &str, pd: u32, sd: u32) -> (u64, u64, u64, u64) {
    let field = |key: &str| {
        let tag = format!("\"{key}\":");
        let rest = &frame[frame.find(&tag).unwrap() + tag.len()..];
        rest[..rest.find([',', '}']).unwrap()].to_string()
    };
    let units = |text: String, d: u32| {
        let (int, frac) = text.split_once('.').unwrap();
        assert!(frac.len() as u32 <= d.max(1));
        let frac = format!("{frac:0<width$}", width = d as usize);
        let all = format!("{int}{}", &frac[..d as usize]);
        let value: u64 = all.parse().unwrap();
        assert_eq!(format_units(value, d), text, "canonical text");
        value
    };
    (
        field("seq").parse().unwrap(),
        field("ts").parse().unwrap(),
        units(field("price"), pd),
        units(field("size"), sd),
    )
}

/// `market_data_batch` text back to its ticks, by PROTOCOL.md's rules.
fn decode_batch(frame: &str) -> Vec<(u64, u64, u64, u64)> {
    let array = |key: &str| -> Vec<i128> {
        let tag = format!("\"{key}\":[");
        let rest = &frame[frame.find(&tag).unwrap() + tag.len()..];
        rest[..rest.find(']').unwrap()]
            .split(',')
            .map(|v| v.parse().unwrap())
            .collect()
    };
    let int = |key: &str| -> u64 {
        let tag = format!("\"{key}\":");
        let rest = &frame[frame.find(&tag).unwrap() + tag.len()..];
        rest[..rest.find([',', '}']).unwrap()].parse().unwrap()
    };
    let (ts, price, size) = (array("ts"), array("price"), array("size"));
    let (seq, count) = (int("seq"), int("count") as usize);
    assert!(ts.len() == count && price.len() == count && size.len() == count);
    let (mut t, mut p) = (0i128, 0i128);
    (0..count)
        .map(|i| {
            t = if i == 0 { ts[0] } else { t + ts[i] };
            p = if i == 0 { price[0] } else { p + price[i] };
            (seq + i as u64, t as u64, p as u64, size[i] as u64)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(300), ..ProptestConfig::default() })]

    /// Valid ticks in calls at increasing times: a batch subscriber's frames, decoded, are
    /// exactly the tick subscriber's ticks (nothing lost, duplicated or altered by the encoder).
    #[test]
    fn batch_frames_decode_to_the_tick_stream(
        calls in prop::collection::vec(prop::collection::vec((0usize..3, small_or_any(), small_or_any(), 0u64..5), 1..20), 1..8),
        interval in 10i64..100,
    ) {
        let mut c = core(None);
        let (tick_conn, batch_conn) = (c.connect() as i64, c.connect() as i64);
        let names: Vec<&str> = UNIVERSE.iter().map(|u| u.0).collect();
        c.subscribe(tick_conn, &names, "tick", None, 0).unwrap();
        c.subscribe(batch_conn, &names, "batch", Some(interval), 0).unwrap();
        let mut ts = [0u64; 3];
        let mut now = 0i64;
        for call in &calls {
            let ticks: Vec<(usize, f64, f64, i64)> = call
                .iter()
                .map(|&(sym, pu, su, step)| {
                    ts[sym] += step;
                    let (_, pd, sd) = UNIVERSE[sym];
                    // Not every units value divided by 10**d converts back (the spec's decimals
                    // check refuses those); such a value becomes one unit. Zero is no price.
                    let admissible = |u: u64, d: u32, zero_ok: bool| {
                        let v = u as f64 / POW10[d as usize];
                        match units(v, d) {
                            Units::Ok(_) if zero_ok || u > 0 => v,
                            _ => 1.0 / POW10[d as usize],
                        }
                    };
                    (sym, admissible(pu, pd, false), admissible(su, sd, true), ts[sym] as i64)
                })
                .collect();
            let items: Vec<TickItem<'_>> = ticks
                .iter()
                .map(|&(sym, p, s, t)| TickItem::Tick(RawTick {
                    symbol: Some(UNIVERSE[sym].0), symbol_text: UNIVERSE[sym].0,
                    price: Num::Float(p), size: Num::Float(s), ts: Ts::Int(t),
                }))
                .collect();
            prop_assert_eq!(c.ingest(&items, now), Ok(items.len()));
            now += 7;
            c.flush(now);
        }
        c.flush(now + 1_000_000);
        let by_symbol = |frames: Vec<Arc<str>>, batch: bool| {
            let mut out: Vec<Vec<(u64, u64, u64, u64)>> = vec![Vec::new(); 3];
            for f in frames {
                let sym = UNIVERSE.iter().position(|u| f.contains(&format!("\"symbol\":\"{}\"", u.0))).unwrap();
                let (_, pd, sd) = UNIVERSE[sym];
                if batch {
                    assert!(f.starts_with("{\"type\":\"market_data_batch\""));
                    out[sym].extend(decode_batch(&f));
                } else {
                    out[sym].push(decode_tick(&f, pd, sd));
                }
            }
            out
        };
        let singles = by_symbol(c.drain(tick_conn, 1 << 30), false);
        let batched = by_symbol(c.drain(batch_conn, 1 << 30), true);
        prop_assert_eq!(singles.iter().map(Vec::len).sum::<usize>(), calls.iter().map(Vec::len).sum::<usize>());
        prop_assert_eq!(batched, singles);
    }
}
