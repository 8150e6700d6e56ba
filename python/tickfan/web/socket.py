"""The WebSocket adapter: a raw ASGI route per :class:`~tickfan.session.Channel`.

The route is a Litestar ``asgi`` handler, so Litestar adds nothing between the socket and the
session: frames go out through the server's own ASGI ``send`` callable. The adapter only checks
the ``Origin`` allow-list, accepts, and hands the socket to a :class:`~tickfan.session.Session`.
"""

from __future__ import annotations

from typing import Any

from litestar.handlers import ASGIRouteHandler

from tickfan.hub import Hub
from tickfan.protocol import MessageDecoder
from tickfan.session import Channel, Session

__all__ = ["channel_route"]


def _origin(scope: dict[str, Any]) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"origin":
            return value.decode("latin-1")
    return None


def channel_route(hub: Hub, channel: Channel) -> ASGIRouteHandler:
    """A Litestar route handler serving ``channel`` at ``channel.path``."""
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
        await send({"type": "websocket.accept"})
        session = Session(hub, channel, decoder, send)
        await session.run(receive)

    return ASGIRouteHandler(path=channel.path, name=f"ws-{channel.name}")(serve_socket)
