"""The one place that picks the core: the Rust extension or its pure-Python twin.

``TICKFAN_CORE`` (or :func:`select`) chooses: ``rust`` requires the extension, ``python`` uses
the twin, ``auto`` (default) uses the extension when it imports and otherwise the twin, with one
logged warning. Both export the API specified in ``tickfan/_core.pyi``.
"""

from __future__ import annotations

import importlib
import logging
import os
from types import ModuleType

from tickfan.errors import ConfigError

__all__ = ["CHOICES", "load", "select", "core_name", "active"]

CHOICES = ("auto", "rust", "python")

_log = logging.getLogger("tickfan.core")
_active: ModuleType | None = None


def load(choice: str) -> ModuleType:
    """Return the core module for ``choice`` without making it the active one."""
    if choice not in CHOICES:
        raise ConfigError(f"unknown core {choice!r}: expected one of {', '.join(CHOICES)}")
    if choice == "python":
        return importlib.import_module("tickfan.core._python")
    try:
        return importlib.import_module("tickfan._core")
    except ImportError as exc:
        if choice == "rust":
            raise ConfigError(
                "the Rust core is not built (tickfan._core cannot be imported: "
                f"{exc}); run `make build` or use TICKFAN_CORE=python"
            ) from exc
        _log.warning(
            "Rust core unavailable (%s); falling back to the pure-Python core. "
            "Build it with `make build` for production speed.",
            exc,
        )
        return importlib.import_module("tickfan.core._python")


def select(choice: str | None = None) -> ModuleType:
    """Make ``choice`` (default: ``$TICKFAN_CORE`` or ``auto``) the active core and return it."""
    global _active
    _active = load(choice or os.environ.get("TICKFAN_CORE", "auto"))
    return _active


def active() -> ModuleType:
    """The active core module, selected on first use."""
    return _active if _active is not None else select()


def core_name() -> str:
    """``"rust"`` or ``"python"``: which core is active."""
    return active().IMPLEMENTATION
