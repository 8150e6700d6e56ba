"""The per-user channels and the performance monitor of one hub, and their HTTP routes.

:class:`Services` builds them over the hub's broker and wires them: the bot-status and
notifications channels :meth:`~tickfan.hub.Hub.listen` to the events the broker delivers to
the hub; the performance monitor samples the hub's metrics (:func:`lifespan` runs its sampler).
The broker itself (store, alerts) is started and stopped by the hub.

The channel factories in ``web/app.py`` take only the hub, so the per-hub instance is found
with :func:`services_of` (created on first use, one per hub).
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar

from tickfan.bots import BotState
from tickfan.hub import Hub
from tickfan.perf import LatencyHistogram, PerfMonitor
from tickfan.session import Channel
from tickfan.stores import Notification
from tickfan.web import alerts_api, bot_status, notifications
from tickfan.web.bot_status import BotStatusChannel
from tickfan.web.notifications import NotificationsChannel
from tickfan.web.performance import PerformanceChannel

__all__ = ["Services", "services_of", "lifespan", "CHANNELS", "ROUTES"]


class Services:
    """The bot-status, notifications and performance channels of one hub, and its performance monitor."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.bot_status = BotStatusChannel(hub.broker)
        self.notifications = NotificationsChannel(
            hub.broker, notifications.initial_budget(hub.config.max_queue_bytes)
        )
        hub.listen(BotState, self.bot_status.deliver)
        hub.listen(Notification, self.notifications.deliver)
        latency = getattr(hub.metrics, "fanout_ms", None)
        self.perf = PerfMonitor(
            hub.metrics,
            core_name=hub.core_name,
            latency=latency if isinstance(latency, LatencyHistogram) else None,
        )
        self.performance = PerformanceChannel(self.perf)
        self._sampler: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._sampler = asyncio.create_task(self.perf.run(), name="tickfan-perf")

    async def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler


_by_hub: weakref.WeakKeyDictionary[Hub, Services] = weakref.WeakKeyDictionary()


def services_of(hub: Hub) -> Services:
    services = _by_hub.get(hub)
    if services is None:
        services = _by_hub[hub] = Services(hub)
    return services


@contextlib.asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    services = services_of(app.state.hub)
    app.state.perf = services.perf
    await services.start()
    try:
        yield
    finally:
        await services.stop()


def _bot_status(hub: Hub) -> Channel:
    return services_of(hub).bot_status


def _notifications(hub: Hub) -> Channel:
    return services_of(hub).notifications


def _performance(hub: Hub) -> Channel:
    return services_of(hub).performance


CHANNELS = [_bot_status, _notifications, _performance]
"""Channel factories for ``web/app.py``."""

ROUTES: list[Any] = [*bot_status.ROUTES, *notifications.ROUTES, *alerts_api.ROUTES]
"""HTTP route handlers for ``web/app.py``."""
