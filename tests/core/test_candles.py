"""Candles: OHLCV by ts, ring wrap-around, backfill completeness, recent_candles."""

from __future__ import annotations

import pytest

from tickfan.errors import InvalidArgument, UnknownSymbol

from .helpers import make

M = 60_000


def test_ohlcv_by_tick_ts(impl):
    core = make(impl)
    core.ingest(
        [
            ("BTC/USD", 100.5, 0.5, 10),
            ("BTC/USD", 102.25, 0.25, 20_000),
            ("BTC/USD", 99.0, 1.0, 59_999),
            ("BTC/USD", 101.0, 2.0, 60_000),  # next minute
        ],
        now_ms=10**9,  # candles run on ts, not on now_ms
    )
    candles, complete = core.backfill("BTC/USD", "1m", 0)
    assert complete is True
    assert candles == [(0, 100.5, 102.25, 99.0, 99.0, 1.75), (M, 101.0, 101.0, 101.0, 101.0, 2.0)]
    assert core.backfill("BTC/USD", "1h", 0) == ([(0, 100.5, 102.25, 99.0, 101.0, 3.75)], True)
    assert [c[0] for c in core.backfill("BTC/USD", "1s", 0)[0]] == [0, 20_000, 59_000, 60_000]
    assert core.backfill("BTC/USD", "5m", 0)[0] == [(0, 100.5, 102.25, 99.0, 101.0, 3.75)]


def test_candle_floats_are_units_over_pow10(impl):
    core = make(impl, [("A", 3, 7)])
    core.ingest([("A", 0.001, 0.1234567, 0), ("A", 0.003, 0.0000001, 1)], 0)
    ((_, o, h, low, c, v),), _ = core.backfill("A", "1m", 0)
    assert (o, h, low, c) == (1 / 1000.0, 3 / 1000.0, 1 / 1000.0, 3 / 1000.0)
    assert v == 1234568 / 10.0**7


def test_since_selects_from_the_candle_containing_it(impl):
    core = make(impl)
    core.ingest([("BTC/USD", 1.0, 1.0, t * M) for t in range(5)], 0)
    assert [c[0] for c in core.backfill("BTC/USD", "1m", 2 * M + 59_999)[0]] == [2 * M, 3 * M, 4 * M]
    assert [c[0] for c in core.backfill("BTC/USD", "1m", 2 * M)[0]] == [2 * M, 3 * M, 4 * M]
    assert [c[0] for c in core.backfill("BTC/USD", "1m", 4 * M + 1)[0]] == [4 * M]
    assert core.backfill("BTC/USD", "1m", -5) == core.backfill("BTC/USD", "1m", 0)
    assert len(core.backfill("BTC/USD", "1m", -5)[0]) == 5


def test_future_since_and_no_ticks(impl):
    core = make(impl)
    assert core.backfill("BTC/USD", "1m", 0) == ([], True)
    assert core.recent_candles("BTC/USD", "1m", 10) == ([], True)
    core.ingest([("BTC/USD", 1.0, 1.0, M)], 0)
    assert core.backfill("BTC/USD", "1m", 2 * M) == ([], True)
    assert core.backfill("BTC/USD", "1m", 10**15) == ([], True)


def test_ring_wraps_and_reports_incomplete(impl):
    core = make(impl, candle_capacity={"1m": 3})
    # Minutes 0, 1, 2, 3, 4, then a gap, then 10: the ring keeps the last three.
    core.ingest([("BTC/USD", float(t + 1), 1.0, t * M) for t in (0, 1, 2, 3, 4, 10)], 0)
    candles, complete = core.backfill("BTC/USD", "1m", 0)
    assert [c[0] for c in candles] == [3 * M, 4 * M, 10 * M]
    assert complete is False  # since 0: minutes 0..2 belong in the answer and were evicted
    assert [c[1] for c in candles] == [4.0, 5.0, 11.0]
    assert core.backfill("BTC/USD", "1m", 2 * M)[1] is False  # minute 2 was evicted
    assert core.backfill("BTC/USD", "1m", 3 * M) == (candles, True)
    # In the gap: every candle at or after minute 5 is held.
    assert core.backfill("BTC/USD", "1m", 5 * M) == (candles[2:], True)


def test_gap_after_the_evicted_candle_is_complete(impl):
    core = make(impl, candle_capacity={"1m": 2})
    core.ingest([("BTC/USD", 1.0, 1.0, t * M) for t in (0, 5, 6)], 0)  # minute 0 evicted
    # Minutes 1..4 had no ticks, so nothing that belongs in the answer from minute 1 is lost.
    assert core.backfill("BTC/USD", "1m", 1 * M) == (core.backfill("BTC/USD", "1m", 5 * M)[0], True)
    assert core.backfill("BTC/USD", "1m", 0)[1] is False
    assert core.backfill("BTC/USD", "1m", 59_999)[1] is False


def test_since_before_first_tick_is_complete(impl):
    core = make(impl)
    core.ingest([("BTC/USD", 1.0, 1.0, 100 * M)], 0)
    candles, complete = core.backfill("BTC/USD", "1m", 0)
    assert [c[0] for c in candles] == [100 * M] and complete is True


def test_open_candle_updates_in_place_across_ingests(impl):
    core = make(impl, candle_capacity={"1s": 1})
    core.ingest([("BTC/USD", 5.0, 1.0, 1000)], 0)
    core.ingest([("BTC/USD", 7.0, 1.0, 1999)], 0)
    core.ingest([("BTC/USD", 3.0, 1.0, 1999)], 0)
    assert core.backfill("BTC/USD", "1s", 0) == ([(1000, 5.0, 7.0, 3.0, 3.0, 3.0)], True)
    core.ingest([("BTC/USD", 4.0, 1.0, 2000)], 0)
    assert core.backfill("BTC/USD", "1s", 0) == ([(2000, 4.0, 4.0, 4.0, 4.0, 1.0)], False)
    assert core.backfill("BTC/USD", "1s", 2000) == ([(2000, 4.0, 4.0, 4.0, 4.0, 1.0)], True)


def test_default_capacity_1m_holds_1440(impl):
    core = make(impl)
    core.ingest([("DOGE", 1, 1, t * M) for t in range(1500)], 0)
    candles, complete = core.backfill("DOGE", "1m", 0)
    assert len(candles) == 1440 and candles[0][0] == 60 * M and complete is False
    candles, complete = core.backfill("DOGE", "1m", 60 * M)
    assert len(candles) == 1440 and complete is True


def test_recent_candles(impl):
    core = make(impl, candle_capacity={"1m": 3})
    core.ingest([("BTC/USD", 1.0, 1.0, t * M) for t in range(2)], 0)
    assert [c[0] for c in core.recent_candles("BTC/USD", "1m", 1)[0]] == [M]
    assert core.recent_candles("BTC/USD", "1m", 5) == (core.backfill("BTC/USD", "1m", 0)[0], True)
    core.ingest([("BTC/USD", 1.0, 1.0, t * M) for t in range(2, 6)], 0)
    candles, complete = core.recent_candles("BTC/USD", "1m", 2)
    assert [c[0] for c in candles] == [4 * M, 5 * M] and complete is True
    assert core.recent_candles("BTC/USD", "1m", 3)[1] is True
    candles, complete = core.recent_candles("BTC/USD", "1m", 4)
    assert [c[0] for c in candles] == [3 * M, 4 * M, 5 * M] and complete is False


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.backfill("XRP", "1m", 0),
        lambda c: c.backfill("XRP", "2m", 0),
        lambda c: c.recent_candles("XRP", "2m", 0),
    ],
)
def test_unknown_symbol_first(impl, call):
    with pytest.raises(UnknownSymbol) as info:
        call(make(impl))
    assert str(info.value) == "unknown symbol 'XRP'" and info.value.symbol == "XRP"


def test_interval_and_limit_errors(impl):
    core = make(impl)
    for call in (
        lambda: core.backfill("BTC/USD", "1d", 0),
        lambda: core.recent_candles("BTC/USD", "1d", 0),
        lambda: core.recent_candles("BTC/USD", "", 5),
    ):
        with pytest.raises(InvalidArgument) as info:
            call()
        assert type(info.value) is InvalidArgument
        assert str(info.value) in ("unknown candle interval '1d'", "unknown candle interval ''")
    for limit in (0, -1):
        with pytest.raises(InvalidArgument) as info:
            core.recent_candles("BTC/USD", "1m", limit)
        assert str(info.value) == "limit must be >= 1"
