"""A per-user channel without sockets: sessions that record their frames, on a memory-broker node."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, TypeVar

from broker_nodes import Node

from tickfan.auth import Principal
from tickfan.brokers import MemoryBroker
from tickfan.stores import SqliteStore

C = TypeVar("C")


class FakeSession:
    """A session's surface for per-user channels: who it is, its state, and every frame it was sent."""

    def __init__(self, conn_id: int, sub: str) -> None:
        self.conn_id = conn_id
        self.principal = Principal(sub, 2**31)
        self.state: dict[str, Any] = {}
        self.frames: list[dict[str, Any]] = []

    def send(self, frame: str) -> bool:
        self.frames.append(json.loads(frame))
        return True


async def started(core: Any, store: SqliteStore, tmp_path: Path, make: Callable[[Any], C], event: type) -> tuple[Node, C]:
    """A started node over the memory broker, its ``event``s delivered to one ``make(broker)`` channel."""
    node = Node(core, MemoryBroker(store), tmp_path)
    channel = make(node.broker)
    node.hub.listen(event, channel.deliver)  # type: ignore[attr-defined]
    await node.__aenter__()
    return node, channel
