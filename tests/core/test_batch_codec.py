"""tickfan.batch_codec.decode_batch: round trips against tick frames, and malformed input."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tickfan.batch_codec import decode_batch
from tickfan.errors import InvalidArgument

from .helpers import drain_all, make, parsed

SPEC = {
    "type": "market_data_batch", "symbol": "BTC/USD", "seq": 1042, "count": 3,
    "price_decimals": 2, "size_decimals": 8,
    "ts": [1731283200123, 5, 0], "price": [4312537, -2, 10], "size": [1500000, 250000000, 1000],
}


def test_spec_example():
    assert decode_batch(SPEC) == [
        {"type": "market_data", "symbol": "BTC/USD", "seq": 1042, "ts": 1731283200123,
         "price": 43125.37, "size": 0.015},
        {"type": "market_data", "symbol": "BTC/USD", "seq": 1043, "ts": 1731283200128,
         "price": 43125.35, "size": 2.5},
        {"type": "market_data", "symbol": "BTC/USD", "seq": 1044, "ts": 1731283200128,
         "price": 43125.45, "size": 0.00001},
    ]


def test_empty_batch():
    assert decode_batch({**SPEC, "count": 0, "ts": [], "price": [], "size": []}) == []


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"type": "market_data"}, "'type'"),
        ({"symbol": 5}, "'symbol'"),
        ({"seq": 0}, "'seq'"),
        ({"seq": "1"}, "'seq'"),
        ({"count": 2}, "'ts' has 3 elements but count is 2"),
        ({"count": True}, "'count'"),
        ({"price": [1, 2]}, "'price' has 2 elements"),
        ({"size": [1, 2, 3, 4]}, "'size' has 4 elements"),
        ({"ts": "1,2,3"}, "'ts' must be an array"),
        ({"price": [1.5, 1, 1]}, "'price' must hold only integers"),
        ({"size": [1, None, 1]}, "'size' must hold only integers"),
        ({"price_decimals": 13}, "'price_decimals' must be between 0 and 12"),
        ({"size_decimals": -1}, "'size_decimals'"),
        ({"ts": [5, -1, 0]}, "never go back"),
        ({"price": [5, -5, 1]}, "price must be > 0"),
        ({"size": [1, -1, 1]}, "size must be >= 0"),
    ],
)
def test_malformed(change, fragment):
    with pytest.raises(InvalidArgument, match="market_data_batch") as info:
        decode_batch({**SPEC, **change})
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_field_and_not_a_mapping():
    message = dict(SPEC)
    del message["size"]
    with pytest.raises(InvalidArgument):
        decode_batch(message)
    with pytest.raises(InvalidArgument):
        decode_batch([SPEC])  # type: ignore[arg-type]


TICK = st.tuples(
    st.integers(1, 2**50),  # price units (< 2**50: units/10**d converts back exactly)
    st.integers(0, 2**50),  # size units
    st.integers(0, 5000),  # ts step
)


@given(
    decimals=st.tuples(st.integers(0, 12), st.integers(0, 12)),
    ticks=st.lists(TICK, min_size=1, max_size=30),
    start_ts=st.integers(0, 2**62),
)
def test_round_trip_equals_tick_frames(impl, decimals, ticks, start_ts):
    pd, sd = decimals
    core = make(impl, [("X", pd, sd)])
    tick_conn, batch_conn = core.connect(), core.connect()
    core.subscribe(tick_conn, ["X"], "tick")
    core.subscribe(batch_conn, ["X"], "batch")
    ts = start_ts
    items = []
    for price, size, step in ticks:
        ts += step
        items.append(("X", price / 10.0**pd, size / 10.0**sd, ts))
    core.ingest(items, 0)
    core.flush(50)
    (batch,) = drain_all(core, batch_conn)
    assert decode_batch(json.loads(batch)) == parsed(drain_all(core, tick_conn))
