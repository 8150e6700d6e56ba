"""BotStatusChannel without sockets: the initial list comes from the store; an update posted
while it is being read arrives once, after it, and never goes back in time; delivery is per user."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import ModuleType

from broker_nodes import Node
from channel_harness import FakeSession
from channel_harness import started as started_channel

from tickfan.bots import BotState
from tickfan.stores import SqliteStore
from tickfan.web.bot_status import BotStatusChannel


class BotSession(FakeSession):
    def seen(self) -> list[tuple[str, str, int]]:
        return [(f["bot_id"], f["status"], f["running_count"]) for f in self.frames]


class SlowBotsStore(SqliteStore):
    """Holds the initial read until told (it has read the rows already), so updates land meanwhile."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.reading = asyncio.Event()
        self.release = asyncio.Event()

    async def bots(self, user_id: str) -> list[BotState]:
        rows = await super().bots(user_id)
        self.reading.set()
        await self.release.wait()
        return rows


async def started(impl: ModuleType, store: SqliteStore, tmp_path: Path) -> tuple[Node, BotStatusChannel]:
    return await started_channel(impl, store, tmp_path, BotStatusChannel, BotState)


def test_an_update_during_the_initial_read_replaces_that_bot_in_the_list(impl: ModuleType, tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SlowBotsStore(tmp_path / "db")
        node, channel = await started(impl, store, tmp_path)
        put = node.broker.put_bot
        await put("alice", "a", "running", None)
        await put("alice", "b", "running", None)
        session = BotSession(1, "alice")
        connecting = asyncio.create_task(channel.on_authenticated(session))
        await store.reading.wait()  # the list read says a and b are running
        await put("alice", "b", "stopped", None)  # after the read, before the list is out
        store.release.set()
        await connecting
        await put("alice", "a", "paused", None)
        # a from the list; b only as its newer update (never running after stopped); then live.
        assert session.seen() == [("a", "running", 2), ("b", "stopped", 1), ("a", "paused", 0)]
        await node.__aexit__()

    asyncio.run(scenario())


def test_updates_reach_only_their_users_sockets(impl: ModuleType, tmp_path: Path) -> None:
    async def scenario() -> None:
        node, channel = await started(impl, SqliteStore(tmp_path / "db"), tmp_path)
        alice1, alice2, bob = BotSession(1, "alice"), BotSession(2, "alice"), BotSession(3, "bob")
        for s in (alice1, alice2, bob):
            await channel.on_authenticated(s)
        await node.broker.put_bot("alice", "x", "running", {"k": 1})
        await node.broker.put_bot("bob", "x", "error", None)
        assert alice1.seen() == alice2.seen() == [("x", "running", 1)]
        assert bob.seen() == [("x", "error", 0)]
        channel.on_close(alice1)
        await node.broker.put_bot("alice", "x", "stopped", None)
        assert len(alice1.frames) == 1 and alice2.seen()[-1] == ("x", "stopped", 0)
        # A later socket starts from the stored state.
        late = BotSession(4, "alice")
        await channel.on_authenticated(late)
        assert late.seen() == [("x", "stopped", 0)]
        await node.__aexit__()

    asyncio.run(scenario())
