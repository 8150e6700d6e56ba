"""Ingest: validation (every message, all or nothing), seq, latest, market_data text."""

from __future__ import annotations

import math

import pytest

from tickfan.errors import InvalidArgument, TickRejected, UnknownSymbol

from .helpers import drain_all, make, md

TS = 1_731_283_200_123
GOOD = ("BTC/USD", 43125.37, 0.015, TS)


class Weird:
    def __str__(self) -> str:
        return "weird"


BAD_TICKS = [
    ("BTC/USD", "tick must be [symbol, price, size, ts]"),
    (("BTC/USD", 1.0, 1.0), "tick must be [symbol, price, size, ts]"),
    (["BTC/USD", 1.0, 1.0, TS, 5], "tick must be [symbol, price, size, ts]"),
    ({"symbol": "BTC/USD"}, "tick must be [symbol, price, size, ts]"),
    (None, "tick must be [symbol, price, size, ts]"),
    (("XRP", 1.0, 1.0, TS), "unknown symbol 'XRP'"),
    (("btc/usd", 1.0, 1.0, TS), "unknown symbol 'btc/usd'"),
    ((5, 1.0, 1.0, TS), "unknown symbol '5'"),
    ((Weird(), 1.0, 1.0, TS), "unknown symbol 'weird'"),
    # unknown symbol comes before any value check
    (("XRP", -1.0, "x", -5), "unknown symbol 'XRP'"),
    (("BTC/USD", 0.0, 1.0, TS), "price must be a finite number > 0"),
    (("BTC/USD", 0, 1.0, TS), "price must be a finite number > 0"),
    (("BTC/USD", -1.5, 1.0, TS), "price must be a finite number > 0"),
    (("BTC/USD", math.nan, 1.0, TS), "price must be a finite number > 0"),
    (("BTC/USD", math.inf, 1.0, TS), "price must be a finite number > 0"),
    (("BTC/USD", "1.5", 1.0, TS), "price must be a finite number > 0"),
    (("BTC/USD", True, 1.0, TS), "price must be a finite number > 0"),
    (("BTC/USD", None, 1.0, TS), "price must be a finite number > 0"),
    (("BTC/USD", 10**400, 1.0, TS), "price must be a finite number > 0"),
    # price before size before ts
    (("BTC/USD", -1.0, -1.0, -1), "price must be a finite number > 0"),
    (("BTC/USD", 1.0, -0.01, TS), "size must be a finite number >= 0"),
    (("BTC/USD", 1.0, math.nan, TS), "size must be a finite number >= 0"),
    (("BTC/USD", 1.0, -math.inf, TS), "size must be a finite number >= 0"),
    (("BTC/USD", 1.0, False, TS), "size must be a finite number >= 0"),
    (("BTC/USD", 1.0, "0", TS), "size must be a finite number >= 0"),
    (("BTC/USD", 1.0, -1.0, -1), "size must be a finite number >= 0"),
    (("BTC/USD", 1.0, 1.0, -1), "ts must be an integer >= 0"),
    (("BTC/USD", 1.0, 1.0, 1.0), "ts must be an integer >= 0"),
    (("BTC/USD", 1.0, 1.0, True), "ts must be an integer >= 0"),
    (("BTC/USD", 1.0, 1.0, "1"), "ts must be an integer >= 0"),
    (("BTC/USD", 1.0, 1.0, 2**63), "ts must be an integer >= 0"),
    (("BTC/USD", 1.0, 1.0, None), "ts must be an integer >= 0"),
    # ts before the decimals checks
    (("BTC/USD", 1.001, 1.0, -1), "ts must be an integer >= 0"),
    (("BTC/USD", 1.001, 1.0, TS), "price has more than 2 decimals"),
    (("BTC/USD", 0.1 + 0.2, 1.0, TS), "price has more than 2 decimals"),
    (("BTC/USD", 0.001, 1.0, TS), "price has more than 2 decimals"),
    (("BTC/USD", 1e300, 1.0, TS), "price out of range"),
    (("BTC/USD", 1.0, 1e301, TS), "size has more than 8 decimals"),  # 1e301 * 1e8 is inf
    (("BTC/USD", 1.0, 0.000000001, TS), "size has more than 8 decimals"),
    (("DOGE", 1.5, 1.0, TS), "price has more than 0 decimals"),
    (("DOGE", 1.0, 0.5, TS), "size has more than 0 decimals"),
    # price decimals before size decimals before ranges
    (("BTC/USD", 1.001, 0.000000001, TS), "price has more than 2 decimals"),
    (("DOGE", 2**53, 0.5, TS), "size has more than 0 decimals"),
    (("DOGE", 2**53, 1, TS), "price out of range"),
    (("DOGE", 2.0**60, 2**60, TS), "price out of range"),
    (("DOGE", 1, 2**53, TS), "size out of range"),
    (("BTC/USD", 1e14, 1.0, TS), "price out of range"),
    (("BTC/USD", 1.0, 1e8, TS), "size out of range"),
]


@pytest.mark.parametrize(("tick", "message"), BAD_TICKS)
def test_each_rejection_message(impl, tick, message):
    core = make(impl)
    with pytest.raises(TickRejected) as info:
        core.ingest([tick], 0)
    assert info.value.errors == [(0, message)]
    assert str(info.value) == "1 of 1 ticks rejected"
    assert isinstance(info.value, ValueError)
    assert core.latest("BTC/USD") is None and core.latest("DOGE") is None


GOOD_TICKS = [
    (("BTC/USD", 43125.37, 0.015, TS), (43125.37, 0.015)),
    (["BTC/USD", 43125, 2, 0], (43125.0, 2.0)),  # a list, ints, ts 0
    (("BTC/USD", 0.01, 0.00000001, TS), (0.01, 1e-8)),  # the smallest units
    (("BTC/USD", 1.0, 0.0, TS), (1.0, 0.0)),  # size 0
    (("BTC/USD", 1.0, -0.0, TS), (1.0, 0.0)),  # -0.0 is >= 0 and has units 0
    (("BTC/USD", 90071992547409.91, 1.0, TS), (90071992547409.91, 1.0)),  # MAX_UNITS
    (("DOGE", 2**53 - 1, 2**53 - 1, TS), (2.0**53 - 1, 2.0**53 - 1)),
    (("DOGE", 5, 3, 2**63 - 1), (5.0, 3.0)),
]


@pytest.mark.parametrize(("tick", "values"), GOOD_TICKS)
def test_accepted_values_come_back_exactly(impl, tick, values):
    core = make(impl)
    assert core.ingest([tick], 0) == 1
    seq, ts, price, size = core.latest(tick[0])
    assert (seq, ts) == (1, tick[3])
    assert (price, size) == values
    assert math.copysign(1.0, size) == 1.0  # never -0.0


def test_max_decimals_accepted_more_refused(impl):
    core = make(impl, [("A", 12, 12)])
    assert core.ingest([("A", 0.000000000001, 1.000000000001, 1)], 0) == 1
    assert core.latest("A")[2:] == (1e-12, 1.000000000001)
    with pytest.raises(TickRejected) as info:
        core.ingest([("A", 0.0000000000001, 1.0, 2), ("A", 1.0, 1e-13, 2)], 0)
    assert info.value.errors == [
        (0, "price has more than 12 decimals"),
        (1, "size has more than 12 decimals"),
    ]


def test_empty_input_is_valid(impl):
    core = make(impl)
    assert core.ingest([], 0) == 0
    assert core.ingest((), 5) == 0
    assert core.stats()["ticks_in"] == 0


def test_all_or_nothing_lists_every_bad_item(impl):
    core = make(impl)
    conn = core.connect()
    core.subscribe(conn, ["BTC/USD", "ETH/USD"], "tick")
    core.add_alert(1, "BTC/USD", "above", 1.0)
    ticks = [
        ("BTC/USD", 100.0, 1.0, 10),
        ("XRP", 1.0, 1.0, 10),
        ("ETH/USD", 5.0, 1.0, 10),
        ("BTC/USD", 100.001, 1.0, 10),
        ("BTC/USD", 101.0, 1.0, 11),
    ]
    with pytest.raises(TickRejected) as info:
        core.ingest(ticks, 1000)
    assert str(info.value) == "2 of 5 ticks rejected"
    assert info.value.errors == [(1, "unknown symbol 'XRP'"), (3, "price has more than 2 decimals")]
    assert core.latest("BTC/USD") is None and core.latest("ETH/USD") is None
    assert core.drain(conn) == [] and core.take_ready() == [] and core.take_fired() == []
    assert core.backfill("BTC/USD", "1m", 0) == ([], True)
    assert core.stats()["ticks_in"] == 0 and core.stats()["frames_queued"] == 0
    # The same ticks without the bad ones apply in full, seq starting at 1.
    assert core.ingest([t for i, t in enumerate(ticks) if i not in (1, 3)], 1000) == 3
    assert core.latest("BTC/USD") == (2, 11, 101.0, 1.0)
    assert core.latest("ETH/USD") == (1, 10, 5.0, 1.0)


def test_ts_order_checked_against_earlier_valid_items(impl):
    core = make(impl)
    core.ingest([("BTC/USD", 1.0, 1.0, 100)], 0)
    with pytest.raises(TickRejected) as info:
        core.ingest(
            [
                ("BTC/USD", 1.0, 1.0, 99),  # earlier than the applied tick
                ("BTC/USD", 1.0, 1.0, 100),  # equal ts is fine
                ("BTC/USD", 1.0, 1.0, 200),
                ("BTC/USD", 1.0, 1.0, 150),  # earlier than item 2
                ("BTC/USD", -1.0, 1.0, 300),  # invalid: its ts does not count
                ("BTC/USD", 1.0, 1.0, 250),  # so 250 >= 200 is fine
                ("ETH/USD", 1.0, 1.0, 5),  # per symbol
            ],
            0,
        )
    assert info.value.errors == [
        (0, "ts 99 is earlier than the previous tick's ts 100"),
        (3, "ts 150 is earlier than the previous tick's ts 200"),
        (4, "price must be a finite number > 0"),
    ]
    assert core.latest("BTC/USD") == (1, 100, 1.0, 1.0)


def test_equal_ts_allowed(impl):
    core = make(impl)
    assert core.ingest([("BTC/USD", 1.0, 1.0, 7)] * 3, 0) == 3
    assert core.ingest([("BTC/USD", 2.0, 1.0, 7)], 0) == 1
    assert core.latest("BTC/USD") == (4, 7, 2.0, 1.0)


def test_seq_per_symbol_from_one(impl):
    core = make(impl)
    core.ingest([("BTC/USD", 1.0, 1.0, 1), ("ETH/USD", 1.0, 1.0, 1), ("BTC/USD", 1.0, 1.0, 2)], 0)
    core.ingest([("BTC/USD", 1.0, 1.0, 3)], 0)
    assert core.latest("BTC/USD")[0] == 3
    assert core.latest("ETH/USD")[0] == 1
    assert core.latest("DOGE") is None
    assert core.stats()["ticks_in"] == 4


def test_latest_and_is_high_frequency_unknown_symbol(impl):
    core = make(impl)
    for call in (core.latest, core.is_high_frequency):
        with pytest.raises(UnknownSymbol) as info:
            call("XRP")
        assert str(info.value) == "unknown symbol 'XRP'"
        assert info.value.symbol == "XRP"


def test_market_data_text_spec_example(impl):
    core = make(impl)
    conn = core.connect()
    core.subscribe(conn, ["BTC/USD"], "tick")
    core.ingest([GOOD, ("BTC/USD", 43125.0, 2.5, TS + 5), ("BTC/USD", 0.1, 0.00000001, TS + 5)], 0)
    assert drain_all(core, conn) == [
        '{"type":"market_data","symbol":"BTC/USD","seq":1,"ts":1731283200123,'
        '"price":43125.37,"size":0.015}',
        md("BTC/USD", 2, TS + 5, "43125.0", "2.5"),
        md("BTC/USD", 3, TS + 5, "0.1", "0.00000001"),
    ]


def test_ingest_many_symbols_in_input_order(impl):
    core = make(impl)
    conn = core.connect()
    core.subscribe(conn, ["DOGE", "BTC/USD"], "tick")
    core.ingest([("DOGE", 7, 0, 1), ("BTC/USD", 1.5, 1, 1), ("DOGE", 8.0, 12.0, 2)], 0)
    assert drain_all(core, conn) == [
        md("DOGE", 1, 1, "7.0", "0.0"),
        md("BTC/USD", 1, 1, "1.5", "1.0"),
        md("DOGE", 2, 2, "8.0", "12.0"),
    ]


def test_far_future_ts_is_refused_when_bounded(impl):
    core = make(impl, max_ts_skew_ms=1000)
    with pytest.raises(TickRejected) as caught:
        core.ingest(
            [
                ("BTC/USD", 1.0, 1.0, 6000),  # exactly now + skew: accepted
                ("BTC/USD", 1.0, 1.0, 6001),  # one ms more: refused
                ("NOPE", 1.0, 1.0, 10**15),  # the earlier rule wins
                ("ETH/USD", 1.0, 1.0, 2**63 - 1),
                ("ETH/USD", 1.001, 1.0, 10**15),  # ts is checked before the decimals
            ],
            5000,
        )
    assert caught.value.errors == [
        (1, "ts 6001 is more than 1000 ms ahead of the server clock (5000)"),
        (2, "unknown symbol 'NOPE'"),
        (3, f"ts {2**63 - 1} is more than 1000 ms ahead of the server clock (5000)"),
        (4, f"ts {10**15} is more than 1000 ms ahead of the server clock (5000)"),
    ]
    assert core.latest("BTC/USD") is None
    assert core.ingest([("BTC/USD", 1.0, 1.0, 6000)], 5000) == 1
    # the refused tick froze nothing: the clock moves on and so do the ticks
    assert core.ingest([("BTC/USD", 1.0, 1.0, 7000)], 6000) == 1


def test_ts_is_unbounded_without_a_skew(impl):
    core = make(impl)
    assert core.ingest([("BTC/USD", 1.0, 1.0, 2**63 - 1)], 0) == 1


@pytest.mark.parametrize("skew", [-1, -(2**40)])
def test_negative_skew_is_refused(impl, skew):
    with pytest.raises(InvalidArgument, match="max_ts_skew_ms must be >= 0"):
        make(impl, max_ts_skew_ms=skew)
