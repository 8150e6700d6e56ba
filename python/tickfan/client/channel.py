"""The asyncio driver: one socket per channel, kept alive, its events in a bounded queue.

The driver owns the I/O and the timers; what the messages mean is the state's business
(``state.py``). One task reads the socket and puts events into the queue in wire order; a
second, per socket, sends pings and in-band token refreshes. User code never runs in the reader:
it runs in whoever iterates the channel.

Reconnect rules (docs/client.md): full-jitter backoff (``uniform(0, min(max, min * 2**n))``,
``n`` failed attempts since the last session that got ready), unlimited attempts, and by the
close that ended the socket: 1001/1012 reconnect at once (once per ready session); 1008
``token_expired`` reconnects at once with a new token; 1008 ``auth_required`` retries once at
once with a fresh token from the provider, then raises ``AuthError`` (a fixed string token is
not retried); 1009 raises ``ProtocolError``; 1013 after ``slow_consumer`` backs off, then
subscribes with ``conflate`` until the consumer has drained the queue; anything else backs off.

The queue is bounded and never drops: when it is full the reader stops reading, the server's
own queue for this socket fills, and the server closes it with ``slow_consumer`` (1013); what
was lost is then reported as ``Gap`` after the reconnect.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from tickfan.client.errors import AuthError, GapError, ProtocolError
from tickfan.client.events import (
    AuthSuccess,
    Disconnected,
    Error,
    Gap,
    Mode,
    Notification,
    Pong,
    Reconnected,
    ServerError,
    SubscribeError,
    decode_frame,
)
from tickfan.client.state import MarketState, MetricsState, NotificationState, PassState
from tickfan.client.tokens import TokenSource

__all__ = ["Options", "Channel", "MarketChannel", "NotificationsChannel"]

_log = logging.getLogger("tickfan.client")


class _NoFrameLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """websockets logs every frame at DEBUG, the ``auth`` frame's token included: its logger for
    our sockets never has DEBUG enabled (INFO and above pass through)."""

    def isEnabledFor(self, level: int) -> bool:
        return level > logging.DEBUG and self.logger.isEnabledFor(level)


_socket_log = _NoFrameLog(logging.getLogger("tickfan.client.websockets"), {})
_encode = msgspec.json.Encoder().encode
_FATAL = frozenset({"auth_required", "token_expired", "slow_consumer", "message_too_large"})
_SUBSCRIBE_ERRORS = frozenset({"unknown_symbol", "too_many_symbols"})
S = TypeVar("S", MarketState, PassState, NotificationState, MetricsState)


@dataclass(frozen=True)
class Options:
    """Per-channel behaviour; the defaults are the ones docs/client.md states."""

    reconnect: bool = True
    queue_size: int = 10_000
    backoff_min_s: float = 0.5
    backoff_max_s: float = 20.0
    ping_interval_s: float = 15.0
    stale_after_s: float = 45.0
    open_timeout_s: float = 10.0
    refresh_at: float = 0.8
    on_gap: str = "event"  # or "raise": GapError instead of a Gap event
    max_frame_bytes: int = 16 * 1024 * 1024


@dataclass
class _Outcome:
    """How one socket ended."""

    code: int | None = None
    error: str | None = None  # the fatal error code the server sent before closing
    reason: str = ""
    authed: bool = False
    ready: bool = False


@dataclass(frozen=True)
class _End:
    error: BaseException | None


class Channel(Generic[S]):
    """One endpoint, kept connected; ``async for event in channel`` yields its events.

    Start by iterating or by ``async with``; ``close()`` (or leaving the ``async with``) stops it.
    Counters for monitoring and tests: ``connections`` (sockets opened), ``auth_successes`` (on
    every socket, refreshes included), ``rtt_ms`` (last ping round trip).
    """

    def __init__(self, url: str, state: S, tokens: TokenSource, options: Options) -> None:
        self.url = url
        self.state: S = state
        self.tokens = tokens
        self.options = options
        self.connections = 0
        self.auth_successes = 0
        self.user_id: str | None = None
        self.expires_at: int | None = None
        self.rtt_ms: float | None = None
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=options.queue_size)
        self._task: asyncio.Task[None] | None = None
        self._ws: ClientConnection | None = None
        self._wake = asyncio.Event()
        self._refresh_at: float | None = None
        self._restore = False
        self._attempts = 0
        self._end: _End | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r}, connections={self.connections})"

    # --- consumer side ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"tickfan {self.url}")

    def __aiter__(self) -> Channel[S]:
        self.start()
        return self

    async def __anext__(self) -> Any:
        if self._end is not None:
            return self._finish(self._end)
        item = await self._queue.get()
        if isinstance(item, _End):
            self._end = item
            return self._finish(item)
        if self._restore_pending():
            self._restore = True
            self._wake.set()
        if isinstance(item, Gap) and self.options.on_gap == "raise":
            self._end = _End(GapError(item))
            raise self._end.error  # type: ignore[misc]
        return item

    def _finish(self, end: _End) -> Any:
        if end.error is not None:
            raise end.error
        raise StopAsyncIteration

    def _restore_pending(self) -> bool:
        return self._queue.empty() and getattr(self.state, "restorable", False) and not self._restore

    async def __aenter__(self) -> Channel[S]:
        self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop reconnecting and close the socket; iteration ends (events not yet read are
        discarded: closing is the consumer's choice)."""
        task = self._task
        # Cancelled again until it ends: on Python 3.11 ``asyncio.wait_for`` can lose a
        # cancellation that arrives as its inner await completes (the driver reads through it).
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.1)
        if task is not None and not task.cancelled():
            task.exception()  # retrieved here: the stream already ended with it
        while True:  # wake a consumer blocked on the queue
            try:
                self._queue.put_nowait(_End(None))
                break
            except asyncio.QueueFull:
                self._queue.get_nowait()

    async def send(self, messages: list[dict[str, Any]]) -> None:
        """Send now if connected; the state replays what matters after a reconnect."""
        ws = self._ws
        if ws is None:
            return
        try:
            for message in messages:
                await ws.send(_encode(message).decode())
        except ConnectionClosed:
            pass

    # --- driver ----------------------------------------------------------------------------------

    async def _run(self) -> None:
        refused = 0
        try:
            while True:
                outcome = await self._session()
                self.state.on_close()
                if outcome.ready:
                    self._attempts = 0
                if outcome.authed:
                    refused = 0
                delay = self._after(outcome, refused)
                if outcome.error == "auth_required":
                    refused += 1
                if not self.options.reconnect:
                    await self._queue.put(_End(None))
                    return
                _log.info("tickfan.client: %s closed (code=%s %s); retry in %.2f s", self.url, outcome.code,
                          outcome.error or outcome.reason, delay)
                await self._queue.put(Disconnected(outcome.code, outcome.error or outcome.reason, delay))
                if delay > 0:
                    await asyncio.sleep(delay)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # AuthError, ProtocolError, or a bug: end the stream with it
            await self._queue.put(_End(exc))

    def _after(self, outcome: _Outcome, refused: int) -> float:
        """The delay before the next attempt, or raise when retrying cannot help."""
        if outcome.code == 1009 or outcome.error == "message_too_large":
            raise ProtocolError("the server closed with 1009: a message of ours was over its size limit")
        if outcome.error == "auth_required":
            if refused >= 1 or not self.tokens.refreshable:
                raise AuthError("the server refused the token" + (" and a fresh one" if refused else ""))
            return 0.0
        if outcome.error == "slow_consumer":  # a 1013 for another cause (too many sockets) only backs off
            degrade = getattr(self.state, "degrade", None)
            if degrade is not None:
                degrade()
        elif outcome.error == "token_expired" or outcome.code in (1001, 1012):
            if self._attempts == 0:
                self._attempts = 1
                return 0.0
        self._attempts += 1
        cap = min(self.options.backoff_max_s, self.options.backoff_min_s * 2**self._attempts)
        return random.uniform(0, cap)

    async def _session(self) -> _Outcome:
        out = _Outcome()
        try:
            token = await self.tokens.get(fresh=True)
        except AuthError:
            raise
        except Exception as exc:
            out.reason = f"the token provider failed ({type(exc).__name__})"
            return out
        try:
            ws = await connect(self.url, open_timeout=self.options.open_timeout_s, ping_interval=None,
                               close_timeout=2, max_size=self.options.max_frame_bytes, logger=_socket_log)
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            out.reason = f"connect failed ({type(exc).__name__})"
            return out
        self.connections += 1
        self._ws = ws
        keeper: asyncio.Task[None] | None = None
        try:
            await ws.send(_encode({"type": "auth", "token": token}).decode())
            del token
            while True:
                timeout = self.options.stale_after_s if out.authed else self.options.open_timeout_s
                try:
                    raw = await asyncio.wait_for(ws.recv(), timeout)
                except TimeoutError:
                    out.reason = f"no frame for {timeout:g} s"
                    return out
                message = decode_frame(raw)
                if isinstance(message, AuthSuccess):
                    self._on_auth(message)
                    if not out.authed:
                        out.authed = True
                        if self.connections > 1:
                            await self._queue.put(Reconnected(self.connections, self._attempts))
                        await self.send(self.state.on_open())
                        keeper = asyncio.get_running_loop().create_task(self._keep(ws))
                        await self._opened()
                    if not out.ready and self.state.ready(message):
                        out.ready = True
                    continue
                if isinstance(message, Pong):
                    self.rtt_ms = time.monotonic() * 1000 - message.ts
                    continue
                if isinstance(message, Error):
                    if message.code in _FATAL:
                        out.error = message.code
                    elif message.code in _SUBSCRIBE_ERRORS:
                        await self._queue.put(SubscribeError(message.code, message.error))
                    else:
                        await self._queue.put(ServerError(message.code, message.error))
                    continue
                if not out.ready and self.state.ready(message):
                    out.ready = True
                for event in self.state.receive(message):
                    await self._queue.put(event)
                take_outbox = getattr(self.state, "take_outbox", None)
                if take_outbox is not None:
                    outbox = take_outbox()
                    if outbox:
                        await self.send(outbox)
        except ConnectionClosed as exc:
            out.code = exc.rcvd.code if exc.rcvd is not None else None
            out.reason = (exc.rcvd.reason if exc.rcvd is not None else "") or "connection lost"
            return out
        finally:
            self._ws = None
            self._refresh_at = None
            if keeper is not None:
                keeper.cancel()
            try:
                await asyncio.wait_for(ws.close(), 2)
            except Exception:  # a cancellation goes on: the driver is being stopped
                pass

    async def _opened(self) -> None:
        """Hook run once per socket after the state's opening messages went out."""

    def _on_auth(self, message: AuthSuccess) -> None:
        self.auth_successes += 1
        self.user_id, self.expires_at = message.user_id, message.expires_at
        lifetime = message.expires_at - time.time()
        if self.tokens.refreshable and lifetime > 0:
            self._refresh_at = asyncio.get_running_loop().time() + self.options.refresh_at * lifetime
            self._wake.set()

    async def _keep(self, ws: ClientConnection) -> None:
        """Per socket: app-level pings, in-band token refresh, restoring modes after a fallback."""
        loop = asyncio.get_running_loop()
        next_ping = loop.time() + self.options.ping_interval_s
        try:
            while True:
                deadline = min(next_ping, self._refresh_at if self._refresh_at is not None else next_ping)
                try:
                    await asyncio.wait_for(self._wake.wait(), max(0.0, deadline - loop.time()))
                except TimeoutError:
                    pass
                self._wake.clear()
                now = loop.time()
                if self._restore:
                    self._restore = False
                    await self.send(self.state.restore())  # type: ignore[union-attr]
                if self._refresh_at is not None and now >= self._refresh_at:
                    self._refresh_at = None
                    try:
                        token = await self.tokens.get(fresh=True)
                    except Exception as exc:  # the server will close with token_expired; retried then
                        _log.warning("tickfan.client: token refresh failed (%s)", type(exc).__name__)
                    else:
                        await ws.send(_encode({"type": "auth", "token": token}).decode())
                        del token
                if now >= next_ping:
                    next_ping = now + self.options.ping_interval_s
                    await ws.send(_encode({"type": "ping", "ts": time.monotonic() * 1000}).decode())
        except ConnectionClosed:
            return


class MarketChannel(Channel[MarketState]):
    """``/ws/market-data``: ``Tick``, ``Gap``, ``Backfill``, ``Subscribed``, ``SeqReset``, ..."""

    async def subscribe(self, symbols: list[str], mode: Mode = "auto", interval_ms: int | None = None) -> None:
        await self.send(self.state.subscribe(list(symbols), mode, interval_ms))

    async def unsubscribe(self, symbols: list[str]) -> None:
        await self.send(self.state.unsubscribe(list(symbols)))


class NotificationsChannel(Channel[NotificationState]):
    """``/ws/notifications``: one ``Notification`` per id, ``MarkedRead``.

    After a reconnect it first pages ``GET /api/notifications?after=<last id>`` so nothing
    created while it was away is missed (the initial list holds unread ones only, 50 at most).
    """

    def __init__(self, *args: Any, catch_up: Any = None) -> None:
        super().__init__(*args)
        self._catch_up = catch_up

    async def mark_read(self, ids: list[int]) -> None:
        await self.send([{"type": "mark_read", "ids": list(ids)}])

    async def _opened(self) -> None:
        if self._catch_up is None or self.connections < 2 or self.state.last_id == 0:
            return
        try:
            while True:
                page: list[Notification] = await self._catch_up(self.state.last_id)
                for event in self.state.catch_up(page):
                    await self._queue.put(event)
                if len(page) < 1000:
                    return
        except Exception as exc:  # the socket's initial list still delivers the unread ones
            _log.warning("tickfan.client: notifications catch-up failed (%s)", type(exc).__name__)
