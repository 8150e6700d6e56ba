"""The asyncio driver's close-code, token and liveness rules, against a scripted in-process
WebSocket server: the real server produces 1009, 1013 or silence only under conditions a test
cannot stage cheaply, so each script plays one server behaviour exactly."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from tickfan.client import AuthError, Client, Disconnected, Gap, Options, ProtocolError, Reconnected, Tick

Script = Callable[[ServerConnection], Awaitable[None]]
FAST = dict(backoff_min_s=0.01, backoff_max_s=0.05)


class Scripted:
    """Serves connection i with scripts[i]; records what every connection received."""

    def __init__(self, *scripts: Script) -> None:
        self.scripts = list(scripts)
        self.received: list[list[dict[str, Any]]] = []

    async def __aenter__(self) -> Scripted:
        self.server = await serve(self._handle, "127.0.0.1", 0)
        self.url = "http://127.0.0.1:%d" % self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, ws: ServerConnection) -> None:
        index = len(self.received)
        self.received.append([])
        ws.log = self.received[index]  # type: ignore[attr-defined]
        script = self.scripts[index] if index < len(self.scripts) else hang
        await script(ws)


async def recv(ws: ServerConnection) -> dict[str, Any]:
    message = json.loads(await ws.recv())
    ws.log.append(message)  # type: ignore[attr-defined]
    return message


async def send(ws: ServerConnection, **message: Any) -> None:
    await ws.send(json.dumps(message))


async def authed(ws: ServerConnection, expires_at: int = 2**40) -> None:
    assert (await recv(ws))["type"] == "auth"
    await send(ws, type="auth_success", user_id="alice", expires_at=expires_at)


async def hang(ws: ServerConnection) -> None:
    await authed(ws)
    await ws.wait_closed()


def tick(seq: int) -> dict[str, Any]:
    return {"type": "market_data", "symbol": "X", "seq": seq, "ts": 1000 + seq, "price": 1.5, "size": 1.0}


async def collect(channel: Any, n: int, timeout: float = 10) -> list[Any]:
    out: list[Any] = []

    async def take() -> None:
        async for event in channel:
            out.append(event)
            if len(out) >= n:
                return

    await asyncio.wait_for(take(), timeout)
    return out


def test_1013_falls_back_to_conflate_then_restores_and_1001_reconnects_at_once() -> None:
    async def first(ws: ServerConnection) -> None:
        await authed(ws)
        await recv(ws)  # subscribe
        await send(ws, type="subscribed", symbols=["X"], mode="tick", epoch="e")
        await send(ws, **tick(1))
        await send(ws, type="error", code="slow_consumer", error="too slow")
        await ws.close(1013)

    async def second(ws: ServerConnection) -> None:
        await authed(ws)
        await recv(ws), await recv(ws)  # backfill_request, subscribe (conflate)
        await send(ws, type="subscribed", symbols=["X"], mode="conflate", interval_ms=1000, epoch="e")
        await send(ws, **tick(5))
        await recv(ws), await recv(ws)  # the restore once the consumer has caught up
        await ws.close(1001)

    async def scenario() -> None:
        async with Scripted(first, second) as server, Client(server.url, token=lambda: "t", options=Options(**FAST)) as c:
            events = await collect(c.market(["X"], mode="tick"), 9)
            kinds = [type(e).__name__ for e in events]
            assert kinds == ["Subscribed", "Tick", "Disconnected", "Reconnected", "Subscribed", "Gap", "Tick",
                             "Disconnected", "Reconnected"]
            assert (events[2].code, events[2].reason) == (1013, "slow_consumer") and events[5] == Gap("X", 2, 4, "overflow")
            assert events[7].code == 1001 and events[7].retry_in_s == 0
            opening, restore = server.received[1][1:3], server.received[1][3:5]
            assert opening == [{"type": "backfill_request", "symbols": ["X"], "since": 1001, "interval": "1s"},
                               {"type": "subscribe", "symbols": ["X"], "mode": "conflate", "interval_ms": 1000}]
            # once the conflate subscribe is acked and the consumer has emptied the queue (since:
            # the last ts seen by then, tick 1's or tick 5's)
            assert restore[0]["type"] == "backfill_request" and restore[0]["since"] in (1001, 1005)
            assert restore[1] == {"type": "subscribe", "symbols": ["X"], "mode": "tick"}

    asyncio.run(scenario())


def test_1009_raises_protocol_error() -> None:
    async def too_big(ws: ServerConnection) -> None:
        await authed(ws)
        await send(ws, type="error", code="message_too_large", error="too large")
        await ws.close(1009)

    async def scenario() -> None:
        async with Scripted(too_big) as server, Client(server.url, token="t", options=Options(**FAST)) as c:
            with pytest.raises(ProtocolError, match="1009"):
                await collect(c.bot_status(), 5)
            assert len(server.received) == 1

    asyncio.run(scenario())


def test_token_expired_reconnects_with_a_new_token_and_a_refusal_is_retried_once() -> None:
    async def expires(ws: ServerConnection) -> None:
        await authed(ws)
        await send(ws, type="error", code="token_expired", error="Token expired")
        await ws.close(1008)

    async def refuses(ws: ServerConnection) -> None:
        await recv(ws)
        await send(ws, type="error", code="auth_required", error="Authentication required")
        await ws.close(1008)

    async def scenario() -> None:
        tokens = iter(f"token-{i}" for i in range(10))
        async with Scripted(expires, refuses, hang) as server, \
                Client(server.url, token=lambda: next(tokens), options=Options(**FAST)) as c:
            channel = c.bot_status()
            events = await collect(channel, 3)
            assert [type(e) for e in events] == [Disconnected, Disconnected, Reconnected]
            assert [e.reason for e in events[:2]] == ["token_expired", "auth_required"]
            assert [e.retry_in_s for e in events[:2]] == [0, 0]  # at once, both times
            assert [conn[0]["token"] for conn in server.received] == ["token-0", "token-1", "token-2"]
            assert channel.auth_successes == 2 and channel.connections == 3

    asyncio.run(scenario())


def test_a_silent_link_is_dropped_and_pings_measure_rtt() -> None:
    async def silent(ws: ServerConnection) -> None:
        await authed(ws)
        await ws.wait_closed()

    async def pongs(ws: ServerConnection) -> None:
        await authed(ws)
        while True:
            message = await recv(ws)
            if message["type"] == "ping":
                await send(ws, type="pong", ts=message["ts"], server_ts=0)

    async def scenario() -> None:
        options = Options(stale_after_s=0.3, ping_interval_s=0.05, **FAST)
        async with Scripted(silent, pongs) as server, Client(server.url, token="t", options=options) as c:
            channel = c.metrics()
            events = await collect(channel, 2)
            assert events[0] == Disconnected(None, "no frame for 0.3 s", events[0].retry_in_s)
            assert isinstance(events[1], Reconnected)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while channel.rtt_ms is None:
                assert loop.time() < deadline
                await asyncio.sleep(0.01)
            assert channel.rtt_ms >= 0

    asyncio.run(scenario())


def test_tokens_never_appear_in_reprs_logs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    secret = "eyJ-very-secret-token"

    async def refuses(ws: ServerConnection) -> None:
        await recv(ws)
        await send(ws, type="error", code="auth_required", error="Authentication required")
        await ws.close(1008)

    async def scenario() -> None:
        async with Scripted(refuses, refuses) as server, Client(server.url, token=lambda: secret, options=Options(**FAST)) as c:
            channel = c.market(["X"])
            with pytest.raises(AuthError) as info:
                await collect(channel, 5)
            assert secret not in f"{c!r} {channel!r} {c.tokens!r} {info.value} {info.value!r}"
            assert [conn[0]["token"] for conn in server.received] == [secret, secret]  # it was sent, twice

    with caplog.at_level(logging.DEBUG):
        asyncio.run(scenario())
    ours = [r for r in caplog.records if not r.name.startswith("websockets.server")]  # the script's own log
    assert any(r.name == "tickfan.client" for r in ours)
    assert not [r for r in ours if secret in r.getMessage()]


def test_ticks_are_never_dropped_by_a_full_queue() -> None:
    async def flood(ws: ServerConnection) -> None:
        await authed(ws)
        await recv(ws)
        await send(ws, type="subscribed", symbols=["X"], mode="tick", epoch="e")
        for seq in range(1, 201):
            await send(ws, **tick(seq))
        await ws.wait_closed()

    async def scenario() -> None:
        async with Scripted(flood) as server, Client(server.url, token="t") as c:
            channel = c.market(["X"], mode="tick", queue_size=8)
            channel.start()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while channel._queue.qsize() < 8:  # the reader fills the queue, then waits
                assert loop.time() < deadline
                await asyncio.sleep(0.01)
            assert channel._queue.qsize() == 8
            events = await collect(channel, 201)
            assert [e.seq for e in events if isinstance(e, Tick)] == list(range(1, 201))

    asyncio.run(scenario())


def test_close_ends_an_iteration_in_another_task() -> None:
    async def scenario() -> None:
        async with Scripted(hang) as server, Client(server.url, token="t") as c:
            channel = c.bot_status()
            seen: list[Any] = []

            async def consume() -> None:
                async for event in channel:
                    seen.append(event)

            consumer = asyncio.get_running_loop().create_task(consume())
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while channel.auth_successes == 0:
                assert loop.time() < deadline
                await asyncio.sleep(0.01)
            await channel.close()
            await asyncio.wait_for(consumer, 5)  # ends, instead of waiting forever
            assert seen == []

    asyncio.run(scenario())


def test_a_1013_without_slow_consumer_only_backs_off() -> None:
    async def busy(ws: ServerConnection) -> None:
        await ws.close(1013, "too many unauthenticated connections from your address")

    async def subscribes(ws: ServerConnection) -> None:
        await authed(ws)
        await recv(ws)
        await send(ws, type="subscribed", symbols=["X"], mode="tick", epoch="e")
        await ws.wait_closed()

    async def scenario() -> None:
        async with Scripted(busy, subscribes) as server, Client(server.url, token="t", options=Options(**FAST)) as c:
            channel = c.market(["X"], mode="tick")
            events = await collect(channel, 2)
            assert [type(e) for e in events] == [Disconnected, Reconnected] and events[0].code == 1013
            await collect(channel, 1)  # the ack
            assert not channel.state.degraded
            assert server.received[1][1] == {"type": "subscribe", "symbols": ["X"], "mode": "tick"}

    asyncio.run(scenario())
