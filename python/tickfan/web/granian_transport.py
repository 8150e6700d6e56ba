"""The Granian transport: a :class:`~tickfan.session.Session` over the server's raw ASGI callables.

One reader task hands each text or binary message to :meth:`Session.receive`; one writer task
per connection drains the core's queue and writes through the raw ASGI ``send`` callable (no
framework wrapper per frame), waking when the hub reports the queue non-empty. The session
decides; this adapter only moves frames and carries out the close:

* the final frames, then ``_linger`` (the client's in-flight frames are read and ignored), then
  the close frame; a close that cannot complete within ``shutdown_timeout_s`` drops the
  connection (``_abort``);
* the send watchdog's view (:meth:`check_stall`): frames in hand, none written.

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
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from tickfan.protocol import CloseCode
from tickfan.session import Session

__all__ = ["GranianTransport"]

_log = logging.getLogger("tickfan.session")

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]

_DRAIN_FRAMES = 256
_LINGER_QUIET_S = 0.05
_LINGER_MAX_S = 1.0
_ABORT_S = 0.1
_NO_BATCH: list[str] = []  # never mutated: closing() clears only a real batch, and _NO_BATCH is empty


class GranianTransport:
    """One accepted ASGI WebSocket carrying one session (a :class:`~tickfan.session.Transport`)."""

    def __init__(self, session: Session, send: Send) -> None:
        self.session = session
        self._send = send
        self._last_in = 0.0  # loop time of the last frame read while closing
        self._close_sent = False
        self._batch: list[str] = _NO_BATCH  # the frames the writer has in hand
        self._sent = 0  # frames the writer completed (the watchdog's progress mark)
        self._stall_sent = 0
        self._stall_since: float | None = None
        self._waiter: asyncio.Future[None] | None = None  # set while the writer is idle
        self._wake_t: float | None = None
        self._finished = asyncio.Event()
        self._close_timer: asyncio.TimerHandle | None = None
        self._reader: asyncio.Task[None] | None = None
        session.attach(self)

    # --- the session's Transport ---------------------------------------------------------------

    def wake(self, ingest_t: float | None = None) -> None:
        if ingest_t is not None and self._wake_t is None:
            self._wake_t = ingest_t
        # A bare future per idle period instead of an asyncio.Event: Event.set was 15.5% of the
        # server's py-spy samples in the S2 load scenario. A busy writer has no waiter and is not
        # woken at all: it drains again before it waits.
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def closing(self, discard_in_hand: bool) -> None:
        if discard_in_hand:
            self._batch.clear()  # ends the writer's loop over the batch in hand
        loop = asyncio.get_running_loop()
        self._last_in = loop.time()  # the linger waits one quiet period at least
        self._close_timer = loop.call_later(self.session.config.shutdown_timeout_s, self._finished.set)
        self.wake()

    def check_stall(self, now: float, timeout: float) -> bool:
        if not self._batch or self.session.closing:
            self._stall_since = None
            return False
        if self._stall_since is None or self._stall_sent != self._sent:
            self._stall_sent = self._sent
            self._stall_since = now
            return False
        return now - self._stall_since >= timeout

    # --- lifecycle ------------------------------------------------------------------------------

    async def run(self, receive: Receive) -> None:
        """Serve the connection until it is closed or gone. The socket is already accepted."""
        session = self.session
        session.opened()
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
            if session.close_code is not None and not self._close_sent:
                await self._abort()
            if self._close_timer is not None:
                self._close_timer.cancel()
            session.ended()

    async def _abort(self) -> None:
        """The close did not complete in time (a peer that does not read): take the transport down.

        Left alone, Granian would close a socket whose writer was cancelled mid-send by queueing
        a close frame without a code behind the stalled send, holding the connection and its
        buffers until the peer reads, if ever. Starting our own close (with its code) and giving
        it ``_ABORT_S`` makes Granian take the transport; cancelling the close drops it.
        """
        try:
            await asyncio.wait_for(self._send({"type": "websocket.close", "code": self.session.close_code}), _ABORT_S)
        except Exception as exc:  # noqa: BLE001 - timed out or the peer is gone: either way done
            _log.debug("close abandoned on connection %d: %r", self.session.conn_id, exc)

    # --- writer ---------------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        session = self.session
        send = self._send
        drain = session.hub.drain
        conn_id = session.conn_id
        metrics = session.hub.metrics
        loop = asyncio.get_running_loop()
        try:
            while True:
                if session.final is not None:
                    final, session.final = session.final, []
                    for frame in final:
                        await send({"type": "websocket.send", "text": frame})
                    await self._linger(loop)
                    # Granian's close waits for a pending receive() to end, so stop reading first.
                    if self._reader is not None:
                        self._reader.cancel()
                        await asyncio.sleep(0)
                    await send({"type": "websocket.close", "code": session.close_code or CloseCode.NORMAL})
                    self._close_sent = True
                    return
                frames = drain(conn_id, _DRAIN_FRAMES)
                if not frames:
                    # Idle: wait for wake() (the hub, after the queue went non-empty).
                    waiter = self._waiter = loop.create_future()
                    await waiter
                    continue
                # While a batch is in hand the hub's watchdog checks that _sent moves on
                # (check_stall); closing(discard_in_hand=True) empties the list, ending this loop.
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
        session = self.session
        handle = session.receive
        try:
            while True:
                event = await receive()
                kind = event["type"]
                if kind == "websocket.disconnect":
                    break
                if kind != "websocket.receive":
                    continue
                if session.close_code is not None:
                    self._last_in = loop.time()  # closing: the client's last words are read, ignored
                    continue
                data = event.get("text")
                if data is None:
                    data = event.get("bytes") or b""
                await handle(data)
        except asyncio.CancelledError:
            raise  # the writer cancels us to close; it finishes the session
        except Exception as exc:  # noqa: BLE001
            _log.debug("receive failed on connection %d: %r", session.conn_id, exc)
        # Disconnected (or broken): nothing more can be sent either.
        self._finished.set()
