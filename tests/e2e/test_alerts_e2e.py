"""Price alerts end to end, both cores: CRUD per user, firing exactly once, restart durability."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tickfan_e2e import Client, Server, barrier, bearer, next_ts, recv_json, recv_until, users

pytestmark = pytest.mark.e2e


def tick(symbol: str, price: float, size: float = 1.0) -> dict[str, Any]:
    return {"symbol": symbol, "price": price, "size": size, "ts": next_ts()}


async def create(c: Client, user: str, body: dict[str, Any]) -> httpx.Response:
    return await c.http.post("/api/alerts", json=body, headers=bearer(user))


def is_alert(m: dict[str, Any]) -> bool:
    return m.get("type") == "notification" and m["notification"]["kind"] == "price_alert"


def test_crud_is_per_user_and_validated(plain_server: Server) -> None:
    alice, bob = users("alice", "bob")

    async def scenario() -> None:
        async with Client(plain_server) as c:
            r = await create(c, alice, {"symbol": "BTC/USD", "above": 99999.5})
            assert r.status_code == 201 and set(r.json()) == {"id"}
            a1 = r.json()["id"]
            a2 = (await create(c, alice, {"symbol": "ETH/USD", "below": 1000}))
            assert a2.status_code == 201
            b1 = (await create(c, bob, {"symbol": "ETH/USD", "below": 5})).json()["id"]
            listed = (await c.http.get("/api/alerts", headers=bearer(alice))).json()["alerts"]
            assert [(x["id"], x["symbol"], x["direction"], x["level"]) for x in listed] == [
                (a1, "BTC/USD", "above", 99999.5),
                (a2.json()["id"], "ETH/USD", "below", 1000.0),
            ]
            assert [x["id"] for x in (await c.http.get("/api/alerts", headers=bearer(bob))).json()["alerts"]] == [b1]
            # Alice cannot delete bob's alert (404, as for an unknown id); bob's stays.
            assert (await c.http.delete(f"/api/alerts/{b1}", headers=bearer(alice))).status_code == 404
            assert (await c.http.delete("/api/alerts/999999999", headers=bearer(alice))).status_code == 404
            assert (await c.http.delete(f"/api/alerts/{a1}", headers=bearer(alice))).status_code == 204
            assert (await c.http.delete(f"/api/alerts/{a1}", headers=bearer(alice))).status_code == 404
            assert [x["id"] for x in (await c.http.get("/api/alerts", headers=bearer(bob))).json()["alerts"]] == [b1]
            for bad in (
                {"symbol": "NOPE/USD", "above": 1},
                {"symbol": "BTC/USD"},
                {"symbol": "BTC/USD", "above": 1, "below": 2},
                {"symbol": "BTC/USD", "above": 0},
                {"symbol": "BTC/USD", "below": -3},
                {"symbol": "BTC/USD", "above": "1"},
                {"symbol": "BTC/USD", "above": 1, "extra": 1},
            ):
                r = await create(c, alice, bad)
                assert r.status_code == 422, (bad, r.text)
            assert "unknown symbol" in (await create(c, alice, {"symbol": "NOPE/USD", "above": 1})).json()["error"]
            assert len((await c.http.get("/api/alerts", headers=bearer(alice))).json()["alerts"]) == 1
            assert (await c.http.get("/api/alerts")).status_code == 401
            assert (await c.http.post("/api/alerts", json={"symbol": "BTC/USD", "above": 1})).status_code == 401

    asyncio.run(scenario())


def test_an_alert_fires_exactly_once_across_many_ticks(plain_server: Server) -> None:
    alice, bob = users("alice", "bob")

    async def scenario() -> None:
        async with Client(plain_server) as c:
            symbol = "SOL/USD"
            assert (await c.publish_ticks([tick(symbol, 100.0)])).status_code == 202
            up = (await create(c, alice, {"symbol": symbol, "above": 105.5})).json()["id"]
            down = (await create(c, alice, {"symbol": symbol, "below": 90.0})).json()["id"]
            other = (await create(c, bob, {"symbol": symbol, "above": 1000.0})).json()["id"]
            a = await plain_server.authed(alice, "/ws/notifications")
            b = await plain_server.authed(bob, "/ws/notifications")
            await recv_json(a)
            await recv_json(b)
            # Below the level: nothing. Then the crossing tick, then many more beyond it.
            assert (await c.publish_ticks([tick(symbol, p) for p in (101.0, 104.9, 105.499)])).status_code == 202
            assert (await c.publish_ticks([tick(symbol, 105.6), tick(symbol, 107.0)])).status_code == 202
            for start in range(0, 200, 20):
                ticks = [tick(symbol, 106.0 + (i % 7)) for i in range(start, start + 20)]
                assert (await c.publish_ticks(ticks)).status_code == 202
            fired, before = await recv_until(a, is_alert)
            assert before == []
            n = fired["notification"]
            assert n["data"] == {"alert_id": up, "symbol": symbol, "price": 105.6, "level": 105.5, "direction": "above"}
            assert n["read"] is False and n["title"] and n["body"]
            # Later ticks and a later notification: still exactly one price alert.
            await c.publish_ticks([tick(symbol, 110.0) for _ in range(10)])
            marker = await c.notify(alice, "marker")
            m, before = await recv_until(a, lambda m: m.get("type") == "notification")
            assert m["notification"]["id"] == marker and before == []
            polled = await c.poll(alice)
            assert [x["data"]["alert_id"] for x in polled if x["kind"] == "price_alert"] == [up]
            alerts = (await c.http.get("/api/alerts", headers=bearer(alice))).json()["alerts"]
            assert [x["id"] for x in alerts] == [down]  # the fired one is gone
            assert (await c.http.delete(f"/api/alerts/{up}", headers=bearer(alice))).status_code == 404
            # The below alert: fires on the first tick at or below its level (<=).
            await c.publish_ticks([tick(symbol, 90.001), tick(symbol, 90.0), tick(symbol, 80.0)])
            fired, _ = await recv_until(a, is_alert)
            assert fired["notification"]["data"] == {
                "alert_id": down, "symbol": symbol, "price": 90.0, "level": 90.0, "direction": "below"
            }
            # Bob's alert never fired and bob saw nothing of alice's.
            assert await barrier(b) == []
            assert [x["id"] for x in (await c.http.get("/api/alerts", headers=bearer(bob))).json()["alerts"]] == [other]
            for ws in (a, b):
                await ws.close()

    asyncio.run(scenario())


def test_a_deleted_alert_does_not_fire(plain_server: Server) -> None:
    (carol,) = users("carol")

    async def scenario() -> None:
        async with Client(plain_server) as c:
            symbol = "ADA/USD"
            gone = (await create(c, carol, {"symbol": symbol, "above": 0.5})).json()["id"]
            kept = (await create(c, carol, {"symbol": symbol, "above": 0.6})).json()["id"]
            assert (await c.http.delete(f"/api/alerts/{gone}", headers=bearer(carol))).status_code == 204
            ws = await plain_server.authed(carol, "/ws/notifications")
            await recv_json(ws)
            await c.publish_ticks([tick(symbol, 0.7)])
            fired, before = await recv_until(ws, is_alert)
            assert fired["notification"]["data"]["alert_id"] == kept and before == []
            await c.notify(carol, "marker")
            m, before = await recv_until(ws, lambda m: m.get("type") == "notification")
            assert m["notification"]["title"] == "marker" and before == []
            await ws.close()

    asyncio.run(scenario())


def test_alerts_survive_a_restart_and_fire_once_after_it(fresh_server: Callable[..., Server]) -> None:
    server = fresh_server()
    symbol = "ETH/USD"

    async def before() -> tuple[int, int]:
        async with Client(server) as c:
            armed = (await create(c, "ivy", {"symbol": symbol, "above": 3000.0})).json()["id"]
            fired = (await create(c, "ivy", {"symbol": symbol, "below": 2000.0})).json()["id"]
            ws = await server.authed("ivy", "/ws/notifications")
            await recv_json(ws)
            await c.publish_ticks([tick(symbol, 1999.99)])
            m, _ = await recv_until(ws, is_alert)
            assert m["notification"]["data"]["alert_id"] == fired
            await ws.close()
            return armed, fired

    async def after(armed: int, fired: int) -> None:
        async with Client(server) as c:
            alerts = (await c.http.get("/api/alerts", headers=bearer("ivy"))).json()["alerts"]
            assert [(x["id"], x["direction"], x["level"]) for x in alerts] == [(armed, "above", 3000.0)]
            ws = await server.authed("ivy", "/ws/notifications")
            initial = (await recv_json(ws))["notifications"]
            assert [n["data"]["alert_id"] for n in initial] == [fired]  # stored, still unread
            # The re-armed alert fires; the one that fired before the restart does not again.
            await c.publish_ticks([tick(symbol, 1500.0), tick(symbol, 3000.0), tick(symbol, 3100.0)])
            m, before = await recv_until(ws, is_alert)
            assert before == []
            assert m["notification"]["data"] == {
                "alert_id": armed, "symbol": symbol, "price": 3000.0, "level": 3000.0, "direction": "above"
            }
            await c.notify("ivy", "marker")
            m, before = await recv_until(ws, lambda m: m.get("type") == "notification")
            assert m["notification"]["title"] == "marker" and before == []
            kinds = [n["data"]["alert_id"] for n in await c.poll("ivy") if n["kind"] == "price_alert"]
            assert kinds == [fired, armed]
            new = (await create(c, "ivy", {"symbol": symbol, "above": 5000.0})).json()["id"]
            assert new > max(armed, fired)  # ids are never reused across restarts
            await ws.close()

    ids = asyncio.run(before())
    server.restart()
    asyncio.run(after(*ids))


def test_a_user_holds_at_most_max_alerts_per_user(fresh_server: Callable[..., Server]) -> None:
    server = fresh_server("--max-alerts-per-user", "2")
    alice, bob = users("alice", "bob")

    async def scenario() -> None:
        async with Client(server) as c:
            ids = [(await create(c, alice, {"symbol": "ETH/USD", "above": 5000 + i})).json()["id"] for i in range(2)]
            over = await create(c, alice, {"symbol": "BTC/USD", "above": 1})
            assert over.status_code == 422 and over.json()["error"] == "at most 2 alerts per user"
            listed = (await c.http.get("/api/alerts", headers=bearer(alice))).json()["alerts"]
            assert [x["id"] for x in listed] == ids  # the refused one was not stored
            assert (await create(c, bob, {"symbol": "BTC/USD", "above": 1})).status_code == 201
            assert (await c.http.delete(f"/api/alerts/{ids[0]}", headers=bearer(alice))).status_code == 204
            assert (await create(c, alice, {"symbol": "BTC/USD", "above": 1})).status_code == 201

    asyncio.run(scenario())
