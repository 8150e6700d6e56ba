"""An in-process :class:`~tickfan.session.Session` and its Granian transport over fake ASGI ``receive``/``send``, for the
socket-path unit tests (``tests/test_session.py``). No server, no sockets: the client's frames go
into a queue, the server's events are recorded, and a send can be held to play a peer that
stopped reading.
"""

from __future__ import annotations

import asyncio
import json
from types import ModuleType
from typing import Any

from tickfan.auth import Verifier, mint
from tickfan.brokers import MemoryBroker
from tickfan.config import Config
from tickfan.hub import Hub
from tickfan.protocol import MessageDecoder
from tickfan.session import Channel, Session
from tickfan.stores import SqliteStore
from tickfan.web.granian_transport import GranianTransport
from tickfan.web.market_data import MarketDataChannel

SECRET = "tickfan-unit-secret-" + "u" * 40


def make_hub(core: ModuleType, **settings: Any) -> Hub:
    config = Config.build({"jwt_secret": SECRET, "feed": "none", **settings}, {})
    return Hub(config, core, Verifier("HS256", SECRET), MemoryBroker(SqliteStore(":memory:")))


def auth_frame(sub: str = "alice") -> str:
    return json.dumps({"type": "auth", "token": mint(SECRET, sub)})


class FakeSocket:
    """One accepted socket: ``push`` client frames, read what the server sent in ``events``."""

    def __init__(self, hub: Hub, channel: Channel | None = None, *, peer: str | None = None) -> None:
        """``peer``: an address whose slot the caller took with ``hub.admit`` (as the web adapter does)."""
        self.hub = hub
        self.channel = channel if channel is not None else MarketDataChannel(hub)
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.events: list[dict[str, Any]] = []
        self.hold = False
        """While true, a send (frame or close) does not complete (a peer that stopped reading)."""
        self.held = 0
        """Sends that were held."""
        self._released = asyncio.Event()
        self.session = Session(hub, self.channel, MessageDecoder(self.channel.messages), peer=peer)
        self.transport = GranianTransport(self.session, self._send)
        self.task = asyncio.create_task(self.transport.run(self._receive))

    async def _receive(self) -> dict[str, Any]:
        return await self.inbox.get()

    async def _send(self, event: dict[str, Any]) -> None:
        if self.hold and event["type"] in ("websocket.send", "websocket.close"):
            self.held += 1
            await self._released.wait()
        self.events.append(event)

    def release(self) -> None:
        """The peer reads again: held sends complete."""
        self.hold = False
        self._released.set()

    def push(self, frame: str | bytes) -> None:
        key = "text" if isinstance(frame, str) else "bytes"
        self.inbox.put_nowait({"type": "websocket.receive", key: frame})

    @property
    def frames(self) -> list[dict[str, Any]]:
        return [json.loads(e["text"]) for e in self.events if e["type"] == "websocket.send"]

    @property
    def close_code(self) -> int | None:
        closes = [e.get("code") for e in self.events if e["type"] == "websocket.close"]
        return closes[0] if closes else None

    async def wait(self, predicate: Any, timeout: float = 5.0) -> None:
        """Poll until ``predicate(self)`` holds (deadline ``timeout``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(self):
            if loop.time() > deadline:
                raise TimeoutError(f"condition not met; events {self.events[-5:]}")
            await asyncio.sleep(0.005)

    async def next_frame(self, timeout: float = 5.0) -> dict[str, Any]:
        seen = len(self.frames)
        await self.wait(lambda s: len(s.frames) > seen, timeout)
        return self.frames[seen]

    async def authed(self, sub: str = "alice") -> FakeSocket:
        self.push(auth_frame(sub))
        frame = await self.next_frame()
        assert frame["type"] == "auth_success", frame
        return self

    async def closed(self, timeout: float = 5.0) -> int | None:
        """Wait for the session to end; return the close code it sent (None: no close frame)."""
        await asyncio.wait_for(self.task, timeout)
        return self.close_code
