"""Batch, conflate and auto modes: windows, flush order, exact batch frames, mode changes."""

from __future__ import annotations

import json

import pytest

from tickfan.batch_codec import decode_batch

from .helpers import drain_all, make, md, parsed

TS = 1731283200123
SPEC_TICKS = [
    ("BTC/USD", 43125.37, 0.015, TS),
    ("BTC/USD", 43125.35, 2.5, TS + 5),
    ("BTC/USD", 43125.45, 0.00001, TS + 5),
]
SPEC_BATCH = (
    '{"type":"market_data_batch","symbol":"BTC/USD","seq":1,"count":3,"price_decimals":2,'
    '"size_decimals":8,"ts":[1731283200123,5,0],"price":[4312537,-2,10],'
    '"size":[1500000,250000000,1000]}'
)


def ticks_of(frames: list[str]) -> list[dict]:
    """Every tick the frames carry, batches decoded."""
    out = []
    for message in parsed(frames):
        out.extend(decode_batch(message) if message["type"] == "market_data_batch" else [message])
    return out


def test_batch_window_and_spec_frame(impl):
    core = make(impl)
    conn = core.connect()
    core.subscribe(conn, ["BTC/USD"], "batch")
    assert core.next_deadline_ms() is None
    core.ingest(SPEC_TICKS[:1], 1000)
    assert core.next_deadline_ms() == 1050
    core.ingest(SPEC_TICKS[1:], 1040)  # the open window keeps its deadline
    assert core.next_deadline_ms() == 1050
    core.flush(1049)
    assert core.drain(conn) == []
    core.flush(1050)
    assert core.drain(conn) == [SPEC_BATCH]
    assert core.next_deadline_ms() is None
    core.flush(5000)
    assert core.drain(conn) == []
    core.ingest([("BTC/USD", 1.0, 1.0, TS + 6)], 6000)  # a lone tick: a batch of count 1
    assert core.next_deadline_ms() == 6050
    core.flush(7000)
    assert core.drain(conn) == [
        '{"type":"market_data_batch","symbol":"BTC/USD","seq":4,"count":1,"price_decimals":2,'
        '"size_decimals":8,"ts":[1731283200129],"price":[100],"size":[100000000]}'
    ]


def test_batch_decodes_to_the_tick_frames(impl):
    core = make(impl)
    tick, batch = core.connect(), core.connect()
    core.subscribe(tick, ["BTC/USD", "ETH/USD"], "tick")
    core.subscribe(batch, ["BTC/USD", "ETH/USD"], "batch", 100)
    ticks = [
        ("BTC/USD", p / 100, s / 10**8, 1000 + i // 3)
        for i, (p, s) in enumerate([(4312537, 1), (1, 10**15), (90071992547409, 0), (7, 123456789)])
    ] + [("ETH/USD", 0.01, 0.000001, 5), ("ETH/USD", 1e12, 9007199254.74099, 5)]
    core.ingest(ticks, 0)
    core.flush(100)
    tick_frames = parsed(drain_all(core, tick))
    batch_frames = drain_all(core, batch)
    assert [json.loads(f)["type"] for f in batch_frames] == ["market_data_batch"] * 2
    assert ticks_of(batch_frames) == tick_frames
    assert len(tick_frames) == 6


def test_batch_frame_shared_by_members_with_the_same_range(impl):
    core = make(impl)
    conns = [core.connect() for _ in range(3)]
    for c in conns:
        core.subscribe(c, ["ETH/USD"], "batch")
    core.ingest([("ETH/USD", 1.0, 1.0, 1)], 0)
    core.flush(50)
    frames = [core.drain(c) for c in conns]
    assert frames[0][0] is frames[1][0] is frames[2][0]


def test_joining_mid_window_gets_only_later_ticks(impl):
    core = make(impl)
    a, b = core.connect(), core.connect()
    core.subscribe(a, ["BTC/USD"], "batch")
    core.ingest([("BTC/USD", 1.0, 1.0, 1), ("BTC/USD", 2.0, 1.0, 2)], 0)
    _, _, snapshots = core.subscribe(b, ["BTC/USD"], "batch")
    assert parsed(snapshots)[0]["seq"] == 2
    core.ingest([("BTC/USD", 3.0, 1.0, 3)], 10)
    core.flush(50)  # the window opened at now 0 by a's first tick
    assert [t["seq"] for t in ticks_of(drain_all(core, a))] == [1, 2, 3]
    assert [t["seq"] for t in ticks_of(drain_all(core, b))] == [3]


def test_joining_after_the_ticks_of_a_window_gets_nothing(impl):
    core = make(impl)
    a, b = core.connect(), core.connect()
    core.subscribe(a, ["BTC/USD"], "batch")
    core.ingest([("BTC/USD", 1.0, 1.0, 1)], 0)
    core.subscribe(b, ["BTC/USD"], "batch")
    core.flush(50)
    assert len(drain_all(core, a)) == 1
    assert drain_all(core, b) == []


def test_unsubscribing_mid_window_discards_pending(impl):
    core = make(impl)
    a, b = core.connect(), core.connect()
    core.subscribe(a, ["BTC/USD"], "batch")
    core.subscribe(b, ["BTC/USD"], "batch")
    core.ingest([("BTC/USD", 1.0, 1.0, 1)], 0)
    assert core.unsubscribe(a, ["BTC/USD"]) == ["BTC/USD"]
    assert core.next_deadline_ms() == 50  # b is still in the group
    core.unsubscribe(b, ["BTC/USD"])
    assert core.next_deadline_ms() is None  # the group is gone, and its window with it
    core.flush(50)
    assert drain_all(core, a) == [] and drain_all(core, b) == []


def test_resubscribing_another_mode_loses_nothing(impl):
    core = make(impl)
    conn = core.connect()
    core.subscribe(conn, ["BTC/USD"], "batch")
    core.ingest([("BTC/USD", 1.0, 1.0, 1), ("BTC/USD", 2.0, 1.0, 2)], 0)
    core.subscribe(conn, ["BTC/USD"], "tick")  # pending range queued first
    core.ingest([("BTC/USD", 3.0, 1.0, 3)], 10)
    core.subscribe(conn, ["BTC/USD"], "batch", 20)
    core.ingest([("BTC/USD", 4.0, 1.0, 4)], 20)
    core.subscribe(conn, ["BTC/USD"], "auto")  # not high-frequency: tick frames
    core.ingest([("BTC/USD", 5.0, 1.0, 5)], 30)
    core.subscribe(conn, ["BTC/USD"], "conflate")
    core.flush(10**6)
    frames = drain_all(core, conn)
    assert [json.loads(f)["type"] for f in frames] == [
        "market_data_batch", "market_data", "market_data_batch", "market_data"
    ]
    assert [t["seq"] for t in ticks_of(frames)] == [1, 2, 3, 4, 5]
    assert core.next_deadline_ms() is None


def test_identical_resubscription_queues_pending_and_rejoins(impl):
    core = make(impl)
    conn = core.connect()
    core.subscribe(conn, ["BTC/USD"], "batch")
    core.ingest([("BTC/USD", 1.0, 1.0, 1)], 0)
    assert core.subscribe(conn, ["BTC/USD"], "batch") == (["BTC/USD"], [], [])
    assert [t["seq"] for t in ticks_of(drain_all(core, conn))] == [1]
    assert core.next_deadline_ms() is None  # it left (the group lost its window) and rejoined
    core.ingest([("BTC/USD", 1.0, 1.0, 2)], 100)
    core.flush(150)
    assert [t["seq"] for t in ticks_of(drain_all(core, conn))] == [2]


def test_flush_order_deadline_symbol_kind_interval(impl):
    core = make(impl)
    conn = core.connect()
    core.subscribe(conn, ["DOGE"], "batch", 20)
    core.subscribe(conn, ["ETH/USD"], "conflate", 20)
    core.subscribe(conn, ["BTC/USD"], "batch", 30)
    other = core.connect()
    core.subscribe(other, ["ETH/USD"], "batch", 20)
    core.subscribe(other, ["BTC/USD"], "batch", 10)
    # BTC window (10) opens at 10: deadline 20; BTC(30) at 10: 40; ETH windows at 0: 20.
    core.ingest([("ETH/USD", 1.0, 1.0, 1)], 0)
    core.ingest([("DOGE", 1, 1, 1), ("BTC/USD", 1.0, 1.0, 1)], 10)
    core.ingest([("ETH/USD", 2.0, 1.0, 2)], 15)  # held by conflate
    assert core.next_deadline_ms() == 20
    core.flush(100)
    got = [(m["type"], m["symbol"]) for m in parsed(drain_all(core, conn))]
    assert got == [
        ("market_data", "ETH/USD"),  # leading conflate tick at ingest
        ("market_data", "ETH/USD"),  # deadline 20: ETH (index 1) before DOGE (2); trailing
        ("market_data_batch", "DOGE"),  # deadline 30
        ("market_data_batch", "BTC/USD"),  # deadline 40
    ]
    got = [(m["type"], m["symbol"]) for m in parsed(drain_all(core, other))]
    assert got == [("market_data_batch", "BTC/USD"), ("market_data_batch", "ETH/USD")]


def test_flush_batch_before_conflate_same_deadline(impl):
    core = make(impl)
    conn = core.connect()
    other = core.connect()
    core.subscribe(conn, ["BTC/USD"], "batch", 50)
    core.subscribe(other, ["BTC/USD"], "conflate", 50)
    core.ingest([("BTC/USD", 1.0, 1.0, 1), ("BTC/USD", 2.0, 1.0, 2)], 0)
    assert core.next_deadline_ms() == 50
    core.flush(50)
    assert len(drain_all(core, conn)) == 1
    assert [m["seq"] for m in parsed(drain_all(core, other))] == [1, 2]
    assert core.next_deadline_ms() == 100  # the conflate window reopened at now + 50


def test_conflate_leading_and_trailing(impl):
    core = make(impl)
    conn = core.connect()
    core.subscribe(conn, ["ETH/USD"], "conflate", 100)
    core.ingest([("ETH/USD", 1.0, 1.0, 1)], 1000)  # leading: at once
    assert [m["seq"] for m in parsed(core.drain(conn))] == [1]
    assert core.next_deadline_ms() == 1100
    core.ingest([("ETH/USD", 2.0, 1.0, 2), ("ETH/USD", 3.0, 1.0, 3)], 1050)  # held
    assert core.drain(conn) == []
    core.flush(1120)  # trailing: the latest held, new window from now
    assert core.drain(conn) == [md("ETH/USD", 3, 3, "3.0", "1.0")]
    assert core.next_deadline_ms() == 1220
    core.flush(1220)  # nothing newer: the window closes, none opens
    assert core.drain(conn) == []
    assert core.next_deadline_ms() is None
    core.ingest([("ETH/USD", 4.0, 1.0, 4)], 1300)  # leading again
    assert [m["seq"] for m in parsed(core.drain(conn))] == [4]


def test_conflate_member_that_has_the_tick_is_skipped(impl):
    core = make(impl)
    a, b = core.connect(), core.connect()
    core.subscribe(a, ["ETH/USD"], "conflate", 100)
    core.ingest([("ETH/USD", 1.0, 1.0, 1)], 0)
    core.ingest([("ETH/USD", 2.0, 1.0, 2)], 10)
    _, _, snapshots = core.subscribe(b, ["ETH/USD"], "conflate", 100)
    assert [m["seq"] for m in parsed(snapshots)] == [2]
    core.flush(100)
    assert [m["seq"] for m in parsed(drain_all(core, a))] == [1, 2]
    assert drain_all(core, b) == []  # its snapshot was seq 2


def test_conflate_keeps_what_it_received_across_intervals(impl):
    core = make(impl)
    a, b = core.connect(), core.connect()
    core.subscribe(a, ["ETH/USD"], "conflate", 100)
    core.subscribe(b, ["ETH/USD"], "conflate", 50)
    core.ingest([("ETH/USD", 1.0, 1.0, 1)], 0)  # both groups send seq 1 and open windows
    core.ingest([("ETH/USD", 2.0, 1.0, 2)], 10)  # held by both
    core.subscribe(a, ["ETH/USD"], "conflate", 50)  # a has seq 1 only: it joins b's group
    core.flush(50)
    assert [m["seq"] for m in parsed(drain_all(core, a))] == [1, 2]
    assert [m["seq"] for m in parsed(drain_all(core, b))] == [1, 2]


def hf_core(impl, **kwargs):
    return make(impl, high_freq_per_s=4.0, **kwargs)


def test_auto_switches_to_batches_with_hysteresis(impl):
    core = hf_core(impl)
    conn = core.connect()
    core.subscribe(conn, ["BTC/USD"])  # auto, interval 50
    # Rate after each tick, all in bucket 0: 1, 2, 3, 4 (not > 4), 5 (> 4: high-frequency).
    core.ingest([("BTC/USD", 1.0, 1.0, t) for t in range(1, 5)], 0)
    assert core.is_high_frequency("BTC/USD") is False
    assert [m["type"] for m in parsed(core.drain(conn))] == ["market_data"] * 4
    assert core.next_deadline_ms() is None
    core.ingest([("BTC/USD", 1.0, 1.0, 5), ("BTC/USD", 1.0, 1.0, 6)], 0)
    assert core.is_high_frequency("BTC/USD") is True
    assert core.drain(conn) == []
    assert core.next_deadline_ms() == 50
    core.flush(50)
    (frame,) = parsed(core.drain(conn))
    assert (frame["type"], frame["seq"], frame["count"]) == ("market_data_batch", 5, 2)
    # Buckets 0..9 hold 6 ticks until now 1000; at 1000 bucket 0 leaves the window.
    core.ingest([("BTC/USD", 1.0, 1.0, 7)], 900)  # rate 7: still high
    core.ingest([("BTC/USD", 1.0, 1.0, 8)], 1000)  # rate 2 (<= 2.0): stops
    assert core.is_high_frequency("BTC/USD") is False
    frames = parsed(core.drain(conn))
    assert [(m["type"], m["seq"]) for m in frames] == [("market_data_batch", 7), ("market_data", 8)]
    assert core.next_deadline_ms() is None  # only auto members: the window is dropped
    core.flush(10**6)
    assert core.drain(conn) == []


def test_hysteresis_keeps_high_frequency_above_half(impl):
    core = hf_core(impl)
    conn = core.connect()
    core.subscribe(conn, ["BTC/USD"], "auto", 10)
    core.ingest([("BTC/USD", 1.0, 1.0, 1)] * 5, 0)  # rate 5 > 4
    assert core.is_high_frequency("BTC/USD")
    core.ingest([("BTC/USD", 1.0, 1.0, 1)] * 3, 1000)  # rates 1, 2, 3: stops at 1 (<= 2)
    assert not core.is_high_frequency("BTC/USD")
    core.ingest([("BTC/USD", 1.0, 1.0, 1)] * 2, 1000)  # rates 4, 5: 5 > 4 switches again
    assert core.is_high_frequency("BTC/USD")
    core.ingest([("BTC/USD", 1.0, 1.0, 1)], 1500)  # 6: stays
    core.ingest([("BTC/USD", 1.0, 1.0, 1)], 2500)  # bucket 25: window 16..25 holds 1 tick
    assert not core.is_high_frequency("BTC/USD")
    frames = drain_all(core, conn)
    assert [t["seq"] for t in ticks_of(frames)] == list(range(1, 13))


def test_auto_with_batch_members_keeps_the_window(impl):
    core = hf_core(impl)
    auto, batch = core.connect(), core.connect()
    core.subscribe(auto, ["BTC/USD"])
    core.subscribe(batch, ["BTC/USD"], "batch")
    core.ingest([("BTC/USD", 1.0, 1.0, 1)], 0)  # the batch member opens the window at 0
    core.ingest([("BTC/USD", 1.0, 1.0, 1)] * 4, 30)  # the 5th tick of bucket 0 switches
    assert core.is_high_frequency("BTC/USD")
    core.flush(50)
    assert [t["seq"] for t in ticks_of(drain_all(core, batch))] == [1, 2, 3, 4, 5]
    frames = drain_all(core, auto)
    assert [(m["type"], m["seq"]) for m in parsed(frames)] == [
        ("market_data", 1), ("market_data", 2), ("market_data", 3), ("market_data", 4),
        ("market_data_batch", 5),
    ]


def test_auto_subscriber_joining_while_high_frequency(impl):
    core = hf_core(impl)
    core.ingest([("BTC/USD", 1.0, 1.0, 1)] * 5, 0)
    assert core.is_high_frequency("BTC/USD")
    conn = core.connect()
    _, _, snapshots = core.subscribe(conn, ["BTC/USD"])
    assert [m["seq"] for m in parsed(snapshots)] == [5]
    assert core.next_deadline_ms() is None  # no tick since it joined
    core.ingest([("BTC/USD", 1.0, 1.0, 2)], 10)
    assert core.next_deadline_ms() == 60
    core.flush(60)
    assert [(m["type"], m["seq"]) for m in parsed(drain_all(core, conn))] == [
        ("market_data_batch", 6)
    ]


@pytest.mark.parametrize("new_mode", ["tick", "batch", "conflate"])
def test_auto_high_frequency_resubscription_queues_pending(impl, new_mode):
    core = hf_core(impl)
    conn = core.connect()
    core.subscribe(conn, ["BTC/USD"])
    core.ingest([("BTC/USD", 1.0, 1.0, 1)] * 7, 0)
    core.subscribe(conn, ["BTC/USD"], new_mode)
    assert [t["seq"] for t in ticks_of(drain_all(core, conn))] == [1, 2, 3, 4, 5, 6, 7]
