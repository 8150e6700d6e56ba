"""Subscriptions and per-symbol state: who receives each tick, and how.

A tick's ``market_data`` frame is encoded at most once (lazily, then cached on the symbol) and
the same ``str`` is queued to every tick-mode and auto-tick subscriber, returned as a
snapshot, and sent by conflate groups.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tickfan.core._python import frame as frames
from tickfan.core._python.candles import INTERVALS, CandleRing
from tickfan.core._python.rate import Rate
from tickfan.core._python.ring import Ring
from tickfan.core._python.universe import POW10

if TYPE_CHECKING:
    from tickfan.core._python.batch import Group
    from tickfan.core._python.queue import Conn

TICK = "tick"
BATCH = "batch"
CONFLATE = "conflate"
AUTO = "auto"
MODES = (TICK, BATCH, CONFLATE, AUTO)
DEFAULT_INTERVAL_MS = {TICK: 0, BATCH: 50, CONFLATE: 1000, AUTO: 50}


class Sub:
    """One connection's subscription to one symbol."""

    __slots__ = ("conn", "mode", "interval_ms", "next_seq", "received")

    def __init__(self, conn: Conn, mode: str, interval_ms: int, next_seq: int, received: int):
        self.conn = conn
        self.mode = mode
        self.interval_ms = interval_ms
        # batch and auto: the first seq not yet sent in a batch.
        self.next_seq = next_seq
        # conflate: the newest seq this connection has been sent (a snapshot counts).
        self.received = received


class SymbolState:
    """Everything the core keeps per symbol."""

    __slots__ = (
        "index", "name", "price_decimals", "size_decimals", "price_p", "size_p",
        "seq", "last_ts", "latest", "frame", "rings", "rate", "hf",
        "tick_subs", "auto_subs", "direct", "batch_groups", "conflate_groups", "n_batch",
        "hist_base", "hist_ts", "hist_price", "hist_size", "ring",
    )

    def __init__(self, index: int, spec: tuple[str, int, int], capacity: dict[str, int]):
        self.index = index
        self.name, self.price_decimals, self.size_decimals = spec
        self.price_p = POW10[self.price_decimals]
        self.size_p = POW10[self.size_decimals]
        self.seq = 0
        self.last_ts = -1
        # (seq, ts, price units, size units) of the latest tick.
        self.latest: tuple[int, int, int, int] | None = None
        # The latest tick's market_data frame, once encoded.
        self.frame: str | None = None
        self.rings = [CandleRing(length, capacity[name]) for name, length in INTERVALS.items()]
        self.rate = Rate()
        self.hf = False
        self.tick_subs: dict[int, Sub] = {}
        self.auto_subs: dict[int, Sub] = {}
        # Connections that get each tick's market_data, by ascending id; None when stale.
        self.direct: list[Conn] | None = None
        self.batch_groups: dict[int, Group] = {}
        self.conflate_groups: dict[int, Group] = {}
        self.n_batch = 0
        # Ticks batch subscribers may still need: seq hist_base + i is entry i.
        self.hist_base = 1
        self.hist_ts: list[int] = []
        self.hist_price: list[int] = []
        self.hist_size: list[int] = []
        self.ring = Ring()

    def tick_frame(self) -> str:
        """The latest tick's ``market_data`` frame (encoded once)."""
        text = self.frame
        if text is None:
            seq, ts, pu, su = self.latest  # type: ignore[misc]
            text = self.frame = frames.market_data(
                self.name, seq, ts, pu, self.price_decimals, su, self.size_decimals
            )
        return text

    def receivers(self) -> list[Conn]:
        """Tick-mode connections, and auto ones while not high-frequency, by ascending id."""
        direct = self.direct
        if direct is None:
            subs = list(self.tick_subs.values())
            if not self.hf:
                subs.extend(self.auto_subs.values())
            subs.sort(key=lambda sub: sub.conn.id)
            direct = self.direct = [sub.conn for sub in subs]
        return direct

    def batching(self) -> bool:
        """Whether some subscriber takes this symbol in batches now (ticks must be kept)."""
        return self.n_batch > 0 or (self.hf and bool(self.auto_subs))

    def record(self, seq: int, ts: int, pu: int, su: int) -> None:
        """Keep one tick for batch subscribers."""
        if self.hist_base + len(self.hist_ts) != seq:
            # Nobody batched the ticks in between: every batch subscriber starts at seq or later.
            self.hist_base = seq
            self.hist_ts.clear()
            self.hist_price.clear()
            self.hist_size.clear()
        self.hist_ts.append(ts)
        self.hist_price.append(pu)
        self.hist_size.append(su)

    def batch_frame(self, start: int, end: int, cache: dict[tuple[int, int, int], str]) -> str:
        """The ``market_data_batch`` frame of seq ``start .. end - 1``, once per call (cache)."""
        key = (self.index, start, end)
        text = cache.get(key)
        if text is None:
            a, b = start - self.hist_base, end - self.hist_base
            text = cache[key] = frames.market_data_batch(
                self.name, start, self.price_decimals, self.size_decimals,
                self.hist_ts[a:b], self.hist_price[a:b], self.hist_size[a:b],
            )
        return text

    def trim(self) -> None:
        """Forget the ticks every batch subscriber has been sent."""
        need = None
        for group in self.batch_groups.values():
            for sub in group.members.values():
                if sub.mode == BATCH or self.hf:
                    if need is None or sub.next_seq < need:
                        need = sub.next_seq
        if need is None:
            need = self.hist_base + len(self.hist_ts)
        drop = need - self.hist_base
        if drop > 0:
            del self.hist_ts[:drop], self.hist_price[:drop], self.hist_size[:drop]
            self.hist_base = need
