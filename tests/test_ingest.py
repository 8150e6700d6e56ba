"""Ingest through the hub (both cores): the far-future ``ts`` bound (checked where a node
applies a batch, ``Hub.apply``) and the simulated feed's isolation of one symbol's refused ticks
from the others'."""

from __future__ import annotations

import asyncio
import logging
from types import ModuleType

import pytest

from tickfan.auth import Verifier
from tickfan.brokers import MemoryBroker
from tickfan.config import Config
from tickfan.errors import TickRejected
from tickfan.feeds.sim import SimFeed
from tickfan.hub import Hub, now_ms
from tickfan.stores import SqliteStore

SKEW_MS = 60_000


def make_hub(impl: ModuleType, **settings: object) -> Hub:
    config = Config.build({"feed": "none", **settings}, env={})
    return Hub(config, impl, Verifier("HS256", "k" * 32), MemoryBroker(SqliteStore(":memory:")))


def seq_of(hub: Hub, symbol: str) -> int:
    latest = hub.latest(symbol)
    return 0 if latest is None else int(latest[0])


def test_default_skew_is_documented_value() -> None:
    assert Config.build({}, env={}).max_ts_skew_ms == SKEW_MS
    assert Config.build({}, env={"TICKFAN_MAX_TS_SKEW_MS": "5"}).max_ts_skew_ms == 5


def test_far_future_ts_is_refused_per_tick_and_nothing_applies(impl: ModuleType) -> None:
    hub = make_hub(impl)
    now = now_ms()
    ticks = [
        ("ETH/USD", 2000.0, 1.0, now),
        ("ETH/USD", 2001.0, 1.0, now * 1000),  # stamped in microseconds
        ("NOPE/USD", 1.0, 1.0, now),
        ("SOL/USD", 98.0, 1.0, now + SKEW_MS + 10_000),
    ]
    with pytest.raises(TickRejected) as caught:
        hub.apply(ticks)
    errors = dict(caught.value.errors)
    assert sorted(errors) == [1, 2, 3]
    assert errors[1].startswith(f"ts {now * 1000} is more than {SKEW_MS} ms ahead of the server clock")
    assert errors[2] == "unknown symbol 'NOPE/USD'"
    assert "ahead of the server clock" in errors[3]
    assert str(caught.value) == "3 of 4 ticks rejected"
    assert seq_of(hub, "ETH/USD") == 0 and seq_of(hub, "SOL/USD") == 0
    assert hub.metrics.ticks_refused == 3
    # the symbol is not frozen: a tick at the server's time is accepted afterwards
    assert hub.apply([("ETH/USD", 2000.0, 1.0, now_ms())]) == 1


def test_ts_within_the_skew_is_accepted(impl: ModuleType) -> None:
    hub = make_hub(impl, max_ts_skew_ms=SKEW_MS)
    assert hub.apply([("ETH/USD", 2000.0, 1.0, now_ms() + SKEW_MS // 2)]) == 1


def test_the_skew_is_configurable(impl: ModuleType) -> None:
    hub = make_hub(impl, max_ts_skew_ms=0)
    with pytest.raises(TickRejected) as caught:
        hub.apply([("ETH/USD", 2000.0, 1.0, now_ms() + 5_000)])
    assert "more than 0 ms ahead" in caught.value.errors[0][1]


def test_order_rule_still_applies_after_a_masked_far_future_tick(impl: ModuleType) -> None:
    # a refused far-future tick does not count as the symbol's previous tick
    hub = make_hub(impl)
    now = now_ms()
    with pytest.raises(TickRejected) as caught:
        hub.apply([("ETH/USD", 2000.0, 1.0, now + 10 * SKEW_MS), ("ETH/USD", 2000.0, 1.0, now)])
    assert [i for i, _ in caught.value.errors] == [0]


def test_sim_feed_refused_symbol_does_not_block_others(impl: ModuleType, caplog: pytest.LogCaptureFixture) -> None:
    asyncio.run(_sim_feed_refused_symbol_does_not_block_others(impl, caplog))


async def _sim_feed_refused_symbol_does_not_block_others(impl: ModuleType, caplog: pytest.LogCaptureFixture) -> None:
    hub = make_hub(impl)
    await hub.broker.start(hub)
    feed = SimFeed(hub, hub.universe, seed=7)
    # a publisher stamps ETH/USD within the skew but ahead of the simulator's clock
    await hub.ingest([("ETH/USD", 2000.0, 1.0, now_ms() + SKEW_MS // 2)])
    eth_before = seq_of(hub, "ETH/USD")
    caplog.set_level(logging.DEBUG, logger="tickfan.feeds.sim")
    for _ in range(50):
        ticks = feed.step(0.1)
        assert any(t[0] == "ETH/USD" for t in ticks) and any(t[0] == "BTC/USD" for t in ticks)
        applied = await feed.emit(ticks)
        assert applied == sum(1 for t in ticks if t[0] != "ETH/USD")
    assert seq_of(hub, "ETH/USD") == eth_before
    assert seq_of(hub, "BTC/USD") > 1000  # 250 ticks/s for 5 simulated seconds
    assert hub.metrics.ticks_refused >= 50 * 4
    records = [r for r in caplog.records if r.name == "tickfan.feeds.sim"]
    assert len(records) == 1  # rate-limited: one line for the whole run
    assert records[0].levelno == logging.WARNING and records[0].exc_info is None
    assert "ETH/USD" in records[0].getMessage()
    await hub.broker.stop()
