"""Fixtures of the end-to-end suite (the harness is ``tickfan_e2e.py``). Every fixture runs once
per backend of :data:`BACKENDS`: each core on the memory broker, and the Rust core on the Redis
broker as two worker processes (``--workers 2``, a private redis-server,
``tests/redis_server.py``), so the suites of every channel and route run against both brokers,
and against a server of two nodes, without running everything four times.

- ``server``: one process per backend for the whole session (``--feed none``), and one more
  serving ``/ws/market-data`` on the Rust core's fast lane (``rust-fast``), with a short auth
  timeout, a small per-connection queue, a 6-symbol cap and test-only symbols, for the protocol
  tests (auth, messages, market data, HTTP routes).
- ``sim_server``: one per backend for the session with the simulator on (batch == tick under load).
- ``plain_server``: one per backend for the session, ``--feed none`` and otherwise default
  settings, shared by the alerts, bots, notifications and performance tests (users kept apart by
  ``users()``). It is not ``server``: both families publish to the same symbols with their own
  timestamps, and the server refuses a tick older than the last one of its symbol. (On Redis
  each session server has its own database number, for the same reason.)
- ``fresh_server``: a factory for tests that restart a server or need special settings; each
  call starts a new ``--feed none`` server in the test's tmp dir, stopped when the test ends
  (on Redis: all on one redis-server of the test's own, which outlives their restarts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from redis_server import RedisServer
from tickfan_e2e import Server, write_universe

BACKENDS = [("python", "memory"), ("rust", "memory"), ("rust", "redis-w2")]
"""(core, broker) pairs every fixture runs over. The Redis backend is ``--workers 2`` (two nodes
on one port): the cluster suite (test_cluster_e2e.py) covers single-process nodes on one Redis."""
IDS = ["python", "rust", "rust-redis-w2"]
_DB = {"server": 1, "sim_server": 2, "plain_server": 3}
SERVERS = [(core, broker, "granian") for core, broker in BACKENDS] + [("rust", "memory", "fast")]
"""The ``server`` fixture's: every backend on Granian, and the Rust core's fast lane
(``/ws/market-data`` on ``--fast-port``), so the protocol suites run over both transports."""
SERVER_IDS = [*IDS, "rust-fast"]


def _broker_args(broker: str, request: pytest.FixtureRequest, fixture: str) -> tuple[str, ...]:
    if broker == "memory":
        return ()
    redis: RedisServer = request.getfixturevalue("redis_server")
    workers = ("--workers", "2") if broker == "redis-w2" else ()
    return ("--broker", f"redis://127.0.0.1:{redis.port}/{_DB[fixture] + (4 if workers else 0)}", *workers)


@pytest.fixture(scope="session", params=SERVERS, ids=SERVER_IDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    core, broker, transport = request.param
    data_dir = tmp_path_factory.mktemp(f"srv-{core}-{broker}-{transport}")
    srv = Server(
        core,
        data_dir,
        "--feed", "none",
        "--symbols", str(write_universe(data_dir / "symbols.json")),
        "--auth-timeout-ms", "800",
        "--max-queue-bytes", str(1024 * 1024),
        "--max-symbols-per-connection", "6",
        "--log-level", "warning",
        *_broker_args(broker, request, "server"),
        transport=transport,
    ).start()
    srv.broker = broker
    yield srv
    srv.stop()


@pytest.fixture(scope="session", params=BACKENDS, ids=IDS)
def sim_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    core, broker = request.param
    srv = Server(core, tmp_path_factory.mktemp(f"sim-{core}-{broker}"), "--feed", "sim", "--log-level", "warning",
                 *_broker_args(broker, request, "sim_server")).start()
    srv.broker = broker
    yield srv
    srv.stop()


@pytest.fixture(scope="session", params=BACKENDS, ids=IDS)
def plain_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    core, broker = request.param
    srv = Server(core, tmp_path_factory.mktemp(f"plain-{core}-{broker}"), "--feed", "none", "--log-level", "warning",
                 *_broker_args(broker, request, "plain_server")).start()
    srv.broker = broker
    yield srv
    srv.stop()


@pytest.fixture(params=BACKENDS, ids=IDS)
def fresh_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Server]]:
    core, broker = request.param
    started: list[Server] = []
    redis = RedisServer(tmp_path / "redis").start() if broker.startswith("redis") else None

    def start(*extra: str, env: dict[str, str] | None = None) -> Server:
        data_dir = tmp_path / f"data{len(started)}"
        via = ("--broker", redis.url) if redis is not None else ()
        if broker == "redis-w2":
            via += ("--workers", "2")
        srv = Server(core, data_dir, "--feed", "none", "--log-level", "warning", *via, *extra, env=env)
        srv.broker = broker
        started.append(srv)
        return srv.start()

    yield start
    for srv in started:
        srv.stop()
    if redis is not None:
        redis.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect (not skip) the Redis-backend cases of ``memory_broker_only`` tests and the
    multi-worker cases of ``single_process`` tests."""
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = [str(v) for v in callspec.params.values()] if callspec is not None else []
        on_redis = any("redis" in v for v in params)
        on_workers = any("redis-w2" in v for v in params)
        excluded = (on_redis and item.get_closest_marker("memory_broker_only")) or (
            on_workers and item.get_closest_marker("single_process")
        )
        (drop if excluded else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
