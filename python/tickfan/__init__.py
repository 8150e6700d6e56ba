"""tickfan: a real-time market-data server for crypto trading front-ends and bots.

``core_name`` is imported on first use, so ``import tickfan.client`` (the SDK) does not load the
core selector or anything of the server.
"""

from typing import Any

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


def __getattr__(name: str) -> Any:
    if name == "core_name":
        from tickfan.core import core_name

        return core_name
    raise AttributeError(f"module 'tickfan' has no attribute {name!r}")
