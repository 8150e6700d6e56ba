"""The store ABC and the records it returns.

Every method is scoped by ``user_id`` where a user could otherwise reach another user's rows:
isolation is enforced here, not left to each caller.
"""

from __future__ import annotations

import abc
from typing import Any, Literal

import msgspec

from tickfan.bots import BotState

__all__ = ["Alert", "BotState", "FiredAlert", "Notification", "Store"]

Direction = Literal["above", "below"]


class Notification(msgspec.Struct, frozen=True):
    """One notification as it goes on the wire (protocol section 5, ``N``); no ``user_id``."""

    id: int
    kind: str
    title: str
    body: str
    data: Any
    created_at: int
    read: bool


class Alert(msgspec.Struct, frozen=True):
    """An armed price alert. ``id`` is also the alert's id in the core."""

    id: int
    user_id: str
    symbol: str
    direction: Direction
    level: float
    created_at: int


class FiredAlert(msgspec.Struct, frozen=True):
    """The outcome of :meth:`Store.fire_alert`: whose alert it was and the notification stored."""

    user_id: str
    notification: Notification


class Store(abc.ABC):
    """Notifications, alerts and bot states, durable across restarts. All methods are coroutines
    that never block the event loop."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Create the schema if needed; must be awaited before any other method."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Flush and release resources; the store is unusable afterwards."""

    @abc.abstractmethod
    async def ping(self) -> bool:
        """Whether the store answers a trivial query (readiness)."""

    # --- notifications ------------------------------------------------------------------

    @abc.abstractmethod
    async def add_notification(
        self, user_id: str, kind: str, title: str, body: str, data: Any, created_at: int
    ) -> Notification:
        """Store an unread notification; its id is greater than every id stored before."""

    @abc.abstractmethod
    async def unread_notifications(self, user_id: str, limit: int = 50) -> list[Notification]:
        """The user's most recent ``limit`` unread notifications, oldest first."""

    @abc.abstractmethod
    async def list_notifications(self, user_id: str, after: int, limit: int) -> list[Notification]:
        """The user's notifications with id > ``after``, oldest first, read ones included."""

    @abc.abstractmethod
    async def mark_read(self, user_id: str, ids: list[int]) -> list[int]:
        """Mark the user's notifications among ``ids`` read; return those ids, sorted, unique.

        Ids that are unknown or belong to another user are ignored and not returned. Ids of
        the user's own notifications that were already read are returned (idempotent: a retry
        confirms the same ids).
        """

    # --- alerts ---------------------------------------------------------------------------

    @abc.abstractmethod
    async def add_alert(
        self, user_id: str, symbol: str, direction: Direction, level: float, created_at: int,
        limit: int | None = None,
    ) -> Alert:
        """Store an alert; ids increase and are never reused, even after deletion.
        ``TooManyAlerts`` (nothing stored) if the user already holds ``limit`` alerts."""

    @abc.abstractmethod
    async def list_alerts(self, user_id: str) -> list[Alert]:
        """The user's alerts, by id."""

    @abc.abstractmethod
    async def all_alerts(self) -> list[Alert]:
        """Every stored alert, by id: what to re-arm in the core at start."""

    @abc.abstractmethod
    async def delete_alert(self, user_id: str, alert_id: int) -> bool:
        """Delete the user's alert; False if it does not exist or is another user's."""

    @abc.abstractmethod
    async def fire_alert(
        self, alert_id: int, kind: str, title: str, body: str, data: Any, created_at: int
    ) -> FiredAlert | None:
        """Atomically delete the alert and store its notification for the alert's owner.

        Returns None, storing nothing, if the alert no longer exists (deleted, or fired
        before a restart). Both happen or neither does, so an alert notifies at most once.
        """

    # --- bot states -----------------------------------------------------------------------

    @abc.abstractmethod
    async def put_bot(
        self, user_id: str, bot_id: str, status: str, ts: int, detail: Any
    ) -> BotState:
        """Replace the state of the user's bot; return it with the user's running count after it.

        The count is computed in the same transaction as the write, so concurrent updates each
        get the exact count at their own instant. ``ValueError`` naming the allowed values for a
        status outside :data:`tickfan.bots.STATUSES` (nothing is stored).
        """

    @abc.abstractmethod
    async def bots(self, user_id: str) -> list[BotState]:
        """The user's bots by ``bot_id``, each carrying the user's *current* running count."""
