"""The asyncio side of the core: one per worker process, owned by the app's lifespan.

The :class:`Hub` owns the sans-I/O ``Core`` and everything that makes it run in an event loop:

* the registry of sessions by ``conn_id`` (every socket of every channel has one);
* :meth:`ingest`, the single entry point for ticks (``POST /api/ticks`` and the simulator);
  the core it builds refuses ticks stamped too far ahead of the server clock
  (``--max-ts-skew-ms``);
* :meth:`dispatch`, called after every core call that can queue frames: it wakes the writers of
  connections whose queue went non-empty (``core.take_ready()``) and closes the ones that
  overflowed (``core.take_overflowed()`` -> ``slow_consumer``, 1013). It never awaits a socket,
  so a slow or dead socket cannot stall the fan-out;
* one flush timer task, sleeping until ``core.next_deadline_ms()`` and woken early when an
  ingest opens an earlier window;
* one send watchdog task: a socket whose writer has completed no frame for ``send_timeout_s``
  while holding frames (a peer that stopped reading) is closed as a slow consumer too;
* the ``epoch``: a fresh random string per hub, since ``seq`` numbering restarts with the
  in-memory state.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from tickfan.auth import Verifier
from tickfan.config import Config
from tickfan.errors import TickRejected
from tickfan.metrics import Metrics
from tickfan.protocol import CloseCode, ErrorCode

if TYPE_CHECKING:
    from tickfan.session import Session

__all__ = ["Hub", "now_ms"]

_log = logging.getLogger("tickfan.hub")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Hub:
    """Core + sessions + flush timer of one worker."""

    def __init__(self, config: Config, core_module: ModuleType, verifier: Verifier, metrics: Metrics | None = None) -> None:
        self.config = config
        self.core_module = core_module
        self.verifier = verifier
        self.metrics = metrics or Metrics()
        self.universe = config.universe()
        self.core: Any = core_module.Core(
            [(s.symbol, s.price_decimals, s.size_decimals) for s in self.universe],
            high_freq_per_s=config.high_freq_per_s,
            candle_capacity=config.candle_capacity() or None,
            max_queue_frames=config.max_queue_frames,
            max_queue_bytes=config.max_queue_bytes,
            max_symbols_per_connection=config.max_symbols_per_connection,
            max_ts_skew_ms=config.max_ts_skew_ms,
            resume_window_ms=config.resume_window_ms,
            resume_max_ticks=config.resume_max_ticks,
            high_water_frames=config.high_water(),
            low_water_frames=config.low_water_frames if config.high_water() is not None else 0,
            degrade_interval_ms=config.degrade_interval_ms,
        )
        self.metrics.core_stats = self.core.stats
        self.epoch = secrets.token_hex(8)
        self.started_at = time.time()
        self.sessions: dict[int, Session] = {}
        self._unauthenticated: dict[str, int] = {}  # remote address -> open unauthenticated sockets
        self.ready = False
        self._rearm = asyncio.Event()
        self._armed_deadline: int | None = None
        self._timer: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self.after_ingest: list[Callable[[], None]] = []
        """Called after every applied ingest, fan-out done (price alerts: ``take_fired``)."""

    @property
    def core_name(self) -> str:
        return str(self.core_module.IMPLEMENTATION)

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._rearm = asyncio.Event()
        self._timer = asyncio.create_task(self._flush_loop(), name="tickfan-flush")
        self._watchdog = asyncio.create_task(self._watch_loop(), name="tickfan-send-watchdog")
        self.ready = True

    async def stop(self) -> None:
        """Close every socket with 1001, wait for them (bounded), stop the timer."""
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

    # --- sessions -------------------------------------------------------------------------------

    def register(self, session: Session) -> int:
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

    def dispatch(self, ingest_t: float | None = None) -> None:
        """Wake writers with new frames; close overflowed connections. Never awaits."""
        sessions = self.sessions
        for conn_id in self.core.take_ready():
            session = sessions.get(conn_id)
            if session is not None:
                session.wake(ingest_t)
        overflowed = self.core.take_overflowed()
        if overflowed:
            for conn_id in overflowed:
                session = sessions.get(conn_id)
                if session is not None and not session.closing:
                    self._slow_consumer(session, "its queue overflowed")

    def _slow_consumer(self, session: Session, why: str) -> None:
        self.metrics.slow_consumers_disconnected += 1
        _log.info("closing slow consumer: connection %d (%s): %s", session.conn_id, session.channel.name, why)
        session.fail(ErrorCode.SLOW_CONSUMER)

    async def _watch_loop(self) -> None:
        """The send deadline: a socket whose writer completed no frame for ``send_timeout_s``
        while it had frames to send is a slow consumer, however short its queue."""
        timeout = self.config.send_timeout_s
        period = min(1.0, timeout / 4)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(period)
            now = loop.time()
            for session in list(self.sessions.values()):
                if session.check_stall(now, timeout):
                    self.metrics.send_timeouts += 1
                    self._slow_consumer(session, f"no frame sent for {timeout:g} s")

    # --- ticks ----------------------------------------------------------------------------------

    def ingest(self, ticks: Sequence[tuple[str, Any, Any, Any]]) -> int:
        """Apply ticks (all or nothing; raises ``TickRejected``) and fan them out.

        The core refuses, among its rules, a tick whose ``ts`` is more than ``max_ts_skew_ms``
        ahead of the server clock (one accepted far-future tick would make every later tick of
        its symbol "earlier than the previous").
        """
        ingest_t = time.perf_counter()
        try:
            applied = int(self.core.ingest(ticks, now_ms()))
        except TickRejected as exc:
            self.metrics.ticks_refused += len(exc.errors)
            raise
        self.dispatch(ingest_t)
        for hook in self.after_ingest:
            hook()
        deadline = self.core.next_deadline_ms()
        if deadline is not None and (self._armed_deadline is None or deadline < self._armed_deadline):
            self._rearm.set()
        return applied

    async def _flush_loop(self) -> None:
        core = self.core
        while True:
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
