"""RawSocketApp: a WebSocket on a channel's exact path goes to its endpoint without Litestar's
routing; everything else goes to the app, WebSockets with the server's own send/receive."""

from __future__ import annotations

import asyncio
from typing import Any

from tickfan.web.socket import RAW_RECEIVE, RAW_SEND, RawSocketApp


class _State(dict):  # type: ignore[type-arg]
    pass


class _App:
    def __init__(self) -> None:
        self.state = _State()
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls.append(scope)


async def _receive() -> dict[str, Any]:
    return {"type": "websocket.connect"}


def _run(app: RawSocketApp, scope: dict[str, Any]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(event: dict[str, Any]) -> None:
        sent.append(event)

    asyncio.run(app(scope, _receive, send))
    return sent


def test_channel_path_is_served_directly() -> None:
    served: list[str] = []

    async def endpoint(scope: Any, receive: Any, send: Any) -> None:
        served.append(scope["path"])
        await send({"type": "websocket.accept"})

    inner = _App()
    inner.state["sockets"] = {"/ws/x": endpoint}
    app = RawSocketApp(inner)
    assert _run(app, {"type": "websocket", "path": "/ws/x"}) == [{"type": "websocket.accept"}]
    assert served == ["/ws/x"] and inner.calls == []


def test_other_paths_and_http_go_through_the_app() -> None:
    inner = _App()
    app = RawSocketApp(inner, {"/ws/x": lambda *a: None})  # type: ignore[arg-type,return-value]
    _run(app, {"type": "websocket", "path": "/ws/x/"})
    _run(app, {"type": "http", "path": "/ws/x"})
    ws, http = inner.calls
    assert ws["path"] == "/ws/x/" and RAW_SEND in ws and RAW_RECEIVE in ws
    assert http["type"] == "http" and RAW_SEND not in http


def test_a_failing_endpoint_closes_like_litestar() -> None:
    async def endpoint(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    inner = _App()
    app = RawSocketApp(inner, {"/ws/x": endpoint})
    assert _run(app, {"type": "websocket", "path": "/ws/x"}) == [
        {"type": "websocket.close", "code": 4500, "reason": "Internal Server Error"}
    ]
