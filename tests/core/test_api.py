"""Parity: both core modules export the same API, the one ``tickfan/_core.pyi`` specifies."""

from __future__ import annotations

import importlib
import inspect

import pytest

NAMES = {
    "Core", "IMPLEMENTATION", "INTERVALS", "DEFAULT_CANDLE_CAPACITY", "MAX_UNITS",
    "MAX_DECIMALS", "MIN_INTERVAL_MS", "MAX_INTERVAL_MS", "format_units",
}
METHODS = {
    "symbols", "ingest", "latest", "is_high_frequency", "connect", "disconnect", "subscribe",
    "unsubscribe", "subscriptions", "push", "drain", "queued", "take_ready", "take_overflowed",
    "flush", "next_deadline_ms", "stats", "backfill", "recent_candles", "add_alert",
    "remove_alert", "take_fired", "ring_range", "resume", "checkpoint", "restore",
}


def public(obj: object) -> set[str]:
    return {name for name in dir(obj) if not name.startswith("_")}


@pytest.fixture(scope="module")
def both():
    try:
        rust = importlib.import_module("tickfan._core")
    except ImportError as exc:  # fail, never skip: CI must not pass without the extension
        pytest.fail(f"the rust core cannot be imported ({exc}); run `make build`", pytrace=False)
    return rust, importlib.import_module("tickfan.core._python")


RUST_ONLY = {"FastLane"}
"""The fast lane is a transport, not part of the core's spec: the twin has none (--fast-port is
refused with it)."""


def test_module_names(both):
    rust, python = both
    assert public(python) >= NAMES
    assert public(rust) >= NAMES
    assert set(python.__all__) == NAMES
    # Nothing public beyond the spec in the twin, and the same set in both.
    assert {n for n in public(rust) if not inspect.ismodule(getattr(rust, n))} == NAMES | RUST_ONLY
    assert {n for n in public(python) if not inspect.ismodule(getattr(python, n))} == NAMES
    assert (rust.IMPLEMENTATION, python.IMPLEMENTATION) == ("rust", "python")
    for name in NAMES - {"Core", "format_units", "IMPLEMENTATION"}:
        assert getattr(rust, name) == getattr(python, name), name


def test_core_methods(both):
    rust, python = both
    assert public(rust.Core) == METHODS
    assert public(python.Core) == METHODS


def params(fn: object) -> list[tuple[str, object, object]]:
    sig = inspect.signature(fn)  # type: ignore[arg-type]
    return [(p.name, p.kind, p.default) for p in sig.parameters.values() if p.name != "self"]


@pytest.mark.parametrize("method", sorted(METHODS))
def test_method_signatures(both, method):
    rust, python = both
    assert params(getattr(rust.Core, method)) == params(getattr(python.Core, method))


def test_constructor_and_format_units_signatures(both):
    rust, python = both
    assert params(rust.Core) == params(python.Core)
    assert params(rust.format_units) == params(python.format_units)
