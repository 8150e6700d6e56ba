"""The Litestar app factory and its lifespan (hub, feed, graceful 1001 on shutdown).

``create_app(config)`` builds everything for one worker process; Granian calls
``create_app_from_env`` (a factory) in each worker, which rebuilds the config from the
``TICKFAN_*`` variables the parent exported.

Adding a WebSocket channel is one line in :data:`CHANNELS` (a factory ``hub -> Channel``);
adding HTTP routes is one line in :data:`ROUTE_MODULES`' list (handlers exported as ``ROUTES``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.exceptions import HTTPException

from tickfan import core as core_select
from tickfan.auth import verifier_from_config
from tickfan.brokers import broker_from_config
from tickfan.brokers.redis import LEASE_MS, RedisBroker
from tickfan.config import Config
from tickfan.feeds.sim import SimFeed
from tickfan.hub import Hub
from tickfan.session import Channel
from tickfan.web import api, dashboard, services
from tickfan.web.fast_lane import FastLaneServer
from tickfan.web.market_data import MarketDataChannel
from tickfan.web.socket import RawSocketApp, channel_endpoint, channel_route

__all__ = ["create_app", "create_app_from_env", "CHANNELS"]

_log = logging.getLogger("tickfan.app")

CHANNELS: list[Callable[[Hub], Channel]] = [
    MarketDataChannel,
    *services.CHANNELS,  # bot-status, notifications, performance-metrics
]
"""One entry per ``/ws/*`` endpoint."""

ROUTES: list[Any] = [*api.ROUTES, *services.ROUTES, *dashboard.ROUTES]
"""HTTP route handlers (the dashboard's ``/`` and ``/static/*`` included)."""


def create_app(config: Config, *, channels: Sequence[Callable[[Hub], Channel]] | None = None) -> Litestar:
    core_module = core_select.select(config.core)
    hub = Hub(config, core_module, verifier_from_config(config), broker_from_config(config))
    feed = SimFeed(hub, hub.universe, speed=config.sim_speed, seed=config.sim_seed) if config.feed == "sim" else None

    built = [factory(hub) for factory in (channels if channels is not None else CHANNELS)]
    market_data = next((c for c in built if isinstance(c, MarketDataChannel)), None)
    lane = FastLaneServer(hub, market_data) if config.fast_port is not None and market_data is not None else None

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await hub.start()  # the broker first: store open, alerts armed
        if lane is not None and config.fast_port is not None:
            lane.start(config.fast_port)
        lease: asyncio.Task[None] | None = None
        if feed is not None:
            if isinstance(hub.broker, RedisBroker):  # one feed per cluster: the lease holder's
                lease = asyncio.create_task(_feed_under_lease(hub.broker, feed), name="tickfan-feed-lease")
            else:
                feed.start()
        _log.info("tickfan worker ready: core=%s feed=%s loop=%s epoch=%s", hub.core_name, config.feed,
                  type(asyncio.get_running_loop()).__module__, hub.epoch)
        try:
            yield
        finally:
            if lease is not None:
                lease.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await lease
            if feed is not None:
                await feed.stop()
            await hub.stop()  # sockets (1001) of both transports, timer
            if lane is not None:
                await lane.stop()  # the lane's writers finish their closes, its thread ends
            await hub.close()  # then the broker (pending commits, store)
    endpoints = {channel.path: channel_endpoint(hub, channel) for channel in built}
    app = Litestar(
        route_handlers=[*(channel_route(hub, channel, endpoints[channel.path]) for channel in built), *ROUTES],
        lifespan=[services.lifespan, lifespan],
        exception_handlers={HTTPException: api.error_response, Exception: api.error_response},
        openapi_config=None,
        logging_config=None,
    )
    app.state.hub = hub
    app.state.config = config
    app.state.channels = {channel.name: channel for channel in built}
    app.state.sockets = endpoints  # served by RawSocketApp without Litestar's routing
    return app


async def _feed_under_lease(broker: RedisBroker, feed: SimFeed) -> None:
    """Run the simulated feed while this node holds the cluster's feed lease (renewed at a
    third of its life; a holder that dies or loses Redis is replaced within the lease)."""
    while True:
        try:
            held = await broker.hold_lease()
        except Exception:  # noqa: BLE001 - keep trying; the feed stops meanwhile
            _log.exception("feed lease")
            held = False
        if held and not feed.running:
            feed.start()
        elif not held and feed.running:
            await feed.stop()
        await asyncio.sleep(LEASE_MS / 3000)


def create_app_from_env() -> RawSocketApp:
    """Granian's factory target in each worker process: the app, WebSockets given the server's
    own ``send`` (see ``tickfan.web.socket.RawSocketApp``)."""
    config = Config.from_env()
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(config)
    _install_graceful_shutdown(app.state.hub.stop)
    return RawSocketApp(app)


def _install_graceful_shutdown(before_stop: Callable[[], Awaitable[None]]) -> None:
    """Close our sockets with 1001 *before* Granian's worker stops.

    On SIGTERM/SIGINT a Granian worker stops its Rust server at once, which drops every open
    WebSocket without a close frame (clients see 1006), and only then runs the ASGI lifespan
    shutdown. So we replace the worker's signal hook (``granian._signals.set_loop_signals``,
    looked up by the worker after this factory runs; Granian 2.8.7, pinned): the signal first
    runs ``before_stop`` (``Hub.stop``: close 1001, wait at most ``shutdown_timeout_s``), then
    sets Granian's own stop event.
    """
    import granian._signals as granian_signals

    original = granian_signals.set_loop_signals

    def set_loop_signals(loop: asyncio.AbstractEventLoop) -> Any:
        event = granian_signals.WorkerSignal()
        state = {"stopping": False}

        async def graceful() -> None:
            try:
                await before_stop()
            except Exception:  # noqa: BLE001 - stopping must go on
                _log.exception("graceful close failed")
            finally:
                event.set()

        def handler(*_: Any) -> None:
            if not state["stopping"]:
                state["stopping"] = True
                loop.create_task(graceful())

        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, handler)
        except NotImplementedError:  # pragma: no cover - not on Linux
            return original(loop)
        return event

    granian_signals.set_loop_signals = set_loop_signals
