"""The asyncio side of the core: one per worker process, owned by the app's lifespan.

The :class:`Hub` owns the sans-I/O ``Core`` and everything that makes it run in an event loop:

* the registry of sessions by ``conn_id`` (every socket of every channel has one);
* :meth:`ingest`, the single entry point for ticks (``POST /api/ticks`` and the simulator),
  which also refuses ticks stamped too far ahead of the server clock (``--max-ts-skew-ms``);
* :meth:`dispatch`, called after every core call that can queue frames: it wakes the writers of
  connections whose queue went non-empty (``core.take_ready()``) and closes the ones that
  overflowed (``core.take_overflowed()`` -> ``slow_consumer``, 1013). It never awaits a socket,
  so a slow or dead socket cannot stall the fan-out;
* one flush timer task, sleeping until ``core.next_deadline_ms()`` and woken early when an
  ingest opens an earlier window;
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
        )
        self.metrics.core_stats = self.core.stats
        self.epoch = secrets.token_hex(8)
        self.started_at = time.time()
        self.sessions: dict[int, Session] = {}
        self.ready = False
        self._rearm = asyncio.Event()
        self._armed_deadline: int | None = None
        self._timer: asyncio.Task[None] | None = None
        self.after_ingest: list[Callable[[], None]] = []
        """Called after every applied ingest, fan-out done (price alerts: ``take_fired``)."""

    @property
    def core_name(self) -> str:
        return str(self.core_module.IMPLEMENTATION)

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._rearm = asyncio.Event()
        self._timer = asyncio.create_task(self._flush_loop(), name="tickfan-flush")
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
        if self._timer is not None:
            self._timer.cancel()
            try:
                await self._timer
            except asyncio.CancelledError:
                pass

    # --- sessions -------------------------------------------------------------------------------

    def register(self, session: Session) -> int:
        conn_id = int(self.core.connect())
        self.sessions[conn_id] = session
        return conn_id

    def unregister(self, conn_id: int) -> None:
        self.sessions.pop(conn_id, None)

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
                    self.metrics.slow_consumers_disconnected += 1
                    _log.info("closing slow consumer: connection %d (%s)", conn_id, session.channel.name)
                    session.fail(ErrorCode.SLOW_CONSUMER)

    # --- ticks ----------------------------------------------------------------------------------

    def ingest(self, ticks: Sequence[tuple[str, Any, Any, Any]]) -> int:
        """Apply ticks (all or nothing; raises ``TickRejected``) and fan them out.

        Before the core's rules, a tick whose ``ts`` is more than ``max_ts_skew_ms`` ahead of the
        server clock is refused here (the core bounds ``ts`` only by 2**63 - 1, and one accepted
        far-future tick would make every later tick of its symbol "earlier than the previous").
        """
        ingest_t = time.perf_counter()
        now = now_ms()
        ahead = self._ahead_of_clock(ticks, now)
        try:
            if ahead:
                self._refuse(ticks, ahead, now)
            applied = int(self.core.ingest(ticks, now))
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

    def _ahead_of_clock(self, ticks: Sequence[Any], now: int) -> dict[int, str]:
        """``{index: message}`` of the ticks whose int ``ts`` is past ``now + max_ts_skew_ms``."""
        skew = self.config.max_ts_skew_ms
        limit = now + skew
        ahead: dict[int, str] = {}
        for index, tick in enumerate(ticks):
            if (type(tick) is tuple or type(tick) is list) and len(tick) == 4:
                ts = tick[3]
                if type(ts) is int and ts > limit:
                    ahead[index] = f"ts {ts} is more than {skew} ms ahead of the server clock ({now})"
        return ahead

    def _refuse(self, ticks: Sequence[Any], ahead: dict[int, str], now: int) -> None:
        """Raise ``TickRejected`` for the whole call: ``ahead``'s messages merged with the core's
        for the other items (each item checked against the state after the earlier valid ones,
        as the core does; the masked items are invalid, so the core applies nothing)."""
        masked = [None if index in ahead else tick for index, tick in enumerate(ticks)]
        try:
            self.core.ingest(masked, now)
        except TickRejected as exc:
            errors = dict(exc.errors)
        else:  # pragma: no cover - a None item is always refused by the core
            raise AssertionError("the core accepted a masked tick")
        errors.update(ahead)
        raise TickRejected(f"{len(errors)} of {len(ticks)} ticks rejected", sorted(errors.items()))

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
