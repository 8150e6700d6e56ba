"""RedisBroker against a real redis-server: the log, seqs, epochs, idempotency, alerts, events.

Two brokers on one Redis stand for two nodes; each drives a recording node with a real core.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from redis_server import RedisServer
from tickfan.bots import BotState
from tickfan.brokers.redis import RedisBroker, _s
from tickfan.config import Config
from tickfan.core import _python as twin
from tickfan.errors import BrokerUnavailable, ConfigError, TickRejected
from tickfan.stores.base import Notification

T = TypeVar("T")


class RecordingNode:
    """A node with a real core that records what the broker drives."""

    def __init__(self, config: Config) -> None:
        self.core = twin.Core([(s.symbol, s.price_decimals, s.size_decimals) for s in config.universe()])
        self.applied: list[list[Any]] = []
        self.events: list[tuple[str, Any]] = []
        self.epochs: list[str] = []
        self.restored: list[Any] = []

    def apply(self, ticks: Any) -> int:
        n = int(self.core.ingest(ticks, int(time.time() * 1000)))
        self.applied.extend(list(t) for t in ticks)
        return n

    def deliver(self, user_id: str, event: Any) -> None:
        self.events.append((user_id, event))

    def new_epoch(self, epoch: str) -> None:
        self.epochs.append(epoch)
        self.core = twin.Core([(s.symbol, s.price_decimals, s.size_decimals) for s in Config().universe()])

    def checkpoint(self) -> Any:
        return self.core.checkpoint()

    def restore(self, state: Any) -> None:
        self.restored.append(state)
        self.core = twin.Core([(s.symbol, s.price_decimals, s.size_decimals) for s in Config().universe()])
        self.core.restore(state)


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.01)


async def node_pair(url: str, **changes: Any) -> tuple[tuple[RedisBroker, RecordingNode], tuple[RedisBroker, RecordingNode]]:
    config = Config(broker=url, **changes)
    out = []
    for _ in range(2):
        broker, node = RedisBroker(config), RecordingNode(config)
        await broker.start(node)
        await until(lambda b=broker: b.readiness() is None)
        out.append((broker, node))
    return out[0], out[1]


def run(coro: Awaitable[T], timeout: float = 60) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def test_both_nodes_apply_the_same_log_with_cluster_seqs(fresh_redis: RedisServer) -> None:
    async def scenario() -> None:
        (a, na), (b, nb) = await node_pair(fresh_redis.url)
        assert a.epoch == b.epoch and a.epoch
        ts = 1_700_000_000_000
        for i in range(20):
            broker = a if i % 2 == 0 else b
            assert await broker.ingest([("BTC/USD", 100.0 + i, 0.5, ts + i), ("ETH/USD", 10.0, 1.0, ts + i)]) == 2
        await until(lambda: len(na.applied) == 40 and len(nb.applied) == 40)
        assert na.applied == nb.applied
        assert na.core.latest("BTC/USD") == nb.core.latest("BTC/USD") == (20, ts + 19, 119.0, 0.5)
        assert na.core.recent_candles("BTC/USD", "1s", 100) == nb.core.recent_candles("BTC/USD", "1s", 100)
        # ts regression refused on either node, with the core's message, and nothing applied
        with pytest.raises(TickRejected) as refused:
            await b.ingest([("BTC/USD", 1.0, 1.0, ts + 100), ("BTC/USD", 1.0, 1.0, ts)])
        assert refused.value.errors == [(1, f"ts {ts} is earlier than the previous tick's ts {ts + 100}")]
        with pytest.raises(TickRejected) as refused:
            await a.ingest([("ETH/USD", 1.0, 1.0, ts), ("NOPE", 1.0, 1.0, ts + 50)])
        assert refused.value.errors == [(0, f"ts {ts} is earlier than the previous tick's ts {ts + 19}"), (1, "unknown symbol 'NOPE'")]
        with pytest.raises(TickRejected):
            await a.ingest([("ETH/USD", 1.0, 1.0, ts + 30), ("ETH/USD", 1.0, 1.0, ts + 25)])
        assert await a.ingest([("BTC/USD", 200.0, 1.0, ts + 19)]) == 1
        await until(lambda: len(nb.applied) == 41)
        assert nb.core.latest("BTC/USD")[0] == 21 and na.applied == nb.applied
        for broker in (a, b):
            await broker.stop()

    run(scenario())


def test_idempotency_key_applies_a_retried_batch_once(fresh_redis: RedisServer) -> None:
    async def scenario() -> None:
        (a, na), (b, nb) = await node_pair(fresh_redis.url)
        batch = [("SOL/USD", 98.5, 1.0, 1_700_000_000_000)]
        assert await a.ingest(batch, "key-1") == 1
        assert await b.ingest(batch, "key-1") == 1  # the retry, through the other node
        assert await a.ingest([("SOL/USD", 98.6, 1.0, 1_700_000_000_001)], "key-2") == 1
        await until(lambda: len(nb.applied) == 2)
        assert [t[1] for t in nb.applied] == [98.5, 98.6]
        for broker in (a, b):
            await broker.stop()

    run(scenario())


def test_alert_fires_once_cluster_wide_and_events_reach_every_node(fresh_redis: RedisServer) -> None:
    async def scenario() -> None:
        (a, na), (b, nb) = await node_pair(fresh_redis.url)
        alert = await a.add_alert("alice", "BTC/USD", "above", 100.5)
        below = await b.add_alert("alice", "BTC/USD", "below", 50.0)
        ts = 1_700_000_000_000
        await asyncio.gather(
            a.ingest([("BTC/USD", 100.0, 1.0, ts), ("BTC/USD", 101.25, 1.0, ts + 1)]),
            b.ingest([("ETH/USD", 100.0, 1.0, ts)]),
        )
        await b.ingest([("BTC/USD", 102.0, 1.0, ts + 2)])
        fired = lambda node: [e for u, e in node.events if isinstance(e, Notification) and e.kind == "price_alert"]  # noqa: E731
        await until(lambda: len(fired(na)) == 1 and len(fired(nb)) == 1)
        for node in (na, nb):
            [n] = fired(node)
            assert n.data == {"alert_id": alert.id, "symbol": "BTC/USD", "price": 101.25, "level": 100.5, "direction": "above"}
            assert n.title == "BTC/USD above 100.5" and n.body == "BTC/USD traded at 101.25 (>= 100.5)"
        assert [x.id for x in await b.store.list_alerts("alice")] == [below.id]
        [stored] = await b.store.unread_notifications("alice")
        assert stored.data["alert_id"] == alert.id
        # a notification and a bot state written via A arrive on B, and on A itself
        note = await a.notify("bob", "info", "hello", "from A", {"k": 1})
        state = await a.put_bot("bob", "bot-1", "running", None)
        assert state.running_count == 1
        for node in (na, nb):
            await until(lambda node=node: len([u for u, _ in node.events if u == "bob"]) == 2)
            events = [e for u, e in node.events if u == "bob"]
            assert events[0] == note
            assert isinstance(events[1], BotState) and events[1].running_count == 1
        for broker in (a, b):
            await broker.stop()

    run(scenario())


def test_redis_down_gives_unavailable_then_recovers_without_loss(fresh_redis: RedisServer) -> None:
    async def scenario() -> None:
        (a, na), (b, nb) = await node_pair(fresh_redis.url)
        ts = 1_700_000_000_000
        await a.ingest([("BTC/USD", 1.0, 1.0, ts)])
        fresh_redis.kill()
        with pytest.raises(BrokerUnavailable):
            await a.ingest([("BTC/USD", 1.0, 1.0, ts + 1)])
        await until(lambda: a.readiness() is not None)
        fresh_redis.start()  # same dir: the AOF replays
        await until(lambda: a.readiness() is None and b.readiness() is None)
        await b.ingest([("BTC/USD", 2.0, 1.0, ts + 2)])
        await until(lambda: len(na.applied) == 2 and len(nb.applied) == 2)
        assert na.core.latest("BTC/USD")[0] == 2 and na.epochs == []
        for broker in (a, b):
            await broker.stop()

    run(scenario())


def test_redis_restarted_empty_gives_a_new_epoch(fresh_redis: RedisServer) -> None:
    async def scenario() -> None:
        (a, na), (b, nb) = await node_pair(fresh_redis.url)
        old = a.epoch
        await a.ingest([("BTC/USD", 1.0, 1.0, 1_700_000_000_000)])
        fresh_redis.restart_empty()
        await until(lambda: a.epoch != old and b.epoch != old and a.readiness() is None)
        assert a.epoch == b.epoch and na.epochs == [a.epoch] and nb.epochs == [b.epoch]
        await b.ingest([("BTC/USD", 1.0, 1.0, 1_600_000_000_000)])  # lastts was lost too
        await until(lambda: na.core.latest("BTC/USD") is not None and nb.core.latest("BTC/USD") is not None)
        assert na.core.latest("BTC/USD")[0] == 1
        for broker in (a, b):
            await broker.stop()

    run(scenario())


def test_a_late_node_replays_the_log(fresh_redis: RedisServer) -> None:
    async def scenario() -> None:
        (a, na), (b, nb) = await node_pair(fresh_redis.url)
        for i in range(5):
            await a.ingest([("BTC/USD", 1.0 + i, 1.0, 1_700_000_000_000 + i)])
        config = Config(broker=fresh_redis.url)
        c, nc = RedisBroker(config), RecordingNode(config)
        await c.start(nc)
        await until(lambda: c.readiness() is None)
        assert nc.applied == na.applied and nc.core.latest("BTC/USD") == na.core.latest("BTC/USD")
        for broker in (a, b, c):
            await broker.stop()

    run(scenario())


def test_a_node_with_another_universe_is_refused(fresh_redis: RedisServer, tmp_path: Any) -> None:
    async def scenario() -> None:
        (a, _), (b, _) = await node_pair(fresh_redis.url)
        other = tmp_path / "symbols.json"
        other.write_text('[{"symbol": "X/Y", "price_decimals": 2, "size_decimals": 2}]')
        config = Config(broker=fresh_redis.url, symbols=other)
        c = RedisBroker(config)
        with pytest.raises(ConfigError, match="config hash"):
            await c.start(RecordingNode(Config()))
        await c.stop()
        for broker in (a, b):
            await broker.stop()

    run(scenario())


@pytest.mark.parametrize("setting", [{"resume_window_ms": 30_000}, {"resume_max_ticks": 10}])
def test_a_node_with_another_resume_ring_is_refused(fresh_redis: RedisServer, setting: dict[str, int]) -> None:
    """The resume ring is a function of the log and its two bounds: every node must hold the
    same one, or a resume would be answered differently by another node."""
    async def scenario() -> None:
        (a, _), (b, _) = await node_pair(fresh_redis.url)
        c = RedisBroker(Config(broker=fresh_redis.url, **setting))
        with pytest.raises(ConfigError, match="resume ring"):
            await c.start(RecordingNode(Config()))
        await c.stop()
        for broker in (a, b):
            await broker.stop()

    run(scenario())


def test_a_node_joining_after_the_log_was_trimmed_is_unready_until_a_new_epoch(fresh_redis: RedisServer) -> None:
    async def scenario() -> None:
        import redis.asyncio as aioredis

        (a, na), (b, nb) = await node_pair(fresh_redis.url)
        for i in range(5):
            await a.ingest([("BTC/USD", 1.0 + i, 1.0, 1_700_000_000_000 + i)])
        r = aioredis.Redis.from_url(fresh_redis.url)
        await r.xtrim("tf:log", maxlen=2, approximate=False)  # what --log-retention-s does in time
        config = Config(broker=fresh_redis.url)
        c, nc = RedisBroker(config), RecordingNode(config)
        await c.start(nc)
        await until(lambda: c.diverged is not None)
        assert "trimmed" in (c.readiness() or "") and await c.ready() is False
        # The operator's way out (docs/operations.md): a new epoch; every node starts afresh.
        old = a.epoch
        await r.delete("tf:meta")
        await until(lambda: all(x.epoch != old and x.readiness() is None for x in (a, b, c)))
        assert a.epoch == b.epoch == c.epoch and await r.xlen("tf:log") == 0
        await b.ingest([("BTC/USD", 7.0, 1.0, 1)])
        await until(lambda: all(n.core.latest("BTC/USD") is not None for n in (na, nb, nc)))
        assert {n.core.latest("BTC/USD") for n in (na, nb, nc)} == {(1, 1, 7.0, 1.0)}
        await r.aclose()
        for broker in (a, b, c):
            await broker.stop()

    run(scenario())


def answers(node: RecordingNode) -> list[Any]:
    """What clients can ask of a node's tick state: every symbol's latest tick, resume ring and
    candles."""
    out: list[Any] = [node.core.checkpoint()]
    for name, _, _ in node.core.symbols():
        out += [node.core.latest(name), node.core.ring_range(name)]
        out += [node.core.backfill(name, interval, 0) for interval in ("1s", "1m", "5m", "1h")]
    return out


def test_a_node_joining_after_the_log_was_trimmed_loads_the_checkpoint_and_is_unready_until_caught_up(
    fresh_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis.asyncio as aioredis

    from tickfan.brokers import redis as redis_broker

    async def scenario() -> None:
        (a, na), (b, nb) = await node_pair(fresh_redis.url)
        r = aioredis.Redis.from_url(fresh_redis.url)
        ts = 1_700_000_000_000
        first = None
        for round_ in range(3):  # three checkpoints: the log is trimmed behind the second
            for i in range(40):
                ts += 250
                await (a if i % 2 else b).ingest([("BTC/USD", 100.0 + i, 1.0, ts), ("ETH/USD", 50.0 + round_, 0.5, ts)])
            first = first or (await r.xrange("tf:log", count=1))[0][0]
            assert await a.write_checkpoint() is True
        assert await b.write_checkpoint() is False  # not newer than the stored one
        assert (await r.xrange("tf:log", count=1))[0][0] != first  # the epoch's start is gone
        for i in range(25):  # the tail after the last checkpoint
            ts += 250
            await a.ingest([("BTC/USD", 200.0 + i, 2.0, ts)])
        # A node that starts now: the checkpoint, then the tail. Observed unready before its
        # reader ran (no boot wait), ready once it applied the log up to where it was.
        monkeypatch.setattr(redis_broker, "BOOT_WAIT_S", 0.0)
        config = Config(broker=fresh_redis.url)
        c, nc = RedisBroker(config), RecordingNode(config)
        await c.start(nc)
        assert c.readiness() == "catching up with the log" and c.checkpoint_loaded is not None
        assert len(nc.restored) == 1 and nc.applied == []
        await until(lambda: c.readiness() is None)
        assert len(nc.applied) == 25  # only the tail was replayed
        await until(lambda: answers(nc) == answers(na) == answers(nb))
        assert nc.core.latest("BTC/USD") == (120 + 25, ts, 224.0, 2.0)
        # ... and goes on with the cluster
        await c.ingest([("ETH/USD", 60.0, 1.0, ts + 1)])
        await until(lambda: answers(nc) == answers(na) == answers(nb))
        assert nc.core.latest("ETH/USD")[0] == 121
        await r.aclose()
        for broker in (a, b, c):
            await broker.stop()

    run(scenario())


def test_a_node_the_log_was_trimmed_past_loads_the_newer_checkpoint(fresh_redis: RedisServer) -> None:
    import redis.asyncio as aioredis

    async def scenario() -> None:
        (a, na), (b, nb) = await node_pair(fresh_redis.url)
        r = aioredis.Redis.from_url(fresh_redis.url)
        ts = 1_700_000_000_000
        for i in range(10):
            ts += 1000
            await a.ingest([("BTC/USD", 10.0 + i, 1.0, ts)])
        await until(lambda: (nb.core.latest("BTC/USD") or (0,))[0] == 10)
        reader = b._tasks[0]  # b's log reader stalls (a long GC pause, a partition of its own)
        while not reader.done():  # redis-py may turn one cancellation of a blocked read into a timeout
            reader.cancel()
            await asyncio.sleep(0.05)
        for _ in range(3):
            for i in range(60):
                ts += 1000
                await a.ingest([("BTC/USD", 30.0 + i, 1.0, ts)])
            assert await a.write_checkpoint() is True
        assert (await r.xrange("tf:log", count=1))[0][0] != b"0-0" and b._log_id < _s((await r.xrange("tf:log", count=1))[0][0])
        ts += 1000
        await a.ingest([("BTC/USD", 99.0, 1.0, ts)])
        # The reader goes on from b's position: the entry after it is gone, so b loads the
        # newer checkpoint instead of diverging, and catches up.
        b._tasks[0] = asyncio.create_task(b._read_loop())
        await until(lambda: bool(nb.restored))
        await until(lambda: b.readiness() is None and answers(nb) == answers(na))
        assert b.diverged is None and nb.core.latest("BTC/USD") == (191, ts, 99.0, 1.0)
        await r.aclose()
        for broker in (a, b):
            await broker.stop()

    run(scenario())


def test_each_log_entry_names_the_one_before_it(fresh_redis: RedisServer) -> None:
    import redis.asyncio as aioredis

    async def scenario() -> None:
        (a, na), (b, nb) = await node_pair(fresh_redis.url)
        r = aioredis.Redis.from_url(fresh_redis.url)
        ts = 1_700_000_000_000
        for i in range(2):
            await a.ingest([("BTC/USD", 1.0 + i, 1.0, ts + i)])
        # An epoch begun before entries carried p (tf:meta has no top): the next entry has none,
        # the one after names it; the nodes go on undisturbed.
        await r.hdel("tf:meta", "top")
        for i in range(2, 4):
            await b.ingest([("BTC/USD", 1.0 + i, 1.0, ts + i)])
        entries = await r.xrange("tf:log")
        ids = [entry_id for entry_id, _ in entries]
        assert [fields.get(b"p") for _, fields in entries] == [b"0-0", ids[0], None, ids[2]]
        await until(lambda: all((n.core.latest("BTC/USD") or (0,))[0] == 4 for n in (na, nb)))
        assert a.readiness() is None and b.readiness() is None
        await r.aclose()
        for broker in (a, b):
            await broker.stop()

    run(scenario())


def test_an_ingest_applied_after_its_deadline_is_confirmed_by_the_retry_not_doubled(fresh_redis: RedisServer) -> None:
    """The call's deadline passes after Redis applied it (the node's loop was late): the broker
    sends the same call again, which answers ``dup``, so the publisher gets its 2xx and the
    batch is in the log once."""

    async def scenario() -> None:
        (a, na), (b, nb) = await node_pair(fresh_redis.url)
        real = a.store._call
        late: list[str] = []

        async def applied_then_late(name: str, keys: Any, args: Any) -> Any:
            result = await real(name, keys, args)
            if name == "ingest" and not late:
                late.append(_s(result[0]))
                raise BrokerUnavailable("Redis did not answer: TimeoutError")
            return result

        a.store._call = applied_then_late  # type: ignore[method-assign]
        assert await a.ingest([("SOL/USD", 98.5, 1.0, 1_700_000_000_000)]) == 1
        assert late == ["ok"] and a.unavailable == 0
        assert await b.ingest([("SOL/USD", 98.6, 1.0, 1_700_000_000_001)]) == 1
        await until(lambda: any(t[1] == 98.6 for t in nb.applied))  # the log is ordered: a double comes first
        assert [t[1] for t in nb.applied] == [98.5, 98.6]
        for broker in (a, b):
            await broker.stop()

    run(scenario())
