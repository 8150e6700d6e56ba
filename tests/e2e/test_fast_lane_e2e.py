"""The fast lane (``--fast-port``) against a real server: the same frames as the Granian
endpoint, its refusals at start, its idle memory, its metrics. The protocol suites themselves
run over the lane through the ``server`` fixture's ``rust-fast`` parameter."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from websockets.asyncio.client import ClientConnection, connect

from redis_server import RedisServer
from tickfan_e2e import (
    SECRET, TEST_SYMBOLS, Server, expect_close, free_port, now_ms, recv_json, recv_until, run, write_universe,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def fast_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("fast-lane")
    srv = Server(
        "rust", data_dir,
        "--feed", "none",
        "--symbols", str(write_universe(data_dir / "symbols.json")),
        "--log-level", "warning",
        transport="fast",
    ).start()  # fmt: skip
    yield srv
    srv.stop()


def _transport_metric(server: Server, name: str, transport: str) -> float:
    text = httpx.get(server.http + "/metrics", timeout=5).text
    for prefix in (f'tickfan_transport_{name}{{transport="{transport}"}} ', f'tickfan_transport_{name}_total{{transport="{transport}"}} '):
        for line in text.splitlines():
            if line.startswith(prefix):
                return float(line[len(prefix):])
    raise KeyError(name)


async def _authed(url: str, server: Server, sub: str) -> ClientConnection:
    ws = await connect(url, open_timeout=10)
    await ws.send(json.dumps({"type": "auth", "token": server.token(sub)}))
    reply = await recv_json(ws)
    assert reply["type"] == "auth_success", reply
    return ws


async def _texts(ws: ClientConnection, until: Any, timeout: float = 10.0) -> list[str]:
    """Raw text frames until ``until(parsed frame)`` holds for one (included)."""
    out: list[str] = []
    while True:
        raw = await asyncio.wait_for(ws.recv(), timeout)
        assert isinstance(raw, str)
        out.append(raw)
        if until(json.loads(raw)):
            return out


def test_both_transports_send_byte_identical_frames(fast_server: Server) -> None:
    granian_url = f"ws://127.0.0.1:{fast_server.port}/ws/market-data"
    fast_url = fast_server.ws("/ws/market-data")
    assert fast_url != granian_url
    frames_before = _transport_metric(fast_server, "frames_out", "fast")
    ts = now_ms()
    assert fast_server.publish([{"symbol": "SOL/USD", "price": 150.25, "size": 2.0, "ts": ts}]).status_code == 202
    requests = [
        {"type": "subscribe", "symbols": ["SOL/USD", "NOPE/USD"], "mode": "tick"},
        {"type": "subscribe", "symbols": ["DOT/USD"], "mode": "batch", "interval_ms": 50},
        {"type": "ping", "ts": 123},
        {"type": "backfill_request", "symbols": ["SOL/USD"], "interval": "1m", "since": 0},
        {"type": "bogus"},
    ]

    async def one(url: str, ticks_seen: asyncio.Event, go: asyncio.Event) -> list[str]:
        async with await _authed(url, fast_server, "alice") as ws:
            texts: list[str] = []
            for request in requests:
                await ws.send(json.dumps(request))
            texts += await _texts(ws, lambda m: m["type"] == "error" and m["code"] == "unknown_type")
            ticks_seen.set()
            await go.wait()
            seen: set[str] = set()

            def done(m: dict[str, Any]) -> bool:
                if m["type"] == "market_data_batch" or (m["type"] == "market_data" and m["ts"] == ts + 9):
                    seen.add(m["type"])
                return len(seen) == 2

            texts += await _texts(ws, done)
            return texts

    async def scenario() -> tuple[list[str], list[str]]:
        ready_a, ready_b, go = asyncio.Event(), asyncio.Event(), asyncio.Event()
        a = asyncio.create_task(one(granian_url, ready_a, go))
        b = asyncio.create_task(one(fast_url, ready_b, go))
        await ready_a.wait()
        await ready_b.wait()
        batch = [{"symbol": "DOT/USD", "price": 7.5, "size": 1.0, "ts": ts + 1}]
        ticks = [{"symbol": "SOL/USD", "price": 150.25 + i / 100, "size": 1.0 + i, "ts": ts + i} for i in range(1, 10)]
        assert (await fast_server.apublish(batch + ticks)).status_code == 202
        go.set()
        return await a, await b

    via_granian, via_fast = run(scenario())
    # pong carries the server's clock: equal in shape, not in value
    def normal(texts: list[str]) -> list[str]:
        return [t if '"type":"pong"' not in t else json.dumps({**json.loads(t), "server_ts": 0}) for t in texts]

    assert normal(via_fast) == normal(via_granian)
    kinds = [json.loads(t)["type"] for t in via_fast]
    for kind in ("error", "subscribed", "market_data", "pong", "backfill", "market_data_batch"):
        assert kind in kinds, kinds
    # the lane really wrote them (not the Granian endpoint)
    assert _transport_metric(fast_server, "frames_out", "fast") >= frames_before + len(via_fast)


def _serve_fails(tmp_path: Path, *flags: str) -> str:
    args = [sys.executable, "-m", "tickfan", "serve", "--data-dir", str(tmp_path), "--feed", "none", *flags]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60, env={**__import__("os").environ, "TICKFAN_JWT_SECRET": SECRET})
    assert proc.returncode != 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def test_the_fast_port_is_refused_with_the_python_core(tmp_path: Path) -> None:
    out = _serve_fails(tmp_path, "--core", "python", "--port", str(free_port()), "--fast-port", str(free_port()))
    assert "--fast-port needs the Rust core" in out


def test_the_fast_port_equal_to_the_port_is_refused(tmp_path: Path) -> None:
    port = free_port()
    out = _serve_fails(tmp_path, "--core", "rust", "--port", str(port), "--fast-port", str(port))
    assert "--fast-port must differ from --port" in out


def test_a_fast_port_in_use_is_refused(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        out = _serve_fails(tmp_path, "--core", "rust", "--port", str(free_port()), "--fast-port", str(port))
    assert f"--fast-port {port}: cannot listen" in out


def test_a_wrong_path_on_the_fast_port_is_not_found(fast_server: Server) -> None:
    async def scenario() -> int:
        try:
            await connect(f"ws://127.0.0.1:{fast_server.fast_port}/ws/bot-status", open_timeout=10)
        except Exception as exc:  # noqa: BLE001 - the handshake is refused
            return int(getattr(getattr(exc, "response", None), "status_code", 0))
        return 101

    assert run(scenario()) == 404


IDLE = 1000
IDLE_BOUND_KIB = 24


def test_idle_authenticated_fast_lane_connections_cost_under_24_kib_each(fast_server: Server) -> None:
    assert fast_server.proc is not None
    root = psutil.Process(fast_server.proc.pid)

    def rss() -> int:
        """The server's RSS: the Granian main process and its worker."""
        return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])

    url = fast_server.ws("/ws/market-data")

    async def scenario() -> tuple[int, int]:
        # Warm up the allocator and the lane with a first wave, measured from there.
        socks: list[ClientConnection] = []
        for _ in range(50):
            socks.append(await _authed(url, fast_server, "idle"))
        before = rss()
        for _ in range(IDLE):
            socks.append(await _authed(url, fast_server, "idle"))
        after = rss()
        assert _transport_metric(fast_server, "connections", "fast") >= IDLE + 50
        await asyncio.gather(*(ws.close() for ws in socks))
        return before, after

    before, after = run(scenario(), timeout=240)
    per_conn_kib = (after - before) / IDLE / 1024
    print(f"fast lane: {per_conn_kib:.1f} KiB of server RSS per idle authenticated connection")
    assert per_conn_kib < IDLE_BOUND_KIB


def test_shutdown_closes_fast_lane_sockets_with_1001_and_exits_cleanly(tmp_path: Path) -> None:
    srv = Server("rust", tmp_path, "--feed", "none", transport="fast").start()

    async def scenario() -> list[int | None]:
        lane = [await srv.authed(f"u{i}") for i in range(3)]
        granian = await _authed(f"ws://127.0.0.1:{srv.port}/ws/market-data", srv, "g")
        await lane[0].send(json.dumps({"type": "subscribe", "symbols": ["BTC/USD"], "mode": "tick"}))
        await recv_until(lane[0], lambda m: m["type"] == "subscribed")
        assert srv.proc is not None
        srv.proc.terminate()
        return [(await expect_close(ws, timeout=10))[0] for ws in [*lane, granian]]

    try:
        assert run(scenario()) == [1001, 1001, 1001, 1001]
        assert srv.proc is not None and srv.proc.wait(15) == 0
    finally:
        srv.stop()


PANICS = {
    # where the lane panics: the text a client sends to make it panic there
    "reader": '{"type":"ping","ts":1,"note":"panic-in-reader"}',
    "handoff": '{"type":"ping","ts":2,"note":"panic-in-handoff"}',
    "writer": '{"type":"ping","ts":4242424242}',  # the pong frame holds the writer's marker
}


def test_a_panic_in_the_lane_closes_that_connection_with_1011_counted_and_logged(tmp_path: Path) -> None:
    spec = 'reader:panic-in-reader handoff:panic-in-handoff writer:"ts":4242424242,'
    srv = Server("rust", tmp_path, "--feed", "none", env={"TICKFAN_FAST_LANE_PANIC": spec}, transport="fast").start()

    async def scenario() -> tuple[dict[str, int | None], list[int]]:
        bystander = await srv.authed("bystander")
        await bystander.send(json.dumps({"type": "subscribe", "symbols": ["BTC/USD"], "mode": "tick"}))
        await recv_until(bystander, lambda m: m["type"] == "subscribed")
        codes: dict[str, int | None] = {}
        seqs: list[int] = []
        for where, text in PANICS.items():
            victim = await srv.authed(f"victim-{where}")
            await victim.send(text)
            codes[where] = (await expect_close(victim, timeout=10))[0]
            # the others keep receiving, on the connection opened before and on a new one
            ts = now_ms()
            assert (await srv.apublish([{"symbol": "BTC/USD", "price": 50_000.5, "size": 1.0, "ts": ts}])).status_code == 202
            seqs.append((await recv_until(bystander, lambda m: m.get("ts") == ts))[0]["seq"])
            newcomer = await srv.authed(f"after-{where}")
            await newcomer.send(json.dumps({"type": "ping", "ts": 7}))
            assert (await recv_until(newcomer, lambda m: m["type"] == "pong"))[0]["ts"] == 7
            await newcomer.close()
        await bystander.close()
        return codes, seqs

    try:
        codes, seqs = run(scenario(), timeout=120)
        assert codes == {"reader": 1011, "handoff": 1011, "writer": 1011}
        assert seqs == list(range(seqs[0], seqs[0] + 3))
        assert _transport_metric(srv, "panics", "fast") == 3
        assert srv.proc is not None and srv.proc.poll() is None, "the server survived"
        log = srv.log_path.read_text()
        for where in ("Reader", "Handoff", "Writer"):
            assert f"injected by TICKFAN_FAST_LANE_PANIC ({where})" in log
        assert log.count("closed with 1011") == 3
    finally:
        srv.stop()


def test_every_worker_serves_the_fast_port_and_every_lane_client_gets_every_tick(
    tmp_path: Path, fresh_redis: RedisServer
) -> None:
    srv = Server("rust", tmp_path, "--feed", "none", "--broker", fresh_redis.url, "--workers", "2",
                 "--log-level", "warning", transport="fast").start()  # fmt: skip
    assert srv.proc is not None and srv.fast_port is not None
    clients = 16

    def lane_sockets() -> dict[int, tuple[int, int]]:
        """Per process of the server: (listeners, established connections) on the fast port."""
        out: dict[int, tuple[int, int]] = {}
        for proc in [psutil.Process(srv.proc.pid), *psutil.Process(srv.proc.pid).children(recursive=True)]:
            conns = [c for c in proc.net_connections(kind="tcp") if c.laddr and c.laddr.port == srv.fast_port]
            listening = sum(c.status == psutil.CONN_LISTEN for c in conns)
            established = sum(c.status == psutil.CONN_ESTABLISHED for c in conns)
            if listening or established:
                out[proc.pid] = (listening, established)
        return out

    # The server is ready when one worker is: wait until both listen on the fast port.
    deadline = time.monotonic() + 30
    while sum(n for n, _ in lane_sockets().values()) < 2:
        assert time.monotonic() < deadline, f"one fast-lane listener per worker: {lane_sockets()}"
        time.sleep(0.1)

    async def scenario() -> tuple[dict[int, tuple[int, int]], list[list[int]]]:
        socks = [await srv.authed(f"w{i}") for i in range(clients)]
        for ws in socks:
            await ws.send(json.dumps({"type": "subscribe", "symbols": ["BTC/USD"], "mode": "tick"}))
            await recv_until(ws, lambda m: m["type"] == "subscribed")
        spread = lane_sockets()
        ts = now_ms()
        for batch in range(4):  # over HTTP, to whichever worker the kernel picks
            ticks = [{"symbol": "BTC/USD", "price": 60_000 + batch * 5 + i, "size": 1.0, "ts": ts + batch * 5 + i} for i in range(5)]
            assert (await srv.apublish(ticks)).status_code == 202
        last = ts + 19

        async def received(ws: ClientConnection) -> list[int]:
            out: list[int] = []
            while True:
                m = (await recv_until(ws, lambda m: m["type"] == "market_data" and m["ts"] >= ts))[0]
                out.append(m["seq"])
                if m["ts"] == last:
                    return out

        got = await asyncio.gather(*(received(ws) for ws in socks))
        await asyncio.gather(*(ws.close() for ws in socks))
        return spread, got

    try:
        spread, got = run(scenario(), timeout=120)
        listeners = {pid: n for pid, (n, _) in spread.items() if n}
        assert len(listeners) == 2, f"one fast-lane listener per worker: {spread}"
        serving = [pid for pid, (_, established) in spread.items() if established]
        assert len(serving) == 2, f"the kernel spread the clients over both workers: {spread}"
        first = got[0][0]
        for seqs in got:
            assert seqs == list(range(first, first + 20))
    finally:
        srv.stop()


def test_after_a_new_epoch_the_fast_lane_serves_the_new_core(tmp_path: Path, fresh_redis: RedisServer) -> None:
    """Redis restarted empty: the hub replaces its core; lane sockets are closed 1012, and a lane
    client that resubscribes gets the new epoch's ticks (its writer drains the new core)."""
    srv = Server("rust", tmp_path, "--feed", "none", "--broker", fresh_redis.url, "--log-level", "warning",
                 transport="fast").start()  # fmt: skip

    async def subscribed(ws: ClientConnection) -> dict[str, Any]:
        await ws.send(json.dumps({"type": "subscribe", "symbols": ["BTC/USD"], "mode": "tick"}))
        return (await recv_until(ws, lambda m: m["type"] == "subscribed"))[0]

    async def scenario() -> None:
        ws = await srv.authed("alice")
        old = await subscribed(ws)
        assert (await srv.apublish([{"symbol": "BTC/USD", "price": 10.0, "size": 1.0, "ts": now_ms()}])).status_code == 202
        assert (await recv_until(ws, lambda m: m["type"] == "market_data"))[0]["seq"] == 1
        fresh_redis.restart_empty()
        assert (await expect_close(ws, timeout=15))[0] == 1012
        ws = await srv.authed("alice")
        new = await subscribed(ws)
        assert new["epoch"] != old["epoch"]
        assert (await srv.apublish([{"symbol": "BTC/USD", "price": 11.0, "size": 1.0, "ts": 5}])).status_code == 202
        tick = (await recv_until(ws, lambda m: m["type"] == "market_data"))[0]
        assert (tick["seq"], tick["price"]) == (1, 11.0)
        await ws.close()

    try:
        run(scenario(), timeout=90)
    finally:
        srv.stop()


def test_the_performance_channel_reports_the_fast_lane_by_transport(tmp_path: Path) -> None:
    srv = Server(
        "rust", tmp_path, "--feed", "none", "--symbols", str(write_universe(tmp_path / "symbols.json")),
        "--max-queue-bytes", str(1024 * 1024), "--log-level", "warning", transport="fast",
    ).start()  # fmt: skip
    base = now_ms() - 4000 * 1000
    for symbol in TEST_SYMBOLS[1:]:  # history for ~150 KB backfill answers
        ticks = [{"symbol": symbol, "price": 100.0 + (i % 50), "size": 1.0, "ts": base + i * 1000} for i in range(3600)]
        assert srv.publish(ticks).status_code == 202

    async def figures(perf: ClientConnection, until: Any) -> dict[str, Any]:
        while True:
            m = (await recv_until(perf, lambda m: m["type"] == "metrics"))[0]
            if until(m):
                return m

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        perf = await srv.authed("ops", "/ws/performance-metrics")
        await perf.send(json.dumps({"type": "set_interval", "interval_ms": 250}))
        lane = await srv.authed("trader")
        await lane.send(json.dumps({"type": "subscribe", "symbols": ["BTC/USD"], "mode": "tick"}))
        await recv_until(lane, lambda m: m["type"] == "subscribed")
        ts = now_ms()

        def fast_writing(m: dict[str, Any]) -> bool:
            return m["transports"]["fast"]["write_us_per_frame"] is not None

        while True:  # ticks until a trailing second of the lane's writes shows in a metrics message
            ts += 1
            assert (await srv.apublish([{"symbol": "BTC/USD", "price": 60_000.5, "size": 1.0, "ts": ts}])).status_code == 202
            await recv_until(lane, lambda m, ts=ts: m.get("ts") == ts)
            m = (await recv_until(perf, lambda m: m["type"] == "metrics"))[0]
            if fast_writing(m):
                writing = m
                break
        # a lane client that reads nothing: closed as a slow consumer, counted on the lane
        stalled = await srv.stalled("stalled")
        request = {"type": "backfill_request", "symbols": TEST_SYMBOLS[1:], "since": 0, "interval": "1s"}
        for _ in range(30):
            await stalled.send(json.dumps(request))
        closed = await figures(perf, lambda m: m["transports"]["fast"]["slow_consumers_disconnected"] >= 1)
        assert (await expect_close(stalled, timeout=20))[0] == 1013
        for ws in (perf, lane):
            await ws.close()
        return writing, closed

    try:
        writing, closed = run(scenario(), timeout=120)
        fast, granian = writing["transports"]["fast"], writing["transports"]["granian"]
        assert fast["connections"] >= 1 and granian["connections"] == 0
        assert fast["messages_out_per_s"] > 0 and fast["bytes_out_per_s"] > fast["messages_out_per_s"]
        assert fast["write_us_per_frame"] > 0 and granian["write_us_per_frame"] is None
        assert granian["messages_out_per_s"] > 0  # the metrics messages themselves, on Granian
        assert writing["messages_out_per_s"] >= fast["messages_out_per_s"] + granian["messages_out_per_s"] - 0.01
        assert closed["transports"]["fast"]["slow_consumers_disconnected"] == 1
        assert closed["transports"]["granian"]["slow_consumers_disconnected"] == 0
        assert closed["slow_consumers_disconnected"] == 1
        assert _transport_metric(srv, "slow_consumers", "fast") == 1
        assert _transport_metric(srv, "slow_consumers", "granian") == 0
    finally:
        srv.stop()
