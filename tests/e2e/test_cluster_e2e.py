"""Two ``tickfan serve`` nodes on one real redis-server behave as one server to clients.

Node A runs the Rust core and node B the Python twin, so "the same frames" also checks that
both cores give the same bytes from the same log. ``--workers 2`` is one node per worker.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from broker_nodes import cluster, cluster_node  # noqa: F401 - the fixture
from redis_server import RedisServer
from tickfan_e2e import Client, Server, barrier, bearer, next_ts, recv_json, recv_until, run, users

pytestmark = pytest.mark.e2e

SYMBOLS = ["BTC/USD", "ETH/USD", "SOL/USD"]


async def subscribe(srv: Server, symbols: list[str], mode: str = "tick") -> tuple[Any, dict[str, Any]]:
    ws = await srv.authed("alice")
    await ws.send(json.dumps({"type": "subscribe", "symbols": symbols, "mode": mode}))
    ack, _ = await recv_until(ws, lambda m: m["type"] == "subscribed")
    return ws, ack


async def raw_frames(ws: Any, count: int, timeout: float = 20.0) -> list[str]:
    """The next ``count`` market_data frames, as the exact text sent."""
    out: list[str] = []
    deadline = time.monotonic() + timeout
    while len(out) < count:
        text = await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic()))
        if json.loads(text)["type"] == "market_data":
            out.append(text)
    return out


def test_same_seq_epoch_frames_and_candles_on_both_nodes(cluster: tuple[Server, Server]) -> None:
    a, b = cluster

    async def scenario() -> None:
        wa, ack_a = await subscribe(a, SYMBOLS)
        wb, ack_b = await subscribe(b, SYMBOLS)
        assert ack_a["epoch"] == ack_b["epoch"]
        n_batches, per_batch = 30, 10
        async with Client(a) as ca, Client(b) as cb:
            for i in range(n_batches):
                batch = [
                    {"symbol": SYMBOLS[j % 3], "price": round(100 + i + j / 100, 2), "size": 1.0, "ts": next_ts()}
                    for j in range(per_batch)
                ]
                r = await (ca if i % 2 == 0 else cb).publish_ticks(batch)
                assert r.status_code == 202, r.text
            got_a = await raw_frames(wa, n_batches * per_batch)
            got_b = await raw_frames(wb, n_batches * per_batch)
            assert got_a == got_b  # byte-identical, from the Rust core and the twin
            frames = [json.loads(t) for t in got_a]
            for symbol in SYMBOLS:
                seqs = [f["seq"] for f in frames if f["symbol"] == symbol]
                assert seqs == list(range(1, len(seqs) + 1))
            # A tick older than its symbol's last is refused through the other node too.
            stale = await cb.publish_ticks([{"symbol": "BTC/USD", "price": 1.0, "size": 1.0, "ts": 1}])
            assert stale.status_code == 422 and "earlier than the previous tick" in stale.text
            for interval in ("1s", "1m"):
                params = {"symbol": "BTC/USD", "interval": interval}
                answers = [
                    (await c.http.get("/api/candles", params=params, headers=bearer("alice"))).content for c in (ca, cb)
                ]
                assert answers[0] == answers[1] and json.loads(answers[0])["candles"]
            # backfill frames are identical too
            for ws in (wa, wb):
                await ws.send(json.dumps({"type": "backfill_request", "symbols": ["ETH/USD"], "interval": "1s", "since": 0}))
            fills = [await recv_until(ws, lambda m: m["type"] == "backfill") for ws in (wa, wb)]
            assert fills[0][0] == fills[1][0] and fills[0][0]["candles"]

    run(scenario())


def test_notifications_bots_and_reads_cross_nodes(cluster: tuple[Server, Server]) -> None:
    a, b = cluster
    (alice,) = users("alice")

    async def scenario() -> None:
        on_b = await b.authed(alice, "/ws/notifications")
        assert (await recv_json(on_b))["notifications"] == []
        bots_on_a = await a.authed(alice, "/ws/bot-status")
        async with Client(a) as ca, Client(b) as cb:
            nid = await ca.notify(alice, "from A", data={"x": 1})
            live = await recv_json(on_b)
            assert live["type"] == "notification" and live["notification"]["id"] == nid
            assert live["notification"]["title"] == "from A" and live["notification"]["data"] == {"x": 1}
            r = await cb.bot_status(alice, "bot-1", "running")
            assert r.status_code == 200 and r.json()["running_count"] == 1
            state = await recv_json(bots_on_a)
            assert state["type"] == "bot_status" and state["bot_id"] == "bot-1" and state["running_count"] == 1
            read = await cb.http.post("/api/notifications/read", json={"ids": [nid]}, headers=bearer(alice))
            assert read.json()["ids"] == [nid]
            [polled] = await ca.poll(alice)
            assert polled["id"] == nid and polled["read"] is True
            assert await barrier(on_b) == []  # nothing else arrived

    run(scenario())


def test_an_alert_fires_once_across_the_cluster(cluster: tuple[Server, Server]) -> None:
    a, b = cluster
    (alice,) = users("alice")

    async def scenario() -> None:
        sockets = [await a.authed(alice, "/ws/notifications"), await b.authed(alice, "/ws/notifications")]
        for ws in sockets:
            assert (await recv_json(ws))["notifications"] == []
        async with Client(a) as ca, Client(b) as cb:
            r = await ca.http.post("/api/alerts", json={"symbol": "ETH/USD", "above": 5000.5}, headers=bearer(alice))
            assert r.status_code == 201
            alert_id = r.json()["id"]
            # Crossing ticks through both nodes at once: the first crossing Redis ran fires it,
            # once. (Racing ticks of one symbol may reach Redis out of ts order: those get 422.)
            crossings = [[{"symbol": "ETH/USD", "price": price, "size": 1.0, "ts": next_ts()}] for price in (5001.0, 5002.0, 5003.0, 5004.0)]
            answers = await asyncio.gather(*((ca if i % 2 else cb).publish_ticks(t) for i, t in enumerate(crossings)))
            assert {x.status_code for x in answers} <= {202, 422}
            accepted = [t[0]["price"] for t, x in zip(crossings, answers) if x.status_code == 202]
            assert accepted
            for ws in sockets:
                message = await recv_json(ws)
                assert message["type"] == "notification" and message["notification"]["kind"] == "price_alert"
                assert message["notification"]["data"]["alert_id"] == alert_id
                assert message["notification"]["data"]["price"] in accepted
                assert await barrier(ws) == []  # exactly once
            assert [n["kind"] for n in await cb.poll(alice)] == ["price_alert"]
            assert (await cb.http.get("/api/alerts", headers=bearer(alice))).json()["alerts"] == []

    run(scenario())


def test_two_workers_are_two_nodes_and_the_feed_runs_once(fresh_redis: RedisServer, tmp_path: Path) -> None:
    srv = Server("rust", tmp_path / "w", "--feed", "sim", "--workers", "2", "--broker", fresh_redis.url, "--log-level", "warning").start()
    try:
        client = redis.Redis.from_url(fresh_redis.url)

        async def scenario() -> None:
            # Several sockets, so both workers serve some: every one gets the same contiguous
            # seqs and epoch.
            sockets = [await subscribe(srv, ["ETH/USD"]) for _ in range(6)]
            assert len({ack["epoch"] for _, ack in sockets}) == 1
            seen = []
            for ws, _ in sockets:
                frames = [json.loads(t) for t in await raw_frames(ws, 20)]
                seqs = [f["seq"] for f in frames]
                assert seqs == list(range(seqs[0], seqs[0] + 20))
                seen.append({f["seq"]: f for f in frames})
            common = set.intersection(*(set(s) for s in seen))
            assert all(len({json.dumps(s[q]) for s in seen}) == 1 for q in common)

        run(scenario())
        # One feed: every log entry of the run came from the one lease holder.
        origins = {fields[b"o"] for _, fields in client.xrange("tf:log")}
        assert len(origins) == 1 and client.get("tf:lease") in origins
    finally:
        srv.stop()


def test_idempotency_key_across_nodes(cluster: tuple[Server, Server]) -> None:
    a, b = cluster
    headers = {**bearer("service-backend", publish=True), "Idempotency-Key": "batch-42"}
    body = [{"symbol": "LTC/USD", "price": 71.25, "size": 1.0, "ts": next_ts()}]
    first = httpx.post(a.http + "/api/ticks", json=body, headers=headers, timeout=10)
    again = httpx.post(b.http + "/api/ticks", json=body, headers=headers, timeout=10)
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json() == {"accepted": 1}
    body2 = [{"symbol": "LTC/USD", "price": 71.5, "size": 1.0, "ts": next_ts()}]
    assert httpx.post(b.http + "/api/ticks", json=body2, headers=bearer("service-backend", publish=True), timeout=10).status_code == 202

    async def scenario() -> None:
        ws, _ = await subscribe(a, ["LTC/USD"])
        snapshot = await recv_json(ws)
        assert snapshot["type"] == "market_data" and snapshot["seq"] == 2 and snapshot["price"] == 71.5

    run(scenario())


def test_a_node_joining_after_the_log_was_trimmed_answers_as_the_others(fresh_redis: RedisServer, tmp_path: Path) -> None:
    """Checkpoints: the lease holder writes one every 0.2 s and the log is trimmed behind the
    previous one, so a node started later cannot replay the log from the epoch's start: it
    loads the checkpoint, replays the tail, and only then reports ready, with the same candles,
    backfill, snapshots and seqs as the nodes that were there from the start."""
    every = ("--checkpoint-interval-s", "0.2")
    a = cluster_node(tmp_path / "a", "rust", fresh_redis.url, *every).start()
    b = cluster_node(tmp_path / "b", "python", fresh_redis.url, *every).start()
    client = redis.Redis.from_url(fresh_redis.url)
    nodes = [a, b]
    try:

        async def scenario() -> None:
            async with Client(a) as ca, Client(b) as cb:
                first = None
                sent = {s: 0 for s in SYMBOLS}
                i = 0
                # Publish until the log has been trimmed past its first entry (checkpoints are
                # written meanwhile), then a few more batches: the tail after the last checkpoint.
                while first is None or client.xrange("tf:log", count=1)[0][0] == first or i % 50:
                    batch = [{"symbol": SYMBOLS[j % 3], "price": round(100 + (i * 7 + j) % 50 + j / 100, 2),
                              "size": 1.0 + j, "ts": next_ts()} for j in range(5)]
                    r = await (ca if i % 2 == 0 else cb).publish_ticks(batch)
                    assert r.status_code == 202, r.text
                    for tick in batch:
                        sent[tick["symbol"]] += 1
                    first = first or client.xrange("tf:log", count=1)[0][0]
                    i += 1
                    assert i < 20_000, "the log was never trimmed"
                assert client.xlen("tf:log") < i and client.hget("tf:meta", "ckpt") is not None
                # A and B at the log's end: the same answers (B applies A's last entry a moment later)
                await until_equal(lambda: answers(a), lambda: answers(b))

            c = cluster_node(tmp_path / "c", "rust", fresh_redis.url, *every).start()  # returns once /readyz is 200
            nodes.append(c)
            # Ready means caught up: no waiting here, C answers as A at once.
            assert await answers(c) == await answers(a)
            assert c.metric("tickfan_broker_entries_applied_total") < i  # the tail, not the whole log
            snapshots = []
            for srv in (a, c):
                ws, _ = await subscribe(srv, SYMBOLS)
                snapshots.append([json.loads(t) for t in await raw_frames(ws, 3)])
                await ws.close()
            assert snapshots[0] == snapshots[1]
            assert {f["symbol"]: f["seq"] for f in snapshots[0]} == sent
            # ... and goes on with the cluster: a tick through C has the next seq everywhere.
            sockets = [(await subscribe(srv, ["BTC/USD"]))[0] for srv in (a, b, c)]
            async with Client(c) as cc:
                r = await cc.publish_ticks([{"symbol": "BTC/USD", "price": 1234.5, "size": 1.0, "ts": next_ts()}])
                assert r.status_code == 202, r.text
            for ws in sockets:
                message, _ = await recv_until(ws, lambda m: m["type"] == "market_data" and m["price"] == 1234.5)
                assert message["seq"] == sent["BTC/USD"] + 1

        run(scenario(), timeout=180)
    finally:
        for srv in nodes:
            srv.stop()
        client.close()


async def answers(srv: Server) -> list[bytes | dict[str, Any]]:
    """Candles of every symbol and interval over HTTP, and a backfill over a socket."""
    out: list[bytes | dict[str, Any]] = []
    async with httpx.AsyncClient(timeout=10) as http:
        for symbol in SYMBOLS:
            for interval in ("1s", "1m", "1h"):
                r = await http.get(srv.http + "/api/candles", params={"symbol": symbol, "interval": interval}, headers=bearer("alice"))
                assert r.status_code == 200, r.text
                out.append(r.content)
    ws = await srv.authed("alice")
    await ws.send(json.dumps({"type": "backfill_request", "symbols": SYMBOLS, "interval": "1s", "since": 0}))
    fills = []
    while len(fills) < len(SYMBOLS):
        message, _ = await recv_until(ws, lambda m: m["type"] == "backfill")
        fills.append(message)
    await ws.close()
    return out + sorted(fills, key=lambda m: m["symbol"])


async def until_equal(left: Any, right: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while (x := await left()) != (y := await right()):
        if time.monotonic() > deadline:
            raise AssertionError(f"never equal: {x!r:.300} != {y!r:.300}")
        await asyncio.sleep(0.05)
