"""Connections, subscriptions, snapshots and tick-mode fan-out."""

from __future__ import annotations

import pytest

from tickfan.errors import InvalidArgument, TooManySymbols, UnknownConnection

from .helpers import drain_all, make, md


def test_connection_ids_never_reused(impl):
    core = make(impl)
    assert [core.connect() for _ in range(3)] == [1, 2, 3]
    core.disconnect(2)
    core.disconnect(2)  # unknown ids are ignored
    core.disconnect(99)
    assert core.connect() == 4
    assert core.stats()["connections"] == 3


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.subscribe(7, ["BTC/USD"]),
        lambda c: c.unsubscribe(7, ["BTC/USD"]),
        lambda c: c.subscriptions(7),
        lambda c: c.push(7, "{}"),
        lambda c: c.queued(7),
    ],
)
def test_unknown_connection(impl, call):
    core = make(impl)
    core.connect()
    with pytest.raises(UnknownConnection) as info:
        call(core)
    assert str(info.value) == "unknown connection 7"
    assert isinstance(info.value, InvalidArgument)


def test_drain_of_unknown_connection_is_empty(impl):
    core = make(impl)
    assert core.drain(1) == []
    conn = core.connect()
    core.push(conn, "x")
    core.disconnect(conn)
    assert core.drain(conn) == []


def test_subscribe_returns_known_unknown_and_snapshots(impl):
    core = make(impl)
    core.ingest([("ETH/USD", 2000.5, 1.25, 10)], 0)
    conn = core.connect()
    subscribed, unknown, snapshots = core.subscribe(
        conn, ["XRP", "ETH/USD", "BTC/USD", "ETH/USD", "XRP", "ADA"], "tick"
    )
    assert subscribed == ["ETH/USD", "BTC/USD"]
    assert unknown == ["XRP", "ADA"]
    assert snapshots == [md("ETH/USD", 1, 10, "2000.5", "1.25")]
    assert core.drain(conn) == []  # snapshots are returned, not queued
    # Again: nothing is newly subscribed, so no snapshot.
    assert core.subscribe(conn, ["ETH/USD", "DOGE"], "batch") == (["ETH/USD", "DOGE"], [], [])


def test_snapshot_is_the_cached_frame_of_the_tick(impl):
    core = make(impl)
    a, b = core.connect(), core.connect()
    core.subscribe(a, ["BTC/USD"], "tick")
    core.ingest([("BTC/USD", 1.5, 2.0, 5)], 0)
    (queued,) = core.drain(a)
    (snapshot,) = core.subscribe(b, ["BTC/USD"], "conflate")[2]
    assert snapshot == queued
    assert snapshot is queued


def test_tick_frames_are_one_shared_str(impl):
    core = make(impl)
    conns = [core.connect() for _ in range(5)]
    for c in conns:
        core.subscribe(c, ["BTC/USD"], "tick")
    core.ingest([("BTC/USD", 1.5, 2.0, 5)], 0)
    frames = [core.drain(c) for c in conns]
    assert all(len(f) == 1 for f in frames)
    first = frames[0][0]
    assert first == md("BTC/USD", 1, 5, "1.5", "2.0")
    assert all(f[0] is first for f in frames)


def test_all_symbols_unknown_is_not_an_error(impl):
    core = make(impl)
    conn = core.connect()
    assert core.subscribe(conn, ["X", "Y"]) == ([], ["X", "Y"], [])
    assert core.subscriptions(conn) == []


def test_subscriptions_in_universe_order_with_defaults(impl):
    core = make(impl)
    conn = core.connect()
    core.subscribe(conn, ["DOGE"], "conflate")
    core.subscribe(conn, ["ETH/USD"], "tick", 250)  # interval ignored for tick
    core.subscribe(conn, ["BTC/USD"])
    assert core.subscriptions(conn) == [
        ("BTC/USD", "auto", 50),
        ("ETH/USD", "tick", 0),
        ("DOGE", "conflate", 1000),
    ]
    core.subscribe(conn, ["BTC/USD", "DOGE"], "batch", 10)
    core.subscribe(conn, ["ETH/USD"], "conflate", 60000)
    assert core.subscriptions(conn) == [
        ("BTC/USD", "batch", 10),
        ("ETH/USD", "conflate", 60000),
        ("DOGE", "batch", 10),
    ]
    assert core.stats()["subscriptions"] == 3


@pytest.mark.parametrize(
    ("mode", "interval", "message"),
    [
        ("ticks", None, "mode must be one of tick, batch, conflate, auto"),
        ("", None, "mode must be one of tick, batch, conflate, auto"),
        ("TICK", None, "mode must be one of tick, batch, conflate, auto"),
        ("ticks", 5, "mode must be one of tick, batch, conflate, auto"),
        ("batch", 9, "interval_ms must be between 10 and 60000"),
        ("auto", 60001, "interval_ms must be between 10 and 60000"),
        ("conflate", 0, "interval_ms must be between 10 and 60000"),
        ("conflate", -50, "interval_ms must be between 10 and 60000"),
    ],
)
def test_subscribe_argument_errors_change_nothing(impl, mode, interval, message):
    core = make(impl)
    conn = core.connect()
    core.subscribe(conn, ["DOGE"], "tick")
    with pytest.raises(InvalidArgument) as info:
        core.subscribe(conn, ["BTC/USD", "DOGE"], mode, interval)
    assert type(info.value) is InvalidArgument
    assert str(info.value) == message
    assert core.subscriptions(conn) == [("DOGE", "tick", 0)]


def test_tick_mode_ignores_interval(impl):
    core = make(impl)
    conn = core.connect()
    assert core.subscribe(conn, ["DOGE"], "tick", 1)[0] == ["DOGE"]
    assert core.subscriptions(conn) == [("DOGE", "tick", 0)]


def test_too_many_symbols(impl):
    core = make(impl, max_symbols_per_connection=2)
    conn = core.connect()
    core.subscribe(conn, ["BTC/USD", "XRP"])
    with pytest.raises(TooManySymbols) as info:
        core.subscribe(conn, ["ETH/USD", "DOGE"], "tick")
    assert str(info.value) == "at most 2 symbols per connection"
    assert core.subscriptions(conn) == [("BTC/USD", "auto", 50)]
    # Re-subscribing counts only the new ones; duplicates and unknowns do not count.
    assert core.subscribe(conn, ["BTC/USD", "ETH/USD", "ETH/USD", "X", "Y"], "tick")[0] == [
        "BTC/USD",
        "ETH/USD",
    ]
    with pytest.raises(TooManySymbols):
        core.subscribe(conn, ["DOGE"])
    core.unsubscribe(conn, ["BTC/USD"])
    assert core.subscribe(conn, ["DOGE"])[0] == ["DOGE"]


def test_unsubscribe_returns_existing_in_request_order(impl):
    core = make(impl)
    conn = core.connect()
    core.subscribe(conn, ["BTC/USD", "ETH/USD"], "tick")
    assert core.unsubscribe(conn, ["XRP", "ETH/USD", "DOGE", "BTC/USD", "ETH/USD"]) == [
        "ETH/USD",
        "BTC/USD",
    ]
    assert core.unsubscribe(conn, ["BTC/USD"]) == []
    assert core.subscriptions(conn) == []
    core.ingest([("BTC/USD", 1.0, 1.0, 1)], 0)
    assert core.drain(conn) == []
    assert core.stats()["subscriptions"] == 0


def test_tick_mode_gets_only_its_symbols_after_subscribing(impl):
    core = make(impl)
    core.ingest([("BTC/USD", 1.0, 1.0, 1)], 0)
    a, b = core.connect(), core.connect()
    core.subscribe(a, ["BTC/USD"], "tick")
    core.subscribe(b, ["ETH/USD"], "tick")
    core.ingest([("BTC/USD", 2.0, 1.0, 2), ("ETH/USD", 3.0, 1.0, 2)], 0)
    assert drain_all(core, a) == [md("BTC/USD", 2, 2, "2.0", "1.0")]
    assert drain_all(core, b) == [md("ETH/USD", 1, 2, "3.0", "1.0")]


def test_disconnect_forgets_subscriptions_and_queue(impl):
    core = make(impl)
    a, b = core.connect(), core.connect()
    core.subscribe(a, ["BTC/USD", "ETH/USD"], "tick")
    core.subscribe(b, ["BTC/USD"], "batch")
    core.ingest([("BTC/USD", 1.0, 1.0, 1)], 0)
    core.disconnect(a)
    core.disconnect(b)
    assert core.take_ready() == []
    assert core.next_deadline_ms() is None  # b was the batch group's only member
    stats = core.stats()
    assert (stats["connections"], stats["subscriptions"]) == (0, 0)
    core.ingest([("BTC/USD", 1.0, 1.0, 2)], 0)
    core.flush(10**6)
    assert core.stats()["frames_queued"] == 1
