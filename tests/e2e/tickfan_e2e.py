"""End-to-end helpers: a real ``tickfan serve`` subprocess per core, talked to over 127.0.0.1.

The fixtures live in conftest.py (``server``, ``sim_server``, ``plain_server``, ``fresh_server``);
this module holds the harness they and the tests share. A ``Server`` is started by
``python -m tickfan serve`` and stopped by PID (SIGTERM, then SIGKILL after 15 s); it can be stopped
and started again on the same data dir (``restart``), for the restart-durability tests.
Tokens are minted in-process with the server's secret (``TICKFAN_JWT_SECRET``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
from websockets.asyncio.client import ClientConnection, connect

from tickfan.auth import mint

SECRET = "tickfan-e2e-secret-" + "s" * 50
CORES = ["python", "rust"]
PUBLISHER = "service-backend"
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def now_ms() -> int:
    return time.time_ns() // 1_000_000


_tick_ts = itertools.count(now_ms())


def next_ts() -> int:
    """Strictly increasing tick timestamps (from this process's start), for tests that publish many."""
    return next(_tick_ts)


def token(sub: str = "alice", *, ttl_s: int = 3600, scopes: tuple[str, ...] = (), publish: bool = False) -> str:
    return mint(SECRET, sub, ttl_s=ttl_s, scopes=(*scopes, "publish") if publish else scopes)


def bearer(sub: str = "alice", *, publish: bool = False) -> dict[str, str]:
    return {"Authorization": "Bearer " + token(sub, publish=publish)}


def users(*names: str) -> list[str]:
    """User ids unique to one test (``alice-1a2b3c4d``, ...), so tests can share a server."""
    tag = uuid.uuid4().hex[:8]
    return [f"{n}-{tag}" for n in names]


class Server:
    """A ``tickfan serve`` process on 127.0.0.1 with a fixed data dir; ``extra`` are more CLI flags."""

    def __init__(
        self, core: str, data_dir: Path, *extra: str, env: dict[str, str] | None = None, transport: str = "granian"
    ) -> None:
        """``transport="fast"``: also serve the fast lane (``--fast-port``), and point
        :meth:`ws` for ``/ws/market-data`` at it (every other path stays on ``--port``)."""
        self.core = core
        self.transport = transport
        self.broker = "memory"
        """The broker the fixture gave it (``memory`` or ``redis``), for tests that differ."""
        self.port = free_port()
        self.fast_port = free_port() if transport == "fast" else None
        self.data_dir = data_dir
        self.log_path = data_dir / "server.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        self.extra = extra
        self.env = {**os.environ, "TICKFAN_JWT_SECRET": SECRET, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def args(self) -> list[str]:
        return [
            sys.executable, "-m", "tickfan", "serve",
            "--port", str(self.port), "--core", self.core, "--data-dir", str(self.data_dir), *self.extra,
            *(["--fast-port", str(self.fast_port)] if self.fast_port is not None else []),
        ]  # fmt: skip

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws(self, path: str = "/ws/market-data") -> str:
        if self.fast_port is not None and path == "/ws/market-data":
            return f"ws://127.0.0.1:{self.fast_port}{path}"
        return f"ws://127.0.0.1:{self.port}{path}"

    def start(self) -> Server:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.http + "/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not become ready:\n{self.log()}")

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)

    def kill(self) -> None:
        """SIGKILL the server and its workers at once (no graceful anything). Granian's workers
        are child processes that outlive a SIGKILL of their parent alone."""
        assert self.proc is not None
        root = psutil.Process(self.proc.pid)
        procs = [root, *root.children(recursive=True)]
        for p in procs:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(10)
        psutil.wait_procs(procs, timeout=10)

    def restart(self) -> Server:
        """Stop, then start on the same data dir (on a fresh port: the old one may linger)."""
        self.stop()
        self.port = free_port()
        if self.fast_port is not None:
            self.fast_port = free_port()
        return self.start()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    # --- clients --------------------------------------------------------------------------------

    def token(self, sub: str = "alice", *, ttl_s: int = 3600, scopes: tuple[str, ...] = ()) -> str:
        return token(sub, ttl_s=ttl_s, scopes=scopes)

    def publisher_headers(self) -> dict[str, str]:
        return bearer(PUBLISHER, publish=True)

    def user_headers(self, sub: str = "alice") -> dict[str, str]:
        return bearer(sub)

    def publish(self, ticks: list[dict[str, Any]]) -> httpx.Response:
        return httpx.post(self.http + "/api/ticks", json=ticks, headers=self.publisher_headers(), timeout=30)

    async def apublish(self, ticks: list[dict[str, Any]]) -> httpx.Response:
        async with httpx.AsyncClient(timeout=30) as client:
            return await client.post(self.http + "/api/ticks", json=ticks, headers=self.publisher_headers())

    def metric(self, name: str) -> float:
        text = httpx.get(self.http + "/metrics", timeout=5).text
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        raise KeyError(name)

    async def connect(self, path: str = "/ws/market-data", **kwargs: Any) -> ClientConnection:
        return await connect(self.ws(path), open_timeout=10, **kwargs)

    async def authed(self, sub: str = "alice", path: str = "/ws/market-data", **kwargs: Any) -> ClientConnection:
        """A socket on ``path`` past its ``auth_success`` (for ``sub``)."""
        ws = await self.connect(path, **kwargs)
        await ws.send(json.dumps({"type": "auth", "token": self.token(sub)}))
        reply = await recv_json(ws)
        assert reply["type"] == "auth_success" and reply["user_id"] == sub, reply
        return ws

    async def stalled(self, sub: str) -> ClientConnection:
        """A market-data socket past its ``auth_success`` that reads nothing until awaited: a
        16 KiB receive buffer set before connect (no autotuning) and ``max_queue=1``, so a
        server writer stalls after a few MB whatever the pace of its frames. (Left to autotune,
        a loopback receive window grows toward ``tcp_rmem``'s maximum while frames trickle in.)"""
        port = int(self.ws().split(":")[2].split("/")[0])
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        sock.connect(("127.0.0.1", port))
        sock.setblocking(False)
        return await self.authed(sub, sock=sock, max_queue=1, max_size=None)


class Client:
    """Async HTTP calls against one server (an ``httpx.AsyncClient``), as the publishing service."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.http = httpx.AsyncClient(base_url=server.http, timeout=10.0)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self.http.aclose()

    async def publish_ticks(self, ticks: list[dict[str, Any]]) -> httpx.Response:
        return await self.http.post("/api/ticks", json=ticks, headers=bearer(PUBLISHER, publish=True))

    async def notify(self, user: str, title: str, *, kind: str = "info", data: Any = None) -> int:
        r = await self.http.post(
            "/api/notifications",
            json={"user_id": user, "kind": kind, "title": title, "body": f"body of {title}", "data": data},
            headers=bearer(PUBLISHER, publish=True),
        )
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    async def bot_status(self, user: str, bot: str, status: str, detail: Any = None) -> httpx.Response:
        return await self.http.post(
            f"/api/bots/{bot}/status",
            json={"user_id": user, "status": status, "detail": detail},
            headers=bearer(PUBLISHER, publish=True),
        )

    async def poll(self, user: str, after: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        params: dict[str, int] = {"after": after}
        if limit is not None:
            params["limit"] = limit
        r = await self.http.get("/api/notifications", params=params, headers=bearer(user))
        assert r.status_code == 200, r.text
        return list(r.json()["notifications"])


async def recv_json(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))  # type: ignore[no-any-return]


async def recv_until(
    ws: ClientConnection, pred: Callable[[dict[str, Any]], bool], timeout: float = 10.0
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The first message matching ``pred`` and every message received before it."""
    before: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no matching message; got {before[-3:]}")
        message = await recv_json(ws, left)
        if pred(message):
            return message, before
        before.append(message)


async def barrier(ws: ClientConnection, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Ping and wait for the pong: return every message the socket had queued before it.

    The server answers through the same per-socket FIFO as everything else, so whatever it
    queued for this socket before reading the ping arrives first.
    """
    marker = time.monotonic_ns()
    await ws.send(json.dumps({"type": "ping", "ts": marker}))
    _, before = await recv_until(ws, lambda m: m.get("type") == "pong" and m.get("ts") == marker, timeout)
    return before


async def expect_close(ws: ClientConnection, timeout: float = 5.0) -> tuple[int | None, list[dict[str, Any]]]:
    """Read until the server closes; return (close code, messages read before it)."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the server did not close; got {seen[-3:]}")
            seen.append(json.loads(await asyncio.wait_for(ws.recv(), left)))
    except Exception as exc:  # websockets.ConnectionClosed
        if isinstance(exc, TimeoutError):
            raise
        rcvd = getattr(exc, "rcvd", None)
        return (rcvd.code if rcvd is not None else None), seen


def run(coro: Awaitable[T], timeout: float = 60) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


WATCHED = "LTC/USD"


class Watcher:
    """A healthy subscriber of ``WATCHED`` in tick mode, and a publisher ticking it every 20 ms
    (``async with``; ``finish`` then ``assert_contiguous``): the "other client" of abuse tests."""

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
        await barrier(self.ws)  # drops the snapshot (the symbol's last tick) when it has traded
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._publish())]
        return self

    async def _read(self) -> None:
        assert self.ws is not None
        while True:
            m = await recv_json(self.ws, 30)
            if m["type"] == "market_data" and m["symbol"] == WATCHED:
                self.seqs.append(m["seq"])

    async def _publish(self) -> None:
        async with httpx.AsyncClient(base_url=self.server.http, timeout=30) as client:  # one client: no TLS setup per tick
            while not self._stop.is_set():
                ts = time.time_ns() // 1_000_000
                tick = {"symbol": WATCHED, "price": 70.0 + (self.published % 7), "size": 1.0, "ts": ts}
                r = await client.post("/api/ticks", json=[tick], headers=self.server.publisher_headers())
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


TEST_SYMBOLS = ["TEST/SLOW1", "TEST/SLOW2", "TEST/SLOW3", "TEST/SLOW4"]
OVER_SYMBOL = "TEST/OVER"
"""A test-only symbol for bursts past the queue limit (tests/e2e/test_slow_consumer_e2e.py)."""


def write_universe(path: Path) -> Path:
    """The default universe plus test-only symbols (so history-heavy tests touch nothing else)."""
    from tickfan.config import DEFAULT_UNIVERSE

    items = [{"symbol": s.symbol, "price_decimals": s.price_decimals, "size_decimals": s.size_decimals} for s in DEFAULT_UNIVERSE]
    items += [{"symbol": name, "price_decimals": 2, "size_decimals": 4} for name in [*TEST_SYMBOLS, OVER_SYMBOL]]
    path.write_text(json.dumps(items))
    return path
