"""The WebSocket adapter: a raw ASGI route per :class:`~tickfan.session.Channel`.

The route is a Litestar ``asgi`` handler, and :class:`RawSocketApp` (the ASGI callable Granian
serves) puts the server's own ``send``/``receive`` into a WebSocket scope before Litestar sees
it, so the session writes every frame through the server's callable. (Litestar wraps ``send``
in its exception middleware before any handler gets it: a coroutine call per frame, 7-9% of the
server's samples in a py-spy profile of the S2 load scenario.) Without the wrapper (an app
built by ``create_app`` and served directly) the handler's ``send`` is used. The adapter only
checks the ``Origin`` allow-list and the per-address limit on unauthenticated sockets
(over it: accept, then close 1013), accepts, and hands the socket to a
:class:`~tickfan.web.granian_transport.GranianTransport` carrying a :class:`~tickfan.session.Session`.

:class:`RawSocketApp` also serves a WebSocket whose path is exactly a channel's path itself,
without Litestar's routing (12% of the server's CPU per connection in the S3 connect storm):
the same endpoint Litestar would call, and the same close (4500, "Internal Server Error") as
Litestar's exception middleware if it raises. Every other scope goes through Litestar.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from litestar.handlers import ASGIRouteHandler

from tickfan.hub import Hub
from tickfan.protocol import PEER_LIMIT_REASON, CloseCode, MessageDecoder
from tickfan.session import Channel, Session
from tickfan.web.granian_transport import GranianTransport

__all__ = ["channel_endpoint", "channel_route", "RawSocketApp", "RAW_SEND", "RAW_RECEIVE"]

_log = logging.getLogger("tickfan.socket")

Endpoint = Callable[[Any, Any, Any], Awaitable[None]]

RAW_SEND = "tickfan.raw_send"
RAW_RECEIVE = "tickfan.raw_receive"


class RawSocketApp:
    """The ASGI app Granian serves: ``app`` (Litestar), with the server's own ``send`` and
    ``receive`` stashed in every WebSocket scope, and a WebSocket on a channel's exact path
    served by that channel's endpoint directly (``sockets``: path -> endpoint; by default
    ``app.state.sockets``). Lifespan and HTTP pass through untouched."""

    __slots__ = ("app", "state", "sockets")

    def __init__(self, app: Any, sockets: Mapping[str, Endpoint] | None = None) -> None:
        self.app = app
        self.state = app.state
        self.sockets: dict[str, Endpoint] = dict(sockets if sockets is not None else app.state.get("sockets", {}))

    def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket":
            endpoint = self.sockets.get(scope["path"])
            if endpoint is not None:
                return _serve_direct(endpoint, scope, receive, send)
            scope[RAW_SEND] = send
            scope[RAW_RECEIVE] = receive
        return self.app(scope, receive, send)


async def _serve_direct(endpoint: Endpoint, scope: Any, receive: Any, send: Any) -> None:
    try:
        await endpoint(scope, receive, send)
    except Exception:  # noqa: BLE001 - as Litestar's exception middleware answers a WebSocket
        _log.exception("WebSocket endpoint %s failed", scope.get("path"))
        await send({"type": "websocket.close", "code": 4500, "reason": "Internal Server Error"})


def _peer(scope: dict[str, Any]) -> str:
    """The remote address (the proxy's, behind a reverse proxy); "" when the server gives none."""
    client = scope.get("client")
    return str(client[0]) if client else ""


def _origin(scope: dict[str, Any]) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"origin":
            return value.decode("latin-1")
    return None


def channel_endpoint(hub: Hub, channel: Channel) -> Endpoint:
    """The raw ASGI endpoint serving ``channel`` (Litestar's route, or :class:`RawSocketApp`)."""
    decoder = MessageDecoder(channel.messages)
    allowed = frozenset(hub.config.allowed_origins)

    async def serve_socket(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            body = b'{"error":"this is a WebSocket endpoint; connect with a WebSocket client"}'
            await send({"type": "http.response.start", "status": 426,
                        "headers": [(b"content-type", b"application/json"), (b"upgrade", b"websocket")]})
            await send({"type": "http.response.body", "body": body})
            return
        event = await receive()
        if event["type"] != "websocket.connect":
            return
        # Browsers always send Origin; other clients usually do not and are not limited by it.
        origin = _origin(scope)
        if allowed and origin is not None and origin not in allowed:
            await send({"type": "websocket.close", "code": 1008})
            return
        if not hub.ready:
            await send({"type": "websocket.close", "code": 1001})
            return
        peer = _peer(scope)
        if not hub.admit(peer):
            # Accepted then closed, not refused before the upgrade: a browser's script sees the
            # close code and reason, never an HTTP status.
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": CloseCode.TRY_AGAIN_LATER, "reason": PEER_LIMIT_REASON})
            return
        try:
            await send({"type": "websocket.accept"})
        except BaseException:
            hub.release(peer)
            raise
        transport = GranianTransport(Session(hub, channel, decoder, peer=peer), scope.get(RAW_SEND, send))
        await transport.run(scope.get(RAW_RECEIVE, receive))

    return serve_socket


def channel_route(hub: Hub, channel: Channel, endpoint: Endpoint | None = None) -> ASGIRouteHandler:
    """A Litestar route handler serving ``channel`` at ``channel.path``."""
    endpoint = endpoint if endpoint is not None else channel_endpoint(hub, channel)
    return ASGIRouteHandler(path=channel.path, name=f"ws-{channel.name}")(endpoint)
