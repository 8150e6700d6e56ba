"""The asyncio side of the core: one per worker process (a *node*), owned by the app's lifespan.

The :class:`Hub` owns the sans-I/O ``Core`` (typed by ``tickfan/_core.pyi``); channels and routes
reach the core only through the hub's methods. It holds:

* the registry of connections by ``conn_id`` (every socket of every channel has one), seen as
  :class:`Peer` so the hub does not depend on the session module, and the count of
  unauthenticated sockets per remote address (:meth:`admit`, :meth:`release`);
* :meth:`ingest`, the single entry point for ticks (``POST /api/ticks`` and the simulator): it
  hands the batch to the broker (:mod:`tickfan.brokers`), which validates, publishes and has
  every node apply it through :meth:`apply` (the hub is the broker's :class:`~tickfan.brokers.Node`);
  the core it builds refuses ticks stamped too far ahead of the server clock
  (``--max-ts-skew-ms``);
* :meth:`deliver`: per-user events from the broker, handed to the channels that :meth:`listen`;
* :meth:`dispatch`, called after every core call that can queue frames: it wakes the writers of
  connections whose queue went non-empty (``core.take_ready()``, or a transport's
  ``wake_ready(core)`` that wakes its own among them: :meth:`wake_through`) and closes the ones that
  stayed over the queue limit for the grace (``core.take_overflowed(now)`` -> ``slow_consumer``, 1013). It never awaits a socket,
  so a slow or dead socket cannot stall the fan-out;
* one flush timer task, sleeping until ``core.next_deadline_ms()`` and woken early when an
  ingest opens an earlier window;
* one send watchdog task: a socket whose writer has completed no frame for ``send_timeout_s``
  while holding frames (a peer that stopped reading) is closed as a slow consumer too;
* the ``epoch``, which is the broker's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from tickfan.auth import Verifier
from tickfan.config import Config
from tickfan.errors import TickRejected
from tickfan.metrics import Metrics
from tickfan.protocol import CloseCode, ErrorCode

if TYPE_CHECKING:
    from tickfan._core import Candle, Core
    from tickfan.brokers.base import Broker, Event

__all__ = ["Hub", "Peer", "now_ms"]

_log = logging.getLogger("tickfan.hub")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Peer(Protocol):
    """One connection as the hub sees it (a :class:`tickfan.session.Session`)."""

    conn_id: int

    @property
    def closing(self) -> bool: ...

    @property
    def channel_name(self) -> str: ...

    def wake(self, ingest_t: float | None = None) -> None: ...

    def fail(self, code: ErrorCode, message: str | None = None) -> None: ...

    def close(self, code: CloseCode = CloseCode.NORMAL) -> None: ...

    def check_stall(self, now: float, timeout: float) -> bool:
        """Whether the writer has held frames it could not write for ``timeout`` seconds."""
        ...


class Hub:
    """Core + connections + flush timer of one worker; the node its broker drives."""

    def __init__(
        self,
        config: Config,
        core_module: ModuleType,
        verifier: Verifier,
        broker: Broker,
        metrics: Metrics | None = None,
    ) -> None:
        self.config = config
        self.core_module = core_module
        self.verifier = verifier
        self.broker = broker
        self.metrics = metrics or Metrics()
        self.universe = config.universe()
        self.intervals: dict[str, int] = dict(core_module.INTERVALS)
        """Candle interval names and their length in ms."""
        self._core_users: list[Callable[[Core], None]] = []
        self._use_core(self._new_core())
        self.started_at = time.time()
        self.sessions: dict[int, Peer] = {}
        self._unauthenticated: dict[str, int] = {}  # remote address -> open unauthenticated sockets
        self.ready = False
        self._listeners: dict[type, list[Callable[[str, Any], None]]] = {}
        self._rearm = asyncio.Event()
        self._armed_deadline: int | None = None
        self._timer: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._wake_ready: Callable[[Core], Sequence[int]] | None = None

    def _new_core(self) -> Core:
        config = self.config
        return self.core_module.Core(  # type: ignore[no-any-return]
            [(s.symbol, s.price_decimals, s.size_decimals) for s in self.universe],
            high_freq_per_s=config.high_freq_per_s,
            candle_capacity=config.candle_capacity() or None,
            max_queue_frames=config.max_queue_frames,
            max_queue_bytes=config.max_queue_bytes,
            max_symbols_per_connection=config.max_symbols_per_connection,
            # A broker that checks the clock where a batch is ingested (a cluster's) has the
            # nodes apply its log whatever their own clocks say.
            max_ts_skew_ms=None if self.broker.checks_clock else config.max_ts_skew_ms,
            resume_window_ms=config.resume_window_ms,
            resume_max_ticks=config.resume_max_ticks,
            high_water_frames=config.high_water(),
            low_water_frames=config.low_water_frames if config.high_water() is not None else 0,
            degrade_interval_ms=config.degrade_interval_ms,
            slow_consumer_grace_ms=config.slow_consumer_grace_ms,
            degrade_after_ms=config.degrade_after_ms or None,
        )

    def _use_core(self, core: Core) -> None:
        self.core = core
        # The per-frame calls of a session, bound once (no extra hop on the hot path).
        self.push: Callable[[int, str], bool] = core.push
        self.drain: Callable[[int, int], list[str]] = core.drain
        self.disconnect: Callable[[int], None] = core.disconnect
        self.metrics.core_stats = core.stats
        for use in self._core_users:
            use(core)

    def on_core(self, use: Callable[[Core], None]) -> None:
        """Call ``use(core)`` whenever this hub replaces its core (a new epoch, a loaded checkpoint)."""
        self._core_users.append(use)

    @property
    def core_name(self) -> str:
        return str(self.core_module.IMPLEMENTATION)

    @property
    def epoch(self) -> str:
        """``subscribed.epoch``: the broker's."""
        return self.broker.epoch

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the broker (it loads what this node needs), then the flush timer."""
        await self.broker.start(self)
        self._rearm = asyncio.Event()
        self._timer = asyncio.create_task(self._flush_loop(), name="tickfan-flush")
        self._watchdog = asyncio.create_task(self._watch_loop(), name="tickfan-send-watchdog")
        self.ready = True

    async def stop(self) -> None:
        """Close every socket with 1001, wait for them (bounded), stop the timer. Idempotent."""
        self.ready = False
        sessions = list(self.sessions.values())
        for session in sessions:
            session.close(CloseCode.GOING_AWAY)
        deadline = time.monotonic() + self.config.shutdown_timeout_s
        while self.sessions and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for task in (self._timer, self._watchdog):
            if task is not None:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass

    async def close(self) -> None:
        """:meth:`stop`, then stop the broker (pending commits finish, the store closes)."""
        await self.stop()
        await self.broker.stop()

    # --- connections ----------------------------------------------------------------------------

    def register(self, session: Peer) -> int:
        conn_id = int(self.core.connect())
        self.sessions[conn_id] = session
        return conn_id

    def unregister(self, conn_id: int) -> None:
        self.sessions.pop(conn_id, None)

    def admit(self, peer: str) -> bool:
        """Take one of ``peer``'s unauthenticated slots; False (counted) if it holds them all."""
        held = self._unauthenticated.get(peer, 0)
        if held >= self.config.max_unauthenticated_per_peer:
            self.metrics.unauthenticated_refused += 1
            return False
        self._unauthenticated[peer] = held + 1
        self.metrics.unauthenticated += 1
        return True

    def release(self, peer: str) -> None:
        """Give back a slot taken by :meth:`admit` (the socket authenticated or ended)."""
        held = self._unauthenticated.get(peer, 0) - 1
        if held > 0:
            self._unauthenticated[peer] = held
        else:
            self._unauthenticated.pop(peer, None)
        self.metrics.unauthenticated -= 1

    def wake_through(self, wake_ready: Callable[[Core], Sequence[int]]) -> None:
        """In :meth:`dispatch`, take the ready ids with ``wake_ready(core)``: it wakes the
        connections it serves itself (the fast lane's) and returns the others."""
        self._wake_ready = wake_ready

    def dispatch(self, ingest_t: float | None = None) -> None:
        """Wake writers with new frames; close overflowed connections. Never awaits."""
        sessions = self.sessions
        wake_ready = self._wake_ready
        ready = self.core.take_ready() if wake_ready is None else wake_ready(self.core)
        for conn_id in ready:
            session = sessions.get(conn_id)
            if session is not None:
                session.wake(ingest_t)
        overflowed = self.core.take_overflowed(now_ms())
        if overflowed:
            for conn_id in overflowed:
                session = sessions.get(conn_id)
                if session is not None and not session.closing:
                    self._slow_consumer(session, "a reply did not fit its queue, or it stayed over the limit for the grace")

    def _slow_consumer(self, session: Peer, why: str) -> None:
        self.metrics.slow_consumers_disconnected += 1
        _log.info("closing slow consumer: connection %d (%s): %s", session.conn_id, session.channel_name, why)
        session.fail(ErrorCode.SLOW_CONSUMER)

    async def _watch_loop(self) -> None:
        """The send deadline: a socket whose writer completed no frame for ``send_timeout_s``
        while it had frames to send is a slow consumer, however short its queue. Also closes
        the sockets whose queue stayed over the limit for the grace (``dispatch``) when no core
        call came since."""
        timeout = self.config.send_timeout_s
        grace_s = self.config.slow_consumer_grace_ms / 1000.0
        period = min(1.0, timeout / 4, grace_s / 4 if grace_s > 0 else 1.0)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(period)
            self.dispatch()
            now = loop.time()
            for session in list(self.sessions.values()):
                if session.check_stall(now, timeout):
                    self.metrics.send_timeouts += 1
                    self._slow_consumer(session, f"no frame sent for {timeout:g} s")

    # --- market data (the core, for channels and routes) ----------------------------------------

    def symbols(self) -> list[tuple[str, int, int]]:
        """``(name, price_decimals, size_decimals)`` in universe order."""
        return self.core.symbols()

    def subscribe(
        self, conn_id: int, symbols: Sequence[str], mode: str, interval_ms: int | None
    ) -> tuple[list[str], list[str], list[str]]:
        """``core.subscribe`` now: ``(subscribed, unknown, snapshots)``; same errors."""
        return self.core.subscribe(conn_id, symbols, mode, interval_ms, now_ms())

    def subscriptions(self, conn_id: int) -> list[tuple[str, str, int]]:
        """``core.subscriptions``: ``(symbol, mode, interval_ms)`` in universe order."""
        return self.core.subscriptions(conn_id)

    def resume(
        self, conn_id: int, symbol: str, last_seq: int, epoch_matches: bool
    ) -> tuple[list[str], tuple[int, int | None, str] | None]:
        """``core.resume``: the missed ticks (to queue after the ack) or the gap."""
        return self.core.resume(conn_id, symbol, last_seq, epoch_matches)

    def unsubscribe(self, conn_id: int, symbols: Sequence[str]) -> list[str]:
        return self.core.unsubscribe(conn_id, symbols)

    def backfill(self, symbol: str, interval: str, since_ms: int) -> tuple[list[Candle], bool]:
        return self.core.backfill(symbol, interval, since_ms)

    def recent_candles(self, symbol: str, interval: str, limit: int) -> tuple[list[Candle], bool]:
        return self.core.recent_candles(symbol, interval, limit)

    def latest(self, symbol: str) -> tuple[int, int, float, float] | None:
        """``(seq, ts, price, size)`` of the symbol's latest applied tick, or None."""
        return self.core.latest(symbol)

    # --- ticks ----------------------------------------------------------------------------------

    async def ingest(self, ticks: Sequence[Any], idempotency_key: str | None = None) -> int:
        """The one entry point for ticks: :meth:`tickfan.brokers.Broker.ingest`."""
        try:
            return await self.broker.ingest(ticks, idempotency_key)
        except TickRejected as exc:
            if not getattr(exc, "counted", False):  # a cluster broker refused it before any apply
                self.metrics.ticks_refused += len(exc.errors)
            raise

    def apply(self, ticks: Sequence[Any]) -> int:
        """Apply a batch to the core (all or nothing; raises ``TickRejected``) and fan it out.

        The core refuses, among its rules, a tick whose ``ts`` is more than ``max_ts_skew_ms``
        ahead of the server clock (one accepted far-future tick would make every later tick of
        its symbol "earlier than the previous").
        """
        ingest_t = time.perf_counter()
        try:
            applied = int(self.core.ingest(ticks, now_ms()))
        except TickRejected as exc:
            self.metrics.ticks_refused += len(exc.errors)
            exc.counted = True  # type: ignore[attr-defined]
            raise
        self.dispatch(ingest_t)
        deadline = self.core.next_deadline_ms()
        if deadline is not None and (self._armed_deadline is None or deadline < self._armed_deadline):
            self._rearm.set()
        return applied

    def new_epoch(self, epoch: str) -> None:
        """The broker lost its tick state: seq restarts at 1 in a fresh core.

        Every socket is closed with 1012 (market-data clients resubscribe and see the new epoch;
        the per-user channels reload their state, which was lost with the tick state), since
        sessions hold the old core's queue.
        """
        _log.warning("new epoch %s: closing every socket (1012), fresh core", epoch)
        self._replace_core(self._new_core())

    def checkpoint(self) -> Any:
        """``core.checkpoint``: the tick state at this node's log position."""
        return self.core.checkpoint()

    def restore(self, state: Any) -> None:
        """A fresh core loaded from a cluster checkpoint (``core.restore``), replacing this one.

        At start there are no sockets; later (the log was trimmed past this node) every socket is
        closed with 1012, as on a new epoch: clients resubscribe (or resume) on the restored core.
        """
        core = self._new_core()
        core.restore(state)
        if self.sessions:
            _log.warning("loading a checkpoint: closing every socket (1012)")
        self._replace_core(core)

    def _replace_core(self, core: Core) -> None:
        """Close every socket with 1012 and use ``core``. It hands out connection ids above
        every open one, so a closing session never shares an id with a new one."""
        for session in list(self.sessions.values()):
            session.close(CloseCode.SERVICE_RESTART)
        highest = max(self.sessions, default=0)
        while (conn_id := int(core.connect())) < highest:
            core.disconnect(conn_id)
        core.disconnect(conn_id)
        self._use_core(core)
        self._rearm.set()  # the timer re-reads the deadline of the new core

    # --- price alerts in the core (the memory broker arms and fires them here) --------------

    def arm_alert(self, alert_id: int, symbol: str, direction: str, level: float) -> None:
        """``core.add_alert``: ``UnknownSymbol``, ``InvalidArgument``."""
        self.core.add_alert(alert_id, symbol, direction, level)

    def disarm_alert(self, alert_id: int) -> bool:
        return self.core.remove_alert(alert_id)

    def take_fired(self) -> list[tuple[int, str, int, int, float]]:
        """Alerts fired since the last call: ``(alert_id, symbol, seq, ts, price)``."""
        return self.core.take_fired()

    # --- per-user events ------------------------------------------------------------------------

    def listen(self, kind: type, handler: Callable[[str, Any], None]) -> None:
        """Call ``handler(user_id, event)`` for every delivered event of type ``kind``."""
        self._listeners.setdefault(kind, []).append(handler)

    def deliver(self, user_id: str, event: Event) -> None:
        """A per-user event from the broker: to the listening channels, which find the sockets."""
        for handler in self._listeners.get(type(event), ()):
            handler(user_id, event)

    # --- flush timer ----------------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        while True:
            core = self.core  # a new epoch replaces it
            deadline = core.next_deadline_ms()
            self._armed_deadline = deadline
            self._rearm.clear()
            if deadline is None:
                await self._rearm.wait()
                continue
            delay = (deadline - now_ms()) / 1000.0
            if delay > 0:
                try:
                    await asyncio.wait_for(self._rearm.wait(), delay)
                    continue  # an earlier window opened: re-read the deadline
                except asyncio.TimeoutError:
                    pass
            try:
                t = time.perf_counter()
                core.flush(now_ms())
                self.dispatch(t)
            except Exception:  # noqa: BLE001 - the timer must survive anything
                _log.exception("flush failed")
                await asyncio.sleep(0.01)
