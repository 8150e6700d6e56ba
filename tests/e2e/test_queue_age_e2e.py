"""The queue-age rule (``--degrade-after-ms``, 500 ms by default), on both transports (the
``server`` fixture): a client that reads slowly but steadily, so its queue never empties yet
stays far below ``--high-water-frames`` (1,000), is degraded (``degraded``, then conflated
ticks), and once it reads fast again recovers with a ``gap`` that covers exactly what
conflation may have skipped: every seq is received once, in order, or reported.

Several MB lie between the server's writer and a slow reader (kernel and transport buffers),
so the test first fills them with batch frames of another symbol (``batch`` is never
degraded; one frame per burst in the queue) while the reader reads steadily (~100 ticks/s,
~0.1 MB/s of batches), and watches the bytes written: once they stop following the bursts,
the writer is blocked. Then ticks come at ~150/s, above the read rate (the queue never
empties) and with a few hundred frames in total nowhere near the high-water mark, for 1.5 s
(the age rule needs 0.5 s); then the reader reads fast until the recovery's ``gap``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

import httpx
import pytest

from tickfan_e2e import OVER_SYMBOL, TEST_SYMBOLS, Server, now_ms, recv_json, recv_until, run

# Memory broker only: the fill is detected from /metrics, which shows one worker of a
# multi-worker server, not necessarily the reader's.
pytestmark = [pytest.mark.e2e, pytest.mark.memory_broker_only]

SYMBOL = TEST_SYMBOLS[2]
HIGH_WATER = 1000  # the server's default --high-water-frames


FILL_TICKS = 10_000
FILL_BYTES = 100_000  # about one batch frame of FILL_TICKS ticks


def bytes_written(server: Server) -> float:
    """Bytes written to sockets, both transports."""
    text = httpx.get(server.http + "/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("tickfan_transport_bytes_out_total{")
    )


def test_a_steady_slow_reader_is_degraded_by_queue_age_and_recovers_with_a_gap(server: Server) -> None:
    async def scenario() -> tuple[list[dict[str, Any]], int, int, int]:
        # As Server.stalled (16 KiB receive buffer, max_queue=1), without keepalive pings: their
        # pongs would wait behind the backlog this reader builds on purpose.
        port = int(server.ws().split(":")[2].split("/")[0])
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        sock.connect(("127.0.0.1", port))
        sock.setblocking(False)
        ws = await server.authed("queue-age-reader", sock=sock, max_queue=1, max_size=None, ping_interval=None)
        await ws.send(json.dumps({"type": "subscribe", "symbols": [SYMBOL], "mode": "tick"}))
        await recv_until(ws, lambda m: m["type"] == "subscribed")
        await ws.send(json.dumps({"type": "subscribe", "symbols": [OVER_SYMBOL], "mode": "batch"}))
        await recv_until(ws, lambda m: m["type"] == "subscribed")
        dropped = await asyncio.to_thread(server.metric, "tickfan_frames_dropped_total")
        closes = await asyncio.to_thread(server.metric, "tickfan_slow_consumers_disconnected_total")
        seen: list[dict[str, Any]] = []
        fast = asyncio.Event()
        price = [0]

        async def reader() -> None:
            while True:
                message = await recv_json(ws, 60)
                seen.append(message)
                if not fast.is_set():  # slow but steady: ~100 ticks/s, ~0.1 MB/s of batches
                    await asyncio.sleep(1.0 if message["type"] == "market_data_batch" else 0.01)

        async def publish(n: int) -> None:
            if task.done():
                task.result()  # the reader failed: its exception
            ts = now_ms()
            ticks = []
            for _ in range(n):
                price[0] += 1
                ticks.append({"symbol": SYMBOL, "price": 100.0 + price[0] % 100, "size": 1.0, "ts": ts})
            r = await server.apublish(ticks)
            assert r.status_code == 202, r.text

        async def filler_burst() -> None:
            ts = now_ms()
            ticks = [{"symbol": OVER_SYMBOL, "price": 10.0 + (i % 100) / 100, "size": 1.0, "ts": ts} for i in range(FILL_TICKS)]
            r = await server.apublish(ticks)
            assert r.status_code == 202, r.text

        task = asyncio.create_task(reader())
        try:
            # 1. Fill what lies between the writer and the reader (kernel buffers, and the
            # transport's) with batch frames of another symbol (~0.1 MB each, one frame each in
            # the queue, never degraded), one burst at a time, until the bytes written stop
            # following the bytes offered: the writer is blocked from then on.
            deadline = time.monotonic() + 120
            # Behind after two bursts in a row: one can be a scheduling hiccup.
            written = await asyncio.to_thread(bytes_written, server)
            behind = 0
            while behind < 2:
                assert time.monotonic() < deadline, "the server's writer never fell behind"
                await filler_burst()
                await asyncio.sleep(0.05)
                now_written = await asyncio.to_thread(bytes_written, server)
                behind = behind + 1 if now_written - written < FILL_BYTES / 2 else 0
                written = now_written
            offered = 0
            # 2. Steady: ~150 ticks/s against ~100 read for 1.5 s (the age rule needs 0.5 s).
            # Bound on the queue's frames: three filler frames (the last two bursts and one not
            # yet written) plus this phase's ticks.
            bound = 3
            t_end = time.monotonic() + 1.5
            while time.monotonic() < t_end:
                await publish(3)
                bound += 3
                await asyncio.sleep(0.02)
            # 3. Read fast; keep ticks coming (~50/s) until the recovery's gap arrives.
            fast.set()
            t_end = time.monotonic() + 90
            while not any(m["type"] == "gap" for m in seen):
                assert time.monotonic() < t_end, f"no degraded/gap; last: {seen[-3:]}"
                await publish(1)
                await asyncio.sleep(0.02)
            # 4. Back in tick mode: the next tick arrives as itself.
            ts = now_ms()
            r = await server.apublish([{"symbol": SYMBOL, "price": 7.0, "size": 1.0, "ts": ts}])
            assert r.status_code == 202
            t_end = time.monotonic() + 30
            while not any(m["type"] == "market_data" and m["ts"] == ts and m["price"] == 7.0 for m in seen):
                assert time.monotonic() < t_end, "the live tick after the recovery never arrived"
                await asyncio.sleep(0.02)
        finally:
            task.cancel()
        assert await asyncio.to_thread(server.metric, "tickfan_frames_dropped_total") == dropped  # never over the limit
        assert await asyncio.to_thread(server.metric, "tickfan_slow_consumers_disconnected_total") == closes
        await ws.close()
        return seen, bound, price[0], ts

    seen, bound, published, live_ts = run(scenario(), timeout=240)
    assert bound < HIGH_WATER  # the queue stayed below the high-water mark: the age rule acted
    seen = [m for m in seen if m.get("symbol", SYMBOL) == SYMBOL]  # the filler's frames aside
    kinds = [m["type"] for m in seen]
    assert kinds.count("degraded") == 1, kinds
    i_degraded = kinds.index("degraded")
    i_gap = kinds.index("gap")
    assert seen[i_degraded] == {"type": "degraded", "symbols": [SYMBOL]}
    before = [m["seq"] for m in seen[:i_degraded] if m["type"] == "market_data"]
    conflated = [m["seq"] for m in seen[i_degraded:i_gap] if m["type"] == "market_data"]
    after = [m["seq"] for m in seen[i_gap:] if m["type"] == "market_data"]
    assert before and conflated and after
    gap = seen[i_gap]
    # The gap starts right after the last tick queued before the decision and ends at the
    # seq current at the recovery: it covers every tick conflation may have skipped.
    assert gap == {"type": "gap", "symbol": SYMBOL, "from_seq": before[-1] + 1, "to_seq": gap["to_seq"], "reason": "evicted"}
    assert conflated[-1] <= gap["to_seq"]
    assert len(conflated) < gap["to_seq"] - gap["from_seq"] + 1  # conflation skipped ticks
    # Nothing lost silently, nothing twice: tick mode before and after, contiguous around the gap.
    assert before == list(range(before[0], before[-1] + 1))
    assert conflated == sorted(set(conflated))
    assert after == list(range(gap["to_seq"] + 1, gap["to_seq"] + 1 + len(after)))
    assert seen[-1]["type"] != "gap" and any(m.get("ts") == live_ts for m in seen[i_gap:])
    assert published > 0
