"""Price alerts: stored durably, armed in the core, turned into notifications when they fire.

Life of an alert: ``create`` stores it (the store's id becomes the core's alert id) and arms it
(``core.add_alert``); the core checks it on every ingested tick; after each ingest the hub calls
:meth:`AlertBook.after_ingest`, which takes the fired alerts (``core.take_fired``) and hands them
to one worker task that, per alert, deletes it and stores its ``price_alert`` notification in one
transaction (:meth:`tickfan.stores.Store.fire_alert`), then pushes the notification.

Guarantees: an alert notifies at most once (the transaction), and exactly once unless the
process dies between the firing tick and the commit, in which case the alert is still stored,
is re-armed at the next start and fires on the first tick at or beyond its level after that.
An alert deleted after it fired in the core but before the commit does not notify.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from typing import Any

from tickfan.errors import InvalidArgument, UnknownSymbol
from tickfan.stores import Alert, Notification, Store
from tickfan.stores.base import Direction

__all__ = ["AlertBook", "PRICE_ALERT"]

PRICE_ALERT = "price_alert"

_log = logging.getLogger("tickfan.alerts")

Deliver = Callable[[str, Notification], None]
Clock = Callable[[], int]


def _text(value: float) -> str:
    return repr(float(value))


class AlertBook:
    """The alerts of every user: the store is the truth, the core holds the armed copies."""

    def __init__(self, store: Store, core: Any, deliver: Deliver, clock_ms: Clock) -> None:
        self.store = store
        self.core = core
        self._deliver = deliver
        self._clock_ms = clock_ms
        self._symbols = frozenset(name for name, _, _ in core.symbols())
        self._armed: dict[int, Alert] = {}
        self._fired: asyncio.Queue[tuple[int, str, int, int, float]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> int:
        """Re-arm every stored alert in the core and start the worker; return how many."""
        for alert in await self.store.all_alerts():
            try:
                self.core.add_alert(alert.id, alert.symbol, alert.direction, alert.level)
            except InvalidArgument as exc:  # e.g. its symbol left the configured universe
                _log.warning("alert %d not re-armed: %s", alert.id, exc)
                continue
            self._armed[alert.id] = alert
        self._worker = asyncio.create_task(self._work(), name="tickfan-alerts")
        return len(self._armed)

    async def stop(self) -> None:
        """Finish storing what already fired, then stop."""
        if self._worker is None:
            return
        await self._fired.join()
        self._worker.cancel()
        try:
            await self._worker
        except asyncio.CancelledError:
            pass
        self._worker = None

    # --- user operations ------------------------------------------------------------------

    async def create(self, user_id: str, symbol: str, direction: Direction, level: float) -> Alert:
        """Store and arm. ``UnknownSymbol``; ``InvalidArgument`` for a bad direction or level."""
        if symbol not in self._symbols:
            raise UnknownSymbol(f"unknown symbol {symbol!r}", symbol)
        if direction not in ("above", "below"):
            raise InvalidArgument("direction must be above or below")
        if not (isinstance(level, (int, float)) and math.isfinite(level) and level > 0):
            raise InvalidArgument("level must be a finite number > 0")
        alert = await self.store.add_alert(user_id, symbol, direction, float(level), self._clock_ms())
        try:
            self.core.add_alert(alert.id, symbol, direction, float(level))
        except InvalidArgument:
            await self.store.delete_alert(user_id, alert.id)
            raise
        self._armed[alert.id] = alert
        return alert

    async def list(self, user_id: str) -> list[Alert]:
        return await self.store.list_alerts(user_id)

    async def delete(self, user_id: str, alert_id: int) -> bool:
        """Delete the user's alert; False if it is unknown, another user's, or already fired."""
        if not await self.store.delete_alert(user_id, alert_id):
            return False
        self.core.remove_alert(alert_id)
        self._armed.pop(alert_id, None)
        return True

    # --- firing -----------------------------------------------------------------------------

    def after_ingest(self) -> None:
        """Hand alerts fired by the last ingest to the worker. Never awaits; O(1) if none."""
        for fired in self.core.take_fired():
            self._fired.put_nowait(fired)

    async def _work(self) -> None:
        while True:
            fired = await self._fired.get()
            try:
                await self._fire(*fired)
            except Exception:  # noqa: BLE001 - one failed alert must not stop the others
                _log.exception("storing fired alert %d failed", fired[0])
            finally:
                self._fired.task_done()

    async def _fire(self, alert_id: int, symbol: str, seq: int, ts: int, price: float) -> None:
        alert = self._armed.pop(alert_id, None)
        if alert is None:
            return  # deleted in the meantime
        direction = alert.direction
        data = {
            "alert_id": alert_id,
            "symbol": symbol,
            "price": price,
            "level": alert.level,
            "direction": direction,
        }
        relation = ">=" if direction == "above" else "<="
        title = f"{symbol} {direction} {_text(alert.level)}"
        body = f"{symbol} traded at {_text(price)} ({relation} {_text(alert.level)})"
        result = await self.store.fire_alert(alert_id, PRICE_ALERT, title, body, data, self._clock_ms())
        if result is not None:
            self._deliver(result.user_id, result.notification)
