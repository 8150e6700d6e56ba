"""Server metrics: plain counters on the hot path, Prometheus text at scrape time.

Per-frame counting uses plain ``int`` attributes (a ``prometheus_client.Counter.inc`` takes a
lock, about a microsecond, too much per frame); a custom collector turns them into metric
families when ``/metrics`` is scraped. The fan-out latency (ingest to socket write, observed once
per writer wake-up, not per frame, which in tick mode with many sockets is once per frame) is
counted the same way: a bisect and an increment into fixed buckets, exported as the
``tickfan_fanout_latency_seconds`` histogram at scrape time (``Histogram.observe`` takes a
mutex; it was ~1.3% of the server's samples in the S2 load scenario), plus a small ring of
recent samples from which :meth:`Metrics.latency_quantiles` gives p50/p99.
"""

from __future__ import annotations

import bisect
import collections
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from tickfan.perf import LatencyHistogram

__all__ = ["Metrics", "CHANNEL_KEYS", "CONTENT_TYPE"]

CHANNEL_KEYS = ("market_data", "bot_status", "notifications", "performance_metrics")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def _transports(m: Metrics) -> Iterator[Any]:
    """Per transport: the Granian endpoint (``granian``) and the fast lane (``fast``)."""
    t = m.transport_counters()
    g, f = t["granian"], t["fast"]
    rows = [
        ("connections", GaugeMetricFamily, "Open market-data sockets", "connections"),
        ("frames_out", CounterMetricFamily, "Frames written", "frames"),
        ("bytes_out", CounterMetricFamily, "Bytes written", "bytes"),
        ("slow_consumers", CounterMetricFamily, "Sockets closed with slow_consumer (1013)", "slow_consumers"),
        ("panics", CounterMetricFamily, "Lane panics (connection closed 1011)", "panics"),
        ("write_seconds", CounterMetricFamily, "Time spent writing bursts of frames (fast lane)", "write_s"),
        ("write_bursts", CounterMetricFamily, "Bursts written, one flush each (fast lane)", "bursts"),
    ]
    for name, family, doc, key in rows:
        metric = family(f"tickfan_transport_{name}", doc, labels=["transport"])
        metric.add_metric(["granian"], g[key])
        metric.add_metric(["fast"], f[key])
        yield metric


class Metrics:
    """Counters of one worker process."""

    def __init__(self) -> None:
        self.connections: dict[str, int] = dict.fromkeys(CHANNEL_KEYS, 0)
        self.frames_out = 0
        self.bytes_out = 0
        self.slow_consumers_disconnected = 0
        self.send_timeouts = 0
        self.send_failures = 0
        self.messages_in = 0
        self.ticks_refused = 0
        self.rate_limit_closes = 0
        self.unauthenticated = 0  # open sockets not (yet) authenticated
        self.unauthenticated_refused = 0
        self.core_stats: Callable[[], dict[str, int]] = dict
        self.fast_lane: Any = None
        """The worker's ``tickfan._core.FastLane`` when ``--fast-port`` is set (its ``stats()``)."""
        self.fast_lane_connections = 0
        self.fast_lane_panics = 0
        self.fast_lane_slow_consumers = 0
        self.broker_stats: Callable[[], dict[str, float]] = dict
        """A cluster broker's counters (``RedisBroker.stats``); empty for the memory broker."""
        self.registry = CollectorRegistry(auto_describe=True)
        self.fanout_counts = [0] * (len(_LATENCY_BUCKETS) + 1)  # per bucket, the last is +Inf
        self.fanout_sum = 0.0
        self._recent: collections.deque[float] = collections.deque(maxlen=2048)
        self.fanout_ms = LatencyHistogram()
        """The same samples in ms, windowed by the performance-metrics channel (tickfan.perf)."""
        self.registry.register(_Collector(self))

    def transport_counters(self) -> dict[str, dict[str, float]]:
        """Per transport (``granian``, ``fast``), cumulative: ``connections`` (open market-data
        sockets), ``frames``, ``bytes``, ``slow_consumers``, ``panics``, ``write_s`` and ``bursts``
        (the time spent writing and the writes: measured by the fast lane only, 0 on Granian)."""
        lane = self.fast_lane.stats() if self.fast_lane is not None else {}
        fast_slow = self.fast_lane_slow_consumers
        return {
            "granian": {
                "connections": self.connections.get("market_data", 0) - self.fast_lane_connections,
                "frames": self.frames_out,
                "bytes": self.bytes_out,
                "slow_consumers": self.slow_consumers_disconnected - fast_slow,
                "panics": 0,
                "write_s": 0.0,
                "bursts": 0,
            },
            "fast": {
                "connections": self.fast_lane_connections,
                "frames": lane.get("frames", 0),
                "bytes": lane.get("bytes", 0),
                "slow_consumers": fast_slow,
                "panics": self.fast_lane_panics,
                "write_s": lane.get("write_ns", 0) / 1e9,
                "bursts": lane.get("bursts", 0),
            },
        }

    def connection_opened(self, channel: str) -> None:
        self.connections[channel] = self.connections.get(channel, 0) + 1

    def connection_closed(self, channel: str) -> None:
        self.connections[channel] = self.connections.get(channel, 0) - 1

    def observe_fanout(self, seconds: float) -> None:
        self.fanout_counts[bisect.bisect_left(_LATENCY_BUCKETS, seconds)] += 1
        self.fanout_sum += seconds
        self._recent.append(seconds)
        self.fanout_ms.record(seconds * 1000.0)

    def latency_quantiles(self) -> dict[str, float]:
        """``{"p50", "p99"}`` in milliseconds over the recent samples (0.0 when none)."""
        if not self._recent:
            return {"p50": 0.0, "p99": 0.0}
        ordered = sorted(self._recent)
        last = len(ordered) - 1
        return {"p50": ordered[last // 2] * 1000.0, "p99": ordered[(last * 99) // 100] * 1000.0}

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Collector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._m
        conns = GaugeMetricFamily("tickfan_connections", "Open WebSocket connections", labels=["channel"])
        for channel, count in m.connections.items():
            conns.add_metric([channel], count)
        yield conns
        stats = m.core_stats()
        yield CounterMetricFamily("tickfan_ticks_in", "Ticks ingested", value=stats.get("ticks_in", 0))
        yield CounterMetricFamily("tickfan_frames_out", "Frames written to sockets", value=m.frames_out)
        yield from _transports(m)
        yield CounterMetricFamily("tickfan_bytes_out", "Bytes written to sockets", value=m.bytes_out)
        yield CounterMetricFamily("tickfan_frames_dropped", "Frames dropped by full outbound queues", value=stats.get("dropped", 0))
        yield CounterMetricFamily(
            "tickfan_slow_consumers_disconnected", "Sockets closed with slow_consumer (1013)", value=m.slow_consumers_disconnected
        )
        yield CounterMetricFamily(
            "tickfan_send_timeouts", "Slow consumers found by the send deadline (no frame sent for send_timeout_s)", value=m.send_timeouts
        )
        yield CounterMetricFamily("tickfan_send_failures", "Socket sends that failed (peer gone mid-send)", value=m.send_failures)
        yield CounterMetricFamily("tickfan_ticks_refused", "Ticks refused at ingest (any source)", value=m.ticks_refused)
        yield CounterMetricFamily("tickfan_messages_in", "Inbound WebSocket messages", value=m.messages_in)
        yield GaugeMetricFamily("tickfan_unauthenticated_connections", "Open WebSocket connections not yet authenticated", value=m.unauthenticated)
        yield CounterMetricFamily(
            "tickfan_unauthenticated_refused",
            "WebSockets refused (1013) because their address already held max_unauthenticated_per_peer",
            value=m.unauthenticated_refused,
        )
        yield CounterMetricFamily(
            "tickfan_rate_limit_closes", "Sockets closed for flooding past the rate limit (rate_limited, 1008)", value=m.rate_limit_closes
        )
        cumulative, buckets = 0, []
        for bound, count in zip((*_LATENCY_BUCKETS, float("inf")), m.fanout_counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        yield HistogramMetricFamily(
            "tickfan_fanout_latency_seconds",
            "Time from tick ingest to the first socket write of the frames it produced",
            buckets=buckets,
            sum_value=m.fanout_sum,
        )
        yield GaugeMetricFamily("tickfan_subscriptions", "Active symbol subscriptions", value=stats.get("subscriptions", 0))
        broker = m.broker_stats()
        if broker:
            yield GaugeMetricFamily("tickfan_broker_ready", "1 when the broker is reachable and this node caught up", value=broker["ready"])
            yield CounterMetricFamily("tickfan_broker_reconnects", "Reconnections of the log reader", value=broker["reconnects"])
            yield CounterMetricFamily("tickfan_broker_unavailable", "Broker calls that timed out or failed (503s)", value=broker["unavailable"])
            yield CounterMetricFamily("tickfan_broker_entries_applied", "Log entries applied by this node", value=broker["entries_applied"])
            yield GaugeMetricFamily(
                "tickfan_broker_apply_delay_seconds",
                "Of the last log entry applied: from its append in Redis (the entry id's clock) to its apply here",
                value=broker["apply_delay_s"],
            )
            yield GaugeMetricFamily("tickfan_broker_feed_leader", "1 while this node holds the simulated feed's lease", value=broker["leader"])
            yield CounterMetricFamily("tickfan_broker_checkpoints_written", "Checkpoints of the tick state this node wrote (as the lease holder)", value=broker["checkpoints_written"])
            yield GaugeMetricFamily("tickfan_broker_checkpoint_age_seconds", "Since this node last wrote a checkpoint (0: never)", value=broker["checkpoint_age_s"])
