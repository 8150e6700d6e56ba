"""What only the memory broker does: alerts armed in the node's core, a new epoch per process,
re-arming at start, the deletion race, a failed commit."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tickfan.brokers import MemoryBroker
from tickfan.stores import FiredAlert, SqliteStore

from broker_nodes import Node


def run(coro: Any) -> Any:
    return asyncio.run(coro)


class GatedStore(SqliteStore):
    """Holds every ``fire_alert`` until ``release`` is set; ``fail`` makes the next one raise."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.firing = asyncio.Event()
        self.release = asyncio.Event()
        self.fail = False

    async def fire_alert(self, *args: Any) -> FiredAlert | None:
        self.firing.set()
        await self.release.wait()
        if self.fail:
            self.fail = False
            raise OSError("disk full")
        return await super().fire_alert(*args)


def test_the_epoch_is_new_in_every_process(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db")
    assert MemoryBroker(store).epoch != MemoryBroker(store).epoch


def test_alerts_are_armed_in_the_core_and_disarmed_on_delete(impl: ModuleType, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Node(impl, MemoryBroker(SqliteStore(tmp_path / "db")), tmp_path) as n:
            a = await n.broker.add_alert("alice", "ETH/USD", "above", 10.0)
            assert n.hub.core.stats()["alerts"] == 1
            assert await n.broker.delete_alert("alice", a.id)
            assert n.hub.core.stats()["alerts"] == 0

    run(scenario())


def test_deleted_after_firing_in_the_core_but_before_the_commit_does_not_notify(
    impl: ModuleType, tmp_path: Path
) -> None:
    async def scenario() -> None:
        store = GatedStore(tmp_path / "db")
        async with Node(impl, MemoryBroker(store), tmp_path) as n:
            a = await n.broker.add_alert("alice", "ETH/USD", "above", 10.0)
            ingest = asyncio.create_task(n.broker.ingest([("ETH/USD", 12.0, 1.0, 1)]))
            await store.firing.wait()  # fired in the core, commit pending
            assert not ingest.done()  # the ingest is not acknowledged before the commit
            assert await n.broker.delete_alert("alice", a.id) is True
            store.release.set()
            assert await ingest == 1
            assert await store.list_notifications("alice", 0, 10) == []
            assert n.events == []

    run(scenario())


def test_a_failed_commit_fails_the_ingest_and_re_arms_the_alert(impl: ModuleType, tmp_path: Path) -> None:
    async def scenario() -> None:
        store = GatedStore(tmp_path / "db")
        store.fail = True
        store.release.set()
        async with Node(impl, MemoryBroker(store), tmp_path) as n:
            a = await n.broker.add_alert("alice", "ETH/USD", "above", 10.0)
            with pytest.raises(OSError, match="disk full"):
                await n.broker.ingest([("ETH/USD", 12.0, 1.0, 1)], "retry-me")
            # The ticks were applied (a retry with the key is not applied again) ...
            assert await n.broker.ingest([("ETH/USD", 12.0, 1.0, 1)], "retry-me") == 1
            assert n.hub.latest("ETH/USD") == (1, 1, 12.0, 1.0)
            # ... and the alert, still stored, is armed again: the next crossing fires it.
            assert n.hub.core.stats()["alerts"] == 1
            await n.broker.ingest([("ETH/USD", 13.0, 1.0, 2)])
            notes = await store.list_notifications("alice", 0, 10)
            assert [(x.data["alert_id"], x.data["price"]) for x in notes] == [(a.id, 13.0)]

    run(scenario())


def test_start_re_arms_stored_alerts_and_skips_symbols_that_left_the_universe(
    impl: ModuleType, tmp_path: Path
) -> None:
    path = tmp_path / "db"
    universe = tmp_path / "symbols.json"
    universe.write_text('[{"symbol": "BTC/USD", "price_decimals": 2, "size_decimals": 8}]')

    async def before() -> tuple[int, int]:
        async with Node(impl, MemoryBroker(SqliteStore(path)), tmp_path) as n:
            kept = await n.broker.add_alert("alice", "BTC/USD", "below", 50.0)
            orphan = await n.broker.add_alert("alice", "ETH/USD", "above", 5.0)
            return kept.id, orphan.id

    async def after(kept: int, orphan: int) -> None:
        n = Node(impl, MemoryBroker(SqliteStore(path)), tmp_path, symbols=universe)
        async with n:
            assert n.hub.core.stats()["alerts"] == 1  # ETH/USD's stays stored, not armed
            await n.broker.ingest([("BTC/USD", 49.5, 1.0, 1)])
            notes = await n.broker.store.list_notifications("alice", 0, 10)
            assert [(x.data["alert_id"], x.data["price"]) for x in notes] == [(kept, 49.5)]
            assert [a.id for a in await n.broker.store.list_alerts("alice")] == [orphan]

    kept, orphan = run(before())
    run(after(kept, orphan))


def test_the_memory_broker_needs_a_local_node(tmp_path: Path) -> None:
    class Remote:
        def apply(self, ticks: Any) -> int:
            return 0

        def deliver(self, user_id: str, event: Any) -> None:
            pass

        def new_epoch(self, epoch: str) -> None:
            pass

    with pytest.raises(TypeError, match="hub in this process"):
        run(MemoryBroker(SqliteStore(tmp_path / "db")).start(Remote()))
