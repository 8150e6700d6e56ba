"""Shared helpers of the core tests."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

# name, price decimals, size decimals
UNIVERSE = [("BTC/USD", 2, 8), ("ETH/USD", 2, 6), ("DOGE", 0, 0)]


def make(impl: ModuleType, symbols: Any = None, **kwargs: Any) -> Any:
    """A core over ``UNIVERSE`` (or ``symbols``)."""
    return impl.Core(UNIVERSE if symbols is None else symbols, **kwargs)


def drain_all(core: Any, conn: int) -> list[str]:
    return core.drain(conn, 1_000_000)


def parsed(frames: list[str]) -> list[dict[str, Any]]:
    return [json.loads(f) for f in frames]


def md(symbol: str, seq: int, ts: int, price: str, size: str) -> str:
    """The exact text of a market_data frame (price and size as their frame text)."""
    return (
        f'{{"type":"market_data","symbol":"{symbol}","seq":{seq},"ts":{ts},'
        f'"price":{price},"size":{size}}}'
    )
