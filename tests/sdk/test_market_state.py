"""tickfan.client.state.MarketState, sans-I/O: frames in (from both cores where they make them),
events and outbound messages out."""

from __future__ import annotations

import json
from itertools import accumulate
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickfan.client import Gap, ProtocolError, SeqReset, Subscribed, Tick, Unknown
from tickfan.client.events import decode_frame
from tickfan.client.state import MarketState


def opened(mode: str = "auto", epoch: str = "e1", symbols: tuple[str, ...] = ("X",), **kwargs: Any) -> MarketState:
    state = MarketState(**kwargs)
    state.subscribe(list(symbols), mode)  # type: ignore[arg-type]
    state.on_open()
    state.receive(Subscribed(list(symbols), mode, None, epoch))
    return state


def feed(state: MarketState, frames: list[str]) -> list[Any]:
    events: list[Any] = []
    for frame in frames:
        events += state.receive(decode_frame(frame))
    return events


def tick_frame(seq: int, ts: int | None = None, symbol: str = "X") -> str:
    return json.dumps({"type": "market_data", "symbol": symbol, "seq": seq, "ts": seq * 10 if ts is None else ts,
                       "price": 1.5, "size": 2.0})


def batch_frame(first: int, count: int, symbol: str = "X") -> str:
    ts = [first * 10 + i * 10 for i in range(count)]
    return json.dumps({"type": "market_data_batch", "symbol": symbol, "seq": first, "count": count,
                       "price_decimals": 1, "size_decimals": 0,
                       "ts": [ts[0]] + [b - a for a, b in zip(ts, ts[1:])], "price": [15] + [0] * (count - 1),
                       "size": [2] * count})


# --- batch decoding equals tick mode, on frames the cores make ----------------------------------

TICK = st.tuples(
    st.integers(1, 2**50),  # price units
    st.integers(0, 2**50),  # size units
    st.integers(0, 5000),  # ts step
    st.booleans(),  # close the batch window after this tick
)


@settings(max_examples=150, deadline=None)
@given(decimals=st.tuples(st.integers(0, 12), st.integers(0, 12)), ticks=st.lists(TICK, min_size=1, max_size=40),
       start_ts=st.integers(0, 2**50))
def test_batch_decoding_equals_tick_mode(impl, decimals, ticks, start_ts):
    pd, sd = decimals
    core = impl.Core([("X", pd, sd)])
    by_mode = {mode: core.connect() for mode in ("tick", "batch")}
    for mode, conn in by_mode.items():
        core.subscribe(conn, ["X"], mode)
    now, expected = 0, []
    for seq, (ts, (price, size, _, flush)) in enumerate(zip(accumulate([start_ts] + [t[2] for t in ticks[1:]]), ticks), 1):
        core.ingest([("X", price / 10.0**pd, size / 10.0**sd, ts)], now)
        expected.append(Tick("X", seq, ts, price / 10**pd, size / 10**sd))
        if flush:
            now += 50
            core.flush(now)
    core.flush(now + 50)
    got = {mode: feed(opened(mode), core.drain(conn, 1_000_000)) for mode, conn in by_mode.items()}
    assert got["tick"] == expected
    assert got["batch"] == expected
    assert all(isinstance(e, Tick) for e in got["batch"])


def test_batch_price_is_units_over_power_of_ten():
    # 4312537 * 10**-2 is 43125.369999999995; the frame's price and ours is 43125.37
    frame = json.dumps({"type": "market_data_batch", "symbol": "BTC/USD", "seq": 1042, "count": 3,
                        "price_decimals": 2, "size_decimals": 8, "ts": [1731283200123, 5, 0],
                        "price": [4312537, -2, 10], "size": [1500000, 250000000, 1000]})
    ticks = feed(opened(symbols=("BTC/USD",)), [frame])
    assert [(t.seq, t.ts, t.price, t.size) for t in ticks] == [
        (1042, 1731283200123, 43125.37, 0.015), (1043, 1731283200128, 43125.35, 2.5),
        (1044, 1731283200128, 43125.45, 0.00001),
    ]


# --- gaps ------------------------------------------------------------------------------------------


@st.composite
def deliveries(draw: Any) -> tuple[int, list[int], list[str], list[int]]:
    """(n, delivered seqs, frames carrying them in order with re-sent duplicates, duplicate seqs)."""
    n = draw(st.integers(1, 120))
    dropped = draw(st.sets(st.integers(2, n), max_size=n)) if n > 1 else set()  # seq 1 is the baseline
    delivered = [s for s in range(1, n + 1) if s not in dropped]
    frames: list[str] = []
    dups: list[int] = []
    i = 0
    while i < len(delivered):
        run = 1
        while i + run < len(delivered) and delivered[i + run] == delivered[i] + run:
            run += 1
        take = draw(st.integers(1, run))
        if take == 1 and draw(st.booleans()):
            frames.append(tick_frame(delivered[i]))
        else:
            frames.append(batch_frame(delivered[i], take))
        if draw(st.integers(0, 4)) == 0:  # a snapshot re-sent after a resubscribe
            frames.append(tick_frame(delivered[i + take - 1]))
            dups.append(delivered[i + take - 1])
        i += take
    return n, delivered, frames, dups


@settings(max_examples=300, deadline=None)
@given(case=deliveries(), mode=st.sampled_from(["auto", "tick", "batch"]))
def test_gap_ranges_are_exact(case, mode):
    n, delivered, frames, dups = case
    state = opened(mode)
    events = feed(state, frames)
    assert [e.seq for e in events if isinstance(e, Tick)] == delivered
    gaps = [e for e in events if isinstance(e, Gap)]
    missing = sorted(set(range(1, delivered[-1] + 1)) - set(delivered))
    assert [s for g in gaps for s in range(g.from_seq, g.to_seq + 1)] == missing
    for i, event in enumerate(events):  # each gap is announced right before the tick that revealed it
        if isinstance(event, Gap):
            assert event.from_seq <= event.to_seq and event.reason == "seq"
            assert isinstance(events[i + 1], Tick) and events[i + 1].seq == event.to_seq + 1
    assert state.duplicates == len(dups)


@given(case=deliveries())
def test_conflate_counts_no_gaps(case):
    _, delivered, frames, _ = case
    events = feed(opened("conflate"), frames)
    assert [e.seq for e in events] == delivered


def test_overflow_gap_while_degraded_then_restore():
    state = opened("tick")
    feed(state, [tick_frame(1), tick_frame(2)])
    state.degrade()
    state.on_close()
    assert [m for m in state.on_open() if m["type"] == "subscribe"] == [
        {"type": "subscribe", "symbols": ["X"], "mode": "conflate", "interval_ms": 1000}]
    assert feed(state, [tick_frame(9)]) == [Gap("X", 3, 8, "overflow"), Tick("X", 9, 90, 1.5, 2.0)]
    restored = state.restore()
    assert restored == [
        {"type": "backfill_request", "symbols": ["X"], "since": 90, "interval": "1s"},
        {"type": "subscribe", "symbols": ["X"], "mode": "tick"},
    ]
    assert state.restore() == []


# --- epochs and reopening ------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(first=st.integers(1, 40), second=st.integers(1, 40), new_epoch=st.booleans())
def test_seq_reset_on_epoch_change(first, second, new_epoch):
    state = opened("auto", "e1")
    feed(state, [tick_frame(s) for s in range(1, first + 1)])
    state.on_close()
    reopen = state.on_open()
    # a resume from the last seq, under the epoch it was seen in
    assert reopen == [{"type": "subscribe", "symbols": ["X"], "mode": "auto", "resume": {"X": first}, "epoch": "e1"}]
    epoch = "e2" if new_epoch else "e1"
    events = state.receive(Subscribed(["X"], "auto", 50, epoch))
    events += feed(state, [tick_frame(s, ts=10_000 + s) for s in range(1, second + 1)])
    ticks = [e.seq for e in events if isinstance(e, Tick)]
    assert not any(isinstance(e, Gap) for e in events)
    if new_epoch:
        assert events[0] == SeqReset("e1", "e2")
        assert ticks == list(range(1, second + 1))  # none mistaken for a duplicate
    else:
        assert not any(isinstance(e, SeqReset) for e in events)
        assert ticks == list(range(first + 1, second + 1))
        assert state.duplicates == min(first, second)


def test_reopen_resumes_by_last_seq_and_epoch_and_backfills_the_rest():
    state = opened(symbols=("X", "Y", "Z"), mode="tick")
    feed(state, [tick_frame(4, ts=500, symbol="X"), tick_frame(7, ts=300, symbol="Y")])
    state.on_close()
    state.since_ms = 100  # Z has no seq: it gets the candle backfill
    assert state.on_open() == [
        {"type": "backfill_request", "symbols": ["Z"], "since": 100, "interval": "1s"},
        {"type": "subscribe", "symbols": ["X", "Y", "Z"], "mode": "tick", "resume": {"X": 4, "Y": 7}, "epoch": "e1"},
    ]
    # resumed ticks continue the seq: no gap, no duplicate
    events = feed(state, [json.dumps({"type": "subscribed", "symbols": ["X", "Y", "Z"], "mode": "tick",
                                      "interval_ms": None, "epoch": "e1", "resumed": ["X"]}),
                          tick_frame(5, symbol="X"), tick_frame(6, symbol="X")])
    assert events[0].resumed == ["X"]
    assert [e.seq for e in events[1:]] == [5, 6] and state.duplicates == 0
    # a server gap for Y: passed on, and a candle backfill from Y's last ts goes out
    (gap,) = feed(state, [json.dumps({"type": "gap", "symbol": "Y", "from_seq": 8, "to_seq": 20, "reason": "evicted"})])
    assert (gap.from_seq, gap.to_seq, gap.reason) == (8, 20, "evicted")
    assert state.take_outbox() == [{"type": "backfill_request", "symbols": ["Y"], "since": 300, "interval": "1s"}]
    assert state.take_outbox() == []
    assert [e.seq for e in feed(state, [tick_frame(21, symbol="Y")])] == [21]  # no client-side gap on top
    (epoch_gap,) = feed(state, [json.dumps({"type": "gap", "symbol": "X", "from_seq": 7, "to_seq": None, "reason": "epoch"})])
    assert epoch_gap.to_seq is None


def test_backfill_since_is_the_oldest_last_ts_and_reported():
    state = opened(symbols=("X", "Y"))
    feed(state, [tick_frame(1, ts=500, symbol="X"), tick_frame(1, ts=300, symbol="Y")])
    state.on_close()
    state.epoch = None  # no epoch known: nothing to resume, a backfill instead
    assert state.on_open()[0] == {"type": "backfill_request", "symbols": ["X", "Y"], "since": 300, "interval": "1s"}
    (event,) = feed(state, [json.dumps({"type": "backfill", "symbol": "X", "interval": "1s",
                                        "candles": [[0, 1.0, 2.0, 0.5, 1.5, 3.0]], "complete": True})])
    assert event.since == 300 and event.candles[0].high == 2.0


def test_first_open_backfills_only_with_since_ms():
    assert [m["type"] for m in MarketState().on_open()] == []
    state = MarketState(since_ms=1234)
    state.subscribe(["X"], "tick")
    assert state.on_open()[0] == {"type": "backfill_request", "symbols": ["X"], "since": 1234, "interval": "1s"}


def test_unsubscribed_symbols_forget_their_seq():
    state = opened()
    feed(state, [tick_frame(1)])
    assert state.unsubscribe(["X"]) == [{"type": "unsubscribe", "symbols": ["X"]}]
    state.subscribe(["X"])
    assert feed(state, [tick_frame(50)]) == [Tick("X", 50, 500, 1.5, 2.0)]


# --- frames that break the contract, and newer ones ----------------------------------------------


def test_unknown_type_is_an_event_and_a_broken_batch_raises():
    assert decode_frame('{"type":"degraded","symbols":["X"]}') == Unknown("degraded", {"type": "degraded", "symbols": ["X"]})
    broken = json.loads(batch_frame(1, 3))
    broken["price"] = broken["price"][:2]
    with pytest.raises(ProtocolError, match="count=3"):
        feed(opened(), [json.dumps(broken)])
    with pytest.raises(ProtocolError):
        decode_frame('{"type":"market_data","symbol":"X","seq":"1"}')
    with pytest.raises(ProtocolError):
        decode_frame("not json")


@pytest.mark.parametrize("reason", ["evicted", "epoch", "degraded", "a-reason-added-later"])
def test_any_server_gap_reason_is_passed_on_and_backfilled(reason):
    """The server sends only the contract's reasons (docs/protocol.md, "gap reasons"); any other
    is still a gap the client fills with candles."""
    state = opened(symbols=("X",), mode="tick")
    feed(state, [tick_frame(4, ts=500, symbol="X")])
    (gap,) = feed(state, [json.dumps({"type": "gap", "symbol": "X", "from_seq": 5, "to_seq": 9, "reason": reason})])
    assert (gap.symbol, gap.from_seq, gap.to_seq, gap.reason) == ("X", 5, 9, reason)
    assert state.take_outbox() == [{"type": "backfill_request", "symbols": ["X"], "since": 500, "interval": "1s"}]
    assert [e.seq for e in feed(state, [tick_frame(10, symbol="X")])] == [10]  # no client-side gap on top
