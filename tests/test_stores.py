"""Contract tests for the notification and alert store (every backend must pass them)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tickfan.stores import SqliteStore, Store

T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """A factory: each call opens a store on the same underlying data (a "restart")."""
    path = tmp_path / "tickfan.db"
    yield lambda: SqliteStore(path)


async def opened(make: Callable[[], Store]) -> Store:
    store = make()
    await store.open()
    return store


def test_notifications_ids_increase_and_users_are_isolated(make_store: Callable[[], Store]) -> None:
    async def scenario() -> None:
        s = await opened(make_store)
        a1 = await s.add_notification("alice", "info", "t1", "b1", {"k": [1, 2]}, 1000)
        b1 = await s.add_notification("bob", "info", "bob's", "secret", None, 1001)
        a2 = await s.add_notification("alice", "warning", "t2", "b2", None, 1002)
        assert a1.id < b1.id < a2.id
        assert a1.data == {"k": [1, 2]} and a1.read is False and a1.created_at == 1000
        alice = await s.list_notifications("alice", 0, 100)
        assert [n.id for n in alice] == [a1.id, a2.id]
        assert [n.title for n in await s.list_notifications("bob", 0, 100)] == ["bob's"]
        assert await s.list_notifications("carol", 0, 100) == []
        await s.close()

    run(scenario())


def test_list_after_and_limit(make_store: Callable[[], Store]) -> None:
    async def scenario() -> None:
        s = await opened(make_store)
        ids = [(await s.add_notification("u", "info", f"t{i}", "", None, i)).id for i in range(10)]
        assert [n.id for n in await s.list_notifications("u", 0, 3)] == ids[:3]
        assert [n.id for n in await s.list_notifications("u", ids[3], 4)] == ids[4:8]
        assert [n.id for n in await s.list_notifications("u", ids[-1], 100)] == []
        await s.close()

    run(scenario())


def test_unread_is_most_recent_oldest_first(make_store: Callable[[], Store]) -> None:
    async def scenario() -> None:
        s = await opened(make_store)
        ids = [(await s.add_notification("u", "info", str(i), "", None, i)).id for i in range(60)]
        await s.add_notification("other", "info", "x", "", None, 0)
        unread = await s.unread_notifications("u")
        assert [n.id for n in unread] == ids[10:]  # the 50 most recent, oldest first
        await s.mark_read("u", ids[55:])
        assert [n.id for n in await s.unread_notifications("u")] == ids[5:55]
        assert [n.id for n in await s.unread_notifications("u", limit=2)] == ids[53:55]
        await s.close()

    run(scenario())


def test_mark_read_only_touches_own_ids(make_store: Callable[[], Store]) -> None:
    async def scenario() -> None:
        s = await opened(make_store)
        a = (await s.add_notification("alice", "info", "a", "", None, 1)).id
        a2 = (await s.add_notification("alice", "info", "a2", "", None, 1)).id
        b = (await s.add_notification("bob", "info", "b", "", None, 1)).id
        # Bob's id and an unknown id are ignored and not echoed; duplicates collapse.
        assert await s.mark_read("alice", [b, a, 999_999, a, True]) == [a]  # type: ignore[list-item]
        assert [n.read for n in await s.list_notifications("bob", 0, 10)] == [False]
        assert [(n.id, n.read) for n in await s.list_notifications("alice", 0, 10)] == [
            (a, True),
            (a2, False),
        ]
        # Idempotent: marking again confirms the same id.
        assert await s.mark_read("alice", [a]) == [a]
        assert await s.mark_read("alice", []) == []
        # Many ids at once (more than one query chunk).
        many = list(range(1, 2000)) + [a2]
        assert await s.mark_read("alice", many) == [a, a2]
        await s.close()

    run(scenario())


def test_notifications_survive_restart_with_read_state_and_id_order(
    make_store: Callable[[], Store],
) -> None:
    async def before() -> list[int]:
        s = await opened(make_store)
        ids = [(await s.add_notification("u", "info", str(i), "", {"i": i}, i)).id for i in range(3)]
        await s.mark_read("u", [ids[1]])
        await s.close()
        return ids

    async def after(ids: list[int]) -> None:
        s = await opened(make_store)
        listed = await s.list_notifications("u", 0, 10)
        assert [(n.id, n.read, n.data) for n in listed] == [
            (ids[0], False, {"i": 0}),
            (ids[1], True, {"i": 1}),
            (ids[2], False, {"i": 2}),
        ]
        assert [n.id for n in await s.unread_notifications("u")] == [ids[0], ids[2]]
        newer = await s.add_notification("u", "info", "new", "", None, 9)
        assert newer.id > ids[-1]
        await s.close()

    # Two separate event loops, like two server processes on the same data dir.
    ids = run(before())
    run(after(ids))


def test_alerts_crud_is_per_user_and_ids_are_never_reused(make_store: Callable[[], Store]) -> None:
    async def scenario() -> None:
        s = await opened(make_store)
        a1 = await s.add_alert("alice", "BTC/USD", "above", 50000.5, 1)
        b1 = await s.add_alert("bob", "ETH/USD", "below", 2000.0, 2)
        a2 = await s.add_alert("alice", "ETH/USD", "below", 1500.0, 3)
        assert [x.id for x in await s.list_alerts("alice")] == [a1.id, a2.id]
        assert (await s.list_alerts("bob"))[0] == b1
        assert [x.id for x in await s.all_alerts()] == [a1.id, b1.id, a2.id]
        assert await s.delete_alert("alice", b1.id) is False  # not hers
        assert await s.delete_alert("alice", a2.id) is True
        assert await s.delete_alert("alice", a2.id) is False
        a3 = await s.add_alert("alice", "BTC/USD", "below", 1.0, 4)
        assert a3.id > a2.id  # AUTOINCREMENT: a deleted id is not handed out again
        with pytest.raises(ValueError):
            await s.add_alert("alice", "BTC/USD", "sideways", 1.0, 4)  # type: ignore[arg-type]
        await s.close()

    run(scenario())


def test_fire_alert_is_atomic_and_at_most_once(make_store: Callable[[], Store]) -> None:
    async def scenario() -> None:
        s = await opened(make_store)
        alert = await s.add_alert("alice", "BTC/USD", "above", 100.0, 1)
        data = {"alert_id": alert.id, "symbol": "BTC/USD", "price": 100.5, "level": 100.0,
                "direction": "above"}
        fired = await s.fire_alert(alert.id, "price_alert", "t", "b", data, 5)
        assert fired is not None and fired.user_id == "alice"
        assert fired.notification.kind == "price_alert" and fired.notification.data == data
        assert await s.list_alerts("alice") == []
        assert [n.id for n in await s.unread_notifications("alice")] == [fired.notification.id]
        # Firing again (or after a deletion) stores nothing.
        assert await s.fire_alert(alert.id, "price_alert", "t", "b", data, 6) is None
        assert len(await s.list_notifications("alice", 0, 10)) == 1
        await s.close()

    run(scenario())


def test_alerts_survive_restart(make_store: Callable[[], Store]) -> None:
    async def before() -> int:
        s = await opened(make_store)
        await s.add_alert("alice", "BTC/USD", "above", 1.0, 1)
        kept = await s.add_alert("alice", "BTC/USD", "below", 2.5, 2)
        gone = await s.add_alert("bob", "BTC/USD", "below", 3.0, 3)
        assert await s.fire_alert(1, "price_alert", "", "", None, 4) is not None
        assert await s.delete_alert("bob", gone.id)
        await s.close()
        return kept.id

    async def after(kept: int) -> None:
        s = await opened(make_store)
        alerts = await s.all_alerts()
        assert [(a.id, a.user_id, a.direction, a.level) for a in alerts] == [
            (kept, "alice", "below", 2.5)
        ]
        await s.close()

    run(after(run(before())))


def test_work_runs_off_the_event_loop_thread(tmp_path: Path) -> None:
    seen: list[str] = []
    store = SqliteStore(tmp_path / "x.db")

    async def scenario() -> None:
        await store.open()
        original = store._add_notification_sync

        def spy(*args: Any) -> Any:
            seen.append(threading.current_thread().name)
            return original(*args)

        store._add_notification_sync = spy  # type: ignore[method-assign]
        await store.add_notification("u", "info", "", "", None, 0)
        assert await store.ping() is True
        await store.close()
        assert await store.ping() is False

    run(scenario())
    assert seen and seen[0].startswith("tickfan-sqlite") and seen[0] != threading.main_thread().name


def test_file_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dir" / "x.db"  # parent directories are created

    async def scenario() -> None:
        s = SqliteStore(path)
        await s.open()
        await s.add_notification("u", "info", "", "", None, 0)
        await s.close()

    run(scenario())
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_unencodable_data_fails_before_storing(make_store: Callable[[], Store]) -> None:
    async def scenario() -> None:
        s = await opened(make_store)
        with pytest.raises(TypeError):
            await s.add_notification("u", "info", "", "", {"x": object()}, 0)
        assert await s.list_notifications("u", 0, 10) == []
        await s.close()

    run(scenario())


# --- bot states ---------------------------------------------------------------------------------


def test_bot_running_count_is_exact_after_every_update(make_store: Callable[[], Store]) -> None:
    async def scenario() -> None:
        s = await opened(make_store)
        steps = [
            ("b1", "starting", 0),
            ("b1", "running", 1),
            ("b2", "running", 2),
            ("b2", "running", 2),  # repeated status: no double count
            ("b1", "paused", 1),
            ("b3", "error", 1),
            ("b2", "stopping", 0),
            ("b1", "running", 1),
        ]
        for ts, (bot, status, expected) in enumerate(steps):
            state = await s.put_bot("alice", bot, status, ts, None)
            assert (state.bot_id, state.status, state.ts, state.running_count) == (bot, status, ts, expected)
        await s.close()

    run(scenario())


def test_concurrent_bot_updates_each_get_their_own_exact_count(make_store: Callable[[], Store]) -> None:
    async def scenario() -> None:
        s = await opened(make_store)
        states = await asyncio.gather(*(s.put_bot("u", f"b{i}", "running", i, None) for i in range(20)))
        assert sorted(st.running_count for st in states) == list(range(1, 21))
        assert [st.running_count for st in await s.bots("u")] == [20] * 20
        await s.close()

    run(scenario())


def test_bots_are_per_user_sorted_and_carry_the_current_count(make_store: Callable[[], Store]) -> None:
    async def scenario() -> None:
        s = await opened(make_store)
        await s.put_bot("u", "zeta", "running", 1, None)
        await s.put_bot("u", "alpha", "running", 2, {"pnl": 1.5})
        await s.put_bot("u", "mid", "paused", 3, None)
        await s.put_bot("other", "alpha", "stopped", 4, {"reason": "manual"})
        states = await s.bots("u")
        assert [(b.bot_id, b.status, b.ts, b.detail) for b in states] == [
            ("alpha", "running", 2, {"pnl": 1.5}),
            ("mid", "paused", 3, None),
            ("zeta", "running", 1, None),
        ]
        # zeta was stored with running_count 1; the listing says what is true now.
        assert [b.running_count for b in states] == [2, 2, 2]
        assert [(b.bot_id, b.status, b.running_count) for b in await s.bots("other")] == [
            ("alpha", "stopped", 0)
        ]
        assert await s.bots("nobody") == []
        await s.close()

    run(scenario())


@pytest.mark.parametrize("bad", ["RUNNING", "crashed", "", "run"])
def test_unknown_bot_status_is_refused_and_changes_nothing(make_store: Callable[[], Store], bad: str) -> None:
    async def scenario() -> None:
        s = await opened(make_store)
        await s.put_bot("u", "b", "running", 1, None)
        with pytest.raises(ValueError, match="status must be one of starting, running, paused"):
            await s.put_bot("u", "b", bad, 2, None)
        assert [(b.status, b.ts, b.running_count) for b in await s.bots("u")] == [("running", 1, 1)]
        await s.close()

    run(scenario())


def test_bot_states_survive_restart(make_store: Callable[[], Store]) -> None:
    async def before() -> None:
        s = await opened(make_store)
        await s.put_bot("u", "b1", "running", 1, {"k": [1]})
        await s.put_bot("u", "b2", "running", 2, None)
        await s.put_bot("u", "b2", "error", 3, {"why": "boom"})
        await s.close()

    async def after() -> None:
        s = await opened(make_store)
        assert [(b.bot_id, b.status, b.ts, b.running_count, b.detail) for b in await s.bots("u")] == [
            ("b1", "running", 1, 1, {"k": [1]}),
            ("b2", "error", 3, 1, {"why": "boom"}),
        ]
        assert (await s.put_bot("u", "b2", "running", 4, None)).running_count == 2
        await s.close()

    run(before())
    run(after())
