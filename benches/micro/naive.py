"""The naive baseline: what a typical first implementation of the core does.

One ``json.dumps`` of a dict per tick *per subscriber*, appended to a plain list per
connection; batches re-encoded per subscriber at flush; candles as a list of dicts per symbol
and interval, scanned from the start for a backfill. Correct for the benchmarked operations,
no limits, no validation beyond the obvious: a yardstick, not a core.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

INTERVALS = {"1s": 1000, "1m": 60_000, "5m": 300_000, "1h": 3_600_000}
CAPACITY = {"1s": 3600, "1m": 1440, "5m": 2016, "1h": 720}


class NaiveCore:
    def __init__(self, symbols: list[tuple[str, int, int]], **_: Any) -> None:
        self.decimals = {name: (pd, sd) for name, pd, sd in symbols}
        self.seq: dict[str, int] = defaultdict(int)
        self.queues: dict[int, list[str]] = {}
        self.subs: dict[str, dict[int, str]] = defaultdict(dict)  # symbol -> conn -> mode
        self.pending: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
        self.candles: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        self.next_id = 1

    def connect(self) -> int:
        conn = self.next_id
        self.next_id += 1
        self.queues[conn] = []
        return conn

    def subscribe(self, conn: int, symbols: list[str], mode: str = "tick", *_: Any) -> None:
        for symbol in symbols:
            self.subs[symbol][conn] = mode

    def ingest(self, ticks: list[tuple[str, float, float, int]], now_ms: int) -> int:
        for symbol, price, size, ts in ticks:
            self.seq[symbol] += 1
            tick = {"type": "market_data", "symbol": symbol, "seq": self.seq[symbol], "ts": ts,
                    "price": price, "size": size}
            self._candles(symbol, price, size, ts)
            for conn, mode in self.subs[symbol].items():
                if mode == "tick":
                    self.queues[conn].append(json.dumps(tick, separators=(",", ":")))
                else:
                    self.pending[(symbol, conn)].append(tick)
        return len(ticks)

    def _candles(self, symbol: str, price: float, size: float, ts: int) -> None:
        for name, length in INTERVALS.items():
            candles = self.candles[(symbol, name)]
            open_ms = ts - ts % length
            if candles and candles[-1]["t"] == open_ms:
                c = candles[-1]
                c["h"] = max(c["h"], price)
                c["l"] = min(c["l"], price)
                c["c"] = price
                c["v"] += size
            else:
                candles.append({"t": open_ms, "o": price, "h": price, "l": price, "c": price,
                                "v": size})
                if len(candles) > CAPACITY[name]:
                    candles.pop(0)

    def flush(self, now_ms: int) -> None:
        for (symbol, conn), ticks in self.pending.items():
            if not ticks:
                continue
            pd, sd = self.decimals[symbol]
            ts = [t["ts"] for t in ticks]
            prices = [round(t["price"] * 10**pd) for t in ticks]
            frame = {
                "type": "market_data_batch", "symbol": symbol, "seq": ticks[0]["seq"],
                "count": len(ticks), "price_decimals": pd, "size_decimals": sd,
                "ts": [ts[0]] + [b - a for a, b in zip(ts, ts[1:])],
                "price": [prices[0]] + [b - a for a, b in zip(prices, prices[1:])],
                "size": [round(t["size"] * 10**sd) for t in ticks],
            }
            self.queues[conn].append(json.dumps(frame, separators=(",", ":")))
            ticks.clear()

    def drain(self, conn: int, max_frames: int = 1024) -> list[str]:
        queue = self.queues[conn]
        out, self.queues[conn] = queue[:max_frames], queue[max_frames:]
        return out

    def backfill(self, symbol: str, interval: str, since_ms: int) -> tuple[list[tuple], bool]:
        start = since_ms - since_ms % INTERVALS[interval]
        out = [
            (c["t"], c["o"], c["h"], c["l"], c["c"], c["v"])
            for c in self.candles[(symbol, interval)]
            if c["t"] >= start
        ]
        return out, True
