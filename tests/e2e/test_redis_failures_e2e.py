"""Failure behaviour of a two-node cluster on a real redis-server (issue 9, deliverable 4).

Each test has its own redis-server (``fresh_redis``: AOF ``always``) and two nodes, A (Rust
core) and B (the Python twin). The rule checked throughout: every tick answered 2xx reaches
every subscriber on every node exactly once; what a client sees meanwhile is documented in
docs/operations.md ("What clients see when Redis fails").
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest

from broker_nodes import cluster  # noqa: F401 - the fixture
from redis_server import RedisServer
from tickfan_e2e import Server, barrier, bearer, expect_close, next_ts, recv_json, recv_until, run

pytestmark = pytest.mark.e2e

SYMBOL = "BTC/USD"
PUBLISH = bearer("service-backend", publish=True)


async def subscribe(srv: Server, symbols: list[str]) -> Any:
    ws = await srv.authed("alice")
    await ws.send(json.dumps({"type": "subscribe", "symbols": symbols, "mode": "tick"}))
    await recv_until(ws, lambda m: m["type"] == "subscribed")
    return ws


async def ready(srv: Server, client: httpx.AsyncClient) -> bool:
    try:
        return (await client.get(srv.http + "/readyz", timeout=2)).status_code == 200
    except httpx.HTTPError:
        return False


async def until(check: Any, timeout: float, what: str) -> float:
    """Poll ``check`` (sync, or returning an awaitable) until true; return the seconds it took,
    fail at the deadline."""
    start = time.monotonic()
    while not await _value(check()):
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout}s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


class Publisher:
    """Posts one tick at a time, alternating nodes; each tick's price identifies it."""

    def __init__(self, nodes: tuple[Server, Server]) -> None:
        self.nodes = nodes
        self.acked: list[float] = []
        self.refused: list[float] = []  # 503
        self.retry_after: set[str | None] = set()
        self.other: list[tuple[int, str]] = []
        self._stop = False

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            i = 0
            while not self._stop:
                price = round(1000 + i / 100, 2)
                body = [{"symbol": SYMBOL, "price": price, "size": 1.0, "ts": next_ts()}]
                target = self.nodes[i % 2]
                i += 1
                try:
                    r = await client.post(target.http + "/api/ticks", json=body, headers=PUBLISH)
                except httpx.HTTPError as exc:
                    self.other.append((0, repr(exc)))
                    continue
                if r.status_code == 202:
                    self.acked.append(price)
                elif r.status_code == 503:
                    self.refused.append(price)
                    self.retry_after.add(r.headers.get("retry-after"))
                else:
                    self.other.append((r.status_code, r.text))
                await asyncio.sleep(0.005)  # pacing, ~100 ticks/s

    def stop(self) -> None:
        self._stop = True


async def delivered(ws: Any, wanted: set[float], timeout: float = 30.0) -> list[dict[str, Any]]:
    """Market-data frames until every price in ``wanted`` arrived, then what the socket held."""
    frames: list[dict[str, Any]] = []
    seen: set[float] = set()
    deadline = time.monotonic() + timeout
    while not wanted <= seen:
        try:
            message = await recv_json(ws, max(0.01, deadline - time.monotonic()))
        except TimeoutError:
            raise AssertionError(f"acknowledged ticks never delivered: {sorted(wanted - seen)[:20]}") from None
        if message["type"] == "market_data":
            frames.append(message)
            seen.add(message["price"])
    frames += [m for m in await barrier(ws) if m["type"] == "market_data"]
    return frames


def test_redis_killed_and_restarted_with_its_aof_while_publishing(cluster: tuple[Server, Server], fresh_redis: RedisServer) -> None:
    a, b = cluster

    async def scenario() -> None:
        sockets = [await subscribe(a, [SYMBOL]), await subscribe(b, [SYMBOL])]
        publisher = Publisher((a, b))
        task = asyncio.create_task(publisher.run())
        async with httpx.AsyncClient() as client:
            await until(lambda: len(publisher.acked) >= 50, 30, "first acks")
            fresh_redis.kill()
            await until(lambda: len(publisher.refused) >= 3, 15, "503s during the outage")
            for srv in (a, b):
                await until(lambda srv=srv: _not(ready(srv, client)), 10, "/readyz 503")
            acked_before = len(publisher.acked)
            fresh_redis.start()  # same dir and port: the AOF replays
            for srv in (a, b):
                await until(lambda srv=srv: ready(srv, client), 15, "/readyz 200 after the restart")
            await until(lambda: len(publisher.acked) >= acked_before + 50, 30, "acks after the restart")
        publisher.stop()
        await task
        assert publisher.other == []
        assert publisher.retry_after == {"1"}
        assert a.metric("tickfan_broker_unavailable_total") + b.metric("tickfan_broker_unavailable_total") == len(publisher.refused)
        assert a.metric("tickfan_broker_reconnects_total") >= 1 and b.metric("tickfan_broker_reconnects_total") >= 1
        assert a.metric("tickfan_broker_ready") == 1
        for ws in sockets:  # never closed: every acknowledged tick, once, in seq order
            frames = await delivered(ws, set(publisher.acked))
            prices = [f["price"] for f in frames]
            assert len(prices) == len(set(prices))
            seqs = [f["seq"] for f in frames]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
            assert set(publisher.acked) <= set(prices)

    run(scenario(), timeout=180)


async def _not(awaitable: Any) -> bool:
    return not await awaitable


async def _value(result: Any) -> Any:
    return await result if asyncio.iscoroutine(result) else result


def test_redis_frozen_for_3s_then_thawed(cluster: tuple[Server, Server], fresh_redis: RedisServer) -> None:
    a, b = cluster

    async def scenario() -> None:
        ws = await subscribe(b, [SYMBOL])
        async with httpx.AsyncClient(timeout=10) as client:
            freeze = asyncio.create_task(asyncio.to_thread(fresh_redis.freeze, 3.0))
            await until(lambda: _not(ready(a, client)), 2.5, "/readyz 503 while Redis is frozen")
            r = await client.post(a.http + "/api/ticks", json=[{"symbol": SYMBOL, "price": 5.0, "size": 1.0, "ts": next_ts()}], headers=PUBLISH)
            assert r.status_code == 503 and r.headers["retry-after"] == "1"
            await freeze  # SIGCONT sent
            [await until(lambda srv=srv: ready(srv, client), 2.0, "ready within 2 s of the thaw") for srv in (a, b)]
            r = await client.post(a.http + "/api/ticks", json=[{"symbol": SYMBOL, "price": 6.0, "size": 1.0, "ts": next_ts()}], headers=PUBLISH)
            assert r.status_code == 202, r.text
        frames = await delivered(ws, {6.0})  # the socket on B stayed open and gets it
        assert frames[-1]["price"] == 6.0

    run(scenario(), timeout=60)


def test_redis_restarted_empty_gives_a_new_epoch_and_1012(cluster: tuple[Server, Server], fresh_redis: RedisServer) -> None:
    a, b = cluster

    async def scenario() -> None:
        old_epochs = set()
        sockets = []
        for srv in (a, b):
            ws = await srv.authed("alice")
            await ws.send(json.dumps({"type": "subscribe", "symbols": [SYMBOL], "mode": "tick"}))
            ack, _ = await recv_until(ws, lambda m: m["type"] == "subscribed")
            old_epochs.add(ack["epoch"])
            sockets.append(ws)
        assert len(old_epochs) == 1
        assert a.publish([{"symbol": SYMBOL, "price": 10.0, "size": 1.0, "ts": next_ts()}]).status_code == 202
        fresh_redis.restart_empty()
        for ws in sockets:
            code, _ = await expect_close(ws, timeout=15)
            assert code == 1012
        epochs = set()
        for srv in (a, b):
            ws = await srv.authed("alice")
            await ws.send(json.dumps({"type": "subscribe", "symbols": [SYMBOL], "mode": "tick"}))
            ack, _ = await recv_until(ws, lambda m: m["type"] == "subscribed")
            epochs.add(ack["epoch"])
            assert await barrier(ws) == []  # no snapshot: the symbol has no tick in this epoch
            sockets.append(ws)
        assert len(epochs) == 1 and epochs.isdisjoint(old_epochs)
        assert b.publish([{"symbol": SYMBOL, "price": 11.0, "size": 1.0, "ts": 5}]).status_code == 202  # lastts went too
        for ws in sockets[2:]:
            message, _ = await recv_until(ws, lambda m: m["type"] == "market_data")
            assert message["seq"] == 1 and message["price"] == 11.0

    run(scenario(), timeout=90)


def test_a_node_killed_and_restarted_catches_up_and_the_other_is_unaffected(cluster: tuple[Server, Server]) -> None:
    a, b = cluster

    async def scenario() -> None:
        on_b = await subscribe(b, [SYMBOL])
        for i in range(10):
            assert (await a.apublish([{"symbol": SYMBOL, "price": 100.0 + i, "size": 1.0, "ts": next_ts()}])).status_code == 202
        a.kill()
        for i in range(10, 20):
            assert (await b.apublish([{"symbol": SYMBOL, "price": 100.0 + i, "size": 1.0, "ts": next_ts()}])).status_code == 202
        frames = await delivered(on_b, {100.0 + i for i in range(20)})
        assert [f["seq"] for f in frames] == list(range(1, 21))
        await asyncio.to_thread(a.restart)  # replays the log before it reports ready
        again = await subscribe(a, [SYMBOL])
        snapshot = await recv_json(again)
        assert snapshot["type"] == "market_data" and snapshot["seq"] == 20 and snapshot["price"] == 119.0
        async with httpx.AsyncClient() as client:
            for interval in ("1s", "1m"):
                params = {"symbol": SYMBOL, "interval": interval}
                answers = [(await client.get(s.http + "/api/candles", params=params, headers=bearer("alice"))).content for s in (a, b)]
                assert answers[0] == answers[1] and json.loads(answers[0])["candles"]
        assert (await b.apublish([{"symbol": SYMBOL, "price": 200.0, "size": 1.0, "ts": next_ts()}])).status_code == 202
        for ws in (again, on_b):
            message, _ = await recv_until(ws, lambda m: m["type"] == "market_data" and m["price"] == 200.0)
            assert message["seq"] == 21

    run(scenario(), timeout=90)
