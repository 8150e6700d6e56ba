"""End-to-end helpers: a real ``tickfan serve`` subprocess per core, talked to over 127.0.0.1.

The fixtures in conftest.py: ``server`` is one Granian process per core for the whole session (``--feed none``), configured
with a short auth timeout and a small per-connection queue so the slow-consumer test is quick.
``sim_server`` is a second one with the simulator on (the batch-equals-tick test). Servers are
started by ``python -m tickfan serve`` and stopped by PID (SIGTERM, then SIGKILL after 15 s).
Tokens are minted in-process with the server's secret (``TICKFAN_JWT_SECRET``).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
from websockets.asyncio.client import ClientConnection, connect

from tickfan.auth import mint

SECRET = "tickfan-e2e-secret-" + "s" * 50
CORES = ["python", "rust"]
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Server:
    """A running ``tickfan serve`` process."""

    def __init__(self, core: str, data_dir: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.core = core
        self.port = free_port()
        self.data_dir = data_dir
        self.log_path = data_dir / "server.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        self.args = [
            sys.executable, "-m", "tickfan", "serve",
            "--port", str(self.port), "--core", core, "--data-dir", str(data_dir), *extra,
        ]
        self.env = {**os.environ, "TICKFAN_JWT_SECRET": SECRET, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/market-data"

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
            time.sleep(0.1)
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

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    # --- clients --------------------------------------------------------------------------------

    def token(self, sub: str = "alice", *, ttl_s: int = 3600, scopes: tuple[str, ...] = ()) -> str:
        return mint(SECRET, sub, ttl_s=ttl_s, scopes=scopes)

    def publisher_headers(self) -> dict[str, str]:
        return {"Authorization": "Bearer " + self.token("feed", scopes=("publish",))}

    def user_headers(self, sub: str = "alice") -> dict[str, str]:
        return {"Authorization": "Bearer " + self.token(sub)}

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

    async def connect(self, **kwargs: Any) -> ClientConnection:
        return await connect(self.ws, open_timeout=10, **kwargs)

    async def authed(self, sub: str = "alice", **kwargs: Any) -> ClientConnection:
        ws = await self.connect(**kwargs)
        await ws.send(json.dumps({"type": "auth", "token": self.token(sub)}))
        reply = await recv_json(ws)
        assert reply["type"] == "auth_success", reply
        return ws


async def recv_json(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))  # type: ignore[no-any-return]


async def recv_until(ws: ClientConnection, pred: Callable[[dict[str, Any]], bool], timeout: float = 5.0) -> dict[str, Any]:
    """The first message matching ``pred`` (others are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no matching message")
        message = await recv_json(ws, left)
        if pred(message):
            return message


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


TEST_SYMBOLS = ["TEST/SLOW1", "TEST/SLOW2", "TEST/SLOW3", "TEST/SLOW4"]


def write_universe(path: Path) -> Path:
    """The default universe plus test-only symbols (so history-heavy tests touch nothing else)."""
    from tickfan.config import DEFAULT_UNIVERSE

    items = [{"symbol": s.symbol, "price_decimals": s.price_decimals, "size_decimals": s.size_decimals} for s in DEFAULT_UNIVERSE]
    items += [{"symbol": name, "price_decimals": 2, "size_decimals": 4} for name in TEST_SYMBOLS]
    path.write_text(json.dumps(items))
    return path


