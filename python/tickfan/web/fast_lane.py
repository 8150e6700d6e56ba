"""The fast lane's Python half: sessions for the connections of ``tickfan._core.FastLane``.

The extension runs its own WebSocket listener for ``/ws/market-data`` (``--fast-port``) and
writes data frames from the core's queues itself, without Python. What needs the protocol comes
here, on the event loop: the lane's events (a connection opened, a message, a connection gone)
wake :meth:`FastLaneServer._on_readable` through a descriptor, and one dispatcher task hands
them, in order, to the same sans-I/O :class:`~tickfan.session.Session` the Granian transport
uses. Each session's :class:`FastLaneTransport` turns its decisions into lane calls: ``wake``
(frames queued), ``close`` (final frames, close code), ``progress`` (the send watchdog's view).

Trade-off: one dispatcher for every lane connection, so a hook that suspends would delay the
others' control messages; the market-data channel's hooks never suspend.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from tickfan.hub import Hub
from tickfan.protocol import PEER_LIMIT_REASON, CloseCode, ErrorCode, MessageDecoder
from tickfan.session import Channel, Session

__all__ = ["FastLaneServer", "FastLaneTransport", "TRANSPORT"]

_log = logging.getLogger("tickfan.fast_lane")

_FATAL = (asyncio.CancelledError, KeyboardInterrupt, SystemExit)

TRANSPORT = "fast"
"""The ``transport`` label of the lane's metrics (the Granian endpoint's is ``granian``)."""


class FastLaneTransport:
    """One lane connection carrying one session (a :class:`~tickfan.session.Transport`)."""

    __slots__ = ("lane", "lane_id", "session", "_stall_written", "_stall_since")

    def __init__(self, lane: Any, lane_id: int, session: Session) -> None:
        self.lane = lane
        self.lane_id = lane_id
        self.session = session
        self._stall_written = 0
        self._stall_since: float | None = None
        session.attach(self)

    def wake(self, ingest_t: float | None = None) -> None:
        self.lane.wake(self.lane_id)

    def closing(self, discard_in_hand: bool) -> None:
        session = self.session
        if discard_in_hand:  # Session.fail(SLOW_CONSUMER) is the close that drops frames in hand
            session.hub.metrics.fast_lane_slow_consumers += 1
        final, session.final = session.final or [], []
        self.lane.close(self.lane_id, final, session.close_code or CloseCode.NORMAL, "", discard_in_hand)

    def check_stall(self, now: float, timeout: float) -> bool:
        in_hand, written = self.lane.progress(self.lane_id)
        if not in_hand or self.session.closing:
            self._stall_since = None
            return False
        if self._stall_since is None or self._stall_written != written:
            self._stall_written = written
            self._stall_since = now
            return False
        return now - self._stall_since >= timeout


class FastLaneServer:
    """The lane of one worker: started after the hub, stopped after the hub closed its sockets."""

    def __init__(self, hub: Hub, channel: Channel) -> None:
        self.hub = hub
        self.channel = channel
        self.decoder = MessageDecoder(channel.messages)
        self.lane: Any = None
        self.transports: dict[int, FastLaneTransport] = {}
        self._events: list[tuple[str, int, Any]] = []
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self, port: int) -> None:
        """Bind and serve (``OSError`` if the port cannot be had)."""
        config = self.hub.config
        core_module = self.hub.core_module
        if core_module.IMPLEMENTATION != "rust":
            raise RuntimeError("the fast lane needs the Rust core")
        self.lane = core_module.FastLane(
            self.hub.core, config.host, port, list(config.allowed_origins), config.max_message_bytes,
            config.shutdown_timeout_s,
        )
        self.hub.metrics.fast_lane = self.lane
        self.hub.on_core(self.lane.use_core)
        loop = asyncio.get_running_loop()
        loop.add_reader(self.lane.fileno(), self._on_readable)
        self._task = asyncio.create_task(self._dispatch(), name="tickfan-fast-lane")

    async def stop(self) -> None:
        """After the hub closed every session (1001): stop the listener (bounded), end the sessions left."""
        if self.lane is None:
            return
        loop = asyncio.get_running_loop()
        loop.remove_reader(self.lane.fileno())
        await asyncio.to_thread(self.lane.stop)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._take()
        for lane_id in list(self.transports):
            self._gone(lane_id)

    def _on_readable(self) -> None:
        self._ready.set()

    def _take(self) -> list[tuple[str, int, Any]]:
        return list(self.lane.take_events())

    async def _dispatch(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            try:
                events = self._take()
            except _FATAL:
                raise
            except BaseException:  # noqa: BLE001 - a Rust panic is a BaseException (PanicException)
                self._panicked(0, "taking the lane's events")
                continue
            for kind, lane_id, payload in events:
                try:
                    await self._handle(kind, lane_id, payload)
                except _FATAL:
                    raise
                except Exception:  # noqa: BLE001 - one connection's trouble must not stop the lane
                    _log.exception("fast lane: handling %s on lane connection %d failed", kind, lane_id)
                    self._fail(lane_id)
                except BaseException:  # noqa: BLE001 - a panic in a lane call made for this connection
                    self._panicked(lane_id, f"handling {kind}")

    async def _handle(self, kind: str, lane_id: int, payload: Any) -> None:
        if kind == "text" or kind == "binary":
            transport = self.transports.get(lane_id)
            if transport is not None and not transport.session.closing:
                await transport.session.receive(payload)
        elif kind == "open":
            self._open(lane_id, payload)
        elif kind == "gone":
            self._gone(lane_id)
        elif kind == "too_large":
            transport = self.transports.get(lane_id)
            if transport is not None and not transport.session.closing:
                self.hub.metrics.messages_in += 1
                limit = self.hub.config.max_message_bytes
                transport.session.fail(ErrorCode.MESSAGE_TOO_LARGE, f"Messages are limited to {limit} bytes")
        elif kind == "panic":
            self._panicked(lane_id, payload)

    def _panicked(self, lane_id: int, what: str) -> None:
        """A panic in the lane (its reader, writer or hand-off): counted, logged, 1011."""
        self.hub.metrics.fast_lane_panics += 1
        _log.error("fast lane: a panic on lane connection %d (closed with 1011): %s", lane_id, what)
        self._fail(lane_id)

    def _fail(self, lane_id: int) -> None:
        """Close one lane connection with 1011 (through its session when it has one)."""
        transport = self.transports.get(lane_id)
        try:
            if transport is not None:
                transport.session.close(CloseCode.INTERNAL_ERROR)
            elif lane_id:
                self.lane.close(lane_id, [], CloseCode.INTERNAL_ERROR, "", True)
        except _FATAL:
            raise
        except BaseException:  # noqa: BLE001 - the lane's own close panicked: its writer ends it
            _log.exception("fast lane: closing lane connection %d failed", lane_id)

    def _open(self, lane_id: int, peer: str) -> None:
        hub = self.hub
        if not hub.ready:
            self.lane.close(lane_id, [], CloseCode.GOING_AWAY, "", False)
            return
        if not hub.admit(peer):
            self.lane.close(lane_id, [], CloseCode.TRY_AGAIN_LATER, PEER_LIMIT_REASON, False)
            return
        session = Session(hub, self.channel, self.decoder, peer=peer)
        transport = FastLaneTransport(self.lane, lane_id, session)
        self.transports[lane_id] = transport
        self.lane.attach(lane_id, session.conn_id)
        session.opened()
        hub.metrics.fast_lane_connections += 1

    def _gone(self, lane_id: int) -> None:
        transport = self.transports.pop(lane_id, None)
        if transport is not None:
            self.hub.metrics.fast_lane_connections -= 1
            transport.session.ended()
