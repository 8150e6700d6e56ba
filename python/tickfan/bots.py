"""Per-user bot states: the model behind ``/ws/bot-status`` (protocol section 4).

Framework-free. Bots are keyed by ``(user_id, bot_id)``, so two users' bots never mix even if
they share a ``bot_id``. State lives in memory: after a restart the registry is empty until the
bot runners publish again (they publish on every transition, so the state is at most one
transition stale; see docs/operations.md).
"""

from __future__ import annotations

import enum
from typing import Any

import msgspec

__all__ = ["BotStatus", "BotState", "BotRegistry", "STATUSES", "check_status"]


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


class BotRegistry:
    """The current state of every bot, per user, and each user's running count.

    ``update`` is O(1) and keeps ``running_count`` exact after every update, so the count in
    each message is the truth at that instant, not a recount that a concurrent update could
    race. Not thread-safe: the event loop owns it.
    """

    def __init__(self) -> None:
        self._bots: dict[str, dict[str, BotState]] = {}
        self._running: dict[str, int] = {}

    def update(
        self, user_id: str, bot_id: str, status: str, ts: int, detail: Any = None
    ) -> BotState:
        """Record a bot's new status; return the message to push to the user's sockets.

        Raises ``ValueError`` naming the allowed values for an unknown ``status``.
        """
        check_status(status)
        bots = self._bots.setdefault(user_id, {})
        previous = bots.get(bot_id)
        running = self._running.get(user_id, 0)
        if previous is not None and previous.status == BotStatus.RUNNING:
            running -= 1
        if status == BotStatus.RUNNING:
            running += 1
        self._running[user_id] = running
        state = BotState(bot_id, status, ts, running, detail)
        bots[bot_id] = state
        return state

    def running_count(self, user_id: str) -> int:
        return self._running.get(user_id, 0)

    def states(self, user_id: str) -> list[BotState]:
        """The user's bots by ``bot_id``, each carrying the user's *current* running count."""
        bots = self._bots.get(user_id)
        if not bots:
            return []
        running = self._running.get(user_id, 0)
        return [
            state if state.running_count == running
            else msgspec.structs.replace(state, running_count=running)
            for _, state in sorted(bots.items())
        ]

    def __len__(self) -> int:
        return sum(len(b) for b in self._bots.values())
