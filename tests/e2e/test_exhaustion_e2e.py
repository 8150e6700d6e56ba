"""Resource exhaustion against a real server, both cores, 127.0.0.1 only, bounded in count and time.

- 2,000 sockets that never authenticate: all closed by the auth timeout (``auth_required``,
  1008), and the server's memory returns to where it was.
- A subscribe/unsubscribe flood: refused beyond the rate limit, a watcher misses nothing.
- 1,000 notification POSTs in flight when the server is killed with SIGKILL: after a restart,
  every acknowledged notification is there exactly once.

(A client that never reads is covered by the slow-consumer tests of the socket suites.)
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import psutil
import pytest
from websockets.exceptions import ConnectionClosed

from tickfan_e2e import Server, Watcher, barrier, bearer, expect_close, free_port, next_ts, run, users

pytestmark = pytest.mark.e2e

AUTH_TIMEOUT_MS = 1500


def tree_rss(server: Server) -> int:
    """Resident memory of the server: its process and every worker process under it."""
    assert server.proc is not None
    root = psutil.Process(server.proc.pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])


def connections(server: Server) -> float:
    return server.metric('tickfan_connections{channel="market_data"}')


async def _silent_sockets(server: Server, n: int, concurrency: int = 200) -> list[tuple[int | None, list[dict[str, Any]]]]:
    """Open ``n`` sockets that never send anything; return how each one ended."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> tuple[int | None, list[dict[str, Any]]]:
        async with gate:
            sock = await server.connect()
        async with sock:
            return await expect_close(sock, timeout=AUTH_TIMEOUT_MS / 1000 + 30)

    return await asyncio.gather(*(one() for _ in range(n)))


def test_2000_silent_sockets_are_closed_by_the_auth_timeout_and_memory_returns(fresh_server: Callable[..., Server]) -> None:
    server = fresh_server("--auth-timeout-ms", str(AUTH_TIMEOUT_MS), *UNAUTH_LIMIT_FLAGS)
    traffic = LightTraffic(server)
    # Warm up the code paths once, then take the baseline.
    assert {code for code, _ in run(_silent_sockets(server, 200))} == {1008}
    poll_until(lambda: connections(server) == 0, "the warm-up sockets were not all closed")
    traffic.run_for(2.0)
    baseline = tree_rss(server)

    ended = run(_silent_sockets(server, 2000), timeout=120)
    assert len(ended) == 2000
    assert all(code == 1008 and [m["code"] for m in seen] == ["auth_required"] for code, seen in ended), {
        (code, json.dumps(seen)) for code, seen in ended if code != 1008
    }
    poll_until(lambda: connections(server) == 0, "the server still counts open sockets")
    # Freed memory goes back to the OS lazily: Granian's allocator (jemalloc) purges pages
    # unused for its decay time (10 s) when it next runs, so a trickle of traffic goes on.
    after = poll_until(lambda: traffic.step() <= baseline * 1.10, "RSS did not come back within 10 %", timeout=60, value=lambda: tree_rss(server))
    assert after <= baseline * 1.10


class LightTraffic:
    """Per step one tick published and one socket that authenticates and leaves, as a server in
    service always has some traffic."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.headers = bearer("svc", publish=True)

    def step(self) -> int:
        tick = [{"symbol": "BTC/USD", "price": 43000.0, "size": 1.0, "ts": next_ts()}]
        assert httpx.post(self.server.http + "/api/ticks", json=tick, headers=self.headers, timeout=10).status_code == 202

        async def visit() -> None:
            async with await self.server.authed(users("visitor")[0]) as sock:
                await barrier(sock)

        run(visit(), timeout=30)
        return tree_rss(self.server)

    def run_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.step()
            time.sleep(0.05)


def poll_until(ok: Callable[[], bool], message: str, *, timeout: float = 15.0, value: Callable[[], Any] | None = None) -> Any:
    """Poll ``ok`` until it holds (or fail with ``message`` after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            raise AssertionError(message + (f" (last value {value()})" if value else ""))
        time.sleep(0.1)
    return value() if value else True


UNAUTH_LIMIT_FLAGS = ("--max-unauthenticated-per-peer", "4096")  # above the 2,000 held at once


# --- subscribe/unsubscribe flood ----------------------------------------------------------------

def test_subscribe_unsubscribe_flood_is_rate_limited_and_others_are_unaffected(fresh_server: Callable[..., Server]) -> None:
    server = fresh_server()  # default limits: 20 messages/s, burst 40
    sent = 1000

    async def flood() -> tuple[list[dict[str, Any]], float, int | None]:
        sock = await server.authed(users("flooder")[0])
        start = time.monotonic()
        for i in range(sent):
            kind = "subscribe" if i % 2 == 0 else "unsubscribe"
            await sock.send(json.dumps({"type": kind, "symbols": ["BTC/USD", "ETH/USD", "SOL/USD"], "mode": "tick"}))
        await asyncio.sleep(1.2)  # a quiet second ends the flood; the bucket has tokens again
        try:
            replies = await barrier(sock, timeout=20)
            close = None
        except ConnectionClosed as exc:
            replies, close = [], exc.rcvd.code if exc.rcvd else None
        elapsed = time.monotonic() - start  # every refused or accepted message was read by now
        await sock.close()
        return replies, elapsed, close

    async def scenario() -> tuple[list[dict[str, Any]], float, int | None]:
        async with Watcher(server) as watcher:
            result = await flood()
            await watcher.finish()
        watcher.assert_contiguous()  # the other client missed nothing
        return result

    replies, elapsed, close = run(scenario(), timeout=90)
    assert close is None, f"the flooder was closed ({close}) within one burst of sending"
    acks = [m for m in replies if m["type"] in ("subscribed", "unsubscribed")]
    errors = [m["code"] for m in replies if m["type"] == "error"]
    assert errors == ["rate_limited"]  # once for the flood, not once per dropped message
    # A token bucket of 40 refilled at 20/s admits at most 40 + 20 * t messages in t seconds;
    # the auth message took one of the 40.
    assert 39 <= len(acks) <= 39 + 20 * elapsed < sent


# --- SIGKILL with notification POSTs in flight --------------------------------------------------


async def _post_raw(port: int, request: bytes, connected: asyncio.Event, go: asyncio.Event, gate: asyncio.Semaphore) -> tuple[int, Any] | None:
    """One HTTP/1.1 request on its own connection, written when ``go`` is set: (status, JSON
    body), or None when the connection broke before a whole answer arrived."""
    async with gate:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    connected.set()
    try:
        await go.wait()
        writer.write(request)
        await writer.drain()
        raw = await reader.read()  # Connection: close, so the answer ends at EOF
    except OSError:
        return None
    finally:
        writer.close()
    head, sep, body = raw.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), None)
    if not sep or length is None or len(body) != length:
        return None  # cut mid-answer: not an acknowledgement
    return int(head.split()[1]), json.loads(body)


def test_sigkill_with_1000_notification_posts_in_flight_loses_and_duplicates_nothing(fresh_server: Callable[..., Server]) -> None:
    server = fresh_server()
    (user,) = users("victim")
    total, kill_at = 1000, 100
    auth = bearer("svc", publish=True)["Authorization"]

    def request(i: int) -> bytes:
        body = json.dumps({"user_id": user, "kind": "info", "title": f"n-{i:04d}"}).encode()
        head = (f"POST /api/notifications HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n")  # fmt: skip
        return head.encode() + body

    async def post_all() -> dict[str, int]:
        # 1,000 connections opened first, then every request written at once (far faster than
        # the server stores them), so the kill, right after the 100th acknowledgement is read,
        # lands with hundreds of requests on the wire or being handled.
        acked: dict[str, int] = {}  # title -> id, for every 201
        go = asyncio.Event()
        gate = asyncio.Semaphore(200)
        events = [asyncio.Event() for _ in range(total)]

        async def one(i: int) -> None:
            answer = await _post_raw(server.port, request(i), events[i], go, gate)
            if answer is not None and answer[0] == 201:
                acked[f"n-{i:04d}"] = answer[1]["id"]
                if len(acked) == kill_at:
                    server.kill()

        tasks = [asyncio.create_task(one(i)) for i in range(total)]
        for event in events:
            await event.wait()
        go.set()
        await asyncio.gather(*tasks)
        return acked

    acked = run(post_all(), timeout=240)
    assert kill_at <= len(acked) < total, f"{len(acked)} of {total} acknowledged: the kill did not land mid-flight"
    server.port = free_port()  # the same data dir, a fresh process
    server.start()
    stored: list[dict[str, Any]] = []
    after = 0
    while True:
        page = httpx.get(server.http + "/api/notifications", params={"after": after, "limit": 1000}, headers=bearer(user), timeout=30).json()["notifications"]
        if not page:
            break
        stored += page
        after = page[-1]["id"]
    titles = [n["title"] for n in stored]
    assert len(titles) == len(set(titles)), "a notification was stored twice"
    by_title = {n["title"]: n["id"] for n in stored}
    lost = {t: i for t, i in acked.items() if by_title.get(t) != i}
    assert not lost, f"{len(lost)} acknowledged notifications missing or changed after the restart"
