"""Caps on stored notification fields and the initial-list budget, without sockets: one
oversized stored item (written before the caps, or straight into the store) is sent cut to the
caps and never pushes the initial list past its budget."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tickfan.auth import Principal
from tickfan.brokers import MemoryBroker
from tickfan.stores import Notification, SqliteStore
from tickfan.web.api import MAX_JSON_DEPTH, json_value_problem
from tickfan.web.notifications import (
    INITIAL_BUDGET_BYTES,
    MAX_DATA_BYTES,
    TRUNCATED,
    NotificationsChannel,
    fit,
    initial_budget,
    within_budget,
)


class FakeSession:
    def __init__(self, sub: str) -> None:
        self.conn_id = 1
        self.principal = Principal(sub, 2**31)
        self.state: dict[str, Any] = {}
        self.frames: list[str] = []

    def send(self, frame: str) -> bool:
        self.frames.append(frame)
        return True


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def test_json_value_caps() -> None:
    assert json_value_problem("data", {"x": "y" * 100}, MAX_DATA_BYTES) is None
    assert json_value_problem("data", nested(MAX_JSON_DEPTH), MAX_DATA_BYTES) is None
    assert json_value_problem("data", nested(MAX_JSON_DEPTH + 1), MAX_DATA_BYTES) == "data nests deeper than 32 levels"
    exact = {"x": "y" * (MAX_DATA_BYTES - len('{"x":""}'))}
    assert json_value_problem("data", exact, MAX_DATA_BYTES) is None
    over = {"x": "y" * (MAX_DATA_BYTES - len('{"x":""}') + 1)}
    assert json_value_problem("data", over, MAX_DATA_BYTES) == f"data is {MAX_DATA_BYTES + 1} bytes of JSON, over its cap of {MAX_DATA_BYTES} bytes"
    assert json_value_problem("detail", [[[]]], 10) is None


def test_fit_leaves_items_within_the_caps_alone_and_cuts_the_others() -> None:
    ok = Notification(1, "info", "t" * 16_384, "b" * 16_384, {"k": 1}, 5, False)
    assert fit(ok) is ok
    big = Notification(2, "k" * 100, "t" * 100_000, "b" * 100_000, {"blob": "x" * 9_000_000}, 5, False)
    cut = fit(big)
    assert (cut.id, cut.created_at, cut.read) == (2, 5, False)
    assert cut.kind == "k" * 64 and cut.title == "t" * 16_384 and cut.body == "b" * 16_384
    assert cut.data == TRUNCATED
    assert fit(Notification(3, "info", "t", "", nested(40), 5, False)).data == TRUNCATED


def test_within_budget_keeps_the_most_recent_that_fit() -> None:
    items = [Notification(i, "info", "t" * 1000, "", None, 5, False) for i in range(1, 51)]
    kept = within_budget(items, 10_000)
    assert kept == items[-len(kept):] and 5 <= len(kept) < 10
    frame = json.dumps({"type": "initial_notifications", "notifications": [json.loads(_enc(n)) for n in kept]}, separators=(",", ":"))
    assert len(frame) <= 10_000
    assert within_budget(items, 10**9) == items


def _enc(n: Notification) -> str:
    from tickfan.protocol import encode

    return encode(n)


def test_initial_budget_follows_the_queue() -> None:
    assert initial_budget(8 * 1024 * 1024) == INITIAL_BUDGET_BYTES
    assert initial_budget(100_000) == 50_000


@pytest.mark.parametrize(
    "budget,titles",
    [(INITIAL_BUDGET_BYTES, ["before", "T" * 6, "after"]), (20_000, ["after"])],
    ids=["default", "small_queue"],
)
def test_an_oversized_stored_item_does_not_break_the_initial_list(tmp_path: Path, budget: int, titles: list[str]) -> None:
    async def scenario() -> list[str]:
        store = SqliteStore(tmp_path / "db")
        await store.open()
        try:
            small = await store.add_notification("alice", "info", "before", "", {"n": 1}, 1)
            await store.add_notification("alice", "info", "T" * 300_000, "B" * 300_000, {"blob": "x" * 9_000_000}, 2)
            newest = await store.add_notification("alice", "info", "after", "", None, 3)
            channel = NotificationsChannel(MemoryBroker(store), budget)
            session = FakeSession("alice")
            await channel.on_authenticated(session)
            assert small.id < newest.id
            return session.frames
        finally:
            await store.close()

    frames = asyncio.run(scenario())
    assert len(frames) == 1 and len(frames[0]) <= budget
    listed = json.loads(frames[0])["notifications"]
    assert [n["title"][:6] for n in listed] == titles
    for n in listed:
        if n["title"].startswith("T"):
            assert n["data"] == TRUNCATED and len(n["title"]) == 16_384
