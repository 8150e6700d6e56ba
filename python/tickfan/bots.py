"""Per-user bot states: the model behind ``/ws/bot-status`` (protocol section 4).

Framework-free. Bots are keyed by ``(user_id, bot_id)``, so two users' bots never mix even if
they share a ``bot_id``. The state is stored (:meth:`tickfan.stores.Store.put_bot`, which also
counts the user's running bots in the same transaction) and survives a restart.
"""

from __future__ import annotations

import enum
from typing import Any

import msgspec

__all__ = ["BotStatus", "BotState", "STATUSES", "check_status"]


class BotStatus(enum.StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPING = "stopping"
    STOPPED = "stopped"
    ERROR = "error"


STATUSES: tuple[str, ...] = tuple(s.value for s in BotStatus)


def check_status(status: str) -> None:
    """``ValueError`` naming the allowed values unless ``status`` is one of :data:`STATUSES`."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}")


class BotState(msgspec.Struct, frozen=True, tag="bot_status", tag_field="type"):
    """One ``bot_status`` message, exactly as sent: ``{"type": "bot_status", ...}``."""

    bot_id: str
    status: str
    ts: int
    running_count: int
    detail: Any = None
