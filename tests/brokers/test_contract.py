"""The broker contract (``tickfan/brokers/base.py``): every broker, over both cores.

Each test drives a real node (a :class:`~tickfan.hub.Hub`) with the broker under test. Events
and applied ticks may arrive asynchronously (a cluster broker applies ticks from its log), so
tests wait for them with :func:`eventually`; what the contract says is done when a call returns
(stored, committed, refused) is checked right after the call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tickfan.alerts import PRICE_ALERT
from tickfan.bots import BotState
from tickfan.brokers import Broker
from tickfan.errors import InvalidArgument, TickRejected, TooManyAlerts, UnknownSymbol
from tickfan.stores import Notification

from broker_nodes import MakeBroker, Node, eventually

NodeOf = Callable[[Broker], Node]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


class Frames:
    """Every frame one tick-mode connection of ``node`` received so far."""

    def __init__(self, node: Node, symbols: list[str]) -> None:
        self.node = node
        self.conn_id = node.subscriber(symbols)
        self.seen: list[dict[str, Any]] = []

    def __call__(self) -> list[dict[str, Any]]:
        self.seen.extend(self.node.frames(self.conn_id))
        return self.seen

    def seqs(self, symbol: str) -> list[int]:
        return [f["seq"] for f in self() if f["type"] == "market_data" and f["symbol"] == symbol]


# --- ticks --------------------------------------------------------------------------------------


def test_a_refused_batch_reports_every_bad_tick_and_publishes_nothing(
    make_broker: MakeBroker, node: NodeOf
) -> None:
    async def scenario() -> None:
        async with node(make_broker()) as n:
            frames = Frames(n, ["BTC/USD", "ETH/USD"])
            assert await n.broker.ingest([("BTC/USD", 100.0, 1.0, 10)]) == 1
            bad = [
                ("ETH/USD", 10.0, 1.0, 10),  # valid on its own
                ("BTC/USD", 101.0, 1.0, 9),  # earlier than the previous tick
                ("NOPE/USD", 1.0, 1.0, 11),
                ("BTC/USD", 1.001, 1.0, 12),  # more decimals than the symbol has
                None,
            ]
            with pytest.raises(TickRejected) as refused:
                await n.broker.ingest(bad)
            assert [index for index, _ in refused.value.errors] == [1, 2, 3, 4]
            assert "earlier than the previous tick" in refused.value.errors[0][1]
            assert refused.value.errors[1][1] == "unknown symbol 'NOPE/USD'"
            # Nothing of it was published: the next tick of each symbol takes the next seq.
            assert await n.broker.ingest([("ETH/USD", 11.0, 1.0, 20), ("BTC/USD", 102.0, 1.0, 20)]) == 2
            await eventually(lambda: len(frames()) == 3)
            assert [(f["symbol"], f["seq"], f["price"]) for f in frames()] == [
                ("BTC/USD", 1, 100.0),
                ("ETH/USD", 1, 11.0),
                ("BTC/USD", 2, 102.0),
            ]

    run(scenario())


def test_seq_is_contiguous_per_symbol_in_publish_order(make_broker: MakeBroker, node: NodeOf) -> None:
    async def scenario() -> None:
        async with node(make_broker()) as n:
            frames = Frames(n, ["BTC/USD", "ETH/USD"])
            sent = {"BTC/USD": 0, "ETH/USD": 0}
            for ts in range(1, 41):
                batch = [("BTC/USD", 100.0 + ts, 1.0, ts)] * (ts % 3 + 1)
                if ts % 2:
                    batch.append(("ETH/USD", 10.0 + ts, 1.0, ts))
                for symbol, *_ in batch:
                    sent[symbol] += 1
                assert await n.broker.ingest(batch) == len(batch)
            await eventually(lambda: len(frames()) == sum(sent.values()))
            for symbol, count in sent.items():
                assert frames.seqs(symbol) == list(range(1, count + 1))
            assert n.hub.latest("BTC/USD") == (sent["BTC/USD"], 40, 140.0, 1.0)

    run(scenario())


def test_concurrent_ingests_are_applied_once_each(make_broker: MakeBroker, node: NodeOf) -> None:
    async def scenario() -> None:
        async with node(make_broker()) as n:
            frames = Frames(n, ["SOL/USD"])
            await asyncio.gather(*(n.broker.ingest([("SOL/USD", 1.0 + i / 1000, 1.0, 5)]) for i in range(50)))
            await eventually(lambda: len(frames()) == 50)
            assert frames.seqs("SOL/USD") == list(range(1, 51))
            assert sorted(f["price"] for f in frames()) == [1.0 + i / 1000 for i in range(50)]

    run(scenario())


def test_an_idempotency_key_publishes_a_batch_once(make_broker: MakeBroker, node: NodeOf) -> None:
    async def scenario() -> None:
        async with node(make_broker()) as n:
            frames = Frames(n, ["BTC/USD"])
            batch = [("BTC/USD", 100.0, 1.0, 1), ("BTC/USD", 100.5, 1.0, 2)]
            assert await n.broker.ingest(batch, "k-1") == 2
            assert await n.broker.ingest(batch, "k-1") == 2  # the first answer, not applied again
            retries = await asyncio.gather(*(n.broker.ingest([("BTC/USD", 101.0, 1.0, 3)], "k-2") for _ in range(5)))
            assert retries == [1] * 5
            # A refused batch does not use up its key.
            with pytest.raises(TickRejected):
                await n.broker.ingest([("BTC/USD", 99.0, 1.0, 0)], "k-3")
            assert await n.broker.ingest([("BTC/USD", 99.0, 1.0, 4)], "k-3") == 1
            assert await n.broker.ingest([("BTC/USD", 98.0, 1.0, 5)]) == 1  # no key: applied
            await eventually(lambda: len(frames()) == 5)
            assert frames.seqs("BTC/USD") == [1, 2, 3, 4, 5]
            assert [f["price"] for f in frames()] == [100.0, 100.5, 101.0, 99.0, 98.0]

    run(scenario())


# --- bot states ---------------------------------------------------------------------------------


def test_bot_updates_are_stored_counted_and_delivered_to_their_user_only(
    make_broker: MakeBroker, node: NodeOf
) -> None:
    async def scenario() -> None:
        async with node(make_broker()) as n:
            b = n.broker
            assert (await b.put_bot("alice", "b1", "running", {"pnl": 1})).running_count == 1
            assert (await b.put_bot("bob", "b1", "running", None)).running_count == 1
            assert (await b.put_bot("alice", "b2", "running", None)).running_count == 2
            assert (await b.put_bot("alice", "b1", "paused", None)).running_count == 1
            with pytest.raises(ValueError, match="status must be one of"):
                await b.put_bot("alice", "b1", "exploded", None)
            await eventually(lambda: len(n.events) == 4)
            alice = n.events_of("alice")
            assert [(e.bot_id, e.status, e.running_count) for e in alice if isinstance(e, BotState)] == [
                ("b1", "running", 1),
                ("b2", "running", 2),
                ("b1", "paused", 1),
            ]
            assert [(e.bot_id, e.status) for e in n.events_of("bob") if isinstance(e, BotState)] == [("b1", "running")]
            stored = await b.store.bots("alice")
            assert [(s.bot_id, s.status, s.running_count) for s in stored] == [("b1", "paused", 1), ("b2", "running", 1)]

    run(scenario())


def test_concurrent_bot_updates_keep_running_count_exact(make_broker: MakeBroker, node: NodeOf) -> None:
    async def scenario() -> None:
        async with node(make_broker()) as n:
            states = await asyncio.gather(*(n.broker.put_bot("u", f"b{i}", "running", None) for i in range(30)))
            assert sorted(s.running_count for s in states) == list(range(1, 31))
            stops = await asyncio.gather(*(n.broker.put_bot("u", f"b{i}", "stopped", None) for i in range(0, 30, 3)))
            assert sorted(s.running_count for s in stops) == list(range(20, 30))
            assert {s.running_count for s in await n.broker.store.bots("u")} == {20}
            await eventually(lambda: len(n.events) == 40)

    run(scenario())


# --- notifications ------------------------------------------------------------------------------


def test_notifications_are_stored_then_delivered_in_order_per_user(make_broker: MakeBroker, node: NodeOf) -> None:
    async def scenario() -> None:
        async with node(make_broker()) as n:
            b = n.broker
            made = []
            for i in range(6):
                user = "alice" if i % 3 else "bob"
                made.append(await b.notify(user, "info", f"t{i}", "", {"i": i}))
                # Stored when the call returns.
                assert made[-1].id in [x.id for x in await b.store.list_notifications(user, 0, 100)]
            assert [m.id for m in made] == sorted(m.id for m in made)
            await eventually(lambda: len(n.events) == 6)
            for user in ("alice", "bob"):
                mine = [m for m in made if (m.data["i"] % 3 != 0) == (user == "alice")]
                assert n.events_of(user) == mine
                assert await b.store.list_notifications(user, 0, 100) == mine

    run(scenario())


# --- alerts ---------------------------------------------------------------------------------------


def test_an_alert_fires_once_with_the_first_crossing_price_committed_before_ingest_returns(
    make_broker: MakeBroker, node: NodeOf
) -> None:
    async def scenario() -> None:
        async with node(make_broker()) as n:
            b = n.broker
            up = await b.add_alert("alice", "BTC/USD", "above", 100.0)
            down = await b.add_alert("bob", "BTC/USD", "below", 90.0)
            assert [a.id for a in await b.store.list_alerts("alice")] == [up.id]
            await b.ingest([("BTC/USD", 95.0, 1.0, 1), ("BTC/USD", 99.99, 1.0, 2)])
            assert await b.store.list_notifications("alice", 0, 10) == []
            await b.ingest([("BTC/USD", 100.0, 1.0, 3), ("BTC/USD", 120.0, 1.0, 4)])
            # Committed with its notification before ingest returned.
            stored = await b.store.list_notifications("alice", 0, 10)
            assert [(x.kind, x.data) for x in stored] == [
                (PRICE_ALERT, {"alert_id": up.id, "symbol": "BTC/USD", "price": 100.0, "level": 100.0, "direction": "above"})
            ]
            assert stored[0].title == "BTC/USD above 100.0"
            assert await b.store.list_alerts("alice") == []
            await b.ingest([("BTC/USD", 130.0, 1.0, 5)])
            await b.ingest([("BTC/USD", 89.0, 1.0, 6), ("BTC/USD", 50.0, 1.0, 7)])
            assert [(x.data["alert_id"], x.data["price"]) for x in await b.store.list_notifications("bob", 0, 10)] == [
                (down.id, 89.0)
            ]
            assert len(await b.store.list_notifications("alice", 0, 10)) == 1
            await eventually(lambda: len(n.events) == 2)
            assert n.events_of("alice") == stored
            assert [e.data["alert_id"] for e in n.events_of("bob") if isinstance(e, Notification)] == [down.id]

    run(scenario())


def test_concurrent_crossings_fire_an_alert_once(make_broker: MakeBroker, node: NodeOf) -> None:
    async def scenario() -> None:
        async with node(make_broker()) as n:
            alerts = [await n.broker.add_alert(f"u{i % 3}", "ETH/USD", "above", 10.0 + i / 100) for i in range(20)]
            await asyncio.gather(*(n.broker.ingest([("ETH/USD", 11.0, 1.0, 1)]) for _ in range(10)))
            fired = [x.data["alert_id"] for u in ("u0", "u1", "u2") for x in await n.broker.store.list_notifications(u, 0, 100)]
            assert sorted(fired) == [a.id for a in alerts]
            await eventually(lambda: len(n.events) == 20)

    run(scenario())


def test_alert_validation_and_deletion(make_broker: MakeBroker, node: NodeOf) -> None:
    async def scenario() -> None:
        async with node(make_broker()) as n:
            b = n.broker
            with pytest.raises(UnknownSymbol):
                await b.add_alert("alice", "NOPE/USD", "above", 1.0)
            with pytest.raises(InvalidArgument, match="direction must be above or below"):
                await b.add_alert("alice", "BTC/USD", "sideways", 1.0)  # type: ignore[arg-type]
            for level in (0.0, -1.0, float("inf"), float("nan")):
                with pytest.raises(InvalidArgument, match="level must be a finite number > 0"):
                    await b.add_alert("alice", "BTC/USD", "above", level)
            assert await b.store.list_alerts("alice") == []
            a = await b.add_alert("alice", "ETH/USD", "above", 10.0)
            assert await b.delete_alert("bob", a.id) is False
            assert await b.delete_alert("alice", a.id) is True
            assert await b.delete_alert("alice", a.id) is False
            await b.ingest([("ETH/USD", 11.0, 1.0, 1)])
            assert await b.store.list_notifications("alice", 0, 10) == []

    run(scenario())


def test_alerts_per_user_are_capped_atomically_and_a_slot_frees_on_delete_or_fire(
    make_broker: MakeBroker, node: NodeOf
) -> None:
    async def scenario() -> None:
        async with node(make_broker(max_alerts_per_user=3)) as n:
            b = n.broker
            held = [await b.add_alert("alice", "ETH/USD", "above", 100.0 + i) for i in range(3)]
            with pytest.raises(TooManyAlerts, match="at most 3 alerts per user"):
                await b.add_alert("alice", "ETH/USD", "above", 200.0)
            assert [a.id for a in await b.store.list_alerts("alice")] == [a.id for a in held]
            assert (await b.add_alert("bob", "ETH/USD", "above", 200.0)).user_id == "bob"  # per user
            assert await b.delete_alert("alice", held[0].id) is True
            racing = await asyncio.gather(
                *(b.add_alert("alice", "ETH/USD", "above", 300.0 + i) for i in range(5)), return_exceptions=True
            )
            assert sum(not isinstance(r, BaseException) for r in racing) == 1
            assert all(isinstance(r, TooManyAlerts) for r in racing if isinstance(r, BaseException))
            assert len(await b.store.list_alerts("alice")) == 3
            await b.ingest([("ETH/USD", 101.5, 1.0, 1)])  # fires held[1] (above 101)
            assert len(await b.store.list_alerts("alice")) == 2
            assert (await b.add_alert("alice", "ETH/USD", "below", 1.0)).user_id == "alice"

    run(scenario())


# --- lifecycle ------------------------------------------------------------------------------------


def test_state_survives_a_restart_and_a_fired_alert_never_fires_again(make_broker: MakeBroker, node: NodeOf) -> None:
    async def before() -> tuple[int, int]:
        async with node(make_broker()) as n:
            b = n.broker
            await b.put_bot("alice", "b1", "running", {"k": 1})
            await b.notify("alice", "info", "hello", "", None)
            kept = await b.add_alert("alice", "BTC/USD", "below", 50.0)
            fired = await b.add_alert("alice", "BTC/USD", "above", 70.0)
            await b.ingest([("BTC/USD", 75.0, 1.0, 1)])
            return kept.id, fired.id

    async def after(kept: int, fired: int) -> None:
        async with node(make_broker()) as n:
            b = n.broker
            assert [(s.bot_id, s.status, s.running_count, s.detail) for s in await b.store.bots("alice")] == [
                ("b1", "running", 1, {"k": 1})
            ]
            assert [a.id for a in await b.store.list_alerts("alice")] == [kept]
            await b.ingest([("BTC/USD", 80.0, 1.0, 10**6), ("BTC/USD", 49.5, 1.0, 10**6 + 1)])
            notes = await b.store.list_notifications("alice", 0, 10)
            assert [(x.title, (x.data or {}).get("alert_id"), (x.data or {}).get("price")) for x in notes] == [
                ("hello", None, None),
                ("BTC/USD above 70.0", fired, 75.0),
                ("BTC/USD below 50.0", kept, 49.5),
            ]

    kept, fired = run(before())
    run(after(kept, fired))


def test_readiness_and_epoch(make_broker: MakeBroker, node: NodeOf) -> None:
    async def scenario() -> None:
        broker = make_broker()
        async with node(broker) as n:
            assert await broker.ready() is True
            epoch = broker.epoch
            assert isinstance(epoch, str) and epoch
            await broker.ingest([("BTC/USD", 1.0, 1.0, 1)])
            assert broker.epoch == epoch == n.hub.epoch
        assert await broker.ready() is False

    run(scenario())
