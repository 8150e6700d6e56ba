"""Fixtures of the broker suites: a broker factory per backend and a real node (Hub) to drive
(``tests/broker_nodes.py``).

``make_broker`` runs a test once per broker. Each call of the factory gives a new broker over
the same deployment's data (the memory broker: the same SQLite file, i.e. a restart). A broker
added to :data:`BROKERS` must pass ``test_contract.py`` unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from broker_nodes import MakeBroker, Node

from tickfan.brokers import Broker, MemoryBroker
from tickfan.config import Config
from tickfan.stores import SqliteStore

BROKERS = ["memory", "redis"]


@pytest.fixture(params=BROKERS)
def make_broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeBroker]:
    if request.param == "memory":
        yield lambda **settings: MemoryBroker(
            SqliteStore(tmp_path / "tickfan.db"), max_alerts_per_user=Config(**settings).max_alerts_per_user
        )
    elif request.param == "redis":  # a redis-server of the test's own (tests/redis_server.py)
        from redis_server import RedisServer

        from tickfan.brokers.redis import RedisBroker

        server = RedisServer(tmp_path / "redis").start()
        yield lambda **settings: RedisBroker(Config(broker=server.url, **settings))
        server.stop()
    else:  # pragma: no cover - a new broker must be wired here
        pytest.fail(f"no factory for broker {request.param!r}")


@pytest.fixture
def node(impl: ModuleType, tmp_path: Path) -> Callable[[Broker], Node]:
    return lambda broker: Node(impl, broker, tmp_path / "node")
