"""Performance measurement for ``/ws/performance-metrics`` (protocol section 7).

Every figure is measured, never estimated from configuration: counters are bumped where the
thing happens (a socket write, an ingest, a drop), latencies are recorded per socket write,
and event-loop lag is the observed oversleep of a periodic timer.

Design: all counters and the latency histogram are *cumulative* and cheap to bump on the hot
path (an integer add, a bisect). A sampler task snapshots them every ``sample_interval_s``;
a rate is the difference between the live counters and the snapshot about ``rate_window_s``
old, divided by the real time between them, and latency percentiles come from the difference
of histogram counts over ``latency_window_s``. So every metrics consumer, whatever its
interval, sees figures over the same trailing windows, and a consumer's first message (sent
right after it connects) is already meaningful.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import psutil

__all__ = ["CHANNELS", "TRANSPORTS", "CounterSource", "LatencyHistogram", "PerfMonitor", "percentile"]

CHANNELS: tuple[str, ...] = ("market_data", "bot_status", "notifications", "performance_metrics")
"""The keys of the ``connections`` object, one per ``/ws/*`` channel."""


def _log_bounds(lo_ms: float, hi_ms: float, per_decade: int) -> tuple[float, ...]:
    bounds = []
    k = 0
    while True:
        b = lo_ms * 10 ** (k / per_decade)
        bounds.append(float(f"{b:.6g}"))
        if b >= hi_ms:
            return tuple(bounds)
        k += 1


DEFAULT_BOUNDS_MS = _log_bounds(0.01, 60_000.0, 20)
"""Bucket upper bounds: 10 µs to 60 s, 20 per decade (each bound 12.2% above the previous)."""


def percentile(counts: Sequence[int], bounds: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0 < q <= 1) of a histogram: the upper bound of the bucket holding the
    sample of rank ``ceil(q * n)``, so an overestimate by at most one bucket width (12.2% with
    the default bounds). None when the histogram is empty. Samples above the last bound
    (the overflow bucket, ``counts[-1]``) report the last bound."""
    n = sum(counts)
    if n == 0:
        return None
    rank = max(1, math.ceil(q * n - 1e-9))  # the epsilon keeps 0.99 * 100 at rank 99
    seen = 0
    for i, c in enumerate(counts):
        seen += c
        if seen >= rank:
            return bounds[min(i, len(bounds) - 1)]
    return bounds[-1]


class LatencyHistogram:
    """Fixed-bucket, cumulative latency histogram in milliseconds.

    ``record`` is a bisect and an increment; counts are never reset, so windows are taken by
    subtracting snapshots (:meth:`snapshot`), which needs no lock and no per-window state.
    """

    __slots__ = ("bounds", "_counts")

    def __init__(self, bounds_ms: Sequence[float] = DEFAULT_BOUNDS_MS) -> None:
        if not bounds_ms or list(bounds_ms) != sorted(set(bounds_ms)):
            raise ValueError("bounds must be non-empty and strictly increasing")
        self.bounds = tuple(float(b) for b in bounds_ms)
        self._counts = [0] * (len(self.bounds) + 1)  # last: overflow

    def record(self, ms: float) -> None:
        self._counts[bisect.bisect_left(self.bounds, ms)] += 1

    def snapshot(self) -> tuple[int, ...]:
        return tuple(self._counts)

    @property
    def count(self) -> int:
        return sum(self._counts)

    def percentile(self, q: float, since: Sequence[int] | None = None) -> float | None:
        """Quantile of every sample, or of those recorded after the snapshot ``since``."""
        counts: Sequence[int] = self._counts
        if since is not None:
            counts = [a - b for a, b in zip(self._counts, since, strict=True)]
        return percentile(counts, self.bounds, q)


TRANSPORTS: tuple[str, ...] = ("granian", "fast")
"""The keys of the ``transports`` object: the Granian endpoint and the fast lane."""


class _Snapshot:
    __slots__ = ("t", "ticks_in", "frames_out", "bytes_out", "latency", "transports")

    def __init__(
        self,
        t: float,
        ticks_in: int,
        frames_out: int,
        bytes_out: int,
        latency: tuple[int, ...],
        transports: Mapping[str, Mapping[str, float]],
    ) -> None:
        self.t = t
        self.ticks_in = ticks_in
        self.frames_out = frames_out
        self.bytes_out = bytes_out
        self.latency = latency
        self.transports = transports


class CounterSource(Protocol):
    """Where the server counts (``tickfan.metrics.Metrics``): plain, cumulative attributes."""

    connections: Mapping[str, int]
    slow_consumers_disconnected: int
    core_stats: Callable[[], Mapping[str, int]]
    transport_counters: Callable[[], Mapping[str, Mapping[str, float]]]
    """Per transport of :data:`TRANSPORTS`: cumulative ``connections``, ``frames``, ``bytes``,
    ``slow_consumers``, ``write_s`` (``Metrics.transport_counters``)."""


class PerfMonitor:
    """Windowed views of the server's counters, a loop-lag sampler and the ``metrics`` builder.

    The counting itself happens elsewhere, where the events are (``source``: each transport's
    writer counts frames and bytes, the hub counts slow consumers, the core counts
    ``ticks_in`` and ``dropped`` in ``core_stats()``); ``latency`` is the fan-out histogram the
    writer records into. This class only reads them, so it adds nothing to the hot path.
    """

    def __init__(
        self,
        source: CounterSource,
        *,
        core_name: str,
        latency: LatencyHistogram | None = None,
        sample_interval_s: float = 0.25,
        rate_window_s: float = 1.0,
        latency_window_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        process: psutil.Process | None = None,
    ) -> None:
        if not 0 < sample_interval_s <= rate_window_s <= latency_window_s:
            raise ValueError("need 0 < sample_interval_s <= rate_window_s <= latency_window_s")
        self.source = source
        self.core_name = core_name
        self.latency = latency if latency is not None else LatencyHistogram()
        self.sample_interval_s = sample_interval_s
        self.rate_window_s = rate_window_s
        self.latency_window_s = latency_window_s
        self._clock = clock
        self._started = clock()
        keep = int(latency_window_s / sample_interval_s) + 2
        self._snapshots: collections.deque[_Snapshot] = collections.deque(maxlen=keep)
        self._lags: collections.deque[tuple[float, float]] = collections.deque(maxlen=keep)
        self._process = process or psutil.Process(os.getpid())
        self._process.cpu_percent(None)  # primes psutil: the next call measures since now
        self._cpu_percent: float | None = None
        self._rss_bytes: int | None = None
        self._last_process_sample = self._started  # the first process sample comes 1 s in
        self.sample()

    # --- sampling -----------------------------------------------------------------------

    def _counts(self) -> tuple[int, int]:
        stats = self.source.core_stats()
        return int(stats.get("ticks_in", 0)), int(stats.get("dropped", 0))

    def sample(self, lag_s: float | None = None) -> None:
        """Snapshot the counters (and a loop-lag observation); the sampler task calls this."""
        now = self._clock()
        ticks_in, _ = self._counts()
        transports = self.source.transport_counters()
        frames, nbytes = self._totals(transports)
        self._snapshots.append(_Snapshot(now, ticks_in, frames, nbytes, self.latency.snapshot(), transports))
        if lag_s is not None:
            self._lags.append((now, lag_s))
        if now - self._last_process_sample >= 1.0:
            self._sample_process(now)

    @staticmethod
    def _totals(transports: Mapping[str, Mapping[str, float]]) -> tuple[int, int]:
        """Frames and bytes written to sockets, every transport."""
        return (
            int(sum(t["frames"] for t in transports.values())),
            int(sum(t["bytes"] for t in transports.values())),
        )

    def _sample_process(self, now: float) -> None:
        self._last_process_sample = now
        with self._process.oneshot():
            self._cpu_percent = self._process.cpu_percent(None)
            self._rss_bytes = self._process.memory_info().rss

    async def run(self) -> None:
        """Sample forever, measuring event-loop lag as the oversleep of each period.

        Run it as a task for the server's lifetime; cancel it at shutdown.
        """
        interval = self.sample_interval_s
        while True:
            expected = self._clock() + interval
            await asyncio.sleep(interval)
            self.sample(max(0.0, self._clock() - expected))

    # --- the metrics message ------------------------------------------------------------

    def _baseline(self, now: float, window_s: float) -> _Snapshot:
        """The newest snapshot at least ``window_s`` old, else the oldest one held."""
        chosen = self._snapshots[0]
        for snap in self._snapshots:
            if now - snap.t >= window_s:
                chosen = snap
            else:
                break
        return chosen

    def metrics(self, now_ms: int | None = None) -> dict[str, Any]:
        """The ``metrics`` message (protocol section 7) as of now."""
        now = self._clock()
        src = self.source
        ticks_in, dropped = self._counts()
        transports = src.transport_counters()
        frames_out, bytes_out = self._totals(transports)
        base = self._baseline(now, self.rate_window_s)
        # Within the first sample period of the monitor's life the window is shorter than one
        # period; dividing by the period then avoids extrapolating a few frames to a huge rate.
        dt = max(now - base.t, self.sample_interval_s)
        ticks_rate = (ticks_in - base.ticks_in) / dt
        frames_rate = (frames_out - base.frames_out) / dt
        bytes_rate = (bytes_out - base.bytes_out) / dt
        lat_base = self._baseline(now, self.latency_window_s).latency
        window = [a - b for a, b in zip(self.latency.snapshot(), lat_base, strict=True)]
        p50 = percentile(window, self.latency.bounds, 0.50)
        p99 = percentile(window, self.latency.bounds, 0.99)
        lags = [lag for t, lag in self._lags if now - t <= self.rate_window_s]
        if self._cpu_percent is None:
            self._sample_process(now)
        return {
            "type": "metrics",
            "ts": int(time.time() * 1000) if now_ms is None else now_ms,
            "uptime_s": round(now - self._started, 3),
            "core": self.core_name,
            "connections": {c: int(src.connections.get(c, 0)) for c in CHANNELS},
            "ticks_in_per_s": round(ticks_rate, 3),
            "messages_out_per_s": round(frames_rate, 3),
            "bytes_out_per_s": round(bytes_rate, 3),
            "fanout_latency_ms": {"p50": p50, "p99": p99, "samples": sum(window)},
            "dropped_messages": dropped,
            "slow_consumers_disconnected": src.slow_consumers_disconnected,
            "rss_bytes": self._rss_bytes,
            "cpu_percent": self._cpu_percent,
            "event_loop_lag_ms": round(max(lags) * 1000, 3) if lags else 0.0,
            "transports": {name: self._transport(transports[name], base.transports[name], dt) for name in TRANSPORTS},
        }

    @staticmethod
    def _transport(live: Mapping[str, float], base: Mapping[str, float], dt: float) -> dict[str, Any]:
        """One transport's figures: rates over the trailing window, counts since start."""
        frames = live["frames"] - base["frames"]
        write_s = live["write_s"] - base["write_s"]
        return {
            "connections": int(live["connections"]),
            "messages_out_per_s": round(frames / dt, 3),
            "bytes_out_per_s": round((live["bytes"] - base["bytes"]) / dt, 3),
            "slow_consumers_disconnected": int(live["slow_consumers"]),
            # Only the fast lane times its writes; null without frames or without timing.
            "write_us_per_frame": round(write_s * 1e6 / frames, 3) if frames > 0 and write_s > 0 else None,
        }


