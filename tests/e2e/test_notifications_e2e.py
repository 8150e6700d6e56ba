"""``/ws/notifications`` and the notification routes against a real server, both cores."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tickfan_e2e import Client, Server, barrier, bearer, recv_json, users

pytestmark = pytest.mark.e2e

N_KEYS = {"id", "kind", "title", "body", "data", "created_at", "read"}


def test_initial_then_live_and_users_are_isolated(plain_server: Server) -> None:
    alice, bob = users("alice", "bob")

    async def scenario() -> None:
        async with Client(plain_server) as c:
            a_ids = [await c.notify(alice, f"a{i}", data={"i": i}) for i in range(3)]
            b_id = await c.notify(bob, "b0")
            assert a_ids == sorted(a_ids) and a_ids[-1] < b_id
            a = await plain_server.authed(alice, "/ws/notifications")
            b = await plain_server.authed(bob, "/ws/notifications")
            initial = await recv_json(a)
            assert initial["type"] == "initial_notifications"
            got = initial["notifications"]
            assert [n["id"] for n in got] == a_ids  # oldest first
            assert all(set(n) == N_KEYS and n["read"] is False for n in got)
            assert [(n["title"], n["body"], n["kind"], n["data"]) for n in got] == [
                (f"a{i}", f"body of a{i}", "info", {"i": i}) for i in range(3)
            ]
            assert [n["id"] for n in (await recv_json(b))["notifications"]] == [b_id]

            live_id = await c.notify(alice, "live", kind="trade", data=None)
            live = await recv_json(a)
            assert live["type"] == "notification"
            assert live["notification"]["id"] == live_id > b_id
            assert (live["notification"]["kind"], live["notification"]["data"]) == ("trade", None)
            assert await barrier(b) == []  # bob got nothing of alice's
            assert await barrier(a) == []
            for ws in (a, b):
                await ws.close()

    asyncio.run(scenario())


def test_initial_holds_the_50_most_recent_unread_oldest_first(plain_server: Server) -> None:
    (carol,) = users("carol")

    async def scenario() -> None:
        async with Client(plain_server) as c:
            ids = [await c.notify(carol, f"n{i}") for i in range(60)]
            r = await c.http.post("/api/notifications/read", json={"ids": ids[-3:]}, headers=bearer(carol))
            assert r.json() == {"ids": ids[-3:]}
        ws = await plain_server.authed(carol, "/ws/notifications")
        initial = (await recv_json(ws))["notifications"]
        assert [n["id"] for n in initial] == ids[7:57]
        await ws.close()

    asyncio.run(scenario())


def test_mark_read_over_the_socket_touches_only_own_ids(plain_server: Server) -> None:
    alice, bob = users("alice", "bob")

    async def scenario() -> None:
        async with Client(plain_server) as c:
            a1 = await c.notify(alice, "a1")
            a2 = await c.notify(alice, "a2")
            b1 = await c.notify(bob, "b1")
            a = await plain_server.authed(alice, "/ws/notifications")
            await recv_json(a)  # initial
            # bob's id and an unknown id are ignored and not echoed; duplicates collapse.
            await a.send(json.dumps({"type": "mark_read", "ids": [b1, a1, 10**12, a1]}))
            assert await recv_json(a) == {"type": "marked_read", "ids": [a1]}
            await a.send(json.dumps({"type": "mark_read", "ids": [a1]}))  # idempotent
            assert await recv_json(a) == {"type": "marked_read", "ids": [a1]}
            await a.send(json.dumps({"type": "mark_read", "ids": ["x"]}))
            assert (await recv_json(a))["code"] == "invalid_message"
            await a.send(json.dumps({"type": "mark_read", "ids": [-1]}))
            assert (await recv_json(a))["code"] == "invalid_message"
            assert [(n["id"], n["read"]) for n in await c.poll(alice)] == [(a1, True), (a2, False)]
            assert [(n["id"], n["read"]) for n in await c.poll(bob)] == [(b1, False)]
            # Over HTTP, same rule.
            r = await c.http.post("/api/notifications/read", json={"ids": [a2, b1]}, headers=bearer(alice))
            assert r.status_code == 200 and r.json() == {"ids": [a2]}
            assert [n["read"] for n in await c.poll(bob)] == [False]
            await a.close()

    asyncio.run(scenario())


def test_polling_and_socket_views_agree(plain_server: Server) -> None:
    (dave,) = users("dave")

    async def scenario() -> None:
        async with Client(plain_server) as c:
            before = [await c.notify(dave, f"old{i}", data={"n": i}) for i in range(3)]
            ws = await plain_server.authed(dave, "/ws/notifications")
            seen = list((await recv_json(ws))["notifications"])
            for i in range(5):
                await c.notify(dave, f"new{i}", kind="warning", data={"nested": {"k": [i]}})
                seen.append((await recv_json(ws))["notification"])
            polled = await c.poll(dave)
            assert polled == seen
            assert [n["id"] for n in seen][:3] == before
            # Paging with after/limit walks the same list.
            pages: list[dict[str, Any]] = []
            after = 0
            while True:
                page = await c.poll(dave, after=after, limit=3)
                if not page:
                    break
                pages.extend(page)
                after = page[-1]["id"]
            assert pages == polled
            # After marking read on the socket, polling shows it.
            await ws.send(json.dumps({"type": "mark_read", "ids": [seen[0]["id"], seen[4]["id"]]}))
            assert (await recv_json(ws))["ids"] == [seen[0]["id"], seen[4]["id"]]
            assert [n["read"] for n in await c.poll(dave)] == [True, False, False, False, True, False, False, False]
            await ws.close()

    asyncio.run(scenario())


def test_http_validation_and_scopes(plain_server: Server) -> None:
    with httpx.Client(base_url=plain_server.http) as c:
        body = {"user_id": "erin", "kind": "info", "title": "t", "body": "b", "data": None}
        assert c.post("/api/notifications", json=body).status_code == 401
        assert c.post("/api/notifications", json=body, headers=bearer("erin")).status_code == 403
        svc = bearer("svc", publish=True)
        assert c.post("/api/notifications", json={**body, "data": [1]}, headers=svc).status_code == 422
        assert c.post("/api/notifications", json={"user_id": "erin"}, headers=svc).status_code == 422
        assert c.post("/api/notifications", content=b"{", headers=svc).status_code == 400
        assert c.get("/api/notifications").status_code == 401
        assert c.get("/api/notifications", params={"limit": 1001}, headers=bearer("erin")).status_code == 422
        assert c.get("/api/notifications", params={"limit": 0}, headers=bearer("erin")).status_code == 422
        assert c.get("/api/notifications", params={"limit": 1000}, headers=bearer("erin")).status_code == 200
        r = c.post("/api/notifications/read", json={"ids": [1] * 1001}, headers=bearer("erin"))
        assert r.status_code == 422
        # The rejected create stored nothing.
        assert c.get("/api/notifications", headers=bearer("erin")).json() == {"notifications": []}


def test_default_limit_is_100(plain_server: Server) -> None:
    (frank,) = users("frank")

    async def scenario() -> None:
        async with Client(plain_server) as c:
            ids = [await c.notify(frank, f"n{i}") for i in range(105)]
            assert [n["id"] for n in await c.poll(frank)] == ids[:100]
            assert [n["id"] for n in await c.poll(frank, after=ids[99])] == ids[100:]

    asyncio.run(scenario())


def test_notifications_survive_a_restart_with_read_state_and_id_order(fresh_server: Callable[..., Server]) -> None:
    server = fresh_server()

    async def before() -> tuple[list[int], list[dict[str, Any]]]:
        async with Client(server) as c:
            ids = [await c.notify("gina", f"n{i}", data={"i": i}) for i in range(4)]
            await c.notify("hank", "other user")
            r = await c.http.post("/api/notifications/read", json={"ids": [ids[1]]}, headers=bearer("gina"))
            assert r.json() == {"ids": [ids[1]]}
            return ids, await c.poll("gina")

    async def after(ids: list[int], polled: list[dict[str, Any]]) -> None:
        async with Client(server) as c:
            assert await c.poll("gina") == polled  # same ids, order, content and read state
            ws = await server.authed("gina", "/ws/notifications")
            initial = (await recv_json(ws))["notifications"]
            assert [n["id"] for n in initial] == [ids[0], ids[2], ids[3]]
            newer = await c.notify("gina", "after restart")
            assert newer > max(ids) + 1  # hank's id sits in between: ids are global and increasing
            assert (await recv_json(ws))["notification"]["id"] == newer
            await ws.close()

    ids, polled = asyncio.run(before())
    server.restart()
    asyncio.run(after(ids, polled))
