"""Outbound queues: limits, overflow for good, drop counting, take_ready, drain, stats."""

from __future__ import annotations

from .helpers import drain_all, make, md, parsed


def test_push_drain_and_queued(impl):
    core = make(impl)
    conn = core.connect()
    assert core.push(conn, "abc") is True
    assert core.push(conn, "de") is True
    assert core.queued(conn) == (2, 5)
    assert core.drain(conn, 1) == ["abc"]
    assert core.queued(conn) == (1, 2)
    assert core.drain(conn) == ["de"]
    assert core.drain(conn) == []
    assert core.queued(conn) == (0, 0)


def test_drain_max_frames_and_order(impl):
    core = make(impl)
    conn = core.connect()
    for i in range(10):
        core.push(conn, str(i))
    assert core.drain(conn, 3) == ["0", "1", "2"]
    assert core.drain(conn, 3) == ["3", "4", "5"]
    assert core.drain(conn) == ["6", "7", "8", "9"]


def test_default_drain_returns_at_most_1024(impl):
    core = make(impl)
    conn = core.connect()
    for _ in range(1030):
        core.push(conn, "x")
    assert len(core.drain(conn)) == 1024
    assert len(core.drain(conn)) == 6


def test_bytes_are_str_length(impl):
    core = make(impl, max_queue_bytes=6)
    conn = core.connect()
    assert core.push(conn, "héllo") is True  # 5 characters (6 bytes in UTF-8)
    assert core.queued(conn) == (1, 5)
    assert core.push(conn, "é") is True
    assert core.queued(conn) == (2, 6)
    assert core.stats()["bytes_queued"] == 6


def test_frame_limit_overflows_for_good(impl):
    core = make(impl, max_queue_frames=2)
    a, b = core.connect(), core.connect()
    core.subscribe(a, ["BTC/USD"], "tick")
    core.subscribe(b, ["BTC/USD"], "tick")
    core.ingest([("BTC/USD", 1.0, 1.0, t) for t in range(3)], 0)
    assert core.take_overflowed() == [a, b]
    assert core.take_overflowed() == []
    assert core.stats()["dropped"] == 2  # the frame that did not fit counts
    assert core.push(a, "x") is False
    assert core.drain(a) == [md("BTC/USD", 1, 0, "1.0", "1.0"), md("BTC/USD", 2, 1, "1.0", "1.0")]
    # Room again, but an overflowed connection stays overflowed.
    assert core.push(a, "x") is False
    core.ingest([("BTC/USD", 1.0, 1.0, 5)], 0)
    assert core.drain(a) == []
    assert core.take_overflowed() == []
    stats = core.stats()
    assert stats["dropped"] == 2 + 2 + 2
    assert stats["frames_queued"] == 4
    assert core.queued(b)[0] == 2


def test_byte_limit(impl):
    core = make(impl, max_queue_bytes=10)
    conn = core.connect()
    assert core.push(conn, "0123456789") is True
    assert core.push(conn, "") is True  # fits: 10 + 0 <= 10
    assert core.push(conn, "a") is False
    assert core.take_overflowed() == [conn]
    assert core.queued(conn) == (2, 10)
    assert core.stats()["dropped"] == 1
    other = core.connect()
    assert core.push(other, "x" * 11) is False
    assert core.take_overflowed() == [other]


def test_take_ready_reports_empty_to_non_empty_once(impl):
    core = make(impl)
    a, b, c = core.connect(), core.connect(), core.connect()
    assert core.take_ready() == []
    core.push(b, "1")
    core.push(a, "1")
    core.push(b, "2")
    assert core.take_ready() == [a, b]
    assert core.take_ready() == []
    core.push(a, "3")  # not empty before: not ready again
    assert core.take_ready() == []
    core.drain(a)
    core.push(a, "4")
    core.push(c, "1")
    core.drain(c)
    assert core.take_ready() == [a, c]


def test_disconnected_connections_are_not_reported(impl):
    core = make(impl, max_queue_frames=1)
    a, b = core.connect(), core.connect()
    core.push(a, "1")
    core.push(a, "2")
    core.push(b, "1")
    core.disconnect(a)
    assert core.take_ready() == [b]
    assert core.take_overflowed() == []


def test_stats_counters_and_gauges(impl):
    core = make(impl)
    assert core.stats() == {
        "ticks_in": 0,
        "frames_queued": 0,
        "bytes_queued": 0,
        "dropped": 0,
        "connections": 0,
        "subscriptions": 0,
        "alerts": 0,
    }
    a, b = core.connect(), core.connect()
    core.subscribe(a, ["BTC/USD", "ETH/USD"], "tick")
    core.subscribe(b, ["BTC/USD"], "batch")
    core.add_alert(1, "ETH/USD", "above", 5.0)
    core.ingest([("BTC/USD", 1.0, 1.0, 1), ("BTC/USD", 1.0, 1.0, 2)], 0)
    core.push(b, "hello")
    core.flush(50)
    frames_a = core.drain(a)
    frames_b = core.drain(b)
    stats = core.stats()
    assert list(stats) == [
        "ticks_in", "frames_queued", "bytes_queued", "dropped", "connections", "subscriptions",
        "alerts",
    ]
    assert stats == {
        "ticks_in": 2,
        "frames_queued": 4,
        "bytes_queued": sum(map(len, frames_a + frames_b)),
        "dropped": 0,
        "connections": 2,
        "subscriptions": 3,
        "alerts": 1,
    }


def _over_the_limit(impl, grace_ms):
    """A tick-mode connection whose queue (4 frames) overflows at now_ms 1000: BTC/USD 1..3 and
    ETH/USD 1 are queued, ETH/USD 2 and BTC/USD 4..5 dropped."""
    core = make(impl, max_queue_frames=4, slow_consumer_grace_ms=grace_ms)
    slow = core.connect()
    core.subscribe(slow, ["BTC/USD", "ETH/USD"], "tick")
    core.ingest([("BTC/USD", 1.0, 1.0, t) for t in range(3)], 1000)
    core.ingest([("ETH/USD", 1.0, 1.0, 3), ("ETH/USD", 1.0, 1.0, 4)] + [("BTC/USD", 1.0, 1.0, t) for t in (5, 6)], 1000)
    return core, slow


def test_over_the_limit_within_the_grace_recovers_with_exact_gaps(impl):
    core, slow = _over_the_limit(impl, 500)
    assert core.take_overflowed(1000) == []  # the grace is timed from here
    assert core.take_overflowed(1499) == []
    assert core.stats()["dropped"] == 3
    assert core.push(slow, "x") is False  # a control frame that does not fit closes at once
    assert core.take_overflowed(1499) == [slow]


def test_over_the_limit_recovers_when_half_drained(impl):
    core, slow = _over_the_limit(impl, 500)
    assert core.take_overflowed(1000) == []
    assert len(core.drain(slow, 2)) == 2  # at most half full: recovered
    assert parsed(drain_all(core, slow))[2:] == [
        {"type": "gap", "symbol": "BTC/USD", "from_seq": 4, "to_seq": 5, "reason": "evicted"},
        {"type": "gap", "symbol": "ETH/USD", "from_seq": 2, "to_seq": 2, "reason": "evicted"},
    ]
    core.ingest([("BTC/USD", 1.0, 1.0, 7)], 1100)
    assert [f["seq"] for f in parsed(drain_all(core, slow))] == [6]
    assert core.take_overflowed(10_000) == []


def test_over_the_limit_past_the_grace_is_closed(impl):
    core, slow = _over_the_limit(impl, 500)
    assert core.take_overflowed(1000) == []
    assert core.take_overflowed(1500) == [slow]
    assert core.take_overflowed(1500) == []
    assert len(drain_all(core, slow)) == 4  # what was queued stays drainable; no recovery now
    core.ingest([("BTC/USD", 1.0, 1.0, 7)], 1600)
    assert drain_all(core, slow) == []


def test_slow_consumer_grace_is_validated(impl):
    import pytest

    from tickfan.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="slow_consumer_grace_ms must be >= 0"):
        make(impl, slow_consumer_grace_ms=-1)
