"""Price alerts: per symbol, a min-heap of ``above`` levels and a max-heap of ``below`` levels.

A tick pops exactly the alerts it fires: O(log n + k). Removed alerts stay in their heap until
they surface (each arming has its own token, so a stale entry never fires a re-armed id); the
heaps are rebuilt when stale entries outnumber armed ones.
"""

from __future__ import annotations

from heapq import heapify, heappop, heappush
from itertools import count

Fired = tuple[int, str, int, int, float]


class Alerts:
    __slots__ = ("armed", "above", "below", "fired", "tokens", "stale")

    def __init__(self, n_symbols: int) -> None:
        # alert id -> (token, symbol index, direction, level)
        self.armed: dict[int, tuple[int, int, str, float]] = {}
        # Per symbol: above: (level, token, id); below: (-level, token, id).
        self.above: list[list[tuple[float, int, int]]] = [[] for _ in range(n_symbols)]
        self.below: list[list[tuple[float, int, int]]] = [[] for _ in range(n_symbols)]
        self.fired: list[Fired] = []
        self.tokens = count(1)
        self.stale = 0

    def add(self, alert_id: int, symbol: int, direction: str, level: float) -> None:
        token = next(self.tokens)
        self.armed[alert_id] = (token, symbol, direction, level)
        if direction == "above":
            heappush(self.above[symbol], (level, token, alert_id))
        else:
            heappush(self.below[symbol], (-level, token, alert_id))

    def remove(self, alert_id: int) -> bool:
        if self.armed.pop(alert_id, None) is None:
            return False
        self.stale += 1
        if self.stale > len(self.armed) + 1024:
            self._rebuild()
        return True

    def watched(self, symbol: int) -> bool:
        return bool(self.above[symbol] or self.below[symbol])

    def check(self, symbol: int, name: str, seq: int, ts: int, price: float) -> None:
        """Fire (and disarm) every alert of ``symbol`` this tick reaches, by alert id."""
        hits: list[int] = []
        above = self.above[symbol]
        while above and above[0][0] <= price:
            _, token, alert_id = heappop(above)
            if self._take(alert_id, token):
                hits.append(alert_id)
        below = self.below[symbol]
        while below and -below[0][0] >= price:
            _, token, alert_id = heappop(below)
            if self._take(alert_id, token):
                hits.append(alert_id)
        if hits:
            hits.sort()
            self.fired.extend((alert_id, name, seq, ts, price) for alert_id in hits)

    def _take(self, alert_id: int, token: int) -> bool:
        entry = self.armed.get(alert_id)
        if entry is None or entry[0] != token:
            self.stale -= 1
            return False
        del self.armed[alert_id]
        return True

    def take_fired(self) -> list[Fired]:
        fired, self.fired = self.fired, []
        return fired

    def _rebuild(self) -> None:
        for heaps in (self.above, self.below):
            for heap in heaps:
                heap[:] = [e for e in heap if self.armed.get(e[2], (None,))[0] == e[1]]
                heapify(heap)
        self.stale = 0
