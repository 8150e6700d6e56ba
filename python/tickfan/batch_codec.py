"""Decoding ``market_data_batch`` messages back into the ``market_data`` ticks they carry.

For clients and tests: ``decode_batch(json.loads(frame))`` equals the parsed ``market_data``
frames tick mode would have sent for the same ticks, float for float (each price is
``float(units) / 10.0**price_decimals``, exactly as the cores compute it).
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import accumulate
from typing import Any

from tickfan.errors import InvalidArgument

__all__ = ["decode_batch"]

MAX_DECIMALS = 12  # as tickfan._core.MAX_DECIMALS; not imported to keep this module core-free
_POW10 = tuple(float(10**d) for d in range(MAX_DECIMALS + 1))


def _int(message: Mapping[str, Any], key: str, lo: int, hi: int | None = None) -> int:
    value = message.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgument(f"market_data_batch: {key!r} must be an integer")
    if value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
        raise InvalidArgument(f"market_data_batch: {key!r} must be {bound}, got {value}")
    return value


def _ints(message: Mapping[str, Any], key: str, count: int) -> list[int]:
    values = message.get(key)
    if not isinstance(values, list):
        raise InvalidArgument(f"market_data_batch: {key!r} must be an array")
    if len(values) != count:
        raise InvalidArgument(
            f"market_data_batch: {key!r} has {len(values)} elements but count is {count}"
        )
    for v in values:
        if not isinstance(v, int) or isinstance(v, bool):
            raise InvalidArgument(f"market_data_batch: {key!r} must hold only integers")
    return values


def decode_batch(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``market_data`` messages (as dicts, keys in frame order) of a batch message.

    Raises ``InvalidArgument`` (a ``ValueError``) when the message is not a well-formed
    ``market_data_batch``: wrong type, missing or mistyped fields, an array whose length is not
    ``count``, decimals outside 0..12, a timestamp that goes back, or a price <= 0 or size < 0.
    """
    if not isinstance(message, Mapping):
        raise InvalidArgument("market_data_batch: message must be an object")
    if message.get("type") != "market_data_batch":
        raise InvalidArgument(
            f"market_data_batch: 'type' must be 'market_data_batch', got {message.get('type')!r}"
        )
    symbol = message.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        raise InvalidArgument("market_data_batch: 'symbol' must be a non-empty string")
    seq = _int(message, "seq", 1)
    count = _int(message, "count", 0)
    price_p = _POW10[_int(message, "price_decimals", 0, MAX_DECIMALS)]
    size_p = _POW10[_int(message, "size_decimals", 0, MAX_DECIMALS)]
    ts_deltas = _ints(message, "ts", count)
    price_deltas = _ints(message, "price", count)
    sizes = _ints(message, "size", count)
    if count and (ts_deltas[0] < 0 or any(d < 0 for d in ts_deltas[1:])):
        raise InvalidArgument("market_data_batch: timestamps must be >= 0 and never go back")
    prices = list(accumulate(price_deltas))
    if any(p <= 0 for p in prices):
        raise InvalidArgument("market_data_batch: every price must be > 0")
    if any(s < 0 for s in sizes):
        raise InvalidArgument("market_data_batch: every size must be >= 0")
    return [
        {
            "type": "market_data",
            "symbol": symbol,
            "seq": seq + i,
            "ts": ts,
            "price": float(price) / price_p,
            "size": float(size) / size_p,
        }
        for i, (ts, price, size) in enumerate(zip(accumulate(ts_deltas), prices, sizes))
    ]
