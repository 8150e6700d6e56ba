"""``/ws/bot-status`` and ``POST /api/bots/{bot_id}/status`` against a real server, both cores."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tickfan_e2e import Client, Server, barrier, bearer, recv_json, users

pytestmark = pytest.mark.e2e


def test_initial_state_then_live_updates_and_users_never_see_each_other(plain_server: Server) -> None:
    alice, bob = users("alice", "bob")

    async def scenario() -> None:
        async with Client(plain_server) as c:
            assert (await c.bot_status(alice, "zeta", "running", {"pnl": 1.5})).json()["running_count"] == 1
            assert (await c.bot_status(alice, "alpha", "paused")).json()["running_count"] == 1
            assert (await c.bot_status(bob, "alpha", "running")).status_code == 200  # same bot_id

            a = await plain_server.authed(alice, "/ws/bot-status")
            b = await plain_server.authed(bob, "/ws/bot-status")
            first = [await recv_json(a), await recv_json(a)]
            assert [(m["type"], m["bot_id"], m["status"], m["running_count"]) for m in first] == [
                ("bot_status", "alpha", "paused", 1),
                ("bot_status", "zeta", "running", 1),
            ]
            assert first[1]["detail"] == {"pnl": 1.5} and first[0]["detail"] is None
            assert isinstance(first[0]["ts"], int) and first[0]["ts"] > 1_600_000_000_000
            bob_first = await recv_json(b)
            assert (bob_first["bot_id"], bob_first["status"], bob_first["running_count"]) == ("alpha", "running", 1)
            assert await barrier(a) == [] and await barrier(b) == []  # nothing else initially

            # Live: each update reaches its owner with the right count, and nobody else.
            expected_counts = [("alpha", "running", 2), ("zeta", "stopping", 1), ("alpha", "error", 0)]
            for bot, status, count in expected_counts:
                assert (await c.bot_status(alice, bot, status)).json()["running_count"] == count
                m = await recv_json(a)
                assert (m["bot_id"], m["status"], m["running_count"]) == (bot, status, count)
            assert await barrier(b) == []  # bob saw none of alice's updates
            await c.bot_status(bob, "alpha", "stopped")
            m = await recv_json(b)
            assert (m["bot_id"], m["status"], m["running_count"]) == ("alpha", "stopped", 0)
            assert await barrier(a) == []

            # A second socket of alice starts from the current state.
            a2 = await plain_server.authed(alice, "/ws/bot-status")
            again = [await recv_json(a2), await recv_json(a2)]
            assert [(m["bot_id"], m["status"], m["running_count"]) for m in again] == [
                ("alpha", "error", 0),
                ("zeta", "stopping", 0),
            ]
            for ws in (a, a2, b):
                await ws.close()

    asyncio.run(scenario())


def test_a_user_without_bots_gets_no_initial_messages(plain_server: Server) -> None:
    (carol,) = users("carol")

    async def scenario() -> None:
        ws = await plain_server.authed(carol, "/ws/bot-status")
        assert await barrier(ws) == []
        await ws.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "body",
    [
        {"status": "crashed"},
        {"status": "RUNNING"},
        {"status": 1},
        {"status": "running", "user_id": ""},
        {"status": "running", "detail": [1, 2]},
        {"status": "running", "extra": True},
    ],
)
def test_invalid_updates_are_422_and_change_nothing(plain_server: Server, body: dict[str, object]) -> None:
    (dave,) = users("dave")
    payload = {"user_id": dave, **body}
    with httpx.Client(base_url=plain_server.http) as c:
        r = c.post("/api/bots/b1/status", json=payload, headers=bearer("svc", publish=True))
        assert r.status_code == 422, r.text
        assert "error" in r.json()

    async def scenario() -> None:
        ws = await plain_server.authed(dave, "/ws/bot-status")
        assert await barrier(ws) == []  # no bot was recorded
        await ws.close()

    asyncio.run(scenario())


def test_publishing_needs_the_publish_scope(plain_server: Server) -> None:
    with httpx.Client(base_url=plain_server.http) as c:
        body = {"user_id": "eve", "status": "running", "detail": None}
        assert c.post("/api/bots/b1/status", json=body).status_code == 401
        assert c.post("/api/bots/b1/status", json=body, headers=bearer("eve")).status_code == 403
        ok = c.post("/api/bots/b1/status", json=body, headers=bearer("svc", publish=True))
        assert ok.status_code == 200 and ok.json() == {"bot_id": "b1", "status": "running", "running_count": 1}
