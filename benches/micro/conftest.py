"""Micro-benchmark fixtures: one param per implementation (rust, python, naive)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import pytest

from .naive import NaiveCore

IMPLEMENTATIONS = ["rust", "python", "naive"]


@pytest.fixture(params=IMPLEMENTATIONS)
def make_core(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """A factory of cores of one implementation: ``make_core(symbols, **kwargs)``."""
    if request.param == "naive":
        return NaiveCore
    module = {"rust": "tickfan._core", "python": "tickfan.core._python"}[request.param]
    try:
        return importlib.import_module(module).Core
    except ImportError as exc:  # fail, never skip: a missing extension must not pass
        pytest.fail(f"the {request.param} core cannot be imported ({exc})", pytrace=False)
