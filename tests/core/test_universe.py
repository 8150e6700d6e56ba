"""The universe, the constructor's validation, the module constants and format_units."""

from __future__ import annotations

import math

import pytest

from tickfan.errors import InvalidArgument

from .helpers import UNIVERSE, make


def test_constants(impl):
    assert impl.INTERVALS == {"1s": 1000, "1m": 60000, "5m": 300000, "1h": 3600000}
    assert impl.DEFAULT_CANDLE_CAPACITY == {"1s": 3600, "1m": 1440, "5m": 2016, "1h": 720}
    assert impl.MAX_UNITS == 2**53 - 1
    assert impl.MAX_DECIMALS == 12
    assert (impl.MIN_INTERVAL_MS, impl.MAX_INTERVAL_MS) == (10, 60000)
    assert impl.IMPLEMENTATION in ("rust", "python")
    assert impl.IMPLEMENTATION == ("rust" if impl.__name__ == "tickfan._core" else "python")


def test_symbols_returns_the_universe_as_given(impl):
    core = make(impl, [["B", 3, 1], ("A", 0, 12)])
    assert core.symbols() == [("B", 3, 1), ("A", 0, 12)]
    assert make(impl).symbols() == UNIVERSE


def test_valid_names(impl):
    names = ["a", "A" * 32, "BTC/USD", "x.y_z:w-v", "0"]
    core = make(impl, [(n, 0, 0) for n in names])
    assert [s[0] for s in core.symbols()] == names


BAD_CONSTRUCTIONS = [
    ({"symbols": []}, "symbol universe is empty"),
    ({"symbols": [("A", 1, 1), ("B", 1, 1), ("A", 2, 2)]}, "duplicate symbol 'A'"),
    ({"symbols": [("A B", 1, 1)]}, "invalid symbol name 'A B'"),
    ({"symbols": [("", 1, 1)]}, "invalid symbol name ''"),
    ({"symbols": [("A" * 33, 1, 1)]}, f"invalid symbol name '{'A' * 33}'"),
    ({"symbols": [('A"', 1, 1)]}, "invalid symbol name 'A\"'"),
    ({"symbols": [("Ä", 1, 1)]}, "invalid symbol name 'Ä'"),
    ({"symbols": [("A", 13, 1)]}, "decimals of 'A' must be between 0 and 12"),
    ({"symbols": [("A", 1, 13)]}, "decimals of 'A' must be between 0 and 12"),
    ({"symbols": [("A", -1, 1)]}, "decimals of 'A' must be between 0 and 12"),
    ({"symbols": [("A", 1, -1)]}, "decimals of 'A' must be between 0 and 12"),
    ({"candle_capacity": {"2m": 5}}, "unknown candle interval '2m'"),
    ({"candle_capacity": {"1m": 0}}, "candle capacity must be >= 1"),
    ({"candle_capacity": {"1s": -3}}, "candle capacity must be >= 1"),
    ({"high_freq_per_s": 0}, "high_freq_per_s must be a finite number > 0"),
    ({"high_freq_per_s": -1.0}, "high_freq_per_s must be a finite number > 0"),
    ({"high_freq_per_s": math.inf}, "high_freq_per_s must be a finite number > 0"),
    ({"high_freq_per_s": math.nan}, "high_freq_per_s must be a finite number > 0"),
    ({"max_queue_frames": 0}, "queue limits must be >= 1"),
    ({"max_queue_bytes": 0}, "queue limits must be >= 1"),
    ({"max_queue_frames": -5}, "queue limits must be >= 1"),
    ({"max_symbols_per_connection": 0}, "max_symbols_per_connection must be >= 1"),
    ({"max_symbols_per_connection": -1}, "max_symbols_per_connection must be >= 1"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_CONSTRUCTIONS)
def test_constructor_errors(impl, kwargs, message):
    kwargs = dict(kwargs)
    symbols = kwargs.pop("symbols", UNIVERSE)
    with pytest.raises(InvalidArgument) as info:
        impl.Core(symbols, **kwargs)
    assert type(info.value) is InvalidArgument
    assert str(info.value) == message


CHECK_ORDER = [
    # each symbol in turn: name, duplicate, decimals
    ([("A", 13, 1), ("B B", 1, 1)], {}, "decimals of 'A' must be between 0 and 12"),
    ([("B B", 13, 1)], {}, "invalid symbol name 'B B'"),
    ([("A", 1, 1), ("A", 13, 1)], {}, "duplicate symbol 'A'"),
    # the universe before the keyword arguments, which go in their documented order
    ([("A", 13, 1)], {"max_queue_frames": 0}, "decimals of 'A' must be between 0 and 12"),
    ([("A", 1, 1)], {"candle_capacity": {"1m": 0, "2m": 1}}, "candle capacity must be >= 1"),
    ([("A", 1, 1)], {"candle_capacity": {"2m": 0, "1m": 0}}, "unknown candle interval '2m'"),
    (
        [("A", 1, 1)],
        {"candle_capacity": {"1m": 0}, "high_freq_per_s": 0},
        "candle capacity must be >= 1",
    ),
    (
        [("A", 1, 1)],
        {"high_freq_per_s": 0, "max_queue_bytes": 0},
        "high_freq_per_s must be a finite number > 0",
    ),
    (
        [("A", 1, 1)],
        {"max_queue_bytes": 0, "max_symbols_per_connection": 0},
        "queue limits must be >= 1",
    ),
]


@pytest.mark.parametrize(("symbols", "kwargs", "message"), CHECK_ORDER)
def test_constructor_check_order(impl, symbols, kwargs, message):
    with pytest.raises(InvalidArgument, match="^") as info:
        impl.Core(symbols, **kwargs)
    assert str(info.value) == message


def test_constructor_accepts_its_documented_inputs(impl):
    core = impl.Core(
        [("A", 0, 12)],
        high_freq_per_s=0.5,
        candle_capacity={"1s": 1, "1h": 10_000},
        max_queue_frames=1,
        max_queue_bytes=1,
        max_symbols_per_connection=1,
    )
    assert core.symbols() == [("A", 0, 12)]
    assert impl.Core([("A", 0, 0)], high_freq_per_s=3).symbols() == [("A", 0, 0)]


FORMAT_CASES = [
    (4312537, 2, "43125.37"),
    (4312500, 2, "43125.0"),
    (15, 3, "0.015"),
    (7, 0, "7.0"),
    (0, 8, "0.0"),
    (0, 0, "0.0"),
    (100, 2, "1.0"),
    (101, 2, "1.01"),
    (10, 2, "0.1"),
    (1, 12, "0.000000000001"),
    (2**53 - 1, 12, "9007.199254740991"),
    (2**53 - 1, 0, "9007199254740991.0"),
    (1500000, 8, "0.015"),
    (250000000, 8, "2.5"),
]


@pytest.mark.parametrize(("units", "decimals", "text"), FORMAT_CASES)
def test_format_units(impl, units, decimals, text):
    assert impl.format_units(units, decimals) == text
    # The text parses to exactly the float the core emits for these units.
    assert float(text) == float(units) / 10.0**decimals
