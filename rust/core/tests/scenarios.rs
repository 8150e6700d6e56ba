//! End-to-end behaviour of the core with `Arc<str>` frames: ingest validation, modes,
//! windows, the auto switch, re-subscription, queues and alerts.

use std::sync::Arc;

use tickfan_core::{Config, Core, Error, Num, RawTick, SymbolSpec, TickItem, Ts};

type C = Core<Arc<str>>;

fn core(cfg: Config) -> C {
    let spec = |name: &str, p, s| SymbolSpec {
        name: name.into(),
        name_is_str: true,
        price_decimals: p,
        size_decimals: s,
    };
    Core::new(vec![spec("BTC/USD", 2, 8), spec("ETH/USD", 2, 6)], cfg).unwrap()
}

fn tick(sym: &str, price: f64, size: f64, ts: i64) -> TickItem<'_> {
    TickItem::Tick(RawTick {
        symbol: Some(sym),
        symbol_text: sym,
        price: Num::Float(price),
        size: Num::Float(size),
        ts: Ts::Int(ts),
    })
}

fn drain(c: &mut C, id: u64) -> Vec<String> {
    c.drain(id as i64, 1024)
        .iter()
        .map(|f| f.to_string())
        .collect()
}

fn rejected(c: &mut C, items: &[TickItem<'_>]) -> Vec<(usize, String)> {
    match c.ingest(items, 0) {
        Err(Error::TickRejected { errors, .. }) => errors,
        other => panic!("expected TickRejected, got {other:?}"),
    }
}

#[test]
fn ingest_is_all_or_nothing_with_first_broken_rule() {
    let mut c = core(Config::default());
    let bad_ts = TickItem::Tick(RawTick {
        ts: Ts::Invalid,
        ..match tick("BTC/USD", 1.0, 1.0, 0) {
            TickItem::Tick(t) => t,
            TickItem::Malformed => unreachable!(),
        }
    });
    let errors = rejected(
        &mut c,
        &[
            tick("BTC/USD", 1.23, 0.5, 10),
            TickItem::Malformed,
            tick("NOPE", 1.0, 1.0, 1),
            tick("BTC/USD", 0.0, 1.0, 1),
            tick("BTC/USD", 1.0, -0.5, 1),
            bad_ts,
            tick("BTC/USD", 1.001, 1e-9, 11),
            tick("BTC/USD", 1.0, 1e-9, 11),
            tick("BTC/USD", 1e14, 1.0, 11),
            tick("BTC/USD", 1.0, 1e8, 11),
            tick("BTC/USD", 1.0, 1.0, 9),
            tick("BTC/USD", f64::MAX, 1.0, 12),
        ],
    );
    let msgs: Vec<&str> = errors.iter().map(|(_, m)| m.as_str()).collect();
    assert_eq!(
        msgs,
        [
            "tick must be [symbol, price, size, ts]",
            "unknown symbol 'NOPE'",
            "price must be a finite number > 0",
            "size must be a finite number >= 0",
            "ts must be an integer >= 0",
            "price has more than 2 decimals",
            "size has more than 8 decimals",
            "price out of range",
            "size out of range",
            "ts 9 is earlier than the previous tick's ts 10",
            "price has more than 2 decimals", // f64::MAX * 100 overflows to inf
        ]
    );
    assert_eq!(errors[0].0, 1);
    assert_eq!(c.stats().ticks_in, 0);
    assert!(c.latest("BTC/USD").unwrap().is_none());
    assert_eq!(
        c.ingest(
            &[
                tick("BTC/USD", 0.1, 0.0, 5),
                tick("BTC/USD", 43125.37, 0.015, 5)
            ],
            0
        ),
        Ok(2)
    );
    let l = c.latest("BTC/USD").unwrap().unwrap();
    assert_eq!((l.seq, l.ts, l.price, l.size), (2, 5, 43125.37, 0.015));
}

#[test]
fn tick_mode_shares_one_frame_and_snapshots_reuse_it() {
    let mut c = core(Config::default());
    let (a, b) = (c.connect(), c.connect());
    c.subscribe(a as i64, &["BTC/USD"], "tick", None, 0)
        .unwrap();
    c.subscribe(b as i64, &["BTC/USD"], "tick", None, 0)
        .unwrap();
    c.ingest(&[tick("BTC/USD", 43125.37, 0.015, 1731283200123)], 0)
        .unwrap();
    assert_eq!(c.take_ready(), vec![a, b]);
    let fa = c.drain(a as i64, 10);
    let fb = c.drain(b as i64, 10);
    assert!(Arc::ptr_eq(&fa[0], &fb[0]));
    assert_eq!(
        &*fa[0],
        r#"{"type":"market_data","symbol":"BTC/USD","seq":1,"ts":1731283200123,"price":43125.37,"size":0.015}"#
    );
    let d = c.connect();
    let (known, unknown, snaps) = c
        .subscribe(
            d as i64,
            &["BTC/USD", "X", "BTC/USD", "X"],
            "batch",
            None,
            0,
        )
        .unwrap();
    assert_eq!((known, unknown), (vec![0], vec!["X".to_string()]));
    assert!(Arc::ptr_eq(&snaps[0], &fa[0]));
}

#[test]
fn batch_window_opens_at_first_tick_and_sends_each_member_its_range() {
    let mut c = core(Config::default());
    let a = c.connect();
    c.subscribe(a as i64, &["BTC/USD"], "batch", Some(20), 0)
        .unwrap();
    assert_eq!(c.next_deadline_ms(), None);
    c.ingest(&[tick("BTC/USD", 1.0, 1.0, 100)], 1000).unwrap();
    assert_eq!(c.next_deadline_ms(), Some(1020));
    let b = c.connect();
    c.subscribe(b as i64, &["BTC/USD"], "batch", Some(20), 0)
        .unwrap(); // joins mid-window
    c.ingest(
        &[
            tick("BTC/USD", 1.5, 2.0, 105),
            tick("BTC/USD", 1.25, 0.5, 105),
        ],
        1010,
    )
    .unwrap();
    c.flush(1019);
    assert!(drain(&mut c, a).is_empty());
    c.flush(1020);
    assert_eq!(c.next_deadline_ms(), None);
    assert_eq!(
        drain(&mut c, a),
        [
            r#"{"type":"market_data_batch","symbol":"BTC/USD","seq":1,"count":3,"price_decimals":2,"size_decimals":8,"ts":[100,5,0],"price":[100,50,-25],"size":[100000000,200000000,50000000]}"#
        ]
    );
    assert_eq!(
        drain(&mut c, b),
        [
            r#"{"type":"market_data_batch","symbol":"BTC/USD","seq":2,"count":2,"price_decimals":2,"size_decimals":8,"ts":[105,0],"price":[150,-25],"size":[200000000,50000000]}"#
        ]
    );
    c.flush(5000); // nothing pending, nothing sent
    assert!(drain(&mut c, a).is_empty());
}

#[test]
fn conflate_is_leading_and_trailing() {
    let mut c = core(Config::default());
    let a = c.connect();
    c.subscribe(a as i64, &["ETH/USD"], "conflate", Some(100), 0)
        .unwrap();
    c.ingest(&[tick("ETH/USD", 1.0, 1.0, 1)], 0).unwrap(); // leading: sent at once
    assert_eq!(drain(&mut c, a).len(), 1);
    c.ingest(
        &[tick("ETH/USD", 2.0, 1.0, 2), tick("ETH/USD", 3.0, 1.0, 3)],
        50,
    )
    .unwrap();
    assert!(drain(&mut c, a).is_empty());
    c.flush(100); // trailing: only the latest, and a new window
    let f = drain(&mut c, a);
    assert_eq!(f.len(), 1);
    assert!(f[0].contains(r#""seq":3"#) && f[0].contains(r#""price":3.0"#));
    assert_eq!(c.next_deadline_ms(), Some(200));
    c.flush(200); // nothing newer: window closes
    assert_eq!(c.next_deadline_ms(), None);
    c.ingest(&[tick("ETH/USD", 4.0, 1.0, 4)], 300).unwrap();
    assert_eq!(drain(&mut c, a).len(), 1);
}

#[test]
fn auto_switches_with_hysteresis_and_flushes_pending_on_stop() {
    let mut c = core(Config {
        high_freq_per_s: 2.0,
        ..Config::default()
    });
    let a = c.connect();
    c.subscribe(a as i64, &["BTC/USD"], "auto", None, 0)
        .unwrap();
    c.ingest(
        &[tick("BTC/USD", 1.0, 1.0, 1), tick("BTC/USD", 1.0, 1.0, 2)],
        0,
    )
    .unwrap();
    assert!(!c.is_high_frequency("BTC/USD").unwrap());
    assert_eq!(drain(&mut c, a).len(), 2);
    c.ingest(
        &[tick("BTC/USD", 1.0, 1.0, 3), tick("BTC/USD", 1.0, 1.0, 4)],
        50,
    )
    .unwrap();
    assert!(c.is_high_frequency("BTC/USD").unwrap()); // rate 3 > 2 at seq 3
    assert_eq!(c.next_deadline_ms(), Some(100));
    assert!(drain(&mut c, a).is_empty());
    // 1.2 s later the rate is 1 <= 1: pending seq 3..=4 as a batch, then seq 5 as market_data.
    c.ingest(&[tick("BTC/USD", 1.0, 1.0, 5)], 1250).unwrap();
    assert!(!c.is_high_frequency("BTC/USD").unwrap());
    assert_eq!(c.next_deadline_ms(), None); // the group lost its last active member
    let f = drain(&mut c, a);
    assert_eq!(f.len(), 2);
    assert!(
        f[0].starts_with(r#"{"type":"market_data_batch","symbol":"BTC/USD","seq":3,"count":2,"#)
    );
    assert!(f[1].starts_with(r#"{"type":"market_data","symbol":"BTC/USD","seq":5,"#));
}

#[test]
fn resubscribe_queues_pending_range_and_unsubscribe_discards_it() {
    let mut c = core(Config::default());
    let a = c.connect();
    c.subscribe(a as i64, &["BTC/USD", "ETH/USD"], "batch", None, 0)
        .unwrap();
    c.ingest(
        &[tick("BTC/USD", 1.0, 1.0, 1), tick("ETH/USD", 1.0, 1.0, 1)],
        0,
    )
    .unwrap();
    c.subscribe(a as i64, &["BTC/USD"], "tick", None, 0)
        .unwrap();
    assert_eq!(
        c.unsubscribe(a as i64, &["ETH/USD", "ETH/USD", "X"])
            .unwrap(),
        vec![1]
    );
    let f = drain(&mut c, a);
    assert_eq!(f.len(), 1);
    assert!(f[0].contains(r#""symbol":"BTC/USD","seq":1,"count":1"#));
    assert_eq!(c.next_deadline_ms(), None); // both groups lost their members
    c.flush(1000);
    assert!(drain(&mut c, a).is_empty());
    assert_eq!(c.stats().subscriptions, 1);
    assert_eq!(
        c.subscribe(a as i64, &["ETH/USD"], "conflate", Some(5), 0),
        Err(Error::InvalidArgument(
            "interval_ms must be between 10 and 60000".into()
        ))
    );
    let tight = |c: &mut C| {
        let id = c.connect() as i64;
        (
            id,
            c.subscribe(id, &["BTC/USD", "ETH/USD"], "tick", None, 0),
        )
    };
    let mut small = core(Config {
        max_symbols_per_connection: 1,
        ..Config::default()
    });
    let (_, r) = tight(&mut small);
    assert_eq!(r.unwrap_err().message(), "at most 1 symbols per connection");
}

#[test]
fn overflow_drops_for_good_and_is_reported_once() {
    let mut c = core(Config {
        max_queue_frames: 2,
        ..Config::default()
    });
    let a = c.connect();
    c.subscribe(a as i64, &["BTC/USD"], "tick", None, 0)
        .unwrap();
    for ts in 1..=4 {
        c.ingest(&[tick("BTC/USD", 1.0, 1.0, ts)], 0).unwrap();
    }
    assert_eq!(c.take_overflowed(0), vec![a]);
    assert_eq!(c.take_overflowed(0), Vec::<u64>::new());
    assert_eq!(c.stats().dropped, 2);
    assert_eq!(c.push(a as i64, Arc::from("{}")), Ok(false));
    assert_eq!(drain(&mut c, a).len(), 2);
    assert_eq!(
        c.push(99, Arc::from("{}")),
        Err(Error::UnknownConnection(99))
    );
    c.disconnect(a as i64);
    assert_eq!(c.stats().connections, 0);
}

/// A slow consumer over the hard limit: market data dropped, its ranges noted.
fn over_the_limit(grace_ms: i64) -> (C, u64, u64) {
    let mut c = core(Config {
        max_queue_frames: 4,
        slow_consumer_grace_ms: grace_ms,
        ..Config::default()
    });
    let (slow, healthy) = (c.connect(), c.connect());
    for id in [slow, healthy] {
        c.subscribe(id as i64, &["BTC/USD", "ETH/USD"], "tick", None, 0)
            .unwrap();
    }
    for ts in 1..=3 {
        c.ingest(&[tick("BTC/USD", 1.0, 1.0, ts)], 1000).unwrap();
        assert_eq!(drain(&mut c, healthy).len(), 1);
    }
    // BTC/USD 1..=3 queued, ETH/USD 1 queued; ETH/USD 2 and BTC/USD 4..=5 are dropped.
    c.ingest(
        &[
            tick("ETH/USD", 1.0, 1.0, 4),
            tick("ETH/USD", 1.0, 1.0, 5),
            tick("BTC/USD", 1.0, 1.0, 6),
            tick("BTC/USD", 1.0, 1.0, 7),
        ],
        1000,
    )
    .unwrap();
    assert_eq!(drain(&mut c, healthy).len(), 4);
    (c, slow, healthy)
}

#[test]
fn over_the_limit_within_the_grace_recovers_with_exact_gaps() {
    let (mut c, slow, _) = over_the_limit(500);
    assert_eq!(c.take_overflowed(1000), Vec::<u64>::new()); // the grace starts now
    assert_eq!(c.take_overflowed(1499), Vec::<u64>::new());
    assert_eq!(c.stats().dropped, 3);
    // Draining to half of the limit ends the over state: one gap per symbol, universe order.
    let first: Vec<String> = c
        .drain(slow as i64, 2)
        .iter()
        .map(|f| f.to_string())
        .collect();
    assert_eq!(first.len(), 2);
    let rest = drain(&mut c, slow);
    assert_eq!(
        rest[2..],
        [
            r#"{"type":"gap","symbol":"BTC/USD","from_seq":4,"to_seq":5,"reason":"evicted"}"#,
            r#"{"type":"gap","symbol":"ETH/USD","from_seq":2,"to_seq":2,"reason":"evicted"}"#,
        ]
    );
    c.ingest(&[tick("BTC/USD", 1.0, 1.0, 8)], 1600).unwrap();
    assert!(drain(&mut c, slow)[0].contains(r#""seq":6"#));
    assert_eq!(c.take_overflowed(10_000), Vec::<u64>::new());
}

#[test]
fn over_the_limit_past_the_grace_is_reported_once_and_drops_everything() {
    let (mut c, slow, healthy) = over_the_limit(500);
    assert_eq!(c.take_overflowed(1000), Vec::<u64>::new());
    c.ingest(&[tick("BTC/USD", 1.0, 1.0, 8)], 1200).unwrap();
    assert_eq!(c.take_overflowed(1500), vec![slow]);
    assert_eq!(c.take_overflowed(9000), Vec::<u64>::new());
    // Closed for good: draining no longer recovers, nothing more is queued.
    assert_eq!(drain(&mut c, slow).len(), 4);
    assert_eq!(c.push(slow as i64, Arc::from("{}")), Ok(false));
    c.ingest(&[tick("BTC/USD", 1.0, 1.0, 9)], 1600).unwrap();
    assert_eq!(drain(&mut c, slow).len(), 0);
    assert_eq!(drain(&mut c, healthy).len(), 2);
}

#[test]
fn a_control_frame_that_does_not_fit_is_reported_at_once() {
    let (mut c, slow, _) = over_the_limit(60_000);
    assert_eq!(c.push(slow as i64, Arc::from("{}")), Ok(false));
    assert_eq!(c.take_overflowed(1000), vec![slow]);
}

#[test]
fn alerts_fire_once_in_tick_then_id_order() {
    let mut c = core(Config::default());
    c.add_alert(5, "BTC/USD", "above", Some(2.0)).unwrap();
    c.add_alert(3, "BTC/USD", "above", Some(1.5)).unwrap();
    c.add_alert(4, "BTC/USD", "below", Some(1.0)).unwrap();
    assert_eq!(
        c.add_alert(4, "BTC/USD", "below", Some(1.0))
            .unwrap_err()
            .message(),
        "alert 4 already exists"
    );
    assert_eq!(
        c.add_alert(6, "BTC/USD", "sideways", Some(1.0))
            .unwrap_err()
            .message(),
        "direction must be above or below"
    );
    assert_eq!(
        c.add_alert(6, "BTC/USD", "above", None)
            .unwrap_err()
            .message(),
        "level must be a finite number > 0"
    );
    assert!(matches!(
        c.add_alert(6, "NOPE", "x", None),
        Err(Error::UnknownSymbol(_))
    ));
    c.ingest(
        &[
            tick("BTC/USD", 2.5, 1.0, 1),
            tick("BTC/USD", 0.5, 1.0, 2),
            tick("BTC/USD", 3.0, 1.0, 3),
        ],
        0,
    )
    .unwrap();
    let fired: Vec<(i64, u64)> = c.take_fired().iter().map(|f| (f.alert_id, f.seq)).collect();
    assert_eq!(fired, vec![(3, 1), (5, 1), (4, 2)]);
    assert!(c.take_fired().is_empty());
    assert!(!c.remove_alert(3));
}

#[test]
fn a_queue_not_empty_for_degrade_after_ms_degrades_and_recovers_after_the_hold() {
    let mut c = core(Config {
        degrade_after_ms: Some(300),
        degrade_interval_ms: 100,
        ..Config::default()
    });
    let a = c.connect();
    c.subscribe(a as i64, &["BTC/USD"], "tick", None, 0)
        .unwrap();
    c.ingest(&[tick("BTC/USD", 1.0, 1.0, 1)], 0).unwrap();
    let mut read = Vec::new();
    for i in 1..3 {
        c.ingest(&[tick("BTC/USD", 1.0, 1.0, 1 + i)], 100 * i)
            .unwrap();
        read.extend(c.drain(a as i64, 1).iter().map(|f| f.to_string()));
        assert_eq!(c.queued(a as i64).unwrap().0, 1);
    }
    let mode = |c: &C| c.subscriptions(a as i64).unwrap()[0].1.name();
    assert_eq!(mode(&c), "tick");
    c.ingest(&[tick("BTC/USD", 1.0, 1.0, 4)], 300).unwrap(); // age 300 ms: degraded
    assert_eq!(mode(&c), "conflate");
    c.ingest(&[tick("BTC/USD", 1.0, 1.0, 5)], 320).unwrap(); // leading conflated tick
    read.extend(drain(&mut c, a));
    assert_eq!(mode(&c), "conflate"); // empty, but degraded 20 ms < the 100 ms hold
    c.ingest(&[tick("BTC/USD", 1.0, 1.0, 6)], 330).unwrap();
    c.flush(420); // trailing: seq 6
    read.extend(drain(&mut c, a)); // degraded 120 ms and empty: recovers
    read.extend(drain(&mut c, a));
    assert_eq!(mode(&c), "tick");
    let kinds: Vec<String> = read
        .iter()
        .map(|f| {
            let seq = f
                .split("\"seq\":")
                .nth(1)
                .map(|s| s.split(',').next().unwrap());
            match seq {
                Some(s) => s.to_string(),
                None => f
                    .split("\"type\":\"")
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap()
                    .to_string(),
            }
        })
        .collect();
    assert_eq!(kinds, ["1", "2", "3", "4", "degraded", "5", "6", "gap"]);
    assert_eq!(
        read[7],
        r#"{"type":"gap","symbol":"BTC/USD","from_seq":5,"to_seq":6,"reason":"evicted"}"#
    );
}

#[test]
fn without_degrade_after_ms_an_old_queue_stays_in_its_mode() {
    let mut c = core(Config::default());
    let a = c.connect();
    c.subscribe(a as i64, &["BTC/USD"], "tick", None, 0)
        .unwrap();
    for i in 0..50 {
        c.ingest(&[tick("BTC/USD", 1.0, 1.0, 1 + i)], 1000 * i)
            .unwrap();
    }
    assert_eq!(c.subscriptions(a as i64).unwrap()[0].1.name(), "tick");
    assert_eq!(drain(&mut c, a).len(), 50);
}

#[test]
fn a_restored_core_goes_on_as_the_one_that_applied_every_tick() {
    let cfg = || Config {
        resume_max_ticks: 3,
        candle_capacity: vec![("1s".into(), 2)],
        ..Config::default()
    };
    let first: Vec<_> = (0..10)
        .map(|i| tick("BTC/USD", 100.0 + i as f64, 0.5, 1000 + i * 700))
        .collect();
    let rest: Vec<_> = (10..15)
        .map(|i| tick("BTC/USD", 100.0 + i as f64, 0.5, 1000 + i * 700))
        .collect();
    let mut whole = core(cfg());
    whole.ingest(&first, 0).unwrap();
    let state = whole.checkpoint();
    assert_eq!(state.len(), 1); // ETH/USD never traded
    assert_eq!(
        (state[0].seq, state[0].ring_base, state[0].ring.len()),
        (10, 8, 3)
    );
    let mut restored = core(cfg());
    restored.restore(state.clone()).unwrap();
    assert_eq!(restored.checkpoint(), state);
    assert!(matches!(
        restored.restore(state),
        Err(Error::InvalidArgument(_))
    ));
    let (a, b) = (whole.connect(), restored.connect());
    whole
        .subscribe(a as i64, &["BTC/USD"], "tick", None, 0)
        .unwrap();
    restored
        .subscribe(b as i64, &["BTC/USD"], "tick", None, 0)
        .unwrap();
    whole.ingest(&rest, 0).unwrap();
    restored.ingest(&rest, 0).unwrap();
    assert_eq!(drain(&mut whole, a), drain(&mut restored, b));
    assert_eq!(whole.checkpoint(), restored.checkpoint());
}
