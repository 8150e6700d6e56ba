"""The one exception hierarchy of tickfan.

Both cores (the Rust extension and the Python twin) raise exactly these classes, with the same
messages, so callers and tests never care which core is active. Each class also subclasses the
builtin a caller would already catch (``ValueError``), the way orjson's ``JSONDecodeError``
subclasses ``json.JSONDecodeError``.
"""

from __future__ import annotations

__all__ = [
    "TickfanError",
    "InvalidArgument",
    "UnknownSymbol",
    "UnknownConnection",
    "TooManySymbols",
    "TooManyAlerts",
    "TickRejected",
    "ConfigError",
    "BrokerUnavailable",
]


class TickfanError(Exception):
    """Root of every error tickfan raises on purpose."""


class InvalidArgument(TickfanError, ValueError):
    """An argument has the right type but a value the operation cannot accept."""


class UnknownSymbol(InvalidArgument):
    """A symbol outside the server's universe. ``symbol`` names it."""

    def __init__(self, message: str, symbol: str) -> None:
        super().__init__(message)
        self.symbol = symbol


class UnknownConnection(InvalidArgument):
    """An operation named a connection id the core does not hold."""


class TooManySymbols(InvalidArgument):
    """A subscribe would take a connection past its symbol limit; nothing was applied."""


class TooManyAlerts(InvalidArgument):
    """Creating an alert would take its user past ``--max-alerts-per-user``; nothing was stored."""


class TickRejected(TickfanError, ValueError):
    """A batch of ticks was refused as a whole; nothing of it was applied.

    ``errors`` lists ``(index, message)`` for every offending item, in input order.
    """

    def __init__(self, message: str, errors: list[tuple[int, str]]) -> None:
        super().__init__(message)
        self.errors = errors


class ConfigError(TickfanError, ValueError):
    """The configuration (flags, environment, files) is invalid; the message says how to fix it."""


class BrokerUnavailable(TickfanError):
    """The broker (Redis) did not answer in time; nothing is known to be applied. HTTP: 503 with
    ``Retry-After``; a retry with the same ``Idempotency-Key`` is applied at most once."""
