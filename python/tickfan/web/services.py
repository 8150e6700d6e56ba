"""The state behind bot status, notifications, alerts and performance metrics, one per hub.

:class:`Services` builds and wires them (store -> notifications channel <- alert book; the
performance monitor over the hub's metrics) and :func:`lifespan` runs them: it opens the store
and re-arms stored alerts *before* the hub and feed start, and closes the store *after* the
hub has closed every socket (it is listed before the hub's lifespan in ``web/app.py``).

The channel factories in ``web/app.py`` take only the hub, so the per-hub instance is found
with :func:`services_of` (created on first use, one per hub).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar

from tickfan.alerts import AlertBook
from tickfan.hub import Hub
from tickfan.perf import LatencyHistogram, PerfMonitor
from tickfan.session import Channel, now_ms
from tickfan.stores import SqliteStore, Store
from tickfan.web import alerts_api, bot_status, notifications
from tickfan.web.bot_status import BotStatusChannel
from tickfan.web.notifications import NotificationsChannel
from tickfan.web.performance import PerformanceChannel

__all__ = ["Services", "services_of", "lifespan", "CHANNELS", "ROUTES", "STORE_FILE"]

STORE_FILE = "tickfan.db"
"""The SQLite file in the data dir: notifications and alerts."""

_log = logging.getLogger("tickfan.services")


class Services:
    """Store, bot registry, notifications, alert book and performance monitor of one hub."""

    def __init__(self, hub: Hub, store: Store | None = None) -> None:
        self.hub = hub
        self.store = store if store is not None else SqliteStore(hub.config.data_dir / STORE_FILE)
        self.bot_status = BotStatusChannel()
        self.notifications = NotificationsChannel(
            self.store, notifications.initial_budget(hub.config.max_queue_bytes)
        )
        self.alerts = AlertBook(self.store, hub.core, self.notifications.deliver, now_ms)
        latency = getattr(hub.metrics, "fanout_ms", None)
        self.perf = PerfMonitor(
            hub.metrics,
            core_name=hub.core_name,
            latency=latency if isinstance(latency, LatencyHistogram) else None,
        )
        self.performance = PerformanceChannel(self.perf)
        self._sampler: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.store.open()
        armed = await self.alerts.start()
        self.hub.after_ingest.append(self.alerts.after_ingest)
        self._sampler = asyncio.create_task(self.perf.run(), name="tickfan-perf")
        _log.info("store %s open; %d alerts armed", getattr(self.store, "path", "?"), armed)

    async def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
        with contextlib.suppress(ValueError):
            self.hub.after_ingest.remove(self.alerts.after_ingest)
        await self.alerts.stop()
        await self.store.close()


_by_hub: weakref.WeakKeyDictionary[Hub, Services] = weakref.WeakKeyDictionary()


def services_of(hub: Hub) -> Services:
    services = _by_hub.get(hub)
    if services is None:
        services = _by_hub[hub] = Services(hub)
    return services


@contextlib.asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    services = services_of(app.state.hub)
    app.state.bot_status = services.bot_status
    app.state.notifications = services.notifications
    app.state.alerts = services.alerts
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
