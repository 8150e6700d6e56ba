"""Fixtures shared by the test suites: the two core implementations.

``impl`` runs a test once per core module: ``tickfan._core`` (Rust) and
``tickfan.core._python`` (the twin). The Rust param fails, never skips, when the extension is
not built: CI must not pass with the extension missing. While it is being built, select the
twin with ``-k python``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

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
