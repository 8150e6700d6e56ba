"""``/ws/performance-metrics`` against a real server, both cores: measured figures, intervals."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from tickfan_e2e import Client, Server, barrier, next_ts, recv_json, recv_until

pytestmark = pytest.mark.e2e

FIELDS = {
    "type", "ts", "uptime_s", "core", "connections", "ticks_in_per_s", "messages_out_per_s",
    "bytes_out_per_s", "fanout_latency_ms", "dropped_messages", "slow_consumers_disconnected",
    "rss_bytes", "cpu_percent", "event_loop_lag_ms",
}


def is_metrics(m: dict[str, Any]) -> bool:
    return m.get("type") == "metrics"


def test_first_metrics_right_after_auth_with_every_field(plain_server: Server) -> None:
    async def scenario() -> None:
        ws = await plain_server.authed("ops", "/ws/performance-metrics")
        # the first metrics is queued with auth_success, so it arrives before the pong of a ping
        # sent right after (a first message sent only after the 1000 ms period would not)
        before = await barrier(ws)
        assert before and is_metrics(before[0]), before
        m = before[0]
        assert set(m) >= FIELDS
        assert m["core"] == plain_server.core
        assert set(m["connections"]) == {"market_data", "bot_status", "notifications", "performance_metrics"}
        assert m["connections"]["performance_metrics"] >= 1
        assert isinstance(m["rss_bytes"], int) and m["rss_bytes"] > 10_000_000
        assert isinstance(m["cpu_percent"], (int, float)) and m["cpu_percent"] >= 0
        assert m["event_loop_lag_ms"] >= 0 and m["uptime_s"] > 0
        assert abs(m["ts"] - time.time() * 1000) < 60_000
        assert set(m["fanout_latency_ms"]) >= {"p50", "p99"}
        await ws.close()

    asyncio.run(scenario())


@pytest.mark.single_process  # the figures are the process's own; with 2 workers the sockets may be on the other
def test_rates_latency_and_connections_are_measured(plain_server: Server) -> None:
    """Publish at a steady rate to a tick-mode subscriber; the server's figures must match."""

    async def scenario() -> None:
        md = await plain_server.authed("trader", "/ws/market-data")
        await md.send(json.dumps({"type": "subscribe", "symbols": ["LTC/USD"], "mode": "tick"}))
        await recv_until(md, lambda m: m.get("type") == "subscribed")
        bots = await plain_server.authed("trader", "/ws/bot-status")
        perf = await plain_server.authed("ops", "/ws/performance-metrics")
        await recv_json(perf)
        received = 0
        stop = asyncio.Event()

        async def consume() -> None:
            nonlocal received
            while not stop.is_set():
                try:
                    m = await asyncio.wait_for(md.recv(), 0.2)
                except TimeoutError:
                    continue
                if json.loads(m)["type"] == "market_data":
                    received += 1

        consumer = asyncio.create_task(consume())
        samples: list[tuple[float, dict[str, Any]]] = []
        async with Client(plain_server) as c:
            # 20 ticks every 100 ms (~200/s) for ~3 s; the achieved rate is what we compare with.
            sent = 0
            t0 = time.monotonic()
            next_t = t0
            price = 71.25
            while time.monotonic() - t0 < 3.0:
                batch = []
                for _ in range(20):
                    price = round(price + 0.01, 2)
                    batch.append({"symbol": "LTC/USD", "price": price, "size": 0.5, "ts": next_ts()})
                assert (await c.publish_ticks(batch)).status_code == 202
                sent += 20
                next_t += 0.1
                while True:  # take metrics while waiting for the next batch
                    try:
                        m = await asyncio.wait_for(perf.recv(), max(0.0, next_t - time.monotonic()))
                    except TimeoutError:
                        break
                    samples.append((time.monotonic() - t0, json.loads(m)))
            achieved = sent / (time.monotonic() - t0)
        stop.set()
        await consumer
        assert received > 0
        # Messages taken after the first full second of publishing cover a window of steady traffic.
        steady = [m for t, m in samples if t >= 1.2 and is_metrics(m)]
        assert steady, samples
        last = steady[-1]
        # Bounds the definitions guarantee, whatever the machine's speed: a rate is the counters'
        # difference over a window of at least 1 s (rate_window_s), so it never exceeds what was
        # sent in total; every frame counted is at least a few dozen bytes; and while ticks flow
        # the windows are not all empty.
        for m in steady:
            assert 0 <= m["ticks_in_per_s"] <= sent, (m["ticks_in_per_s"], sent)
            assert m["bytes_out_per_s"] >= 20 * m["messages_out_per_s"]
        assert any(m["ticks_in_per_s"] > 0 and m["messages_out_per_s"] > 0 for m in steady), steady
        assert achieved > 0
        lat = last["fanout_latency_ms"]
        assert lat["p50"] is not None and lat["p99"] is not None
        assert 0 < lat["p50"] <= lat["p99"] < 60_000
        assert last["connections"]["market_data"] >= 1
        assert last["connections"]["bot_status"] >= 1
        assert last["connections"]["performance_metrics"] >= 1
        await bots.close()
        await md.close()
        # After the sockets close and the publishing stops, the figures follow.
        m, _ = await recv_until(
            perf, lambda m: is_metrics(m) and m["connections"]["bot_status"] == last["connections"]["bot_status"] - 1
        )
        m, _ = await recv_until(perf, lambda m: is_metrics(m) and m["ticks_in_per_s"] == 0)
        await perf.close()

    asyncio.run(scenario())


def test_set_interval_and_ping(plain_server: Server) -> None:
    async def scenario() -> None:
        ws = await plain_server.authed("ops", "/ws/performance-metrics")
        await recv_json(ws)
        for bad in (249, 60_001, "fast", None):
            await ws.send(json.dumps({"type": "set_interval", "interval_ms": bad}))
            err, _ = await recv_until(ws, lambda m: m.get("type") == "error")
            assert err["code"] == "invalid_message"
        await ws.send(json.dumps({"type": "ping", "ts": 12.5}))
        pong, _ = await recv_until(ws, lambda m: m.get("type") == "pong")
        assert pong["ts"] == 12.5 and isinstance(pong["server_ts"], int)
        await ws.send(json.dumps({"type": "set_interval", "interval_ms": 250}))
        await barrier(ws)
        stamps = [(await recv_until(ws, is_metrics))[0]["ts"] for _ in range(5)]
        gaps = [b - a for a, b in zip(stamps, stamps[1:])]
        # each message is scheduled interval_ms after the previous one: never sooner; and not
        # every gap is the 1000 ms default's (a default period would make each gap >= 1000)
        assert all(g >= 249 for g in gaps) and min(gaps) < 1000, gaps
        # A long interval: after the switch, no metrics arrive before the pong of a later ping.
        await ws.send(json.dumps({"type": "set_interval", "interval_ms": 60_000}))
        await barrier(ws)
        await asyncio.sleep(0.6)
        assert await barrier(ws) == []
        await ws.close()

    asyncio.run(scenario())


@pytest.mark.single_process  # the figures are the process's own; with 2 workers the sockets may be on the other
def test_drops_and_slow_consumer_disconnects_are_counted(fresh_server: Callable[..., Server]) -> None:
    # Grace 0: the first tick that does not fit closes at once (the rule without a grace).
    server = fresh_server(env={"TICKFAN_MAX_QUEUE_FRAMES": "20", "TICKFAN_SLOW_CONSUMER_GRACE_MS": "0"})

    async def scenario() -> None:
        perf = await server.authed("ops", "/ws/performance-metrics")
        first = await recv_json(perf)
        assert first["dropped_messages"] == 0 and first["slow_consumers_disconnected"] == 0
        md = await server.authed("slowpoke", "/ws/market-data")
        await md.send(json.dumps({"type": "subscribe", "symbols": ["DOT/USD"], "mode": "tick"}))
        await recv_until(md, lambda m: m.get("type") == "subscribed")
        # One ingest queues 100 frames at once for a queue that holds 20: it overflows.
        ticks = [{"symbol": "DOT/USD", "price": 6.5 + i / 1000, "size": 1.0, "ts": next_ts()} for i in range(100)]
        async with Client(server) as c:
            assert (await c.publish_ticks(ticks)).status_code == 202
        err, _ = await recv_until(md, lambda m: m.get("type") == "error")
        assert err["code"] == "slow_consumer"
        m, _ = await recv_until(perf, lambda m: is_metrics(m) and m["slow_consumers_disconnected"] == 1)
        assert m["dropped_messages"] >= 80
        await md.close()
        await perf.close()

    asyncio.run(scenario())
