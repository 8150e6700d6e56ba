"""A tickfan server process the issue-4 end-to-end tests can stop and start again on the same
data dir (restart durability), plus small async client helpers.

Kept apart from the shared ``conftest.py`` on purpose: these tests need restarts and extra
settings per test, and import this module directly (``tests/e2e`` is on ``sys.path`` under
pytest's default import mode).
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from tickfan.auth import mint

SECRET = "issue-4-e2e-secret-" + "x" * 32
CORES = ["python", "rust"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``python -m tickfan serve --feed none`` on 127.0.0.1 with a fixed data dir."""

    def __init__(self, core: str, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.core = core
        self.data_dir = data_dir
        self.extra_env = env or {}
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "server.log"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def start(self, timeout_s: float = 30.0) -> None:
        env = {
            **os.environ,
            "TICKFAN_JWT_SECRET": SECRET,
            "TICKFAN_LOG_LEVEL": "warning",
            "TICKFAN_CORE": self.core,
            **self.extra_env,
        }
        cmd = [
            sys.executable, "-m", "tickfan", "serve", "--host", "127.0.0.1",
            "--port", str(self.port), "--feed", "none", "--core", self.core,
            "--data-dir", str(self.data_dir),
        ]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(self.http + "/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server not ready in {timeout_s} s:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> None:
        """Stop, then start on the same data dir (a fresh port: the old one may linger)."""
        self.stop()
        self.port = _free_port()
        self.start()


def token(sub: str, *, publish: bool = False, ttl_s: int = 600) -> str:
    return mint(SECRET, sub, ttl_s=ttl_s, scopes=["publish"] if publish else [])


def bearer(sub: str, *, publish: bool = False) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(sub, publish=publish)}"}


PUBLISHER = "service-backend"


class Client:
    """HTTP calls against one server (an ``httpx.AsyncClient``)."""

    def __init__(self, server: ServerProcess) -> None:
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


async def open_socket(server: ServerProcess, path: str, user: str) -> tuple[ClientConnection, dict[str, Any]]:
    """Connect, authenticate, return the socket and its ``auth_success``."""
    ws = await connect(server.ws(path), open_timeout=10)
    await ws.send(json.dumps({"type": "auth", "token": token(user)}))
    ok = await recv(ws)
    assert ok["type"] == "auth_success" and ok["user_id"] == user, ok
    return ws, ok


async def recv(ws: ClientConnection, timeout_s: float = 10.0) -> dict[str, Any]:
    return dict(json.loads(await asyncio.wait_for(ws.recv(), timeout_s)))


async def recv_until(
    ws: ClientConnection, pred: Callable[[dict[str, Any]], bool], timeout_s: float = 10.0
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The first message matching ``pred`` and every message received before it."""
    before: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while True:
        msg = await recv(ws, max(0.01, deadline - time.monotonic()))
        if pred(msg):
            return msg, before
        before.append(msg)


async def barrier(ws: ClientConnection, timeout_s: float = 10.0) -> list[dict[str, Any]]:
    """Ping and wait for the pong: return every message the socket had queued before it.

    The server answers through the same per-socket FIFO as everything else, so whatever it
    queued for this socket before reading the ping arrives first.
    """
    marker = time.monotonic_ns()
    await ws.send(json.dumps({"type": "ping", "ts": marker}))
    _, before = await recv_until(ws, lambda m: m.get("type") == "pong" and m.get("ts") == marker, timeout_s)
    return before
