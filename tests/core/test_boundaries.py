"""Explicit examples at the boundaries a mutant showed the random differential test can miss,
run on both cores: an alert level exactly equal to the price (``>=`` above, ``<=`` below), and
the tick at which ``auto`` starts and stops batching (rate ``> high_freq_per_s`` starts,
``<= high_freq_per_s / 2`` stops)."""

from __future__ import annotations

import pytest

from .helpers import make, parsed
from .test_batch import ticks_of

LEVEL = 43125.37  # BTC/USD has 2 price decimals: 4312537 units


@pytest.mark.parametrize("direction", ["above", "below"])
def test_alert_fires_at_a_price_exactly_equal_to_its_level(impl, direction):
    core = make(impl)
    core.add_alert(1, "BTC/USD", direction, LEVEL)
    core.ingest([("BTC/USD", LEVEL, 1.0, 1)], 0)
    assert core.take_fired() == [(1, "BTC/USD", 1, 1, LEVEL)]


@pytest.mark.parametrize("direction,near", [("above", 43125.36), ("below", 43125.38)])
def test_alert_does_not_fire_one_unit_short_of_its_level(impl, direction, near):
    core = make(impl)
    core.add_alert(1, "BTC/USD", direction, LEVEL)
    core.ingest([("BTC/USD", near, 1.0, 1)], 0)
    assert core.take_fired() == []
    core.ingest([("BTC/USD", LEVEL, 1.0, 2)], 0)  # then exactly at the level: fires
    assert core.take_fired() == [(1, "BTC/USD", 2, 2, LEVEL)]


def test_alert_level_between_units_fires_on_the_next_unit(impl):
    core = make(impl)
    core.add_alert(1, "BTC/USD", "above", 100.005)  # between 100.00 and 100.01
    core.add_alert(2, "BTC/USD", "below", 100.005)
    core.ingest([("BTC/USD", 100.0, 1.0, 1)], 0)
    assert core.take_fired() == [(2, "BTC/USD", 1, 1, 100.0)]
    core.ingest([("BTC/USD", 100.01, 1.0, 2)], 0)
    assert core.take_fired() == [(1, "BTC/USD", 2, 2, 100.01)]


def _hf_states(core, ticks_per_call):
    states = []
    for now_ms, count in ticks_per_call:
        for _ in range(count):
            core.ingest([("BTC/USD", 1.0, 1.0, 1)], now_ms)
            states.append(core.is_high_frequency("BTC/USD"))
    return states


def test_auto_starts_batching_at_the_tick_that_makes_the_rate_exceed_the_threshold(impl):
    core = make(impl)  # default threshold: 20 ticks/s
    conn = core.connect()
    core.subscribe(conn, ["BTC/USD"])
    states = _hf_states(core, [(0, 21)])
    assert states == [False] * 20 + [True]  # 20 is not > 20; the 21st is
    frames = parsed(core.drain(conn))
    assert [m["type"] for m in frames] == ["market_data"] * 20  # the 21st waits for its batch
    core.flush(50)
    (batch,) = parsed(core.drain(conn))
    assert (batch["type"], batch["seq"], batch["count"]) == ("market_data_batch", 21, 1)


@pytest.mark.parametrize("in_bucket_9,stops", [(9, True), (10, False)], ids=["rate_10_stops", "rate_11_stays"])
def test_auto_stops_batching_at_the_tick_that_makes_the_rate_half_the_threshold(impl, in_bucket_9, stops):
    core = make(impl)
    conn = core.connect()
    core.subscribe(conn, ["BTC/USD"])
    _hf_states(core, [(0, 21), (900, in_bucket_9)])
    assert core.is_high_frequency("BTC/USD")
    core.flush(950)  # close every window opened so far (the last one opened at 900)
    core.drain(conn, 10**6)
    # at 1000, bucket 0 (21 ticks) leaves the window: the rate is in_bucket_9 + 1
    core.ingest([("BTC/USD", 2.0, 1.0, 2)], 1000)
    assert core.is_high_frequency("BTC/USD") is not stops
    frames = parsed(core.drain(conn, 10**6))
    last_seq = 21 + in_bucket_9 + 1
    if stops:  # nothing pending, so the switching tick goes out alone, as market_data
        assert [(m["type"], m["seq"]) for m in frames] == [("market_data", last_seq)]
    else:
        assert frames == []  # still batching: the tick waits for its window
        core.flush(1050)
        assert [(t["type"], t["seq"]) for t in ticks_of(core.drain(conn, 10**6))] == [("market_data", last_seq)]


def test_auto_threshold_is_strict_for_a_fractional_threshold(impl):
    core = make(impl, high_freq_per_s=4.5)
    # rates 1..5: 5 > 4.5 starts; then at 1000 the rate restarts at 1: 1 <= 2.25 stops
    assert _hf_states(core, [(0, 5), (1000, 1)]) == [False] * 4 + [True, False]
    core2 = make(impl, high_freq_per_s=4.5)
    # stays high while the rate is 3 (> 2.25): bucket 9 holds 2, the tick at 1000 makes 3
    assert _hf_states(core2, [(0, 5), (900, 2), (1000, 1)])[-1] is True
