"""Abusive sockets against a real server: each ends with its documented answer while a healthy
client on the same server keeps a contiguous stream."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tickfan_e2e import TEST_SYMBOLS, Server, Watcher, expect_close, now_ms, recv_json, recv_until, run, wait_metric, write_universe

pytestmark = pytest.mark.e2e


def test_a_sustained_flooder_is_closed_1008_and_a_healthy_client_is_unaffected(fresh_server: Callable[..., Server]) -> None:
    server = fresh_server("--rate-limit-close-s", "1")

    async def flood(ws: ClientConnection, fatal: asyncio.Event) -> int:
        sent = 0
        try:
            while not fatal.is_set():
                await ws.send('{"type":"ping","ts":%d}' % sent)
                sent += 1
                if sent % 50 == 0:
                    await asyncio.sleep(0)  # let the reader see the server's answers
        except ConnectionClosed:
            pass
        return sent

    async def read(ws: ClientConnection, fatal: asyncio.Event) -> tuple[int | None, list[dict[str, Any]]]:
        seen: list[dict[str, Any]] = []
        try:
            while True:
                m = json.loads(await asyncio.wait_for(ws.recv(), 30))
                seen.append(m)
                if sum(1 for x in seen if x.get("code") == "rate_limited") == 2:
                    fatal.set()  # the second in one flood is the closing one: stop sending
        except ConnectionClosed as exc:
            fatal.set()
            return (exc.rcvd.code if exc.rcvd is not None else None), seen

    async def scenario() -> tuple[int, int | None, list[dict[str, Any]]]:
        async with Watcher(server) as watcher:
            flooder = await server.authed("flooder")
            fatal = asyncio.Event()
            sent, (code, seen) = await asyncio.gather(flood(flooder, fatal), read(flooder, fatal))
            await watcher.finish()
            watcher.assert_contiguous()
            return sent, code, seen

    sent, code, seen = run(scenario(), timeout=90)
    errors = [m for m in seen if m["type"] == "error"]
    assert code == 1008
    assert [e["code"] for e in errors] == ["rate_limited", "rate_limited"]
    assert seen[-1] == errors[-1] and "closed" in str(errors[-1]["error"])
    assert sent > 100 and len([m for m in seen if m["type"] == "pong"]) < sent
    if server.broker != "redis-w2":  # per worker: /metrics may come from the other one
        assert server.metric("tickfan_rate_limit_closes_total") == 1


def _small_buffer_socket(port: int) -> socket.socket:
    """A client socket with a 16 KiB receive buffer (set before connect: no autotuning), so a
    client that stops reading stalls the server's writer after a few MB, not tens."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


def test_a_client_that_stops_reading_gets_slow_consumer_and_1013_when_it_reads_again(
    fresh_server: Callable[..., Server], tmp_path: Path
) -> None:
    server = fresh_server(
        "--symbols", str(write_universe(tmp_path / "symbols.json")),
        "--send-timeout-s", "1", "--shutdown-timeout-s", "15",
    )  # fmt: skip
    base = now_ms() - 4000 * 1000
    for symbol in TEST_SYMBOLS[1:]:  # history for ~150 KB backfill answers
        ticks = [{"symbol": symbol, "price": 100.0 + (i % 50), "size": 1.0, "ts": base + i * 1000} for i in range(3600)]
        assert server.publish(ticks).status_code == 202

    async def scenario() -> tuple[int | None, list[dict[str, Any]]]:
        async with Watcher(server) as watcher:
            # max_queue=1: websockets stops reading from its socket while a message waits unread.
            stalled = await connect(server.ws(), sock=_small_buffer_socket(server.port), max_queue=1, max_size=None, open_timeout=10)
            await stalled.send(json.dumps({"type": "auth", "token": server.token("stalled")}))
            request = {"type": "backfill_request", "symbols": TEST_SYMBOLS[1:], "since": 0, "interval": "1s"}
            for _ in range(12):  # ~5 MB of answers, under the 8 MiB queue: only the send deadline can act
                await stalled.send(json.dumps(request))
            await wait_metric(server, "tickfan_send_timeouts_total", lambda v: v == 1)
            code, seen = await expect_close(stalled, timeout=20)  # reading again, after the decision
            await watcher.finish()
            watcher.assert_contiguous()
            return code, seen

    code, seen = run(scenario(), timeout=120)
    assert code == 1013
    assert seen[0]["type"] == "auth_success"
    assert seen[-1]["type"] == "error" and seen[-1]["code"] == "slow_consumer"
    assert all(m["type"] == "backfill" for m in seen[1:-1]) and len(seen) - 2 < 36  # the backlog was dropped
    if server.broker != "redis-w2":  # per worker: /metrics may come from the other one
        assert server.metric("tickfan_slow_consumers_disconnected_total") == 1


@pytest.mark.single_process  # the limit is per worker process (docs/protocol.md)
def test_unauthenticated_sockets_are_limited_per_address(fresh_server: Callable[..., Server]) -> None:
    server = fresh_server("--max-unauthenticated-per-peer", "3", "--auth-timeout-ms", "30000")

    async def refused() -> tuple[int | None, str]:
        ws = await server.connect()
        try:
            await asyncio.wait_for(ws.recv(), 10)
        except ConnectionClosed as exc:
            assert exc.rcvd is not None, "closed without a close frame"
            return exc.rcvd.code, exc.rcvd.reason
        raise AssertionError("a socket over the limit was served")

    async def scenario() -> None:
        authed = await server.authed("already-in")  # authenticated sockets do not count
        waiting = [await server.connect() for _ in range(3)]
        await wait_metric(server, "tickfan_unauthenticated_connections", lambda v: v == 3)
        assert await refused() == (1013, "too many unauthenticated connections from this address")
        assert await refused() == (1013, "too many unauthenticated connections from this address")
        # Authenticating frees a slot...
        await waiting[0].send(json.dumps({"type": "auth", "token": server.token("late")}))
        assert (await recv_json(waiting[0]))["type"] == "auth_success"
        fourth = await server.connect()  # takes it
        assert await refused() == (1013, "too many unauthenticated connections from this address")
        await fourth.send(json.dumps({"type": "auth", "token": server.token("fourth")}))
        assert (await recv_json(fourth))["type"] == "auth_success"
        # ... and so does going away.
        await waiting[1].close()
        await wait_metric(server, "tickfan_unauthenticated_connections", lambda v: v == 1)
        fifth = await server.authed("fifth")
        extra = [await server.connect() for _ in range(2)]  # back to three
        assert await refused() == (1013, "too many unauthenticated connections from this address")
        for ws in (authed, waiting[0], fourth):  # the authenticated ones were never affected
            await ws.send(json.dumps({"type": "ping", "ts": 9}))
            assert (await recv_until(ws, lambda m: m["type"] == "pong"))[0]["ts"] == 9
        for ws in (authed, waiting[0], waiting[2], fourth, fifth, *extra):
            await ws.close()

    run(scenario(), timeout=60)
    assert server.metric("tickfan_unauthenticated_refused_total") == 4
