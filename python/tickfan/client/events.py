"""What a channel yields: typed events, and the decoding of server frames into them.

Every event is a frozen ``msgspec.Struct``, so ``match ev: case Tick(symbol, seq, ts, price,
size)`` works and ``msgspec.json.encode(ev)`` gives one JSON object tagged by ``type``. Events
that mirror a server frame keep its ``type`` and field names (``Tick`` is ``market_data``,
``Gap`` is the ``gap`` frame that resume will add, PROTOCOL.md section 9), so a ``Tick`` encodes to
exactly the frame tick mode sends. Events the SDK makes (``Reconnected``, ``SeqReset``,
``Disconnected``, ``SubscribeError``, ``Unknown``) have their own tags.

Decoding: one ``msgspec.json.Decoder`` over the union of the frames the server sends. A frame
whose ``type`` this SDK does not know becomes ``Unknown`` (a newer server may add types); a frame
of a known type that breaks its contract raises :class:`~tickfan.client.errors.ProtocolError`,
since skipping it could lose ticks without a trace.
"""

from __future__ import annotations

from typing import Any, Literal, Union

import msgspec
from msgspec import Struct

from tickfan.client.errors import ProtocolError

__all__ = [
    "Tick",
    "Gap",
    "Backfill",
    "Candle",
    "Subscribed",
    "Unsubscribed",
    "Reconnected",
    "Disconnected",
    "SeqReset",
    "SubscribeError",
    "ServerError",
    "Unknown",
    "BotStatus",
    "Notification",
    "MarkedRead",
    "Metrics",
    "Event",
    "decode_frame",
]


# --- market data ---------------------------------------------------------------------------------


class Tick(Struct, frozen=True, tag="market_data", tag_field="type"):
    """One tick, from a ``market_data`` frame or expanded from a batch (the same values)."""

    symbol: str
    seq: int
    ts: int
    price: float
    size: float


class Candle(Struct, frozen=True, array_like=True):
    """``[ts, open, high, low, close, volume]`` on the wire; ``ts`` is the open time (ms)."""

    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class Backfill(Struct, frozen=True, tag="backfill", tag_field="type"):
    """Candles of one symbol from ``since`` (the ``since`` the SDK asked with: the last ts seen)."""

    symbol: str
    interval: str
    candles: list[Candle]
    complete: bool
    since: int | None = None


class Gap(Struct, frozen=True, tag="gap", tag_field="type"):
    """Ticks ``from_seq .. to_seq`` (inclusive) of ``symbol`` will never be delivered.

    ``reason``: ``seq`` (a jump in seq, e.g. after a reconnect), ``overflow`` (the SDK had
    fallen back to conflate after a ``slow_consumer`` close), or a server's own reason.
    """

    symbol: str
    from_seq: int
    to_seq: int | None  # None: a server's epoch gap when the symbol has not traded in the new epoch
    reason: str = "seq"


class Subscribed(Struct, frozen=True, tag="subscribed", tag_field="type"):
    """The server's ack of a ``subscribe``; ``epoch`` names its current numbering of seq."""

    symbols: list[str]
    mode: str
    interval_ms: int | None = None
    epoch: str | None = None
    resumed: list[str] | None = None  # the symbols whose missed ticks follow (a resume)


class Unsubscribed(Struct, frozen=True, tag="unsubscribed", tag_field="type"):
    symbols: list[str]


class SeqReset(Struct, frozen=True, tag="seq_reset", tag_field="type"):
    """The server's seq numbering restarted (a new ``epoch``): seq continuity is not comparable.

    Seq tracking starts afresh; nothing before this event is a duplicate of what follows.
    """

    previous_epoch: str
    epoch: str


# --- connection ----------------------------------------------------------------------------------


class Reconnected(Struct, frozen=True, tag="reconnected", tag_field="type"):
    """A new socket is authenticated; resubscribe and backfill requests are on their way.

    ``connection`` counts this channel's sockets (2 for the first reconnect); ``attempts`` is
    how many connection attempts this reconnect took.
    """

    connection: int
    attempts: int


class Disconnected(Struct, frozen=True, tag="disconnected", tag_field="type"):
    """The socket closed (``code`` None: no close frame, or the connect failed); a retry follows
    in ``retry_in_s`` seconds."""

    code: int | None
    reason: str
    retry_in_s: float


class SubscribeError(Struct, frozen=True, tag="subscribe_error", tag_field="type"):
    """``unknown_symbol`` or ``too_many_symbols`` from the server; ``error`` names the symbols."""

    code: str
    error: str


class ServerError(Struct, frozen=True, tag="error", tag_field="type"):
    """Any other recoverable error frame (``rate_limited``, ``invalid_message``...)."""

    code: str
    error: str


class Unknown(Struct, frozen=True, tag="unknown", tag_field="type"):
    """A frame this SDK does not know (``kind`` is its ``type``), kept whole in ``raw``."""

    kind: str | None
    raw: Any


# --- bots, notifications, metrics ---------------------------------------------------------------


class BotStatus(Struct, frozen=True, tag="bot_status", tag_field="type"):
    bot_id: str
    status: str
    ts: int
    running_count: int
    detail: Any = None


class Notification(Struct, frozen=True):
    """One notification, from the initial list, a live frame or ``GET /api/notifications``."""

    id: int
    kind: str
    title: str
    body: str
    created_at: int
    read: bool
    data: Any = None


class MarkedRead(Struct, frozen=True, tag="marked_read", tag_field="type"):
    ids: list[int]


class Metrics(Struct, frozen=True, tag="metrics", tag_field="type"):
    """The server's figures (docs/protocol.md section 7); fields a server omits stay None."""

    ts: int
    uptime_s: float | None = None
    core: str | None = None
    connections: dict[str, int] | None = None
    ticks_in_per_s: float | None = None
    messages_out_per_s: float | None = None
    bytes_out_per_s: float | None = None
    fanout_latency_ms: dict[str, Any] | None = None
    dropped_messages: int | None = None
    slow_consumers_disconnected: int | None = None
    rss_bytes: int | None = None
    cpu_percent: float | None = None
    event_loop_lag_ms: float | None = None
    transports: dict[str, dict[str, Any]] | None = None


Event = Union[
    Tick, Gap, Backfill, Subscribed, Unsubscribed, SeqReset, Reconnected, Disconnected,
    SubscribeError, ServerError, Unknown, BotStatus, Notification, MarkedRead, Metrics,
]  # fmt: skip


# --- frames only the SDK sees --------------------------------------------------------------------


class Batch(Struct, frozen=True, tag="market_data_batch", tag_field="type"):
    """A ``market_data_batch`` frame (expanded into ``Tick``s by the market state)."""

    symbol: str
    seq: int
    count: int
    price_decimals: int
    size_decimals: int
    ts: list[int]
    price: list[int]
    size: list[int]

    def ticks(self) -> list[Tick]:
        """The ticks tick mode would have sent: cumulative ``ts``/``price``, ``units / 10**d``.

        ``units / 10**d`` (one correctly rounded division) gives the float the server prints;
        ``units * 10**-d`` would be wrong in about a fifth of cases.
        """
        n = self.count
        if n < 0 or len(self.ts) != n or len(self.price) != n or len(self.size) != n:
            raise ProtocolError(f"market_data_batch of {self.symbol!r}: a column does not have count={n} entries")
        if not (0 <= self.price_decimals <= 12 and 0 <= self.size_decimals <= 12):
            raise ProtocolError(f"market_data_batch of {self.symbol!r}: decimals outside 0..12")
        pp, sp = 10**self.price_decimals, 10**self.size_decimals
        out: list[Tick] = []
        ts = units = 0
        for i in range(n):
            ts += self.ts[i]
            units += self.price[i]
            out.append(Tick(self.symbol, self.seq + i, ts, units / pp, self.size[i] / sp))
        return out


class AuthSuccess(Struct, frozen=True, tag="auth_success", tag_field="type"):
    user_id: str
    expires_at: int


class Pong(Struct, frozen=True, tag="pong", tag_field="type"):
    ts: float
    server_ts: int | None = None


class Error(Struct, frozen=True, tag="error", tag_field="type"):
    code: str
    error: str = ""


class InitialNotifications(Struct, frozen=True, tag="initial_notifications", tag_field="type"):
    notifications: list[Notification]


class NotificationFrame(Struct, frozen=True, tag="notification", tag_field="type"):
    notification: Notification


Frame = Union[
    Tick, Batch, Subscribed, Unsubscribed, Backfill, Gap, AuthSuccess, Pong, Error,
    BotStatus, InitialNotifications, NotificationFrame, MarkedRead, Metrics,
]  # fmt: skip
KNOWN_TYPES: frozenset[str] = frozenset(t.__struct_config__.tag for t in Frame.__args__)  # type: ignore[attr-defined]

_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(Frame)
_any = msgspec.json.Decoder()


def decode_frame(frame: str | bytes) -> Frame | Unknown:  # type: ignore[valid-type]
    """The message a text frame carries; ``Unknown`` for a type this SDK does not know.

    Raises ``ProtocolError`` for a frame that is not a JSON object with a string ``type``, or a
    known type whose fields break the contract.
    """
    try:
        return _decoder.decode(frame)
    except msgspec.ValidationError as exc:
        value = _any.decode(frame)
        kind = value.get("type") if isinstance(value, dict) else None
        if isinstance(kind, str) and kind not in KNOWN_TYPES:
            return Unknown(kind, value)
        raise ProtocolError(f"invalid {kind!r} frame from the server: {exc}") from None
    except msgspec.DecodeError:
        raise ProtocolError("the server sent a frame that is not JSON") from None


Mode = Literal["auto", "tick", "batch", "conflate"]
