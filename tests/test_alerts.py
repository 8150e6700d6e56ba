"""AlertBook over both cores and the SQLite store: arming, firing once, deletion races, restart."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tickfan.alerts import PRICE_ALERT, AlertBook
from tickfan.errors import InvalidArgument, UnknownSymbol
from tickfan.stores import Notification, SqliteStore

UNIVERSE = [("BTC/USD", 2, 8), ("ETH/USD", 2, 6)]


class Harness:
    def __init__(self, impl: ModuleType, path: Path, universe: list[tuple[str, int, int]] = UNIVERSE) -> None:
        self.core = impl.Core(universe)
        self.store = SqliteStore(path)
        self.delivered: list[tuple[str, Notification]] = []
        self.book = AlertBook(self.store, self.core, lambda u, n: self.delivered.append((u, n)), lambda: 1000)
        self.ts = 0

    async def __aenter__(self) -> Harness:
        await self.store.open()
        await self.book.start()
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self.book.stop()
        await self.store.close()

    async def ingest(self, symbol: str, *prices: float) -> None:
        ticks = []
        for p in prices:
            self.ts += 1
            ticks.append((symbol, p, 1.0, self.ts))
        self.core.ingest(ticks, self.ts)
        self.book.after_ingest()
        await self.settle()

    async def settle(self) -> None:
        await self.book._fired.join()


def test_fires_once_with_the_first_crossing_price(impl: ModuleType, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Harness(impl, tmp_path / "db") as h:
            up = await h.book.create("alice", "BTC/USD", "above", 100.0)
            down = await h.book.create("bob", "BTC/USD", "below", 90.0)
            await h.ingest("BTC/USD", 95.0, 99.99)
            assert h.delivered == []
            await h.ingest("BTC/USD", 100.0, 120.0, 130.0)
            await h.ingest("BTC/USD", 140.0)
            assert [(u, n.kind, n.data) for u, n in h.delivered] == [
                ("alice", PRICE_ALERT, {"alert_id": up.id, "symbol": "BTC/USD", "price": 100.0,
                                        "level": 100.0, "direction": "above"})
            ]
            assert h.delivered[0][1].title == "BTC/USD above 100.0"
            assert await h.book.list("alice") == []
            assert [a.id for a in await h.book.list("bob")] == [down.id]
            await h.ingest("BTC/USD", 89.0, 50.0)
            assert [(u, n.data["alert_id"], n.data["price"]) for u, n in h.delivered[1:]] == [
                ("bob", down.id, 89.0)
            ]

    asyncio.run(scenario())


def test_validation(impl: ModuleType, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Harness(impl, tmp_path / "db") as h:
            with pytest.raises(UnknownSymbol):
                await h.book.create("alice", "XRP/USD", "above", 1.0)
            with pytest.raises(InvalidArgument):
                await h.book.create("alice", "BTC/USD", "sideways", 1.0)  # type: ignore[arg-type]
            for level in (0.0, -1.0, float("inf"), float("nan")):
                with pytest.raises(InvalidArgument):
                    await h.book.create("alice", "BTC/USD", "above", level)
            assert await h.store.all_alerts() == []  # nothing stored for a refused alert

    asyncio.run(scenario())


def test_delete_is_per_user_and_disarms(impl: ModuleType, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Harness(impl, tmp_path / "db") as h:
            a = await h.book.create("alice", "ETH/USD", "above", 10.0)
            assert await h.book.delete("bob", a.id) is False
            assert await h.book.delete("alice", a.id) is True
            assert await h.book.delete("alice", a.id) is False
            await h.ingest("ETH/USD", 11.0)
            assert h.delivered == []
            assert h.core.stats()["alerts"] == 0

    asyncio.run(scenario())


def test_deleted_after_firing_in_the_core_but_before_storing_does_not_notify(
    impl: ModuleType, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with Harness(impl, tmp_path / "db") as h:
            a = await h.book.create("alice", "ETH/USD", "above", 10.0)
            h.core.ingest([("ETH/USD", 12.0, 1.0, 1)], 1)
            h.book.after_ingest()  # fired in the core, queued, not yet stored
            assert await h.book.delete("alice", a.id) is True
            await h.settle()
            assert h.delivered == []
            assert await h.store.list_notifications("alice", 0, 10) == []

    asyncio.run(scenario())


def test_restart_rearms_stored_alerts_and_skips_unknown_symbols(impl: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "db"

    async def before() -> tuple[int, int]:
        async with Harness(impl, path) as h:
            kept = await h.book.create("alice", "BTC/USD", "below", 50.0)
            orphan = await h.book.create("alice", "ETH/USD", "above", 5.0)
            fired = await h.book.create("alice", "BTC/USD", "above", 70.0)
            await h.ingest("BTC/USD", 75.0)
            assert [n.data["alert_id"] for _, n in h.delivered] == [fired.id]
            return kept.id, orphan.id

    async def after(kept: int, orphan: int) -> None:
        # ETH/USD left the universe: its alert stays stored but is not armed.
        async with Harness(impl, path, universe=[("BTC/USD", 2, 8)]) as h:
            assert h.core.stats()["alerts"] == 1
            await h.ingest("BTC/USD", 75.0, 49.5)
            assert [(n.data["alert_id"], n.data["price"]) for _, n in h.delivered] == [(kept, 49.5)]
            assert [a.id for a in await h.book.list("alice")] == [orphan]

    kept, orphan = asyncio.run(before())
    asyncio.run(after(kept, orphan))
