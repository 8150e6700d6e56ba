"""The pure-Python twin of ``tickfan._core``: the reference implementation of its spec.

Same names, signatures, defaults, errors and outputs as the Rust extension (see
``tickfan/_core.pyi``); one file per concept, with the stems of ``rust/core/src``.
"""

from tickfan.core._python.candles import DEFAULT_CANDLE_CAPACITY, INTERVALS
from tickfan.core._python.core import Core
from tickfan.core._python.frame import format_units
from tickfan.core._python.universe import (
    MAX_DECIMALS,
    MAX_INTERVAL_MS,
    MAX_UNITS,
    MIN_INTERVAL_MS,
)

IMPLEMENTATION = "python"

__all__ = [
    "Core",
    "IMPLEMENTATION",
    "INTERVALS",
    "DEFAULT_CANDLE_CAPACITY",
    "MAX_UNITS",
    "MAX_DECIMALS",
    "MIN_INTERVAL_MS",
    "MAX_INTERVAL_MS",
    "format_units",
]
