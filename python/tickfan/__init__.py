"""tickfan: a real-time market-data server for crypto trading front-ends and bots."""

from tickfan.core import core_name
from tickfan.errors import (
    InvalidArgument,
    TickfanError,
    TickRejected,
    TooManySymbols,
    UnknownConnection,
    UnknownSymbol,
)

__version__ = "0.1.0"

__all__ = [
    "core_name",
    "TickfanError",
    "InvalidArgument",
    "TickRejected",
    "TooManySymbols",
    "UnknownConnection",
    "UnknownSymbol",
    "__version__",
]
