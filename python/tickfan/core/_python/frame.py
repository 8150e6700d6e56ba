"""The hand-written text encoding of decimals, ``market_data`` and ``market_data_batch`` frames.

Prices are never formatted with a float formatter: the text comes from the integer units, so
both cores produce the same bytes by construction.
"""

from __future__ import annotations

from collections.abc import Sequence

from tickfan.errors import InvalidArgument
from tickfan.core._python.universe import MAX_DECIMALS

_POW10_INT = tuple(10**d for d in range(MAX_DECIMALS + 1))
_ZEROS = tuple("0" * d for d in range(MAX_DECIMALS + 1))


def format_units(units: int, decimals: int) -> str:
    """The frame text of a decimal (see the module doc of ``tickfan._core``).

    Negative units get a leading ``-`` and the magnitude's text.
    """
    if not 0 <= decimals <= MAX_DECIMALS:
        raise InvalidArgument(f"decimals must be between 0 and {MAX_DECIMALS}")
    if units < 0:
        return "-" + _format(-units, decimals)
    return _format(units, decimals)


def _format(units: int, decimals: int) -> str:
    if decimals == 0:
        return f"{units}.0"
    whole, frac = divmod(units, _POW10_INT[decimals])
    if frac == 0:
        return f"{whole}.0"
    digits = str(frac)
    return f"{whole}.{_ZEROS[decimals - len(digits)]}{digits.rstrip('0')}"


def market_data(
    symbol: str, seq: int, ts: int, price_units: int, price_decimals: int, size_units: int,
    size_decimals: int,
) -> str:
    """One ``market_data`` frame."""
    return (
        f'{{"type":"market_data","symbol":"{symbol}","seq":{seq},"ts":{ts},'
        f'"price":{_format(price_units, price_decimals)},'
        f'"size":{_format(size_units, size_decimals)}}}'
    )


def market_data_batch(
    symbol: str, seq: int, price_decimals: int, size_decimals: int,
    ts: Sequence[int], price_units: Sequence[int], size_units: Sequence[int],
) -> str:
    """One ``market_data_batch`` frame for the ticks ``seq .. seq + len(ts) - 1``.

    ``ts`` and ``price_units`` are absolute; the frame carries the first value and then the
    difference from the previous one.
    """
    n = len(ts)
    ts_text = _deltas(ts)
    price_text = _deltas(price_units)
    size_text = ",".join(map(str, size_units))
    return (
        f'{{"type":"market_data_batch","symbol":"{symbol}","seq":{seq},"count":{n},'
        f'"price_decimals":{price_decimals},"size_decimals":{size_decimals},'
        f'"ts":[{ts_text}],"price":[{price_text}],"size":[{size_text}]}}'
    )


def _deltas(values: Sequence[int]) -> str:
    if len(values) == 1:
        return str(values[0])
    out = [values[0]]
    out.extend(b - a for a, b in zip(values, values[1:]))
    return ",".join(map(str, out))


def degraded(symbols: Sequence[str]) -> str:
    """The ``degraded`` frame naming the conflated symbols."""
    return '{"type":"degraded","symbols":[' + ",".join(f'"{name}"' for name in symbols) + "]}"


def gap(symbol: str, from_seq: int, to_seq: int, reason: str) -> str:
    """A ``gap`` frame (``to_seq`` known)."""
    return (
        f'{{"type":"gap","symbol":"{symbol}","from_seq":{from_seq},"to_seq":{to_seq},'
        f'"reason":"{reason}"}}'
    )
