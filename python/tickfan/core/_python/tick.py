"""Validation of ingested ticks: all or nothing, one message per offending item."""

from __future__ import annotations

from collections.abc import Sequence
from math import inf

from tickfan.errors import TickRejected
from tickfan.core._python.universe import MAX_UNITS, POW10, Universe

MAX_TS = (1 << 63) - 1

SHAPE = "tick must be [symbol, price, size, ts]"
PRICE = "price must be a finite number > 0"
SIZE = "size must be a finite number >= 0"
TS = "ts must be an integer >= 0"


def as_float(value: object) -> float | None:
    """The float of an int or float (bool excluded; an int too large for a float is inf)."""
    if isinstance(value, float):
        return float(value)
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            return inf if value > 0 else -inf
    return None


def to_units(value: float, p: float) -> int | None:
    """``round(value * p)`` in f64 (ties to even), when it converts back exactly
    (``units / p == value``); None when ``value`` has more decimals."""
    scaled = value * p
    try:
        units = round(scaled)
    except OverflowError:  # value * p is inf
        return None
    return units if units / p == value else None


def validate(
    universe: Universe,
    last_ts: list[int],
    ticks: Sequence[object],
    now_ms: int = 0,
    max_ts_skew_ms: int | None = None,
) -> list[tuple[int, int, int, int]]:
    """``(symbol index, price units, size units, ts)`` per tick, or ``TickRejected``.

    ``last_ts`` is each symbol's previous tick ts (-1 before the first); it is not modified.
    With ``max_ts_skew_ms``, a ts later than ``now_ms + max_ts_skew_ms`` is refused.
    """
    max_ts = None if max_ts_skew_ms is None else now_ms + max_ts_skew_ms
    index = universe.index
    specs = universe.specs
    out: list[tuple[int, int, int, int]] = []
    errors: list[tuple[int, str]] = []
    pending_ts: dict[int, int] = {}
    for i, item in enumerate(ticks):
        if not isinstance(item, (tuple, list)) or len(item) != 4:
            errors.append((i, SHAPE))
            continue
        name, price, size, ts = item
        s = index.get(name) if isinstance(name, str) else None
        if s is None:
            errors.append((i, f"unknown symbol '{name}'"))
            continue
        # Fast path for the common case: a float price and size, an int ts.
        if type(price) is float:
            pf = price
        else:
            pf = as_float(price)
            if pf is None:
                errors.append((i, PRICE))
                continue
        if not (pf > 0 and pf != inf):
            errors.append((i, PRICE))
            continue
        if type(size) is float:
            sf = size
        else:
            sf = as_float(size)
            if sf is None:
                errors.append((i, SIZE))
                continue
        if not (sf >= 0 and sf != inf):
            errors.append((i, SIZE))
            continue
        if type(ts) is not int and (not isinstance(ts, int) or isinstance(ts, bool)):
            errors.append((i, TS))
            continue
        if not 0 <= ts <= MAX_TS:
            errors.append((i, TS))
            continue
        if max_ts is not None and ts > max_ts:
            errors.append((i, f"ts {ts} is more than {max_ts_skew_ms} ms ahead of the server clock ({now_ms})"))
            continue
        _, pd, sd = specs[s]
        pu = to_units(pf, POW10[pd])
        if pu is None:
            errors.append((i, f"price has more than {pd} decimals"))
            continue
        su = to_units(sf, POW10[sd])
        if su is None:
            errors.append((i, f"size has more than {sd} decimals"))
            continue
        if pu > MAX_UNITS:
            errors.append((i, "price out of range"))
            continue
        if su > MAX_UNITS:
            errors.append((i, "size out of range"))
            continue
        prev = pending_ts.get(s)
        if prev is None:
            prev = last_ts[s]
        if ts < prev:
            errors.append((i, f"ts {ts} is earlier than the previous tick's ts {prev}"))
            continue
        pending_ts[s] = ts
        out.append((s, pu, su, int(ts)))
    if errors:
        raise TickRejected(f"{len(errors)} of {len(out) + len(errors)} ticks rejected", errors)
    return out
