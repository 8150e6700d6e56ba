"""Slow consumers degrade before they are cut: water marks, conflation, recovery with a gap."""

from __future__ import annotations

import pytest

from tickfan.errors import InvalidArgument

from .helpers import drain_all, make, parsed


def ticks(n: int, start: int = 0, symbol: str = "BTC/USD") -> list:
    return [(symbol, 100.0 + (start + i) / 100, 1.0, 1000 + start + i) for i in range(n)]


def test_high_water_degrades_once_and_conflates_tick_and_auto_subscriptions(impl):
    core = make(impl, high_water_frames=3, low_water_frames=1, degrade_interval_ms=100)
    slow, healthy = core.connect(), core.connect()
    core.subscribe(slow, ["BTC/USD"], "tick")
    core.subscribe(slow, ["ETH/USD"], "auto")
    core.subscribe(slow, ["DOGE"], "batch")
    core.subscribe(healthy, ["BTC/USD"], "tick")
    got = []
    for i in range(5):
        core.ingest(ticks(1, i), i)
        got += drain_all(core, healthy)  # keeps up: never degraded
    assert core.subscriptions(slow) == [("BTC/USD", "conflate", 100), ("ETH/USD", "conflate", 100), ("DOGE", "batch", 50)]
    assert core.subscriptions(healthy) == [("BTC/USD", "tick", 0)]
    for i in range(5, 25):  # conflated for slow: the leading tick, the rest held
        core.ingest(ticks(1, i), 10)
        got += drain_all(core, healthy)
    out = parsed(core.drain(slow, 10))
    # what was queued before the decision, the one degraded frame, then the conflated stream
    assert [(f["type"], f.get("seq")) for f in out] == [
        ("market_data", 1), ("market_data", 2), ("market_data", 3), ("degraded", None),
        ("market_data", 4),
    ]
    # that drain emptied the queue (below the low-water mark): recovered, with the gap
    assert parsed(drain_all(core, slow)) == [
        {"type": "gap", "symbol": "BTC/USD", "from_seq": 4, "to_seq": 25, "reason": "evicted"}
    ]
    assert core.subscriptions(slow)[:2] == [("BTC/USD", "tick", 0), ("ETH/USD", "auto", 50)]
    assert out[3] == {"type": "degraded", "symbols": ["BTC/USD", "ETH/USD"]}
    assert [f["seq"] for f in parsed(got)] == list(range(1, 26))  # the healthy client got every tick


def test_recovery_below_low_water_restores_modes_with_a_gap(impl):
    core = make(impl, high_water_frames=3, low_water_frames=0, degrade_interval_ms=100)
    slow = core.connect()
    core.subscribe(slow, ["BTC/USD"], "tick")
    core.ingest(ticks(3), 0)  # reaches the mark: degraded
    core.ingest(ticks(10, 3), 10)  # conflated: seq 4 leads, the rest wait for the window
    core.flush(110)  # trailing: seq 13
    frames = parsed(drain_all(core, slow))
    assert [(f["type"], f.get("seq")) for f in frames] == [
        ("market_data", 1), ("market_data", 2), ("market_data", 3), ("degraded", None),
        ("market_data", 4), ("market_data", 13),
    ]
    # drained to the low-water mark: back to tick mode, a gap for what conflation skipped
    assert core.subscriptions(slow) == [("BTC/USD", "tick", 0)]
    assert parsed(drain_all(core, slow)) == [
        {"type": "gap", "symbol": "BTC/USD", "from_seq": 4, "to_seq": 13, "reason": "evicted"}
    ]
    core.ingest(ticks(2, 13), 200)
    assert [f["seq"] for f in parsed(drain_all(core, slow))] == [14, 15]


def test_no_water_marks_means_no_degrading(impl):
    core = make(impl, max_queue_frames=5)
    conn = core.connect()
    core.subscribe(conn, ["BTC/USD"], "tick")
    core.ingest(ticks(8), 0)
    assert core.subscriptions(conn) == [("BTC/USD", "tick", 0)]
    assert core.take_overflowed() == [conn]


@pytest.mark.parametrize("kwargs, message", [
    ({"high_water_frames": 0}, "high_water_frames must be >= 1"),
    ({"high_water_frames": 5, "low_water_frames": 5}, "low_water_frames must be >= 0 and below high_water_frames"),
    ({"low_water_frames": -1}, "low_water_frames must be >= 0 and below high_water_frames"),
    ({"degrade_interval_ms": 9}, "degrade_interval_ms must be between 10 and 60000"),
])
def test_water_marks_are_validated(impl, kwargs, message):
    with pytest.raises(InvalidArgument, match=message):
        make(impl, **kwargs)


def test_a_queue_not_empty_for_degrade_after_ms_degrades_then_recovers_after_the_hold(impl):
    """The age rule: a reader that keeps up with the count but never empties its queue (one
    frame in, one out) is degraded when the age reaches ``degrade_after_ms``, far below any
    high-water mark; it recovers once drained and degraded for ``degrade_interval_ms``."""
    core = make(impl, degrade_after_ms=300, degrade_interval_ms=100)
    slow, healthy = core.connect(), core.connect()
    core.subscribe(slow, ["BTC/USD"], "tick", None, 0)
    core.subscribe(healthy, ["BTC/USD"], "tick", None, 0)
    core.ingest(ticks(1), 0)  # slow's queue goes non-empty at 0 and never empties below
    got: list = drain_all(core, healthy)
    read = []
    for i in range(1, 3):
        core.ingest(ticks(1, i), 100 * i)
        got += drain_all(core, healthy)
        read += core.drain(slow, 1)
        assert core.queued(slow)[0] == 1
        assert core.subscriptions(slow) == [("BTC/USD", "tick", 0)]
    core.ingest(ticks(1, 3), 300)  # the age reaches 300 ms: degraded
    assert core.subscriptions(slow) == [("BTC/USD", "conflate", 100)]
    assert core.subscriptions(healthy) == [("BTC/USD", "tick", 0)]
    core.ingest(ticks(3, 4), 320)  # conflated: seq 5 leads, 6 and 7 wait for the window
    got += drain_all(core, healthy)
    read += drain_all(core, slow)
    # emptied but degraded 20 ms only: the hold keeps it conflated
    assert core.subscriptions(slow) == [("BTC/USD", "conflate", 100)]
    core.flush(420)  # trailing: seq 7
    read += drain_all(core, slow)  # degraded 120 ms and empty: recovers with the gap
    read += drain_all(core, slow)
    assert core.subscriptions(slow) == [("BTC/USD", "tick", 0)]
    core.ingest(ticks(1, 7), 430)
    read += drain_all(core, slow)
    got += drain_all(core, healthy)
    assert [(f["type"], f.get("seq")) for f in parsed(read)] == [
        ("market_data", 1), ("market_data", 2), ("market_data", 3), ("market_data", 4),
        ("degraded", None), ("market_data", 5), ("market_data", 7), ("gap", None),
        ("market_data", 8),
    ]
    assert parsed(read)[4] == {"type": "degraded", "symbols": ["BTC/USD"]}
    assert parsed(read)[7] == {"type": "gap", "symbol": "BTC/USD", "from_seq": 5, "to_seq": 7, "reason": "evicted"}
    assert [f["seq"] for f in parsed(got)] == list(range(1, 9))  # the healthy client: every tick


def test_a_reader_that_empties_its_queue_is_never_degraded_by_age(impl):
    core = make(impl, degrade_after_ms=100, degrade_interval_ms=100)
    conn = core.connect()
    core.subscribe(conn, ["BTC/USD"], "tick", None, 0)
    seqs = []
    for i in range(40):  # 4 s of ticks, each read before the next
        core.ingest(ticks(1, i), 100 * i)
        seqs += [f["seq"] for f in parsed(drain_all(core, conn))]
    assert seqs == list(range(1, 41))
    assert core.subscriptions(conn) == [("BTC/USD", "tick", 0)]


def test_a_recovery_with_frames_queued_starts_a_new_age(impl):
    core = make(impl, degrade_after_ms=100, degrade_interval_ms=50, high_water_frames=50, low_water_frames=2)
    conn = core.connect()
    core.subscribe(conn, ["BTC/USD"], "tick", None, 0)
    core.ingest(ticks(3), 0)
    core.ingest(ticks(1, 3), 100)  # age 100: degraded; 4 ticks and the degraded frame queued
    core.flush(160)
    core.drain(conn, 4)  # 1 frame left at clock 160, degraded 60 ms: recovers (nothing skipped)
    assert core.subscriptions(conn) == [("BTC/USD", "tick", 0)]
    core.ingest(ticks(1, 4), 200)  # the new age started at 160: 40 ms, not degraded
    assert core.subscriptions(conn) == [("BTC/USD", "tick", 0)]
    core.ingest(ticks(1, 5), 260)  # 100 ms since the recovery, never emptied: degraded again
    assert core.subscriptions(conn) == [("BTC/USD", "conflate", 50)]


def test_degrade_after_ms_is_validated(impl):
    with pytest.raises(InvalidArgument, match="degrade_after_ms must be >= 1"):
        make(impl, degrade_after_ms=0)
