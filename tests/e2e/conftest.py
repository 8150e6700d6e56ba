"""Fixtures of the end-to-end suite (helpers in ``tickfan_e2e.py``): one server per core."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tickfan_e2e import CORES, Server, write_universe


@pytest.fixture(scope="session", params=CORES)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp(f"srv-{request.param}")
    srv = Server(
        request.param,
        data_dir,
        "--feed", "none",
        "--symbols", str(write_universe(data_dir / "symbols.json")),
        "--auth-timeout-ms", "800",
        "--max-queue-bytes", str(1024 * 1024),
        "--max-symbols-per-connection", "6",
        "--log-level", "warning",
    ).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session", params=CORES)
def sim_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(request.param, tmp_path_factory.mktemp(f"sim-{request.param}"), "--feed", "sim", "--log-level", "warning").start()
    yield srv
    srv.stop()
