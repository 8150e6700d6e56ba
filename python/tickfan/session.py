"""One WebSocket connection, whatever the channel: the shared plumbing of every ``/ws/*`` endpoint.

A :class:`Channel` is the small part that differs per endpoint: its ``name`` (the metrics key),
``path``, extra inbound message types, and three hooks. Everything else lives in
:class:`Session` and is the same for every channel:

* the auth handshake (first message ``auth`` within the auth timeout), in-band refresh for the
  same ``sub``, and the expiry timer (``token_expired``, 1008);
* ``ping`` -> ``pong``; ``invalid_json`` / ``invalid_message`` / ``unknown_type``;
* the inbound frame-size limit (``message_too_large``, 1009) and a per-connection token bucket
  (``rate_limited``; a flood lasting ``rate_limit_close_s`` closes with 1008);
* ONE outbound path: every frame (ticks, acks, errors, pongs, a channel's own messages) goes
  through the core's per-connection queue (``hub.push``/``hub.drain``), so ordering and queue
  limits are uniform; one writer task per connection drains it and writes through the raw ASGI
  ``send`` callable (no framework wrapper per frame);
* slow consumers: when the core reports the queue overflowed, or the hub's send watchdog finds
  the writer holding frames it could not write for ``send_timeout_s``, the queue (and the batch
  in hand) is dropped and the socket gets ``slow_consumer`` and close 1013; the fan-out itself
  never waits for a socket;
* close handling: fatal errors send their error frame then close; shutdown closes with 1001;
  before the close frame the client's in-flight frames are read and ignored (``_linger``); a
  close that cannot complete within ``shutdown_timeout_s`` drops the connection (``_abort``).

Adding a channel: subclass :class:`Channel`, then add one line to ``CHANNELS`` in
``tickfan/web/app.py``. ``session.send(frame)`` queues a frame, ``session.principal`` is the
authenticated user, ``session.fail(code)`` closes with a fatal error.

Trade-off: each connection's writer awaits its own sends one at a time (ordering), while many
connections' writers run concurrently, so sends stay in flight together across connections. On
this machine an awaited Granian send costs ~65 us of wall time but ~12 us of CPU, so per-socket
sequential sends with many sockets in parallel reach several times the rate of one sequential
loop over all sockets.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, ClassVar

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

__all__ = ["Channel", "Session", "TokenBucket", "now_ms"]

_log = logging.getLogger("tickfan.session")

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]

_DRAIN_FRAMES = 256
_LINGER_QUIET_S = 0.05
_LINGER_MAX_S = 1.0
_ABORT_S = 0.1
_NO_BATCH: list[str] = []  # never mutated: fail() clears only a real batch, and _NO_BATCH is empty
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
    """One connection's state, reader and writer. Created per socket by the web adapter."""

    def __init__(self, hub: Hub, channel: Channel, decoder: MessageDecoder, send: Send, *, peer: str | None = None) -> None:
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
        self._send = send
        self._hub_push = hub.push
        self._bucket = TokenBucket(self.config.rate_limit_per_s, self.config.rate_limit_burst)
        self._flooding = False
        self._flood_began = 0.0
        self._last_refused = 0.0
        self._last_in = 0.0  # loop time of the last frame read while closing
        self._close_sent = False
        self._batch: list[str] = _NO_BATCH  # the frames the writer has in hand
        self._sent = 0  # frames the writer completed (the watchdog's progress mark)
        self._stall_sent = 0
        self._stall_since: float | None = None
        self._waiter: asyncio.Future[None] | None = None  # set while the writer is idle
        self._wake_t: float | None = None
        self._finished = asyncio.Event()
        self._final: list[str] | None = None  # set when closing: the last frames, then the close
        self._close_code: int | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._reader: asyncio.Task[None] | None = None
        self.conn_id = hub.register(self)

    # --- used by channels and the hub ------------------------------------------------------

    @property
    def closing(self) -> bool:
        return self._close_code is not None

    @property
    def channel_name(self) -> str:
        return self.channel.name

    def send(self, frame: str) -> bool:
        """Queue one frame; False if it was dropped (closing, or the queue overflowed)."""
        if self._close_code is not None:
            return False
        ok = self._hub_push(self.conn_id, frame)
        self.hub.dispatch()
        return ok

    def send_error(self, code: ErrorCode, message: str | None = None) -> None:
        """A recoverable error; for fatal codes use :meth:`fail`."""
        self.send(error_frame(code, message))

    def wake(self, ingest_t: float | None = None) -> None:
        """The core queue went non-empty (called by the hub)."""
        if ingest_t is not None and self._wake_t is None:
            self._wake_t = ingest_t
        # A bare future per idle period instead of an asyncio.Event: Event.set was 15.5% of the
        # server's py-spy samples in the S2 load scenario (/tmp/loadprof_full). A busy writer
        # has no waiter and is not woken at all: it drains again before it waits.
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def fail(self, code: ErrorCode, message: str | None = None, *, close: CloseCode | None = None) -> None:
        """Send an error, then close with its close code (PROTOCOL.md section 2), or ``close``."""
        close = ERROR_CLOSE[code] if close is None else close
        if code is ErrorCode.SLOW_CONSUMER:
            # The queued frames would take too long: drop them (the writer's batch in hand too,
            # so their memory goes now, not when a stalled send returns), send the error next.
            self._batch.clear()
            self._begin_close(close, [error_frame(code, message)], keep_queued=False)
        else:
            self._begin_close(close, [error_frame(code, message)], keep_queued=True)

    def close(self, code: CloseCode = CloseCode.NORMAL) -> None:
        """Close without an error frame (1001 at shutdown); queued frames are not sent."""
        self._begin_close(code, [], keep_queued=False)

    # --- lifecycle ------------------------------------------------------------------------------

    async def run(self, receive: Receive) -> None:
        """Serve the connection until it is closed or gone. The socket is already accepted."""
        loop = asyncio.get_running_loop()
        metrics = self.hub.metrics
        metrics.connection_opened(self.channel.name)
        self._timers["auth"] = loop.call_later(self.config.auth_timeout_ms / 1000.0, self.fail, ErrorCode.AUTH_REQUIRED)
        reader = self._reader = asyncio.create_task(self._read_loop(receive))
        writer = asyncio.create_task(self._write_loop())
        try:
            await self._finished.wait()
        finally:
            for task in (reader, writer):
                task.cancel()
            for task in (reader, writer):
                try:
                    await task
                except BaseException:  # noqa: BLE001 - cancelled or failed; the socket is done
                    pass
            if self._close_code is not None and not self._close_sent:
                await self._abort()
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()
            if self._final is None:
                self.hub.disconnect(self.conn_id)
            self._release_peer()
            self.hub.unregister(self.conn_id)
            metrics.connection_closed(self.channel.name)
            try:
                self.channel.on_close(self)
            except Exception:  # noqa: BLE001
                _log.exception("channel %s on_close failed", self.channel.name)

    async def _abort(self) -> None:
        """The close did not complete in time (a peer that does not read): take the transport down.

        Left alone, Granian would close a socket whose writer was cancelled mid-send by queueing
        a close frame without a code behind the stalled send, holding the connection and its
        buffers until the peer reads, if ever. Starting our own close (with its code) and giving
        it ``_ABORT_S`` makes Granian take the transport; cancelling the close drops it.
        """
        try:
            await asyncio.wait_for(self._send({"type": "websocket.close", "code": self._close_code}), _ABORT_S)
        except Exception as exc:  # noqa: BLE001 - timed out or the peer is gone: either way done
            _log.debug("close abandoned on connection %d: %r", self.conn_id, exc)

    def _release_peer(self) -> None:
        if self._peer is not None:
            self.hub.release(self._peer)
            self._peer = None

    def check_stall(self, now: float, timeout: float) -> bool:
        """True if the writer has had frames in hand and completed none for ``timeout`` seconds
        (the peer stopped reading and the kernel buffers are full). Called by the hub's watchdog."""
        if not self._batch or self._close_code is not None:
            self._stall_since = None
            return False
        if self._stall_since is None or self._stall_sent != self._sent:
            self._stall_sent = self._sent
            self._stall_since = now
            return False
        return now - self._stall_since >= timeout

    def _begin_close(self, code: int, last: list[str], *, keep_queued: bool) -> None:
        if self._close_code is not None:
            return
        self._close_code = code
        self._last_in = asyncio.get_running_loop().time()  # the linger waits one quiet period at least
        queued = self.hub.drain(self.conn_id, self.config.max_queue_frames) if keep_queued else []
        self._final = queued + last
        # Nothing more is queued for this connection from here on.
        self.hub.disconnect(self.conn_id)
        for timer in self._timers.values():
            timer.cancel()
        self._timers["close"] = asyncio.get_running_loop().call_later(
            self.config.shutdown_timeout_s, self._finished.set
        )
        self.wake()

    # --- writer ---------------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        send = self._send
        drain = self.hub.drain
        conn_id = self.conn_id
        metrics = self.hub.metrics
        loop = asyncio.get_running_loop()
        try:
            while True:
                if self._final is not None:
                    for frame in self._final:
                        await send({"type": "websocket.send", "text": frame})
                    self._final = []
                    await self._linger(loop)
                    # Granian's close waits for a pending receive() to end, so stop reading first.
                    if self._reader is not None:
                        self._reader.cancel()
                        await asyncio.sleep(0)
                    await send({"type": "websocket.close", "code": self._close_code or CloseCode.NORMAL})
                    self._close_sent = True
                    return
                frames = drain(conn_id, _DRAIN_FRAMES)
                if not frames:
                    # Idle: wait for Session.wake (the hub, after the queue went non-empty).
                    waiter = self._waiter = loop.create_future()
                    await waiter
                    continue
                # While a batch is in hand the hub's watchdog checks that _sent moves on
                # (check_stall); fail(SLOW_CONSUMER) empties the list, which ends this loop.
                self._batch = frames
                nbytes = 0
                for frame in frames:
                    await send({"type": "websocket.send", "text": frame})
                    self._sent += 1
                    nbytes += len(frame)
                self._batch = _NO_BATCH
                metrics.frames_out += len(frames)
                metrics.bytes_out += nbytes
                if self._wake_t is not None:
                    metrics.observe_fanout(time.perf_counter() - self._wake_t)
                    self._wake_t = None
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the peer went away mid-send: only this socket ends
            metrics.send_failures += 1
            _log.debug("send failed on connection %d: %r", conn_id, exc)
        finally:
            self._finished.set()

    async def _linger(self, loop: asyncio.AbstractEventLoop) -> None:
        """Before the close: read (and ignore) what the client already sent, until it is quiet.

        Granian closes the TCP connection right after the close frame, without waiting for the
        client's close. Unread inbound data at that moment makes the kernel answer with a reset,
        which can destroy the error and close frames still in the client's receive buffer (the
        client then sees 1006). So wait until no frame has arrived for ``_LINGER_QUIET_S``, at
        most ``_LINGER_MAX_S`` (a client that never stops sending gets the close anyway).
        """
        if self._reader is None or self._reader.done():
            return
        deadline = loop.time() + _LINGER_MAX_S
        while True:
            now = loop.time()
            quiet_at = self._last_in + _LINGER_QUIET_S
            if now >= quiet_at or now >= deadline:
                return
            await asyncio.sleep(min(quiet_at, deadline) - now)

    # --- reader ---------------------------------------------------------------------------------

    async def _read_loop(self, receive: Receive) -> None:
        loop = asyncio.get_running_loop()
        limit = self.config.max_message_bytes
        metrics = self.hub.metrics
        take = self._bucket.take
        monotonic = time.monotonic
        try:
            while True:
                event = await receive()
                kind = event["type"]
                if kind == "websocket.disconnect":
                    break
                if kind != "websocket.receive":
                    continue
                if self._close_code is not None:
                    self._last_in = loop.time()  # closing: the client's last words are read, ignored
                    continue
                metrics.messages_in += 1
                # The rate check comes first: a refused message is not sized, decoded or logged.
                now = monotonic()
                if not take(now):
                    self._refuse(now)
                    continue
                if self._flooding and now - self._last_refused >= _FLOOD_QUIET_S:
                    self._flooding = False  # a flood ends after a quiet second, not at the first token back
                data = event.get("text")
                if data is None:
                    data = event.get("bytes") or b""
                # len(str) counts characters; a character is at most 4 UTF-8 bytes.
                if len(data) > limit or (isinstance(data, str) and len(data) * 4 > limit and len(data.encode()) > limit):
                    self.fail(ErrorCode.MESSAGE_TOO_LARGE, f"Messages are limited to {limit} bytes")
                    continue
                try:
                    await self._handle(data)
                except Exception:  # noqa: BLE001 - a server bug: this socket ends with 1011, not a bare drop
                    _log.exception("handling a message failed on connection %d", self.conn_id)
                    self._begin_close(CloseCode.INTERNAL_ERROR, [], keep_queued=True)
        except asyncio.CancelledError:
            raise  # the writer cancels us to close; it finishes the session
        except Exception as exc:  # noqa: BLE001
            _log.debug("receive failed on connection %d: %r", self.conn_id, exc)
        # Disconnected (or broken): nothing more can be sent either.
        self._finished.set()

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
