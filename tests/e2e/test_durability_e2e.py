"""Durable state across a restart and a kill -9, against a real server, both cores.

- Bot states survive a restart: the initial ``bot_status`` list and ``running_count`` after it.
- A price alert fires exactly once across a crash: the server is made to SIGKILL itself right
  after the core fired the alert and before the commit (``TICKFAN_CRASH_AT=alert_fired``), or
  right after the commit and before the 202 (``alert_committed``); the publisher retries the
  same batch after the restart, as a client does after a failed request. Either way the user
  ends up with exactly one ``price_alert`` for it, and the alert is gone.
- ``Idempotency-Key`` on ``POST /api/ticks``: a retried batch is applied once.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tickfan_e2e import Client, Server, barrier, bearer, now_ms, recv_json, users, wait_metric

pytestmark = pytest.mark.e2e

CRASH_ENV = "TICKFAN_CRASH_AT"


def wait_exit(srv: Server, timeout_s: float = 20.0) -> int:
    """The server process's exit status once its worker died (Granian's main process follows)."""
    assert srv.proc is not None
    try:
        return srv.proc.wait(timeout_s)
    except Exception:  # noqa: BLE001 - still up: stop it the hard way, the crash already happened
        srv.proc.kill()
        return srv.proc.wait(5)


def test_bot_states_survive_a_restart(fresh_server: Callable[..., Server]) -> None:
    srv = fresh_server()
    alice, bob = users("alice", "bob")

    async def before() -> None:
        async with Client(srv) as c:
            assert (await c.bot_status(alice, "b1", "running", {"pnl": 2.5})).json()["running_count"] == 1
            assert (await c.bot_status(alice, "b2", "running")).json()["running_count"] == 2
            assert (await c.bot_status(alice, "b2", "error", {"why": "feed lost"})).json()["running_count"] == 1
            assert (await c.bot_status(bob, "b1", "paused")).status_code == 200

    async def after() -> None:
        ws = await srv.authed(alice, "/ws/bot-status")
        first = [await recv_json(ws), await recv_json(ws)]
        assert [(m["bot_id"], m["status"], m["running_count"], m["detail"]) for m in first] == [
            ("b1", "running", 1, {"pnl": 2.5}),
            ("b2", "error", 1, {"why": "feed lost"}),
        ]
        assert await barrier(ws) == []  # bob's bot is not alice's
        async with Client(srv) as c:
            # The count goes on from the stored state, not from zero.
            assert (await c.bot_status(alice, "b2", "running")).json()["running_count"] == 2
        live = await recv_json(ws)
        assert (live["bot_id"], live["status"], live["running_count"]) == ("b2", "running", 2)
        await ws.close()

    asyncio.run(before())
    srv.restart()
    asyncio.run(after())


def _alerts(srv: Server, user: str) -> list[dict[str, Any]]:
    r = httpx.get(srv.http + "/api/alerts", headers=bearer(user), timeout=10)
    assert r.status_code == 200, r.text
    return list(r.json()["alerts"])


def _price_alerts(srv: Server, user: str) -> list[dict[str, Any]]:
    r = httpx.get(srv.http + "/api/notifications", headers=bearer(user), timeout=10)
    assert r.status_code == 200, r.text
    return [n for n in r.json()["notifications"] if n["kind"] == "price_alert"]


@pytest.mark.memory_broker_only  # TICKFAN_CRASH_AT is the memory broker's; Redis: tests/e2e/test_redis_failures_e2e.py
@pytest.mark.parametrize("crash_at", ["alert_fired", "alert_committed"])
def test_an_alert_fires_exactly_once_across_a_kill_9(fresh_server: Callable[..., Server], crash_at: str) -> None:
    srv = fresh_server(env={CRASH_ENV: crash_at})
    (alice,) = users("alice")
    r = httpx.post(srv.http + "/api/alerts", json={"symbol": "ETH/USD", "above": 2500.0}, headers=bearer(alice), timeout=10)
    assert r.status_code == 201, r.text
    alert_id = r.json()["id"]
    ts = now_ms()
    batch = [{"symbol": "ETH/USD", "price": 2400.0, "size": 1.0, "ts": ts}, {"symbol": "ETH/USD", "price": 2501.5, "size": 1.0, "ts": ts + 1}]

    # The server kills itself while answering: no 2xx, so the publisher must retry.
    with pytest.raises(httpx.HTTPError):
        srv.publish(batch)
    wait_exit(srv)
    assert f"{CRASH_ENV}={crash_at}: killing this process" in srv.log()

    srv.env.pop(CRASH_ENV)
    srv.restart()
    if crash_at == "alert_fired":
        # Not committed: still stored, re-armed, no notification yet.
        assert [a["id"] for a in _alerts(srv, alice)] == [alert_id]
        assert _price_alerts(srv, alice) == []
    else:
        # Committed with its notification before the crash: gone, notified once.
        assert _alerts(srv, alice) == []
        assert [n["data"]["alert_id"] for n in _price_alerts(srv, alice)] == [alert_id]

    retry = srv.publish(batch)  # the same batch, as the publisher retries it
    assert retry.status_code == 202, retry.text
    later = srv.publish([{"symbol": "ETH/USD", "price": 2600.0, "size": 1.0, "ts": ts + 2}])
    assert later.status_code == 202, later.text

    fired = _price_alerts(srv, alice)
    assert [(n["data"]["alert_id"], n["data"]["price"]) for n in fired] == [(alert_id, 2501.5)]
    assert _alerts(srv, alice) == []
    srv.restart()  # and it stays that way
    assert len(_price_alerts(srv, alice)) == 1 and _alerts(srv, alice) == []


def test_idempotency_key_applies_a_retried_batch_once(plain_server: Server) -> None:
    symbol = "SOL/USD"
    key = uuid.uuid4().hex

    async def scenario() -> None:
        ws = await plain_server.authed("watcher")
        await ws.send(json.dumps({"type": "subscribe", "symbols": [symbol], "mode": "tick"}))
        acked = await barrier(ws)  # the ack, and the snapshot if the symbol traded
        assert acked[0]["type"] == "subscribed"
        ts = now_ms()
        batch = [{"symbol": symbol, "price": 98.5, "size": 1.0, "ts": ts}, {"symbol": symbol, "price": 98.6, "size": 1.0, "ts": ts}]
        headers = {**plain_server.publisher_headers(), "Idempotency-Key": key}
        async with httpx.AsyncClient(timeout=10) as http:
            url = plain_server.http + "/api/ticks"
            answers = [await http.post(url, json=batch, headers=headers) for _ in range(3)]
            assert [(a.status_code, a.json()) for a in answers] == [(202, {"accepted": 2})] * 3
            # Another publisher's key of the same text is its own.
            other = {**bearer("other-publisher", publish=True), "Idempotency-Key": key}
            assert (await http.post(url, json=[{"symbol": symbol, "price": 98.7, "size": 1.0, "ts": ts}], headers=other)).status_code == 202
            bad = await http.post(url, json=batch, headers={**plain_server.publisher_headers(), "Idempotency-Key": "k" * 257})
            assert bad.status_code == 422 and "Idempotency-Key" in bad.json()["error"]
        frames = [m for m in await barrier(ws) if m["type"] == "market_data"]
        assert [f["price"] for f in frames] == [98.5, 98.6, 98.7]
        assert [f["seq"] for f in frames] == list(range(frames[0]["seq"], frames[0]["seq"] + 3))
        await ws.close()

    asyncio.run(scenario())


def test_tick_state_across_a_restart(fresh_server: Callable[..., Server]) -> None:
    """Memory broker: a restart is a new epoch, seq starts again at 1 and candles afresh. Redis
    broker (two workers): the whole server restarted keeps the epoch, the seqs, the snapshots
    and the candles; its nodes load the checkpoint and replay the log after it."""
    srv = fresh_server("--checkpoint-interval-s", "0.2")
    on_redis = srv.broker != "memory"
    symbols = ["BTC/USD", "ETH/USD"]
    ts0 = now_ms() - 600_000  # ten minutes of history: several 1m candles

    def publish(first: int, count: int) -> None:
        ticks = [{"symbol": symbols[i % 2], "price": round(100 + (i * 13) % 40 + 0.25, 2), "size": 1.0 + i % 3,
                  "ts": ts0 + i * 1000} for i in range(first, first + count)]
        r = srv.publish(ticks)
        assert r.status_code == 202, r.text

    async def subscribed() -> tuple[str, dict[str, int]]:
        """The epoch and the snapshot seq of each symbol, as a new subscriber sees them."""
        ws = await srv.authed("alice")
        await ws.send(json.dumps({"type": "subscribe", "symbols": symbols, "mode": "tick"}))
        messages = await barrier(ws)
        await ws.close()
        assert messages[0]["type"] == "subscribed"
        return messages[0]["epoch"], {m["symbol"]: m["seq"] for m in messages[1:] if m["type"] == "market_data"}

    def candles() -> list[bytes]:
        """Every symbol's 1s and 1m candles, once ten answers in a row agree (two workers: each
        request reaches either, and the one that did not ingest applies a moment later)."""
        seen: list[list[bytes]] = []
        deadline = now_ms() + 20_000
        while len(seen) < 10 or any(x != seen[-1] for x in seen[-10:]):
            assert now_ms() < deadline, "the answers never settled"
            answer = []
            for symbol in symbols:
                for interval in ("1s", "1m"):
                    r = httpx.get(srv.http + "/api/candles", params={"symbol": symbol, "interval": interval, "limit": 1000},
                                  headers=bearer("alice"), timeout=10)
                    assert r.status_code == 200, r.text
                    answer.append(r.content)
            seen.append(answer)
        return seen[-1]

    publish(0, 300)
    if on_redis:  # a checkpoint, then a tail of the log after it
        asyncio.run(wait_metric(srv, "tickfan_broker_checkpoints_written_total", lambda v: v >= 1))
    publish(300, 100)
    before = candles()
    epoch, seqs = asyncio.run(subscribed())
    assert seqs == {"BTC/USD": 200, "ETH/USD": 200}
    assert all(json.loads(c)["candles"] for c in before)
    srv.restart()
    after_epoch, after_seqs = asyncio.run(subscribed())
    if on_redis:
        assert after_epoch == epoch and after_seqs == seqs
        assert candles() == before
        publish(400, 2)
        deadline = now_ms() + 10_000  # the seqs go on (on either worker, once it applied the batch)
        while (latest := asyncio.run(subscribed())[1]) != {"BTC/USD": 201, "ETH/USD": 201}:
            assert now_ms() < deadline and latest == seqs, latest
    else:
        assert after_epoch != epoch and after_seqs == {}
        assert all(json.loads(c)["candles"] == [] for c in candles())
