"""NotificationsChannel without sockets: the initial list and live notifications never overlap
or go missing, and delivery is per user."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from broker_nodes import Node
from channel_harness import FakeSession
from channel_harness import started as started_channel

from tickfan.stores import Notification, SqliteStore
from tickfan.web.notifications import MarkRead, NotificationsChannel


class SlowUnreadStore(SqliteStore):
    """Holds the initial read until told, so notifications can be created meanwhile."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.reading = asyncio.Event()
        self.release = asyncio.Event()

    async def unread_notifications(self, user_id: str, limit: int = 50) -> list[Notification]:
        self.reading.set()
        await self.release.wait()
        return await super().unread_notifications(user_id, limit)


@pytest.fixture
def core(impl: Any) -> Any:
    return impl


async def started(core: Any, store: SqliteStore, tmp_path: Path) -> tuple[Node, NotificationsChannel]:
    return await started_channel(core, store, tmp_path, NotificationsChannel, Notification)


def test_notifications_created_during_the_initial_read_arrive_once_after_it(core: Any, tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SlowUnreadStore(tmp_path / "db")
        node, channel = await started(core, store, tmp_path)
        notify = node.broker.notify
        old = await notify("alice", "info", "old", "", None)
        session = FakeSession(1, "alice")
        connecting = asyncio.create_task(channel.on_authenticated(session))
        await store.reading.wait()
        during = await notify("alice", "info", "during", "", None)  # stored before the read
        store.release.set()
        await connecting
        after = await notify("alice", "info", "after", "", None)
        assert session.frames[0]["type"] == "initial_notifications"
        assert [n["id"] for n in session.frames[0]["notifications"]] == [old.id, during.id]
        # "during" was in the list, so it is not sent again; "after" comes live.
        assert [(f["type"], f["notification"]["id"]) for f in session.frames[1:]] == [
            ("notification", after.id)
        ]
        await node.__aexit__()

    asyncio.run(scenario())


def test_delivery_and_mark_read_are_per_user(core: Any, tmp_path: Path) -> None:
    async def scenario() -> None:
        node, channel = await started(core, SqliteStore(tmp_path / "db"), tmp_path)
        alice1, alice2, bob = FakeSession(1, "alice"), FakeSession(2, "alice"), FakeSession(3, "bob")
        for s in (alice1, alice2, bob):
            await channel.on_authenticated(s)
        n = await node.broker.notify("alice", "info", "hi", "", {"x": 1})
        assert [f["notification"]["id"] for f in alice1.frames[1:]] == [n.id]
        assert [f["notification"]["id"] for f in alice2.frames[1:]] == [n.id]
        assert bob.frames[1:] == []
        await channel.on_message(bob, MarkRead([n.id]))
        assert bob.frames[-1] == {"type": "marked_read", "ids": []}
        await channel.on_message(alice1, MarkRead([n.id]))
        assert alice1.frames[-1] == {"type": "marked_read", "ids": [n.id]}
        assert alice2.frames[-1]["type"] == "notification"  # only the asking socket is answered
        channel.on_close(alice1)
        channel.on_close(alice2)
        await node.broker.notify("alice", "info", "nobody listening", "", None)
        assert len(alice1.frames) == 3 and len(alice2.frames) == 2
        await node.__aexit__()

    asyncio.run(scenario())
