"""The symbol universe: names, decimals, and the constants of the core API."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from tickfan.errors import InvalidArgument, UnknownSymbol

MAX_UNITS: Final = (1 << 53) - 1
MAX_DECIMALS: Final = 12
MIN_INTERVAL_MS: Final = 10
MAX_INTERVAL_MS: Final = 60_000

# ``POW10[d]`` is the float 10.0**d (exact for d <= 22); every emitted float is units / POW10[d].
POW10: Final = tuple(float(10**d) for d in range(MAX_DECIMALS + 1))

_NAME = re.compile(r"[A-Za-z0-9._:/-]{1,32}")


def valid_name(name: object) -> bool:
    """``[A-Za-z0-9._:/-]{1,32}``: names that never need JSON escaping."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def unknown_symbol(name: object) -> UnknownSymbol:
    text = name if isinstance(name, str) else str(name)
    return UnknownSymbol(f"unknown symbol '{text}'", text)


class Universe:
    """The validated ``(name, price_decimals, size_decimals)`` list and the name -> index map."""

    __slots__ = ("specs", "index")

    def __init__(self, symbols: Sequence[tuple[str, int, int]]) -> None:
        specs: list[tuple[str, int, int]] = []
        index: dict[str, int] = {}
        for item in symbols:
            name, price_decimals, size_decimals = item
            if not valid_name(name):
                raise InvalidArgument(f"invalid symbol name '{name}'")
            if name in index:
                raise InvalidArgument(f"duplicate symbol '{name}'")
            for d in (price_decimals, size_decimals):
                if not isinstance(d, int) or not 0 <= d <= MAX_DECIMALS:
                    raise InvalidArgument(
                        f"decimals of '{name}' must be between 0 and {MAX_DECIMALS}"
                    )
            index[name] = len(specs)
            specs.append((name, int(price_decimals), int(size_decimals)))
        if not specs:
            raise InvalidArgument("symbol universe is empty")
        self.specs = specs
        self.index = index

    def lookup(self, name: object) -> int:
        """The symbol's index, or ``UnknownSymbol``."""
        i = self.index.get(name) if isinstance(name, str) else None
        if i is None:
            raise unknown_symbol(name)
        return i
