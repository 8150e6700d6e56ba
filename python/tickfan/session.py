"""One WebSocket connection's protocol, whatever the channel and the transport (sans-I/O).

A :class:`Channel` is the small part that differs per endpoint: its ``name`` (the metrics key),
``path``, extra inbound message types, and three hooks. A :class:`Session` is the rest, the same
for every channel, and it does no socket I/O: messages come in through :meth:`Session.receive`,
frames go out through the core's per-connection queue (``hub.push``), and close decisions
(``close_code`` and the ``final`` frames) are handed to its :class:`Transport`, which owns the
socket (the Granian adapter ``tickfan.web.granian_transport``, the fast lane). It covers:

* the auth handshake (first message ``auth`` within the auth timeout), in-band refresh for the
  same ``sub``, and the expiry timer (``token_expired``, 1008);
* ``ping`` -> ``pong``; ``invalid_json`` / ``invalid_message`` / ``unknown_type``;
* the inbound frame-size limit (``message_too_large``, 1009) and a per-connection token bucket
  (``rate_limited``; a flood lasting ``rate_limit_close_s`` closes with 1008);
* ONE outbound path: every frame (ticks, acks, errors, pongs, a channel's own messages) goes
  through the core's per-connection queue (``hub.push``/``hub.drain``), so ordering and queue
  limits are uniform whatever the transport;
* slow consumers (``fail(SLOW_CONSUMER)``, 1013): the queue is dropped, the transport drops the
  frames it has in hand, the error frame goes next;
* close decisions: fatal errors send their error frame then close; shutdown closes with 1001
  (queued frames are not sent).

Timers (auth, expiry) run on the event loop: both transports hand messages to the session there.

Adding a channel: subclass :class:`Channel`, then add one line to ``CHANNELS`` in
``tickfan/web/app.py``. ``session.send(frame)`` queues a frame, ``session.principal`` is the
authenticated user, ``session.fail(code)`` closes with a fatal error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from msgspec import Struct

from tickfan.auth import AuthError, Principal
from tickfan.protocol import (
    ERROR_CLOSE,
    FLOOD_CLOSE,
    Auth,
    CloseCode,
    DecodeFailure,
    ErrorCode,
    MessageDecoder,
    Ping,
    auth_success_frame,
    error_frame,
    pong_frame,
)

if TYPE_CHECKING:
    from tickfan.hub import Hub

__all__ = ["Channel", "Session", "TokenBucket", "Transport", "now_ms"]

_log = logging.getLogger("tickfan.session")

_FLOOD_QUIET_S = 1.0


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Channel(ABC):
    """One ``/ws/*`` endpoint's own behaviour; the session does the rest (see module doc)."""

    name: ClassVar[str]
    """Metrics key: ``market_data``, ``bot_status``, ``notifications``, ``performance_metrics``."""
    path: ClassVar[str]
    """Route, e.g. ``/ws/market-data``."""
    messages: ClassVar[tuple[type[Struct], ...]] = ()
    """Inbound message types beyond ``auth`` and ``ping`` (tagged msgspec Structs)."""

    async def on_authenticated(self, session: Session) -> None:
        """After ``auth_success`` was queued: queue the channel's initial messages."""

    async def on_message(self, session: Session, message: Struct) -> None:
        """An authenticated, decoded message of one of :attr:`messages`."""

    def on_close(self, session: Session) -> None:
        """The connection is gone (any reason); forget it. Must not raise."""


class Transport(Protocol):
    """How one session's frames reach its socket: the Granian adapter, or the fast lane."""

    def wake(self, ingest_t: float | None = None) -> None:
        """The session's core queue went non-empty (``ingest_t``: when the tick came in)."""

    def closing(self, discard_in_hand: bool) -> None:
        """The session decided to close: write ``session.final`` then close with
        ``session.close_code``; ``discard_in_hand``: drop the frames already drained, unwritten."""

    def check_stall(self, now: float, timeout: float) -> bool:
        """Frames in hand and none written for ``timeout`` seconds (the hub's send watchdog)."""


class TokenBucket:
    """``rate_per_s`` tokens per second, at most ``burst`` held; one token per message."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate = rate_per_s
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class Session:
    """One connection's protocol state (see module doc). Created per socket by a transport."""

    def __init__(self, hub: Hub, channel: Channel, decoder: MessageDecoder, *, peer: str | None = None) -> None:
        """``peer``: the remote address whose unauthenticated slot (:meth:`Hub.admit`) this
        socket holds; the session gives it back when it authenticates or ends."""
        self.hub = hub
        self._peer = peer
        self.channel = channel
        self.config = hub.config
        self.principal: Principal | None = None
        self.state: dict[str, Any] = {}
        """Free space for the channel's per-connection data."""
        self._decoder = decoder
        self._hub_push = hub.push
        self._bucket = TokenBucket(self.config.rate_limit_per_s, self.config.rate_limit_burst)
        self._flooding = False
        self._flood_began = 0.0
        self._last_refused = 0.0
        self.final: list[str] | None = None
        """Set when closing: the last frames to write, then the close with :attr:`close_code`."""
        self.close_code: int | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._transport: Transport | None = None
        self.conn_id = hub.register(self)

    def attach(self, transport: Transport) -> None:
        """Bind the transport (before :meth:`opened`); the hub's wake-ups and watchdog go to it."""
        self._transport = transport
        self.wake = transport.wake  # type: ignore[method-assign]  # no extra hop per wake-up
        self.check_stall = transport.check_stall  # type: ignore[method-assign]

    # --- used by channels and the hub ------------------------------------------------------

    @property
    def closing(self) -> bool:
        return self.close_code is not None

    @property
    def channel_name(self) -> str:
        return self.channel.name

    def send(self, frame: str) -> bool:
        """Queue one frame; False if it was dropped (closing, or the queue overflowed)."""
        if self.close_code is not None:
            return False
        ok = self._hub_push(self.conn_id, frame)
        self.hub.dispatch()
        return ok

    def send_error(self, code: ErrorCode, message: str | None = None) -> None:
        """A recoverable error; for fatal codes use :meth:`fail`."""
        self.send(error_frame(code, message))

    def wake(self, ingest_t: float | None = None) -> None:
        """The core queue went non-empty (called by the hub); replaced by the transport's."""

    def check_stall(self, now: float, timeout: float) -> bool:
        """The transport's (replaced by :meth:`attach`); no transport, no stall."""
        return False

    def fail(self, code: ErrorCode, message: str | None = None, *, close: CloseCode | None = None) -> None:
        """Send an error, then close with its close code (PROTOCOL.md section 2), or ``close``."""
        close = ERROR_CLOSE[code] if close is None else close
        if code is ErrorCode.SLOW_CONSUMER:
            # The queued frames would take too long: drop them (the frames the transport has in
            # hand too, so their memory goes now, not when a stalled write returns).
            self._begin_close(close, [error_frame(code, message)], keep_queued=False, discard_in_hand=True)
        else:
            self._begin_close(close, [error_frame(code, message)], keep_queued=True)

    def close(self, code: CloseCode = CloseCode.NORMAL) -> None:
        """Close without an error frame (1001 at shutdown); queued frames are not sent."""
        self._begin_close(code, [], keep_queued=False)

    # --- lifecycle (called by the transport) ---------------------------------------------------

    def opened(self) -> None:
        """The socket is accepted: count it, start the auth timer."""
        self.hub.metrics.connection_opened(self.channel.name)
        loop = asyncio.get_running_loop()
        self._timers["auth"] = loop.call_later(self.config.auth_timeout_ms / 1000.0, self.fail, ErrorCode.AUTH_REQUIRED)

    def ended(self) -> None:
        """The socket is gone (any reason): forget the connection everywhere. Never raises."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self.final is None:
            self.hub.disconnect(self.conn_id)
        self._release_peer()
        self.hub.unregister(self.conn_id)
        self.hub.metrics.connection_closed(self.channel.name)
        try:
            self.channel.on_close(self)
        except Exception:  # noqa: BLE001
            _log.exception("channel %s on_close failed", self.channel.name)

    async def receive(self, data: str | bytes) -> None:
        """One inbound message of an open (not closing) connection: rate, size, decode, handle."""
        self.hub.metrics.messages_in += 1
        # The rate check comes first: a refused message is not sized, decoded or logged.
        now = time.monotonic()
        if not self._bucket.take(now):
            self._refuse(now)
            return
        if self._flooding and now - self._last_refused >= _FLOOD_QUIET_S:
            self._flooding = False  # a flood ends after a quiet second, not at the first token back
        limit = self.config.max_message_bytes
        # len(str) counts characters; a character is at most 4 UTF-8 bytes.
        if len(data) > limit or (isinstance(data, str) and len(data) * 4 > limit and len(data.encode()) > limit):
            self.fail(ErrorCode.MESSAGE_TOO_LARGE, f"Messages are limited to {limit} bytes")
            return
        try:
            await self._handle(data)
        except Exception:  # noqa: BLE001 - a server bug: this socket ends with 1011, not a bare drop
            _log.exception("handling a message failed on connection %d", self.conn_id)
            self._begin_close(CloseCode.INTERNAL_ERROR, [], keep_queued=True)

    def _release_peer(self) -> None:
        if self._peer is not None:
            self.hub.release(self._peer)
            self._peer = None

    def _begin_close(self, code: int, last: list[str], *, keep_queued: bool, discard_in_hand: bool = False) -> None:
        if self.close_code is not None:
            return
        self.close_code = code
        queued = self.hub.drain(self.conn_id, self.config.max_queue_frames) if keep_queued else []
        self.final = queued + last
        # Nothing more is queued for this connection from here on.
        self.hub.disconnect(self.conn_id)
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self._transport is not None:
            self._transport.closing(discard_in_hand)

    def _refuse(self, now: float) -> None:
        """A message over the rate limit: dropped; answered once per flood; a long flood ends the socket."""
        if self.principal is None:
            self.fail(ErrorCode.AUTH_REQUIRED)
            return
        if self._flooding and now - self._last_refused >= _FLOOD_QUIET_S:
            self._flooding = False  # quiet for a second: this refusal starts a new flood
        self._last_refused = now
        if not self._flooding:
            # One error per flood, not one per dropped message: answering every message of a
            # flood would fill the client's own queue and turn it into a slow consumer.
            self._flooding = True
            self._flood_began = now
            self.send_error(ErrorCode.RATE_LIMITED)
        elif now - self._flood_began >= self.config.rate_limit_close_s:
            self.hub.metrics.rate_limit_closes += 1
            self.fail(
                ErrorCode.RATE_LIMITED,
                f"Connection closed: over the message rate limit for {self.config.rate_limit_close_s:g} s",
                close=FLOOD_CLOSE,
            )

    async def _handle(self, data: str | bytes) -> None:
        if isinstance(data, bytes):
            if self.principal is None:
                self.fail(ErrorCode.AUTH_REQUIRED)
            else:
                self.send_error(ErrorCode.INVALID_MESSAGE, "Messages must be text frames holding JSON")
            return
        try:
            message = self._decoder.decode(data)  # raises DecodeFailure and nothing else
        except DecodeFailure as exc:
            if self.principal is None:
                self.fail(ErrorCode.AUTH_REQUIRED)
            else:
                self.send_error(exc.code, exc.message)
            return
        if isinstance(message, Auth):
            self._authenticate(message.token)
            if self.principal is not None and "initial" not in self.state:
                self.state["initial"] = True
                await self._run_hook(self.channel.on_authenticated(self))
            return
        if self.principal is None:
            self.fail(ErrorCode.AUTH_REQUIRED)
            return
        if isinstance(message, Ping):
            self.send(pong_frame(message.ts, now_ms()))
            return
        await self._run_hook(self.channel.on_message(self, message))

    async def _run_hook(self, hook: Awaitable[None]) -> None:
        try:
            await hook
        except Exception:  # noqa: BLE001 - a channel bug ends this socket only
            _log.exception("channel %s failed on connection %d", self.channel.name, self.conn_id)
            self._begin_close(CloseCode.INTERNAL_ERROR, [], keep_queued=True)

    def _authenticate(self, token: str) -> None:
        try:
            principal = self.hub.verifier.verify(token)
        except AuthError:
            self.fail(ErrorCode.AUTH_REQUIRED)
            return
        except Exception as exc:  # noqa: BLE001 - a token the verifier chokes on is refused like any bad one
            _log.warning("token verification raised %s on connection %d", type(exc).__name__, self.conn_id)
            self.fail(ErrorCode.AUTH_REQUIRED)
            return
        if self.principal is not None and principal.sub != self.principal.sub:
            self.fail(ErrorCode.AUTH_REQUIRED, "Authentication required: a refresh must keep the same user")
            return
        self.principal = principal
        self._release_peer()
        loop = asyncio.get_running_loop()
        for name in ("auth", "expiry"):
            timer = self._timers.pop(name, None)
            if timer is not None:
                timer.cancel()
        delay = max(0.0, principal.exp - time.time())
        self._timers["expiry"] = loop.call_later(delay, self.fail, ErrorCode.TOKEN_EXPIRED)
        self.send(auth_success_frame(principal.sub, principal.exp))
