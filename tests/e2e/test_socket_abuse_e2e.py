"""Abusive sockets against a real server: each ends with its documented answer while a healthy
client on the same server keeps a contiguous stream."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from tickfan_e2e import Server, expect_close, recv_json, recv_until, run

pytestmark = pytest.mark.e2e

WATCHED = "LTC/USD"


class Watcher:
    """A healthy subscriber of ``WATCHED`` in tick mode, and a publisher ticking it every 20 ms."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.seqs: list[int] = []
        self.published = 0
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.ws: ClientConnection | None = None

    async def __aenter__(self) -> Watcher:
        self.ws = await self.server.authed("healthy-watcher")
        await self.ws.send(json.dumps({"type": "subscribe", "symbols": [WATCHED], "mode": "tick"}))
        await recv_until(self.ws, lambda m: m["type"] == "subscribed")
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._publish())]
        return self

    async def _read(self) -> None:
        assert self.ws is not None
        while True:
            m = await recv_json(self.ws, 30)
            if m["type"] == "market_data" and m["symbol"] == WATCHED:
                self.seqs.append(m["seq"])

    async def _publish(self) -> None:
        while not self._stop.is_set():
            ts = time.time_ns() // 1_000_000
            r = await self.server.apublish([{"symbol": WATCHED, "price": 70.0 + (self.published % 7), "size": 1.0, "ts": ts}])
            assert r.status_code == 202, r.text
            self.published += 1
            await asyncio.sleep(0.02)

    async def finish(self) -> None:
        """Stop publishing; wait until every published tick arrived (or fail)."""
        self._stop.set()
        await self._tasks[1]
        deadline = time.monotonic() + 20
        while len(self.seqs) < self.published:
            assert not self._tasks[0].done(), self._tasks[0]
            assert time.monotonic() < deadline, f"got {len(self.seqs)} of {self.published} ticks"
            await asyncio.sleep(0.02)

    async def __aexit__(self, *_: Any) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.ws is not None:
            await self.ws.close()

    def assert_contiguous(self) -> None:
        assert self.published > 0 and len(self.seqs) == self.published
        assert self.seqs == list(range(self.seqs[0], self.seqs[0] + len(self.seqs)))


async def wait_metric(server: Server, name: str, pred: Callable[[float], bool], timeout: float = 30) -> float:
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(server.metric, name)
        if pred(value):
            return value
        assert time.monotonic() < deadline, f"{name} stayed {value}"
        await asyncio.sleep(0.05)


def test_a_sustained_flooder_is_closed_1008_and_a_healthy_client_is_unaffected(fresh_server: Callable[..., Server]) -> None:
    server = fresh_server("--rate-limit-close-s", "1")

    async def flood(ws: ClientConnection, fatal: asyncio.Event) -> int:
        sent = 0
        try:
            while not fatal.is_set():
                await ws.send('{"type":"ping","ts":%d}' % sent)
                sent += 1
                if sent % 50 == 0:
                    await asyncio.sleep(0)  # let the reader see the server's answers
        except ConnectionClosed:
            pass
        return sent

    async def read(ws: ClientConnection, fatal: asyncio.Event) -> tuple[int | None, list[dict[str, Any]]]:
        seen: list[dict[str, Any]] = []
        try:
            while True:
                m = json.loads(await asyncio.wait_for(ws.recv(), 30))
                seen.append(m)
                if sum(1 for x in seen if x.get("code") == "rate_limited") == 2:
                    fatal.set()  # the second in one flood is the closing one: stop sending
        except ConnectionClosed as exc:
            fatal.set()
            return (exc.rcvd.code if exc.rcvd is not None else None), seen

    async def scenario() -> tuple[int, int | None, list[dict[str, Any]]]:
        async with Watcher(server) as watcher:
            flooder = await server.authed("flooder")
            fatal = asyncio.Event()
            sent, (code, seen) = await asyncio.gather(flood(flooder, fatal), read(flooder, fatal))
            await watcher.finish()
            watcher.assert_contiguous()
            return sent, code, seen

    sent, code, seen = run(scenario(), timeout=90)
    errors = [m for m in seen if m["type"] == "error"]
    assert code == 1008
    assert [e["code"] for e in errors] == ["rate_limited", "rate_limited"]
    assert seen[-1] == errors[-1] and "closed" in str(errors[-1]["error"])
    assert sent > 100 and len([m for m in seen if m["type"] == "pong"]) < sent
    assert server.metric("tickfan_rate_limit_closes_total") == 1
