"""Helpers for tests that drive nodes of a deployment.

:class:`Node` is a real :class:`~tickfan.hub.Hub` over a core (no sockets, no server), started
by ``async with``, recording the per-user events its broker delivers; :class:`Peer` stands in
for a session. :func:`cluster` is the e2e fixture of two ``tickfan serve`` nodes on one
redis-server (for ``tests/e2e``; import it into the test module).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

from tickfan.auth import verifier_from_config
from tickfan.bots import BotState
from tickfan.brokers import Broker
from tickfan.config import Config
from tickfan.hub import Hub
from tickfan.protocol import CloseCode, ErrorCode
from tickfan.stores import Notification

if TYPE_CHECKING:
    from redis_server import RedisServer
    from tickfan_e2e import Server

__all__ = ["MakeBroker", "Node", "Peer", "eventually", "cluster_node", "cluster"]

MakeBroker = Callable[..., Broker]
"""Each call: a new broker over the same deployment's data; keywords are ``Config`` settings."""


class Peer:
    """A connection as the hub sees it, recording what happens to it (no socket)."""

    def __init__(self, channel_name: str = "market_data") -> None:
        self.channel_name = channel_name
        self.closed: int | None = None
        self.failed: ErrorCode | None = None

    @property
    def closing(self) -> bool:
        return self.closed is not None or self.failed is not None

    def wake(self, ingest_t: float | None = None) -> None:
        pass

    def fail(self, code: ErrorCode, message: str | None = None) -> None:
        self.failed = code

    def close(self, code: CloseCode = CloseCode.NORMAL) -> None:
        self.closed = int(code)


class Node:
    """A real :class:`Hub` over a core, driven by ``broker``; records the events it is given."""

    def __init__(self, impl: ModuleType, broker: Broker, data_dir: Path, symbols: Path | None = None) -> None:
        config = Config(data_dir=data_dir, feed="none", jwt_secret="s" * 32, symbols=symbols)
        self.hub = Hub(config, impl, verifier_from_config(config), broker)
        self.broker = broker
        self.events: list[tuple[str, BotState | Notification]] = []
        self.hub.listen(BotState, self._record)
        self.hub.listen(Notification, self._record)

    def _record(self, user_id: str, event: Any) -> None:
        self.events.append((user_id, event))

    async def __aenter__(self) -> Node:
        await self.hub.start()
        return self

    async def __aexit__(self, *_: Any) -> None:
        for conn_id in list(self.hub.sessions):  # no socket to close: forget the test's peers
            self.hub.unregister(conn_id)
        await self.hub.close()

    def subscriber(self, symbols: list[str]) -> int:
        """A tick-mode connection to ``symbols``; read its frames with :meth:`frames`."""
        conn_id = self.hub.register(Peer())
        self.hub.subscribe(conn_id, symbols, "tick", None)
        return conn_id

    def frames(self, conn_id: int) -> list[dict[str, Any]]:
        return [json.loads(f) for f in self.hub.drain(conn_id, 100_000)]

    def events_of(self, user_id: str) -> list[BotState | Notification]:
        return [event for user, event in self.events if user == user_id]


async def eventually(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Poll ``check`` until it holds (a broker may deliver asynchronously); fail at the deadline."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.005)


# --- e2e: nodes as ``tickfan serve`` processes (tests/e2e puts ``tickfan_e2e`` on the path) -------


def cluster_node(data_dir: Path, core: str, redis_url: str, *extra: str) -> Server:
    """A ``--feed none`` node on ``redis_url`` (not started)."""
    from tickfan_e2e import Server

    return Server(core, data_dir, "--feed", "none", "--broker", redis_url, "--log-level", "warning", *extra)


@pytest.fixture
def cluster(fresh_redis: RedisServer, tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    """Two nodes on the test's own redis-server: A on the Rust core, B on the Python twin (so
    "the same frames" also checks that both cores give the same bytes from the same log)."""
    a = cluster_node(tmp_path / "a", "rust", fresh_redis.url).start()
    b = cluster_node(tmp_path / "b", "python", fresh_redis.url).start()
    yield a, b
    a.stop()
    b.stop()
