"""Fixtures shared by the test suites: the two core implementations.

``impl`` runs a test once per core module: ``tickfan._core`` (Rust) and
``tickfan.core._python`` (the twin). The Rust param fails, never skips, when the extension is
not built: CI must not pass with the extension missing. While it is being built, select the
twin with ``-k python``.

``redis_server`` (one per session) and ``fresh_redis`` (one per test) are private
``redis-server`` processes (tests/redis_server.py).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from redis_server import RedisServer

CORE_MODULES = {"rust": "tickfan._core", "python": "tickfan.core._python"}


def load_core(name: str) -> ModuleType:
    try:
        return importlib.import_module(CORE_MODULES[name])
    except ImportError as exc:
        pytest.fail(f"the {name} core cannot be imported ({exc}); run `make build`", pytrace=False)


@pytest.fixture(params=list(CORE_MODULES), scope="session")
def impl(request: pytest.FixtureRequest) -> ModuleType:
    """A core module: the Rust extension or the Python twin."""
    return load_core(request.param)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private redis-server for the session (tests/redis_server.py); fails in CI when missing.

    Tests that kill, freeze or empty it use ``fresh_redis`` instead, so they hurt no other test.
    """
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def fresh_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, for the failure tests."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()
