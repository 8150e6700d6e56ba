"""Server lifecycle against real processes: zero-config start, refused configs, Origin
allow-list, graceful shutdown (1001), and batch == tick under the simulator's default load."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from tickfan.auth import SECRET_FILE
from tickfan.batch_codec import decode_batch
from tickfan_e2e import CORES, Server, expect_close, recv_json, recv_until, run

pytestmark = pytest.mark.e2e


def tickfan(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TICKFAN_")}
    return subprocess.run([sys.executable, "-m", "tickfan", *args], capture_output=True, text=True, timeout=60, env={**clean, **(env or {})}, cwd=cwd)


@pytest.mark.parametrize(
    "args,env,needle",
    [
        (["--workers", "2"], {}, "in-memory broker"),
        (["--port", "70000"], {}, "--port"),
        ([], {"TICKFAN_PORT": "abc"}, "TICKFAN_PORT"),
        (["--core", "quantum"], {}, "invalid choice"),
        ([], {"TICKFAN_CORE": "quantum"}, "unknown core"),
        (["--jwt-algorithm", "RS256", "--jwt-public-key", "/nonexistent/key.pem"], {}, "cannot read"),
        (["--symbols", "/nonexistent/symbols.json"], {}, "symbols file"),
        (["--broker", "redis://127.0.0.1:notaport/0"], {}, "not a valid Redis URL"),
        (["--broker", "kafka://127.0.0.1:9092"], {}, "--broker must be"),
        ([], {"TICKFAN_BROKER": "redis://:hunter2@127.0.0.1:1/0"}, "cannot reach Redis"),
    ],
    ids=["workers_memory", "bad_port", "bad_port_env", "unknown_core_flag", "unknown_core_env", "unreadable_key", "unreadable_symbols",
         "broker_bad_url", "broker_unknown_scheme", "broker_unreachable"],
)
def test_invalid_configuration_is_refused_clearly(tmp_path: Path, args: list[str], env: dict[str, str], needle: str) -> None:
    result = tickfan("serve", "--data-dir", str(tmp_path), "--feed", "none", *args, env=env)
    assert result.returncode == 2
    assert needle in result.stderr
    if "--broker" in args or "TICKFAN_BROKER" in env:
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr  # one line
        assert "hunter2" not in result.stderr  # a Redis password is never printed


def test_zero_config_secret_and_token_command(tmp_path: Path) -> None:
    srv = Server("python", tmp_path / "data", "--feed", "none", env={"TICKFAN_JWT_SECRET": ""})
    srv.env.pop("TICKFAN_JWT_SECRET")
    srv.start()
    try:
        secret = srv.data_dir / SECRET_FILE
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        printed = srv.log()
        assert f"http://127.0.0.1:{srv.port}" in printed and "tickfan token --sub" in printed
        minted = tickfan("token", "--sub", "carol", "--scope", "publish", "--data-dir", str(srv.data_dir))
        assert minted.returncode == 0
        token = minted.stdout.strip()
        headers = {"Authorization": "Bearer " + token}
        assert httpx.get(srv.http + "/api/symbols", headers=headers).status_code == 200
        tick = [{"symbol": "BTC/USD", "price": 43000.5, "size": 0.25, "ts": 1}]
        assert httpx.post(srv.http + "/api/ticks", json=tick, headers=headers).status_code == 202
        assert token not in srv.log()
    finally:
        assert srv.stop() == 0


def test_origin_allow_list(tmp_path: Path) -> None:
    srv = Server("python", tmp_path, "--feed", "none", "--allowed-origins", "https://app.example").start()

    async def scenario() -> tuple[str, int]:
        async with await srv.connect(origin="https://app.example") as ws:
            await ws.send(json.dumps({"type": "auth", "token": srv.token()}))
            ok = (await recv_json(ws))["type"]
        try:
            await srv.connect(origin="https://evil.example")
        except InvalidStatus as exc:
            return ok, exc.response.status_code
        return ok, 101

    try:
        ok, status = run(scenario())
        assert ok == "auth_success"
        assert status == 403
    finally:
        srv.stop()


@pytest.mark.parametrize("core", CORES)
def test_shutdown_closes_sockets_with_1001(tmp_path: Path, core: str) -> None:
    srv = Server(core, tmp_path, "--feed", "none").start()

    async def scenario() -> list[int | None]:
        clients = [await srv.authed(f"u{i}") for i in range(3)]
        await clients[0].send(json.dumps({"type": "subscribe", "symbols": ["BTC/USD"], "mode": "tick"}))
        await recv_until(clients[0], lambda m: m["type"] == "subscribed")
        assert srv.proc is not None
        srv.proc.terminate()
        return [(await expect_close(ws, timeout=10))[0] for ws in clients]

    try:
        assert run(scenario()) == [1001, 1001, 1001]
        assert srv.proc is not None and srv.proc.wait(15) == 0
    finally:
        srv.stop()


def test_batch_subscriber_decodes_exactly_the_tick_stream_under_sim_load(sim_server: Server) -> None:
    """BTC/USD ticks at ~250/s from the simulator: auto batches it; tick mode sends each."""

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
        async with await sim_server.authed() as tick_ws, await sim_server.authed() as batch_ws:
            await tick_ws.send(json.dumps({"type": "subscribe", "symbols": ["BTC/USD", "ETH/USD"], "mode": "tick"}))
            await batch_ws.send(json.dumps({"type": "subscribe", "symbols": ["BTC/USD", "ETH/USD"], "mode": "batch"}))
            singles: list[dict[str, Any]] = []
            decoded: list[dict[str, Any]] = []
            batches = 0
            while len(decoded) < 600 or not singles or singles[-1]["seq"] < decoded[-1]["seq"]:
                m = await recv_json(batch_ws)
                if m["type"] == "market_data_batch" and m["symbol"] == "BTC/USD":
                    batches += 1
                    decoded += decode_batch(m)
                # keep the tick client drained while waiting
                while True:
                    try:
                        t = await recv_json(tick_ws, timeout=0.001 if len(decoded) < 600 else 2)
                    except TimeoutError:
                        break
                    if t["type"] == "market_data" and t["symbol"] == "BTC/USD":
                        singles.append(t)
                    if len(decoded) >= 600 and singles and singles[-1]["seq"] >= decoded[-1]["seq"]:
                        break
            return singles, decoded, batches

    singles, decoded, batches = run(scenario(), timeout=60)
    for stream in (singles, decoded):
        seqs = [m["seq"] for m in stream]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "gap or reorder"
    by_seq = {m["seq"]: m for m in singles}
    common = [m for m in decoded if m["seq"] in by_seq]
    assert len(common) >= 500
    assert common == [by_seq[m["seq"]] for m in common]
    assert batches < len(common) / 3  # really gathered
