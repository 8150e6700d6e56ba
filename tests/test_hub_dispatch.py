"""``Hub.dispatch`` (both cores): who wakes the writers of the connections whose queue went
non-empty, with and without a transport that wakes its own (``Hub.wake_through``, the fast
lane's ``FastLane.wake_ready``, whose Rust half is tested in ``rust/python/src/lane.rs``)."""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING

from tickfan.auth import Verifier
from tickfan.brokers import MemoryBroker
from tickfan.config import Config
from tickfan.hub import Hub
from tickfan.protocol import CloseCode, ErrorCode
from tickfan.stores import SqliteStore

if TYPE_CHECKING:
    from tickfan._core import Core


def make_hub(impl: ModuleType, **settings: object) -> Hub:
    config = Config.build({"feed": "none", **settings}, env={})
    return Hub(config, impl, Verifier("HS256", "k" * 32), MemoryBroker(SqliteStore(":memory:")))


class Peer:
    """A registered connection that records what the hub asks of it."""

    channel_name = "market_data"

    def __init__(self, hub: Hub) -> None:
        self.woken = 0
        self.failed: list[ErrorCode] = []
        self.conn_id = hub.register(self)

    @property
    def closing(self) -> bool:
        return bool(self.failed)

    def wake(self, ingest_t: float | None = None) -> None:
        self.woken += 1

    def fail(self, code: ErrorCode, message: str | None = None) -> None:
        self.failed.append(code)

    def close(self, code: CloseCode = CloseCode.NORMAL) -> None:
        pass

    def check_stall(self, now: float, timeout: float) -> bool:
        return False


class Lane:
    """Wakes the connections it serves itself, as ``FastLane.wake_ready`` does."""

    def __init__(self, serves: set[int]) -> None:
        self.serves = serves
        self.woken: list[int] = []

    def wake_ready(self, core: Core) -> Sequence[int]:
        ready = core.take_ready()
        self.woken += [i for i in ready if i in self.serves]
        return [i for i in ready if i not in self.serves]


def test_dispatch_wakes_every_ready_connection_once(impl: ModuleType) -> None:
    hub = make_hub(impl)
    a, b, idle = Peer(hub), Peer(hub), Peer(hub)
    hub.push(a.conn_id, "x")
    hub.push(b.conn_id, "y")
    hub.dispatch()
    hub.dispatch()
    assert (a.woken, b.woken, idle.woken) == (1, 1, 0)


def test_a_transport_that_wakes_its_own_gets_them_and_the_hub_wakes_the_rest(impl: ModuleType) -> None:
    hub = make_hub(impl, max_queue_frames=1, slow_consumer_grace_ms=0)
    on_lane, on_granian = Peer(hub), Peer(hub)
    lane = Lane({on_lane.conn_id})
    hub.wake_through(lane.wake_ready)
    hub.push(on_lane.conn_id, "x")
    hub.push(on_granian.conn_id, "y")
    hub.dispatch()
    assert lane.woken == [on_lane.conn_id]
    assert (on_lane.woken, on_granian.woken) == (0, 1)
    # Overflow is still the hub's, whoever wakes: a lane connection over its limit is failed.
    hub.push(on_lane.conn_id, "z")
    hub.dispatch()
    assert on_lane.failed == [ErrorCode.SLOW_CONSUMER]
    assert on_granian.failed == []
