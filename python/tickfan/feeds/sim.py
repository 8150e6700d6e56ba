"""The simulated feed: random-walk ticks for every symbol of the universe.

Each symbol ticks at its ``rate_per_s`` (times ``--sim-speed``); the default universe has
BTC/USD at 250 ticks/s, so ``auto`` mode batches it out of the box. Prices walk in integer units
of the symbol's price decimals (so every price is exact for the core), sizes are random units.
Ticks go through :meth:`tickfan.hub.Hub.ingest`, the same path as ``POST /api/ticks``.

The feed wakes every 10 ms and emits, per symbol, the ticks due since the last wake-up (a
fractional carry keeps the long-run rate exact), in one ingest call.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

from tickfan.config import SymbolSpec
from tickfan.hub import Hub, now_ms

__all__ = ["SimFeed"]

_log = logging.getLogger("tickfan.feeds.sim")
_STEP_S = 0.010


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
                await self.hub.ingest(ticks)
            except Exception:  # noqa: BLE001 - a publisher's tick may have raced ours; keep going
                _log.exception("simulated ticks rejected")
