"""Fixtures of the end-to-end suite (the harness is ``tickfan_e2e.py``). Every fixture runs once per core.

- ``server``: one process per core for the whole session (``--feed none``), with a short auth
  timeout, a small per-connection queue, a 6-symbol cap and test-only symbols, for the protocol
  tests (auth, messages, market data, HTTP routes).
- ``sim_server``: one per core for the session with the simulator on (batch == tick under load).
- ``plain_server``: one per core for the session, ``--feed none`` and otherwise default settings,
  shared by the alerts, bots, notifications and performance tests (users kept apart by ``users()``).
  It is not ``server``: both families publish to the same symbols with their own timestamps, and
  the server refuses a tick older than the last one of its symbol.
- ``fresh_server``: a factory for tests that restart a server or need special settings; each
  call starts a new ``--feed none`` server in the test's tmp dir, stopped when the test ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tickfan_e2e import CORES, MARKET_DATA_SERVERS, Server, write_universe


@pytest.fixture(scope="session", params=MARKET_DATA_SERVERS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Each core on Granian, and the Rust core's fast lane (``/ws/market-data`` on ``--fast-port``)."""
    core, _, fast = request.param.partition("-")
    data_dir = tmp_path_factory.mktemp(f"srv-{request.param}")
    srv = Server(
        core,
        data_dir,
        "--feed", "none",
        "--symbols", str(write_universe(data_dir / "symbols.json")),
        "--auth-timeout-ms", "800",
        "--max-queue-bytes", str(1024 * 1024),
        "--max-symbols-per-connection", "6",
        "--log-level", "warning",
        transport="fast" if fast else "granian",
    ).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session", params=CORES)
def sim_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(request.param, tmp_path_factory.mktemp(f"sim-{request.param}"), "--feed", "sim", "--log-level", "warning").start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session", params=CORES)
def plain_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(request.param, tmp_path_factory.mktemp(f"plain-{request.param}"), "--feed", "none", "--log-level", "warning").start()
    yield srv
    srv.stop()


@pytest.fixture(params=CORES)
def fresh_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(*extra: str, env: dict[str, str] | None = None) -> Server:
        data_dir = tmp_path / f"data{len(started)}"
        srv = Server(request.param, data_dir, "--feed", "none", "--log-level", "warning", *extra, env=env)
        started.append(srv)
        return srv.start()

    yield start
    for srv in started:
        srv.stop()
