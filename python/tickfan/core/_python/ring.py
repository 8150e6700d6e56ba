"""The resume ring: each symbol's recent ticks, so a reconnecting client can get exactly the
ticks after its ``last_seq`` (tick-level resume).

A tick is held while it is among the symbol's last ``resume_max_ticks`` and its ``ts`` is less
than ``resume_window_ms`` before the latest tick's ``ts``. Eviction runs on tick time, not the
server clock, so every node that applies the same ticks holds the same ring.
"""

from __future__ import annotations

from collections import deque
from itertools import islice

EVICTED = "evicted"
EPOCH = "epoch"


class Ring:
    """Contiguous recent ticks ``base ..`` of one symbol: ``(ts, price units, size units)``."""

    __slots__ = ("base", "ticks")

    def __init__(self) -> None:
        self.base = 1
        self.ticks: deque[tuple[int, int, int]] = deque()

    def push(self, seq: int, ts: int, pu: int, su: int, window_ms: int, max_ticks: int) -> None:
        """Append tick ``seq`` (always the symbol's next), then evict by count and age."""
        ticks = self.ticks
        if not ticks:
            self.base = seq
        ticks.append((ts, pu, su))
        while ticks and (len(ticks) > max_ticks or ts - ticks[0][0] >= window_ms):
            ticks.popleft()
            self.base += 1

    def range(self) -> tuple[int, int] | None:
        """``(first, last)`` seq held, or None before the first tick."""
        if not self.ticks:
            return None
        return (self.base, self.base + len(self.ticks) - 1)

    def slice(self, start: int, end: int) -> list[tuple[int, int, int]]:
        """Ticks ``start ..= end`` (all held: the caller checked the range)."""
        return list(islice(self.ticks, start - self.base, end - self.base + 1))
