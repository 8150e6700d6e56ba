"""The Litestar app factory and its lifespan (hub, feed, graceful 1001 on shutdown).

``create_app(config)`` builds everything for one worker process; Granian calls
``create_app_from_env`` (a factory) in each worker, which rebuilds the config from the
``TICKFAN_*`` variables the parent exported.

Adding a WebSocket channel is one line in :data:`CHANNELS` (a factory ``hub -> Channel``);
adding HTTP routes is one line in :data:`ROUTE_MODULES`' list (handlers exported as ``ROUTES``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.exceptions import HTTPException

from tickfan import core as core_select
from tickfan.auth import verifier_from_config
from tickfan.config import Config
from tickfan.feeds.sim import SimFeed
from tickfan.hub import Hub
from tickfan.session import Channel
from tickfan.web import api, services
from tickfan.web.market_data import MarketDataChannel
from tickfan.web.socket import channel_route

__all__ = ["create_app", "create_app_from_env", "CHANNELS"]

_log = logging.getLogger("tickfan.app")

CHANNELS: list[Callable[[Hub], Channel]] = [
    MarketDataChannel,
    *services.CHANNELS,  # bot-status, notifications, performance-metrics
]
"""One entry per ``/ws/*`` endpoint."""

ROUTES: list[Any] = [*api.ROUTES, *services.ROUTES]
"""HTTP route handlers."""


def create_app(config: Config, *, channels: Sequence[Callable[[Hub], Channel]] | None = None) -> Litestar:
    core_module = core_select.select(config.core)
    hub = Hub(config, core_module, verifier_from_config(config))
    feed = SimFeed(hub, hub.universe, speed=config.sim_speed, seed=config.sim_seed) if config.feed == "sim" else None

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await hub.start()
        if feed is not None:
            feed.start()
        _log.info("tickfan worker ready: core=%s feed=%s epoch=%s", hub.core_name, config.feed, hub.epoch)
        try:
            yield
        finally:
            if feed is not None:
                await feed.stop()
            await hub.stop()

    built = [factory(hub) for factory in (channels if channels is not None else CHANNELS)]
    app = Litestar(
        route_handlers=[*(channel_route(hub, channel) for channel in built), *ROUTES],
        lifespan=[services.lifespan, lifespan],  # store up before the hub, down after it
        exception_handlers={HTTPException: api.error_response, Exception: api.error_response},
        openapi_config=None,
        logging_config=None,
    )
    app.state.hub = hub
    app.state.config = config
    app.state.channels = {channel.name: channel for channel in built}
    return app


def create_app_from_env() -> Litestar:
    """Granian's factory target in each worker process."""
    config = Config.from_env()
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return create_app(config)
