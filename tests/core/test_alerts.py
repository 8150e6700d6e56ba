"""Price alerts: above/below, fire once, removal, order, errors."""

from __future__ import annotations

import math

import pytest

from tickfan.errors import InvalidArgument, UnknownSymbol

from .helpers import make


def test_above_and_below_fire_once_in_tick_then_id_order(impl):
    core = make(impl)
    core.add_alert(5, "BTC/USD", "above", 100.0)
    core.add_alert(3, "BTC/USD", "above", 101.0)
    core.add_alert(9, "BTC/USD", "below", 99.0)
    core.add_alert(1, "BTC/USD", "below", 90.0)
    core.add_alert(7, "ETH/USD", "above", 1)
    core.ingest(
        [
            ("BTC/USD", 99.5, 1.0, 1),  # nothing
            ("BTC/USD", 100.0, 1.0, 2),  # 5 (>= is enough)
            ("ETH/USD", 2.0, 1.0, 2),  # 7
            ("BTC/USD", 200.0, 1.0, 3),  # 3 (5 already fired)
            ("BTC/USD", 10.0, 1.0, 4),  # 1 and 9, by id
            ("BTC/USD", 1.0, 1.0, 5),  # nothing left
        ],
        0,
    )
    assert core.take_fired() == [
        (5, "BTC/USD", 2, 2, 100.0),
        (7, "ETH/USD", 1, 2, 2.0),
        (3, "BTC/USD", 3, 3, 200.0),
        (1, "BTC/USD", 4, 4, 10.0),
        (9, "BTC/USD", 4, 4, 10.0),
    ]
    assert core.take_fired() == []
    assert core.stats()["alerts"] == 0


def test_only_later_ticks_fire(impl):
    core = make(impl)
    core.ingest([("BTC/USD", 150.0, 1.0, 1)], 0)
    core.add_alert(1, "BTC/USD", "above", 100.0)
    assert core.take_fired() == []
    core.ingest([("BTC/USD", 150.0, 1.0, 2)], 0)
    assert core.take_fired() == [(1, "BTC/USD", 2, 2, 150.0)]


def test_same_level_both_directions(impl):
    core = make(impl)
    core.add_alert(2, "DOGE", "below", 5)
    core.add_alert(1, "DOGE", "above", 5.0)
    core.ingest([("DOGE", 5, 0, 1)], 0)
    assert core.take_fired() == [(1, "DOGE", 1, 1, 5.0), (2, "DOGE", 1, 1, 5.0)]


def test_remove_and_reuse_ids(impl):
    core = make(impl)
    core.add_alert(1, "BTC/USD", "above", 100.0)
    core.add_alert(2, "BTC/USD", "above", 100.0)
    assert core.stats()["alerts"] == 2
    assert core.remove_alert(1) is True
    assert core.remove_alert(1) is False
    assert core.remove_alert(42) is False
    core.add_alert(1, "BTC/USD", "below", 10.0)  # free again, re-armed differently
    core.ingest([("BTC/USD", 100.0, 1.0, 1)], 0)
    assert core.take_fired() == [(2, "BTC/USD", 1, 1, 100.0)]
    core.ingest([("BTC/USD", 10.0, 1.0, 2)], 0)
    assert core.take_fired() == [(1, "BTC/USD", 2, 2, 10.0)]
    core.add_alert(2, "BTC/USD", "above", 1.0)  # fired ids are free again
    assert core.stats()["alerts"] == 1


def test_rejected_ingest_fires_nothing(impl):
    core = make(impl)
    core.add_alert(1, "BTC/USD", "above", 1.0)
    with pytest.raises(ValueError):
        core.ingest([("BTC/USD", 5.0, 1.0, 1), ("BTC/USD", -5.0, 1.0, 1)], 0)
    assert core.take_fired() == []


def test_many_alerts_fire_exactly_once(impl):
    core = make(impl)
    for i in range(200):
        core.add_alert(i, "DOGE", "above" if i % 2 else "below", float(i + 1))
    for i in range(0, 200, 3):
        core.remove_alert(i)
    core.ingest([("DOGE", 100, 1, 1), ("DOGE", 300, 1, 2), ("DOGE", 1, 1, 3)], 0)
    fired = core.take_fired()
    ids = [f[0] for f in fired]
    assert sorted(ids) == [i for i in range(200) if i % 3]
    assert [f[2] for f in fired] == sorted(f[2] for f in fired)
    by_seq = {}
    for alert_id, _, seq, _, _ in fired:
        by_seq.setdefault(seq, []).append(alert_id)
    assert all(ids == sorted(ids) for ids in by_seq.values())
    # seq 1 (price 100): above levels <= 100 and below levels >= 100.
    assert by_seq[1] == [i for i in range(200) if i % 3 and ((i % 2 and i + 1 <= 100) or (not i % 2 and i + 1 >= 100))]


def test_add_alert_errors_in_order(impl):
    core = make(impl)
    core.add_alert(1, "BTC/USD", "above", 5.0)
    with pytest.raises(UnknownSymbol) as info:
        core.add_alert(1, "XRP", "sideways", -1.0)
    assert str(info.value) == "unknown symbol 'XRP'" and info.value.symbol == "XRP"
    cases = [
        (("sideways", -1.0, 1), "direction must be above or below"),
        (("Above", 5.0, 2), "direction must be above or below"),
        (("above", -1.0, 1), "level must be a finite number > 0"),
        (("below", 0.0, 2), "level must be a finite number > 0"),
        (("below", 0, 2), "level must be a finite number > 0"),
        (("below", math.nan, 2), "level must be a finite number > 0"),
        (("below", math.inf, 2), "level must be a finite number > 0"),
        (("below", 3.0, 1), "alert 1 already exists"),
    ]
    for (direction, level, alert_id), message in cases:
        with pytest.raises(InvalidArgument) as info:
            core.add_alert(alert_id, "BTC/USD", direction, level)
        assert type(info.value) is InvalidArgument
        assert str(info.value) == message
    assert core.stats()["alerts"] == 1
