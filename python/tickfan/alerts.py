"""Price alerts in one process's core: the memory broker's alert book.

Life of an alert: :meth:`AlertBook.create` stores it (the store's id becomes the core's alert
id) and arms it in the node's core (``Hub.arm_alert``); the core checks it on every applied
tick. After each ingest the broker takes the fired alerts (``Hub.take_fired``) and, before the
ingest returns, :meth:`AlertBook.fire` commits each one: the alert's deletion and its
``price_alert`` notification in one transaction (:meth:`tickfan.stores.Store.fire_alert`).

Guarantees: an alert notifies at most once (the transaction deletes it, so a restart never
re-arms it), and exactly once for an acknowledged ingest (the ingest is acknowledged only after
the commit). If the process dies between the firing tick and the commit, the ingest was never
acknowledged: the alert is still stored, is re-armed at the next start and fires on the first
tick at or beyond its level after that (the publisher's retry of the same batch, say). An alert
deleted after it fired in the core but before the commit does not notify.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any, Protocol

from tickfan.errors import InvalidArgument, UnknownSymbol
from tickfan.stores import Alert, Notification, Store
from tickfan.stores.base import Direction

__all__ = ["AlertBook", "AlertNode", "PRICE_ALERT", "check_alert", "price_alert_text"]

PRICE_ALERT = "price_alert"

_log = logging.getLogger("tickfan.alerts")

Clock = Callable[[], int]
Deliver = Callable[[str, Notification], None]
Fired = tuple[int, str, int, int, float]
"""``(alert_id, symbol, seq, ts, price)`` of the tick that fired the alert."""


class AlertNode(Protocol):
    """The part of a hub the alert book uses: the core's alert index."""

    def symbols(self) -> list[tuple[str, int, int]]: ...

    def arm_alert(self, alert_id: int, symbol: str, direction: str, level: float) -> None: ...

    def disarm_alert(self, alert_id: int) -> bool: ...


def check_alert(symbols: frozenset[str], symbol: str, direction: str, level: Any) -> None:
    """``UnknownSymbol``; ``InvalidArgument`` for a bad direction or level (the core's messages)."""
    if symbol not in symbols:
        raise UnknownSymbol(f"unknown symbol {symbol!r}", symbol)
    if direction not in ("above", "below"):
        raise InvalidArgument("direction must be above or below")
    if not (isinstance(level, (int, float)) and not isinstance(level, bool) and math.isfinite(level) and level > 0):
        raise InvalidArgument("level must be a finite number > 0")


def _text(value: float) -> str:
    return repr(float(value))


def price_alert_text(symbol: str, direction: str, level: float, price: float) -> tuple[str, str]:
    """The ``price_alert`` notification's ``(title, body)``."""
    relation = ">=" if direction == "above" else "<="
    title = f"{symbol} {direction} {_text(level)}"
    body = f"{symbol} traded at {_text(price)} ({relation} {_text(level)})"
    return title, body


class AlertBook:
    """The alerts of every user: the store is the truth, the node's core holds the armed copies."""

    def __init__(self, store: Store, clock_ms: Clock, max_per_user: int | None = None) -> None:
        self.store = store
        self.max_per_user = max_per_user
        self._clock_ms = clock_ms
        self._node: AlertNode | None = None
        self._symbols: frozenset[str] = frozenset()
        self._armed: dict[int, Alert] = {}

    def _hub(self) -> AlertNode:
        if self._node is None:
            raise RuntimeError("AlertBook is not started")
        return self._node

    async def start(self, node: AlertNode) -> int:
        """Re-arm every stored alert in ``node``'s core; return how many."""
        self._node = node
        self._symbols = frozenset(name for name, _, _ in node.symbols())
        self._armed.clear()
        for alert in await self.store.all_alerts():
            try:
                node.arm_alert(alert.id, alert.symbol, alert.direction, alert.level)
            except InvalidArgument as exc:  # e.g. its symbol left the configured universe
                _log.warning("alert %d not re-armed: %s", alert.id, exc)
                continue
            self._armed[alert.id] = alert
        return len(self._armed)

    async def create(self, user_id: str, symbol: str, direction: Direction, level: float) -> Alert:
        """Store and arm. ``UnknownSymbol``; ``InvalidArgument`` for a bad direction or level."""
        node = self._hub()
        check_alert(self._symbols, symbol, direction, level)
        alert = await self.store.add_alert(
            user_id, symbol, direction, float(level), self._clock_ms(), self.max_per_user
        )
        try:
            node.arm_alert(alert.id, symbol, direction, float(level))
        except InvalidArgument:
            await self.store.delete_alert(user_id, alert.id)
            raise
        self._armed[alert.id] = alert
        return alert

    async def delete(self, user_id: str, alert_id: int) -> bool:
        """Delete the user's alert; False if it is unknown, another user's, or already fired."""
        if not await self.store.delete_alert(user_id, alert_id):
            return False
        self._hub().disarm_alert(alert_id)
        self._armed.pop(alert_id, None)
        return True

    async def fire(self, fired: list[Fired], deliver: Deliver) -> int:
        """Commit each fired alert with its notification, in order, delivering each once
        committed; return how many were.

        An alert deleted in the meantime commits nothing. If a commit fails, that alert is
        re-armed (it is still stored) and the first error is raised after the others are tried.
        """
        committed = 0
        error: Exception | None = None
        for alert_id, symbol, _seq, _ts, price in fired:
            alert = self._armed.pop(alert_id, None)
            if alert is None:
                continue  # deleted in the meantime
            data = {
                "alert_id": alert_id,
                "symbol": symbol,
                "price": price,
                "level": alert.level,
                "direction": alert.direction,
            }
            title, body = price_alert_text(symbol, alert.direction, alert.level, price)
            try:
                result = await self.store.fire_alert(alert_id, PRICE_ALERT, title, body, data, self._clock_ms())
            except Exception as exc:  # noqa: BLE001 - re-arm, try the others, then raise
                _log.exception("storing fired alert %d failed; re-arming it", alert_id)
                self._armed[alert_id] = alert
                self._hub().arm_alert(alert_id, alert.symbol, alert.direction, alert.level)
                error = error or exc
                continue
            if result is not None:
                committed += 1
                deliver(result.user_id, result.notification)
        if error is not None:
            raise error
        return committed
