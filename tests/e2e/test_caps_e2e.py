"""Caps on every stored field against a real server (422 naming the field), and one oversized
item written straight into the store never making the notifications channel unusable."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tickfan.stores import SqliteStore, Store
from tickfan.brokers import STORE_FILE
from tickfan.brokers.redis import RedisStore
from tickfan_e2e import Server, barrier, bearer, recv_json, run, users

pytestmark = pytest.mark.e2e


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def notify(server: Server, **fields: Any) -> httpx.Response:
    body = {"user_id": users("capped")[0], "kind": "info", "title": "t", "body": "", "data": None, **fields}
    return httpx.post(server.http + "/api/notifications", json=body, headers=bearer("svc", publish=True), timeout=30)


def bot(server: Server, bot_id: str = "b-1", **fields: Any) -> httpx.Response:
    body = {"user_id": users("capped")[0], "status": "running", "detail": None, **fields}
    return httpx.post(server.http + f"/api/bots/{bot_id}/status", json=body, headers=bearer("svc", publish=True), timeout=30)


@pytest.mark.parametrize(
    "fields,field",
    [
        ({"data": {"blob": "x" * 16_384}}, "data"),
        ({"data": nested(33)}, "data"),
        ({"title": "t" * 16_385}, "title"),
        ({"body": "b" * 16_385}, "body"),
        ({"kind": "k" * 65}, "kind"),
        ({"user_id": "u" * 257}, "user_id"),
    ],
    ids=["data_bytes", "data_depth", "title", "body", "kind", "user_id"],
)
def test_notification_fields_over_their_caps_are_422_naming_the_field(plain_server: Server, fields: dict[str, Any], field: str) -> None:
    response = notify(plain_server, **fields)
    assert response.status_code == 422, response.text[:300]
    assert f"$.{field}" in response.json()["error"]


def test_notification_fields_at_their_caps_are_stored(plain_server: Server) -> None:
    data = {"blob": "x" * (16_384 - len('{"blob":""}'))}
    response = notify(plain_server, data=data, title="t" * 16_384, body="b" * 16_384, kind="k" * 64, user_id="u" * 256)
    assert response.status_code == 201, response.text[:300]


@pytest.mark.parametrize(
    "fields,bot_id,field",
    [
        ({"detail": {"blob": "x" * 4096}}, "b-1", "detail"),
        ({"detail": nested(33)}, "b-1", "detail"),
        ({"user_id": "u" * 257}, "b-1", "user_id"),
    ],
    ids=["detail_bytes", "detail_depth", "user_id"],
)
def test_bot_fields_over_their_caps_are_422_naming_the_field(plain_server: Server, fields: dict[str, Any], bot_id: str, field: str) -> None:
    response = bot(plain_server, bot_id, **fields)
    assert response.status_code == 422, response.text[:300]
    assert f"$.{field}" in response.json()["error"]


def test_bot_id_and_status_caps(plain_server: Server) -> None:
    assert bot(plain_server, "b" * 129).status_code == 422
    assert bot(plain_server, "b" * 128).status_code == 200
    assert bot(plain_server, status="x" * 10_000).status_code == 422
    detail = {"blob": "x" * (4096 - len('{"blob":""}'))}
    assert bot(plain_server, detail=detail).status_code == 200


def test_alert_symbol_cap(plain_server: Server) -> None:
    headers = bearer(users("alerter")[0])
    long = httpx.post(plain_server.http + "/api/alerts", json={"symbol": "S" * 65, "above": 1.0}, headers=headers)
    assert long.status_code == 422 and "$.symbol" in long.json()["error"]
    unknown = httpx.post(plain_server.http + "/api/alerts", json={"symbol": "S" * 64, "above": 1.0}, headers=headers)
    assert unknown.status_code == 422 and "unknown symbol" in unknown.json()["error"]


def test_an_oversized_stored_notification_never_poisons_the_channel(fresh_server: Callable[..., Server]) -> None:
    srv = fresh_server("--max-queue-bytes", str(1024 * 1024))
    (user,) = users("poisoned")
    srv.stop()

    async def write_directly() -> None:  # as a server without the caps would have stored it
        store: Store = SqliteStore(srv.data_dir / STORE_FILE)
        if srv.broker != "memory":  # the Redis broker's store, in the server's Redis
            store = RedisStore(srv.extra[srv.extra.index("--broker") + 1], timeout=30)
        await store.open()
        try:
            await store.add_notification(user, "info", "small", "", {"n": 1}, 1)
            await store.add_notification(user, "info", "T" * 100_000, "", {"blob": "x" * 9_000_000}, 2)
        finally:
            await store.close()

    asyncio.run(write_directly())
    srv.restart()

    async def connect_twice() -> list[list[dict[str, Any]]]:
        lists = []
        for _ in range(2):  # every connect, not only the first
            ws = await srv.authed(user, "/ws/notifications")
            initial = await recv_json(ws)
            assert initial["type"] == "initial_notifications"
            assert await barrier(ws) == []  # still open and answering
            lists.append(initial["notifications"])
            await ws.close()
        return lists

    for listed in run(connect_twice()):
        assert [n["title"][:5] for n in listed] == ["small", "TTTTT"]
        assert listed[1]["data"] == {"truncated": True} and len(listed[1]["title"]) == 16_384
    polled = httpx.get(srv.http + "/api/notifications", headers=bearer(user), timeout=30).json()["notifications"]
    assert [n["data"] for n in polled] == [{"n": 1}, {"truncated": True}]
    assert len(json.dumps(polled)) < 100_000
