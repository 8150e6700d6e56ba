"""Measurement primitives: histogram percentiles, windowed rates, loop lag, the metrics message."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest

from tickfan.perf import CHANNELS, DEFAULT_BOUNDS_MS, TRANSPORTS, LatencyHistogram, PerfMonitor, percentile


def source(**stats: int) -> Any:
    """What tickfan.metrics.Metrics exposes: cumulative counters and the core's stats."""
    core = {"ticks_in": 0, "dropped": 0, **stats}
    src = SimpleNamespace(
        connections={}, frames_out=0, bytes_out=0, slow_consumers_disconnected=0,
        core=core, core_stats=lambda: core,
        lane={"connections": 0, "frames": 0, "bytes": 0, "slow_consumers": 0, "write_s": 0.0},
    )
    src.transport_counters = lambda: {
        "granian": {
            "connections": src.connections.get("market_data", 0) - src.lane["connections"],
            "frames": src.frames_out, "bytes": src.bytes_out,
            "slow_consumers": src.slow_consumers_disconnected - src.lane["slow_consumers"], "write_s": 0.0,
        },
        "fast": dict(src.lane),
    }
    return src


def write(src: Any, frames: int, nbytes: int) -> None:
    src.frames_out += frames
    src.bytes_out += nbytes


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_bounds_are_log_spaced_and_cover_10us_to_60s() -> None:
    assert DEFAULT_BOUNDS_MS[0] == 0.01 and DEFAULT_BOUNDS_MS[-1] >= 60_000
    ratios = [b / a for a, b in zip(DEFAULT_BOUNDS_MS, DEFAULT_BOUNDS_MS[1:])]
    assert all(1.12 < r < 1.13 for r in ratios)


def test_percentiles_are_upper_bounds_within_one_bucket() -> None:
    h = LatencyHistogram()
    for i in range(1, 1001):
        h.record(i / 100)  # 0.01 .. 10 ms, uniform
    p50 = h.percentile(0.5)
    p99 = h.percentile(0.99)
    assert p50 is not None and p99 is not None
    assert 5.0 <= p50 <= 5.0 * 1.123
    assert 9.9 <= p99 <= 9.9 * 1.123
    assert h.count == 1000


def test_percentile_edges() -> None:
    bounds = (1.0, 2.0, 4.0)
    assert percentile([0, 0, 0, 0], bounds, 0.5) is None
    assert percentile([1, 0, 0, 0], bounds, 0.99) == 1.0
    assert percentile([0, 0, 0, 5], bounds, 0.5) == 4.0  # overflow reports the last bound
    # 100 samples: rank 99 for p99 (no float drift to rank 100)
    assert percentile([99, 1, 0, 0], bounds, 0.99) == 1.0
    assert percentile([98, 2, 0, 0], bounds, 0.99) == 2.0


def test_histogram_windows_by_snapshot_difference() -> None:
    h = LatencyHistogram((1.0, 10.0, 100.0))
    for _ in range(100):
        h.record(50.0)
    snap = h.snapshot()
    for _ in range(10):
        h.record(0.5)
    assert h.percentile(0.5) == 100.0  # everything
    assert h.percentile(0.5, since=snap) == 1.0  # only the recent samples


def test_histogram_rejects_bad_bounds() -> None:
    with pytest.raises(ValueError):
        LatencyHistogram((2.0, 1.0))
    with pytest.raises(ValueError):
        LatencyHistogram(())


def test_rates_are_measured_over_the_trailing_window() -> None:
    clock = FakeClock()
    src = source()
    p = PerfMonitor(src, core_name="python", clock=clock)
    # 4 seconds at 200 ticks/s and 50 frames/s of 100 bytes, sampled every 250 ms.
    for _ in range(16):
        clock.t += 0.25
        src.core["ticks_in"] += 50
        write(src, 12, 1200)
        write(src, 1, 100)
        p.sample(lag_s=0.0)
    m = p.metrics(now_ms=123)
    assert m["ts"] == 123
    assert m["ticks_in_per_s"] == pytest.approx(200.0)
    assert m["messages_out_per_s"] == pytest.approx(52.0)
    assert m["bytes_out_per_s"] == pytest.approx(5200.0)
    assert m["uptime_s"] == pytest.approx(4.0)
    # Then silence: rates fall to zero once the window has passed.
    for _ in range(5):
        clock.t += 0.25
        p.sample(lag_s=0.0)
    m = p.metrics()
    assert m["ticks_in_per_s"] == 0.0 and m["messages_out_per_s"] == 0.0


def test_latency_window_forgets_old_samples() -> None:
    clock = FakeClock()
    p = PerfMonitor(source(), core_name="python", clock=clock, latency_window_s=2.0)
    for _ in range(100):
        p.latency.record(500.0)
    m = p.metrics()
    assert m["fanout_latency_ms"]["samples"] == 100
    assert 500.0 <= m["fanout_latency_ms"]["p50"] <= 500.0 * 1.123
    for _ in range(12):  # 3 s later: the slow samples are out of the window
        clock.t += 0.25
        p.sample()
    p.latency.record(0.2)
    m = p.metrics()
    assert m["fanout_latency_ms"]["samples"] == 1
    assert 0.2 <= m["fanout_latency_ms"]["p99"] <= 0.2 * 1.123
    for _ in range(12):
        clock.t += 0.25
        p.sample()
    assert p.metrics()["fanout_latency_ms"] == {"p50": None, "p99": None, "samples": 0}


def test_counters_connections_and_drops() -> None:
    src = source(ticks_in=7, dropped=5)
    shared = LatencyHistogram()
    p = PerfMonitor(src, core_name="rust", latency=shared)
    src.connections.update(market_data=1, notifications=1)  # the other channels: absent
    src.slow_consumers_disconnected += 1
    shared.record(3.0)
    m = p.metrics()
    assert m["core"] == "rust"
    assert m["connections"] == {
        "market_data": 1, "bot_status": 0, "notifications": 1, "performance_metrics": 0
    }
    assert set(m["connections"]) == set(CHANNELS)
    assert m["dropped_messages"] == 5
    assert m["slow_consumers_disconnected"] == 1
    assert m["fanout_latency_ms"]["samples"] == 1


def test_process_figures_are_real() -> None:
    p = PerfMonitor(source(), core_name="python")
    m = p.metrics()
    assert isinstance(m["rss_bytes"], int) and m["rss_bytes"] > 1_000_000
    assert isinstance(m["cpu_percent"], float) and m["cpu_percent"] >= 0.0
    assert set(m) >= {
        "type", "ts", "uptime_s", "core", "connections", "ticks_in_per_s", "messages_out_per_s",
        "bytes_out_per_s", "fanout_latency_ms", "dropped_messages", "slow_consumers_disconnected",
        "rss_bytes", "cpu_percent", "event_loop_lag_ms",
    }


def test_event_loop_lag_is_observed() -> None:
    async def scenario() -> float:
        p = PerfMonitor(source(), core_name="python", sample_interval_s=0.02)
        task = asyncio.create_task(p.run())
        await asyncio.sleep(0.1)
        time.sleep(0.3)  # block the loop on purpose
        await asyncio.sleep(0.05)
        blocked = p.metrics()["event_loop_lag_ms"]
        task.cancel()
        return blocked

    # The sampler was due at most 20 ms into the 300 ms block, so it overslept >= 280 ms.
    assert asyncio.run(scenario()) >= 250.0


def test_each_transport_has_its_own_figures_and_the_totals_add_them_up() -> None:
    src = source()
    clock = FakeClock()
    p = PerfMonitor(src, core_name="rust", clock=clock)
    src.connections.update(market_data=5)
    src.lane.update(connections=2, slow_consumers=1)
    src.slow_consumers_disconnected = 3
    clock.t += 1.0
    p.sample()
    write(src, 100, 10_000)  # Granian
    src.lane.update(frames=400, bytes=20_000, write_s=0.002)  # the fast lane: 5 us per frame
    clock.t += 1.0
    m = p.metrics()
    assert set(m["transports"]) == set(TRANSPORTS) == {"granian", "fast"}
    granian, fast = m["transports"]["granian"], m["transports"]["fast"]
    assert granian == {
        "connections": 3, "messages_out_per_s": 100.0, "bytes_out_per_s": 10_000.0,
        "slow_consumers_disconnected": 2, "write_us_per_frame": None,
    }
    assert fast == {
        "connections": 2, "messages_out_per_s": 400.0, "bytes_out_per_s": 20_000.0,
        "slow_consumers_disconnected": 1, "write_us_per_frame": 5.0,
    }
    assert m["messages_out_per_s"] == 500.0 and m["bytes_out_per_s"] == 30_000.0
    assert m["slow_consumers_disconnected"] == 3
