"""Slow consumers over the hard queue limit, on both transports (the ``server`` fixture: every
backend on Granian, and the fast lane): market data past the limit is dropped and reported by
an exact ``gap`` if the client drains in time, and the socket is closed with 1013 only if it
stays over the limit for ``--slow-consumer-grace-ms`` (the default, 5 s, here). A healthy client
keeps a contiguous stream meanwhile.

The queue is pushed over its limit by one publish of more ticks than it holds (1 MiB in the
fixture, about 9,900 ``market_data`` frames): the core queues a whole ingest in one call, so no
writer can drain in between, whatever the client does.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from websockets.asyncio.client import connect

from test_socket_abuse_e2e import _small_buffer_socket
from tickfan_e2e import OVER_SYMBOL, Server, Watcher, barrier, expect_close, now_ms, recv_json, recv_until, run, wait_metric

pytestmark = pytest.mark.e2e

BURST = 12_000


async def burst(server: Server, n: int = BURST) -> None:
    ts = now_ms()
    ticks = [{"symbol": OVER_SYMBOL, "price": 10.0 + (i % 100) / 100, "size": 1.0, "ts": ts} for i in range(n)]
    r = await server.apublish(ticks)
    assert r.status_code == 202, r.text


def test_over_the_limit_then_drained_in_time_continues_after_an_exact_gap(server: Server) -> None:
    async def scenario() -> tuple[list[dict[str, Any]], int, dict[str, Any]]:
        async with Watcher(server) as watcher:
            ws = await server.authed("over-limit-reader", max_size=None)
            await ws.send(json.dumps({"type": "subscribe", "symbols": [OVER_SYMBOL], "mode": "tick"}))
            await recv_until(ws, lambda m: m["type"] == "subscribed")
            before = [m for m in await barrier(ws) if m["type"] == "market_data"]  # the snapshot, if any
            last_before = before[-1]["seq"] if before else 0
            dropped = await asyncio.to_thread(server.metric, "tickfan_frames_dropped_total")
            closes = await asyncio.to_thread(server.metric, "tickfan_slow_consumers_disconnected_total")
            await burst(server)
            # Read it all (the client keeps up from here): ticks, then the gap.
            gap, seen = await recv_until(ws, lambda m: m["type"] == "gap", timeout=30)
            # Still open, and back to live ticks: the next tick arrives (a degraded socket may
            # get a `degraded` and, after its recovery, another gap first).
            ts = now_ms()
            r = await server.apublish([{"symbol": OVER_SYMBOL, "price": 9.0, "size": 1.0, "ts": ts}])
            assert r.status_code == 202
            live, between = await recv_until(ws, lambda m: m["type"] == "market_data" and m["ts"] == ts, timeout=30)
            assert all(m["type"] in ("degraded", "gap", "market_data") for m in between), between
            if server.broker != "redis-w2":  # per worker: /metrics may come from the other one
                assert await asyncio.to_thread(server.metric, "tickfan_frames_dropped_total") > dropped
                assert await asyncio.to_thread(server.metric, "tickfan_slow_consumers_disconnected_total") == closes
            await ws.close()
            await watcher.finish()
            watcher.assert_contiguous()
            return seen + [gap], last_before, live

    seen, last_before, live = run(scenario(), timeout=120)
    gap = seen[-1]
    ticks = [m["seq"] for m in seen if m["type"] == "market_data"]
    first = last_before + 1
    # What arrived is the start of the burst, in order, once each; the gap is exactly the rest.
    assert ticks and ticks == list(range(first, first + len(ticks)))
    assert len(ticks) < BURST
    assert gap == {"type": "gap", "symbol": OVER_SYMBOL, "from_seq": ticks[-1] + 1, "to_seq": first + BURST - 1, "reason": "evicted"}
    assert live["seq"] == first + BURST


@pytest.mark.single_process  # it sees the server's decision in /metrics, which is per worker
def test_a_client_that_stays_over_the_limit_is_closed_1013_after_the_grace(server: Server) -> None:
    """In ``batch`` mode, which is never degraded: a ``tick`` subscriber that stopped reading
    is degraded at the high-water mark, and then conflation (a frame a second) keeps it under
    the limit until the send deadline closes it (the rule the grace does not replace)."""
    port = server.fast_port or server.port

    async def scenario() -> tuple[int | None, list[dict[str, Any]], int]:
        async with Watcher(server) as watcher:
            # A 16 KiB receive buffer and max_queue=1: once it stops reading, the server's writer
            # stalls after the kernel buffers fill, so its queue stays over the limit.
            stalled = await connect(server.ws(), sock=_small_buffer_socket(port), max_queue=1, max_size=None, open_timeout=10)
            await stalled.send(json.dumps({"type": "auth", "token": server.token("over-limit-stalled")}))
            assert (await recv_json(stalled))["type"] == "auth_success"
            await stalled.send(json.dumps({"type": "subscribe", "symbols": [OVER_SYMBOL], "mode": "batch"}))
            await recv_until(stalled, lambda m: m["type"] == "subscribed")
            closes = await asyncio.to_thread(server.metric, "tickfan_slow_consumers_disconnected_total")
            timeouts = await asyncio.to_thread(server.metric, "tickfan_send_timeouts_total")
            # Bursts (each a batch frame of ~0.4 MB) until the decision: the first ones are
            # written out into the kernel's buffers (a few MB); then the queue goes over the
            # limit and stays there for the grace.
            bursts = 0
            deadline = time.monotonic() + 60
            while await asyncio.to_thread(server.metric, "tickfan_slow_consumers_disconnected_total") == closes:
                assert time.monotonic() < deadline, "the slow consumer was never closed"
                await burst(server, 40_000)
                bursts += 1
                await asyncio.sleep(0.2)
            code, seen = await expect_close(stalled, timeout=30)  # reading again, after the decision
            assert await asyncio.to_thread(server.metric, "tickfan_send_timeouts_total") == timeouts  # the grace rule, not the send deadline
            await watcher.finish()
            watcher.assert_contiguous()
            return code, seen, bursts

    code, seen, bursts = run(scenario(), timeout=150)
    assert code == 1013
    assert seen[-1]["type"] == "error" and seen[-1]["code"] == "slow_consumer"
    batches = [(m["seq"], m["count"]) for m in seen if m["type"] == "market_data_batch"]
    starts = [seq for seq, _ in batches]
    assert starts == sorted(set(starts))  # what it read before the close: in order, once each
    assert sum(count for _, count in batches) < bursts * 40_000  # some of it was dropped
