"""The memory broker (``--broker memory``, the default): one process is the whole deployment.

Ticks are validated and applied in place: :meth:`MemoryBroker.ingest` calls the node's
:meth:`~tickfan.hub.Hub.apply` directly, so publishing adds no hop to the hot path (the core's
own all-or-nothing validation is the check before anything is published). Tick state (``seq``,
candles, latest ticks) is in the process's memory: a new process is a new epoch.

Per-user state is durable in :attr:`store` (SQLite in the data dir by default): bot states,
notifications and alerts survive a restart. Events are delivered in place (``node.deliver``)
right after their write commits. Price alerts are armed in the node's core and fired there
(:class:`tickfan.alerts.AlertBook`); an ingest returns only after the alerts it fired are
committed with their notifications.

Idempotency keys are remembered in memory, the most recent :data:`IDEMPOTENCY_KEYS` of them,
for the life of the process (ticks do not outlive it either).

Fault injection for tests: ``TICKFAN_CRASH_AT=alert_fired`` makes the process SIGKILL itself
after an ingest fired an alert in the core and before the commit; ``alert_committed`` after the
commit and before the ingest returns. Unset in production; read once at construction.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from tickfan.alerts import AlertBook, AlertNode
from tickfan.bots import BotState
from tickfan.brokers.base import Broker, Event, Node
from tickfan.stores.base import Alert, Direction, Notification, Store

__all__ = ["MemoryBroker", "LocalNode", "IDEMPOTENCY_KEYS", "CRASH_ENV"]

_log = logging.getLogger("tickfan.brokers.memory")

IDEMPOTENCY_KEYS = 65_536
"""How many idempotency keys the memory broker remembers (oldest forgotten first)."""
CRASH_ENV = "TICKFAN_CRASH_AT"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@runtime_checkable
class LocalNode(Node, AlertNode, Protocol):
    """A node in this process: the memory broker also arms and fires alerts in its core."""

    def take_fired(self) -> list[tuple[int, str, int, int, float]]: ...


class MemoryBroker(Broker):
    """Ticks and events within one process; per-user state in ``store`` (see module doc)."""

    def __init__(
        self, store: Store, clock_ms: Callable[[], int] = _now_ms, max_alerts_per_user: int | None = None
    ) -> None:
        self.store = store
        self._clock_ms = clock_ms
        self._epoch = secrets.token_hex(8)
        self._node: LocalNode | None = None
        self.alerts = AlertBook(store, clock_ms, max_alerts_per_user)
        self._answers: OrderedDict[str, asyncio.Future[int]] = OrderedDict()
        self._crash_at = os.environ.get(CRASH_ENV) or None

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self, node: Node) -> None:
        if not isinstance(node, LocalNode):
            raise TypeError("the memory broker drives a hub in this process (arm_alert, take_fired)")
        await self.store.open()
        armed = await self.alerts.start(node)
        self._node = node
        _log.info("memory broker: store %s open; %d alerts armed", getattr(self.store, "path", "?"), armed)

    async def stop(self) -> None:
        self._node = None
        await self.store.close()

    @property
    def epoch(self) -> str:
        return self._epoch

    async def ready(self) -> bool:
        return self._node is not None and await self.store.ping()

    def _local(self) -> LocalNode:
        if self._node is None:
            raise RuntimeError("the broker is not started")
        return self._node

    # --- ticks ------------------------------------------------------------------------------

    async def ingest(self, ticks: Sequence[Any], idempotency_key: str | None = None) -> int:
        node = self._local()
        if idempotency_key is not None:
            answered = self._answers.get(idempotency_key)
            if answered is not None:
                return await asyncio.shield(answered)
        applied = node.apply(ticks)  # TickRejected: nothing applied, the key stays unused
        answer: asyncio.Future[int] | None = None
        if idempotency_key is not None:
            answer = self._remember(idempotency_key)
        try:
            fired = node.take_fired()
            if fired:
                self._crash_point("alert_fired")
                await self.alerts.fire(fired, node.deliver)
                self._crash_point("alert_committed")
        finally:
            # The batch is applied whatever happened to its alerts: a retry must not apply it again.
            if answer is not None:
                answer.set_result(applied)
        return applied

    def _remember(self, key: str) -> asyncio.Future[int]:
        answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._answers[key] = answer
        while len(self._answers) > IDEMPOTENCY_KEYS:
            self._answers.popitem(last=False)
        return answer

    def _crash_point(self, name: str) -> None:
        if self._crash_at == name:
            _log.warning("%s=%s: killing this process", CRASH_ENV, name)
            os.kill(os.getpid(), signal.SIGKILL)

    # --- per-user writes -----------------------------------------------------------------------

    def _publish(self, user_id: str, event: Event) -> None:
        if self._node is not None:
            self._node.deliver(user_id, event)

    async def put_bot(self, user_id: str, bot_id: str, status: str, detail: Any) -> BotState:
        state = await self.store.put_bot(user_id, bot_id, status, self._clock_ms(), detail)
        self._publish(user_id, state)
        return state

    async def notify(self, user_id: str, kind: str, title: str, body: str, data: Any) -> Notification:
        notification = await self.store.add_notification(user_id, kind, title, body, data, self._clock_ms())
        self._publish(user_id, notification)
        return notification

    async def add_alert(self, user_id: str, symbol: str, direction: Direction, level: float) -> Alert:
        self._local()
        return await self.alerts.create(user_id, symbol, direction, level)

    async def delete_alert(self, user_id: str, alert_id: int) -> bool:
        self._local()
        return await self.alerts.delete(user_id, alert_id)
