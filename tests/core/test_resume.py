"""The resume ring and ``resume`` (tick-level resume by seq), on both cores."""

from __future__ import annotations

import json

import pytest

from tickfan.batch_codec import decode_batch
from tickfan.errors import InvalidArgument, UnknownConnection, UnknownSymbol

from .helpers import drain_all, make, parsed

TS = 1_700_000_000_000


def ticks(n: int, start_ts: int = TS, step: int = 1, symbol: str = "BTC/USD") -> list:
    return [(symbol, 100.0 + i / 100, 0.5, start_ts + i * step) for i in range(n)]


def test_ring_holds_the_latest_ticks_by_count(impl):
    core = make(impl, resume_max_ticks=5)
    assert core.ring_range("BTC/USD") is None
    core.ingest(ticks(3), 0)
    assert core.ring_range("BTC/USD") == (1, 3)
    core.ingest(ticks(9, TS + 3), 0)
    assert core.ring_range("BTC/USD") == (8, 12)
    assert core.ring_range("ETH/USD") is None
    with pytest.raises(UnknownSymbol):
        core.ring_range("NOPE")


def test_ring_evicts_by_tick_time_not_server_clock(impl):
    core = make(impl, resume_window_ms=100)
    core.ingest(ticks(5, TS, step=30), 0)  # ts TS .. TS+120
    # held: ts > TS + 120 - 100, i.e. TS+30 onwards (seq 2..5)
    assert core.ring_range("BTC/USD") == (2, 5)
    core.ingest([("BTC/USD", 1.0, 1.0, TS + 130)], 10**9)  # a far later server clock changes nothing by itself
    assert core.ring_range("BTC/USD") == (3, 6)  # TS+30 is exactly 100 ms older: gone
    core.ingest([("BTC/USD", 1.0, 1.0, TS + 10_000)], 10**9)
    assert core.ring_range("BTC/USD") == (7, 7)  # the latest tick is always held


def test_tick_mode_resume_gives_the_same_frames_live_subscribers_got(impl):
    core = make(impl)
    live, back = core.connect(), core.connect()
    core.subscribe(live, ["BTC/USD"], "tick")
    core.ingest(ticks(10), 0)
    sent = drain_all(core, live)
    core.subscribe(back, ["BTC/USD"], "tick")
    frames, gap = core.resume(back, "BTC/USD", 4, True)
    assert gap is None
    assert frames == sent[4:]
    assert [m["seq"] for m in parsed(frames)] == list(range(5, 11))
    # nothing was queued: the caller pushes the frames after its ack
    assert core.queued(back) == (0, 0)
    core.ingest(ticks(1, TS + 10), 0)
    assert [m["seq"] for m in parsed(drain_all(core, back))] == [11]


@pytest.mark.parametrize("mode", ["batch", "auto"])
def test_batching_modes_resume_as_one_batch_when_batching(impl, mode):
    core = make(impl, high_freq_per_s=5.0)
    tick, back = core.connect(), core.connect()
    core.subscribe(tick, ["BTC/USD"], "tick")
    core.ingest(ticks(20), 0)  # 20 ticks in one 100 ms bucket: high-frequency
    assert core.is_high_frequency("BTC/USD")
    sent = parsed(drain_all(core, tick))
    core.subscribe(back, ["BTC/USD"], mode)
    frames, gap = core.resume(back, "BTC/USD", 12, True)
    assert gap is None and len(frames) == 1
    message = json.loads(frames[0])
    assert message["type"] == "market_data_batch" and message["seq"] == 13
    assert decode_batch(message) == sent[12:]
    # live ticks continue right after, with no overlap
    core.ingest(ticks(2, TS + 20), 50)
    core.flush(10**6)
    live = parsed(drain_all(core, back))
    seqs = [t["seq"] for m in live for t in (decode_batch(m) if m["type"] == "market_data_batch" else [m])]
    assert seqs == [21, 22]


def test_auto_mode_resumes_tick_by_tick_while_not_high_frequency(impl):
    core = make(impl)
    back = core.connect()
    core.ingest(ticks(3, step=1000), 0)
    core.subscribe(back, ["BTC/USD"], "auto")
    frames, gap = core.resume(back, "BTC/USD", 1, True)
    assert gap is None
    assert [(m["type"], m["seq"]) for m in parsed(frames)] == [("market_data", 2), ("market_data", 3)]


def test_conflate_resume_is_the_latest_tick(impl):
    core = make(impl)
    back = core.connect()
    core.ingest(ticks(5), 0)
    core.subscribe(back, ["BTC/USD"], "conflate")
    frames, gap = core.resume(back, "BTC/USD", 2, True)
    assert gap is None and [m["seq"] for m in parsed(frames)] == [5]


def test_nothing_missed_is_resumed_with_no_frames(impl):
    core = make(impl)
    back = core.connect()
    core.subscribe(back, ["BTC/USD", "ETH/USD"], "tick")
    assert core.resume(back, "ETH/USD", 0, True) == ([], None)  # never traded
    core.ingest(ticks(3), 0)
    assert core.resume(back, "BTC/USD", 3, True) == ([], None)


def test_gap_when_evicted_names_the_exact_range(impl):
    core = make(impl, resume_max_ticks=4)
    back = core.connect()
    core.ingest(ticks(10), 0)  # ring holds 7..10
    core.subscribe(back, ["BTC/USD"], "tick")
    assert core.resume(back, "BTC/USD", 6, True)[1] is None
    assert core.resume(back, "BTC/USD", 5, True) == ([], (6, 10, "evicted"))
    assert core.resume(back, "BTC/USD", 0, True) == ([], (1, 10, "evicted"))


def test_gap_when_the_epoch_differs(impl):
    core = make(impl)
    back = core.connect()
    core.subscribe(back, ["BTC/USD", "ETH/USD"], "tick")
    assert core.resume(back, "ETH/USD", 41, False) == ([], (42, None, "epoch"))
    core.ingest(ticks(3), 0)
    assert core.resume(back, "BTC/USD", 41, False) == ([], (42, 3, "epoch"))
    assert core.resume(back, "BTC/USD", 1, False) == ([], (2, 3, "epoch"))


def test_a_resume_that_would_not_fit_the_queue_is_a_gap(impl):
    core = make(impl, max_queue_frames=5)
    back = core.connect()
    core.ingest(ticks(10), 0)
    core.subscribe(back, ["BTC/USD"], "tick")
    assert len(core.resume(back, "BTC/USD", 5, True)[0]) == 5
    assert core.resume(back, "BTC/USD", 4, True) == ([], (5, 10, "evicted"))
    core.push(back, "ack")
    assert core.resume(back, "BTC/USD", 5, True) == ([], (6, 10, "evicted"))


def test_resume_errors_in_order(impl):
    core = make(impl)
    conn = core.connect()
    with pytest.raises(UnknownConnection, match="unknown connection 99"):
        core.resume(99, "NOPE", -1, True)
    with pytest.raises(UnknownSymbol):
        core.resume(conn, "NOPE", -1, True)
    with pytest.raises(InvalidArgument, match="not subscribed to 'BTC/USD'"):
        core.resume(conn, "BTC/USD", -1, True)
    core.subscribe(conn, ["BTC/USD"], "tick")
    for bad in (-1, True, 1.0, "3"):
        with pytest.raises(InvalidArgument, match="last_seq must be an integer >= 0"):
            core.resume(conn, "BTC/USD", bad, True)
    assert core.resume(conn, "BTC/USD", 2**70, True) == ([], None)


@pytest.mark.parametrize("kwargs, message", [
    ({"resume_window_ms": 0}, "resume_window_ms must be >= 1"),
    ({"resume_max_ticks": 0}, "resume_max_ticks must be >= 1"),
])
def test_ring_limits_are_validated(impl, kwargs, message):
    with pytest.raises(InvalidArgument, match=message):
        make(impl, **kwargs)
