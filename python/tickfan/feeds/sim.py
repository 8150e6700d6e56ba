"""The simulated feed: random-walk ticks for every symbol of the universe.

Each symbol ticks at its ``rate_per_s`` (times ``--sim-speed``); the default universe has
BTC/USD at 250 ticks/s, so ``auto`` mode batches it out of the box. Prices walk in integer units
of the symbol's price decimals (so every price is exact for the core), sizes are random units.
Ticks go through :meth:`tickfan.hub.Hub.ingest`, the same path as ``POST /api/ticks``.

The feed wakes every 10 ms and emits, per symbol, the ticks due since the last wake-up (a
fractional carry keeps the long-run rate exact), in one ingest call.

A refused simulated tick (a publisher's tick on the same symbol, stamped later than the
simulator's clock, came first) is dropped alone: the other ticks of the call are ingested
again without it, so one symbol never holds up another. Refusals are counted
(``tickfan_ticks_refused_total``) and logged as one WARNING line per minute at most, without
a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

from tickfan.config import SymbolSpec
from tickfan.errors import TickRejected
from tickfan.hub import Hub, now_ms

__all__ = ["SimFeed"]

_log = logging.getLogger("tickfan.feeds.sim")
_STEP_S = 0.010
_LOG_EVERY_S = 60.0


class _Walk:
    __slots__ = ("symbol", "units", "step", "pd", "sd", "rate", "carry", "size_lo", "size_hi")

    def __init__(self, spec: SymbolSpec, speed: float) -> None:
        self.symbol = spec.symbol
        self.pd = 10.0**spec.price_decimals
        self.sd = 10.0**spec.size_decimals
        self.units = max(1, round(spec.price * self.pd))
        # about 1 basis point per tick, at least one unit
        self.step = max(1, self.units // 10_000)
        self.rate = spec.rate_per_s * speed
        self.carry = 0.0
        self.size_hi = max(1, round(2.0 * self.sd))
        self.size_lo = max(1, self.size_hi // 1000)


class SimFeed:
    """Random-walk tick generator driving a :class:`Hub`."""

    def __init__(self, hub: Hub, universe: tuple[SymbolSpec, ...], *, speed: float = 1.0, seed: int = 0) -> None:
        self.hub = hub
        self.rng = random.Random(seed or None)
        self.walks = [_Walk(spec, speed) for spec in universe if spec.rate_per_s > 0]
        self.last_ts = 0
        self.refused = 0
        """Simulated ticks refused since the last log line."""
        self._next_log = 0.0
        self._next_error_log = 0.0
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="tickfan-sim")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    def step(self, elapsed_s: float) -> list[tuple[str, float, float, int]]:
        """The ticks due after ``elapsed_s`` seconds (also used by tests)."""
        rng = self.rng
        ts = max(now_ms(), self.last_ts)
        self.last_ts = ts
        ticks: list[tuple[str, float, float, int]] = []
        for walk in self.walks:
            walk.carry += walk.rate * elapsed_s
            count = int(walk.carry)
            walk.carry -= count
            for _ in range(count):
                walk.units = max(1, walk.units + rng.choice((-walk.step, 0, walk.step)))
                size_units = rng.randint(walk.size_lo, walk.size_hi)
                ticks.append((walk.symbol, walk.units / walk.pd, size_units / walk.sd, ts))
        return ticks

    async def emit(self, ticks: list[tuple[str, float, float, int]]) -> int:
        """Ingest ``ticks``, dropping the ones the hub refuses; return how many were applied."""
        try:
            return await self.hub.ingest(ticks)
        except TickRejected as exc:
            refused = dict(exc.errors)
        self._note_refused(ticks, refused)
        rest = [tick for index, tick in enumerate(ticks) if index not in refused]
        if not rest:
            return 0
        try:
            return await self.hub.ingest(rest)  # valid alone: each was checked after earlier valid ones
        except TickRejected as exc:  # pragma: no cover - only if the core's rules change
            self._note_refused(rest, dict(exc.errors))
            return 0

    def _note_refused(self, ticks: list[tuple[str, float, float, int]], refused: dict[int, str]) -> None:
        self.refused += len(refused)
        now = time.monotonic()
        if now >= self._next_log:
            index, message = min(refused.items())
            _log.warning(
                "%d simulated ticks refused since the last report (e.g. %s: %s); the other symbols' ticks go on",
                self.refused, ticks[index][0], message,
            )
            self.refused = 0
            self._next_log = now + _LOG_EVERY_S

    async def _run(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(_STEP_S)
            now = time.monotonic()
            elapsed, last = now - last, now
            ticks = self.step(min(elapsed, 1.0))
            if not ticks:
                continue
            try:
                await self.emit(ticks)
            except Exception:  # noqa: BLE001 - a bug must not stop the feed; logged once a minute
                if now >= self._next_error_log:
                    _log.exception("simulated ticks failed")
                    self._next_error_log = now + _LOG_EVERY_S
