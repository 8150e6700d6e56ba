"""`tickfan tail` as a user runs it, against a real zero-config server (simulated feed, the
secret made in its data dir), both cores."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tcp_proxy import TcpProxy
from tickfan_e2e import CORES, Server, run

pytestmark = pytest.mark.e2e

SERVER_MODULES = ("litestar", "granian", "tickfan._core", "tickfan.core", "tickfan.web")
# Runs `tickfan tail` in-process, then fails with 99 if it loaded any server module.
TAIL = f"""
import sys
from tickfan.cli import main
rc = main(sys.argv[1:])
loaded = [m for m in sys.modules if any(m == s or m.startswith(s + ".") for s in {SERVER_MODULES!r})]
if loaded:
    print("server modules loaded:", loaded, file=sys.stderr)
    rc = 99
sys.exit(rc)
"""


@pytest.fixture(scope="module", params=CORES)
def zero_config(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`tickfan serve` with no JWT setting: it makes its own secret in the data dir; the simulator feeds it.
    Its resume ring holds one tick per symbol, so a reconnect that missed two or more ticks of its
    symbol is a gap (not a resume), whatever share of the feed that symbol has."""
    srv = Server(request.param, tmp_path_factory.mktemp(f"zc-{request.param}"), "--log-level", "warning",
                 "--resume-max-ticks", "1", env={"TICKFAN_JWT_SECRET": ""}).start()
    yield srv
    srv.stop()


def tail_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("TICKFAN_JWT_SECRET", "TICKFAN_TOKEN", "TICKFAN_DATA_DIR")}


def tail(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", TAIL, "tail", *args], capture_output=True, text=True,
                          timeout=timeout, env=tail_env())


def test_tail_count_5_jsonl_on_a_zero_config_server(zero_config: Server) -> None:
    assert (zero_config.data_dir / "jwt_secret").exists()
    out = tail("--url", zero_config.http, "--data-dir", str(zero_config.data_dir), "--count", "5", "--format", "jsonl")
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(lines) == 5 and {m["type"] for m in lines} == {"market_data"} and {m["symbol"] for m in lines} == {"BTC/USD"}
    seqs = [m["seq"] for m in lines]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5


def test_tail_text_formats_prices_with_the_symbols_decimals(zero_config: Server) -> None:
    out = tail("--url", zero_config.http, "--data-dir", str(zero_config.data_dir), "--count", "6", "BTC/USD", "XRP/USD")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 6
    for line in lines:  # BTC/USD has 2 price decimals, XRP/USD 5 (the default universe)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (BTC/USD \d+\.\d{2}|XRP/USD \d+\.\d{5}) [\d.]+ #\d+", line), line


def test_tail_since_prints_the_backfill_first(zero_config: Server) -> None:
    out = tail("--url", zero_config.http, "--data-dir", str(zero_config.data_dir), "--count", "2", "--format", "jsonl",
               "--since", "5m", "--candles", "1s")
    assert out.returncode == 0, out.stderr
    first, *ticks = [json.loads(line) for line in out.stdout.splitlines()]
    assert first["type"] == "backfill" and first["symbol"] == "BTC/USD" and first["candles"]
    assert [t["type"] for t in ticks] == ["market_data"] * 2
    assert ticks[0]["ts"] >= first["candles"][-1][0]


def test_tail_other_channels(zero_config: Server) -> None:
    out = tail("--url", zero_config.http, "--data-dir", str(zero_config.data_dir), "--channel", "metrics",
               "--count", "1", "--format", "jsonl")
    assert out.returncode == 0, out.stderr
    (metrics,) = [json.loads(line) for line in out.stdout.splitlines()]
    assert metrics["type"] == "metrics" and metrics["core"] == zero_config.core
    out = tail("--url", zero_config.http, "--data-dir", str(zero_config.data_dir), "--channel", "bots", "--duration", "0.5")
    assert out.returncode == 0 and out.stdout == "", out.stderr  # no bots: nothing, and done after --duration


def test_tail_exit_codes(zero_config: Server, tmp_path: Path) -> None:
    refused = tail("--url", zero_config.http, "--token", "not-a-jwt", "--count", "1")
    assert refused.returncode == 3 and "refused" in refused.stderr
    refused = tail("--url", zero_config.http, "--token", "not-a-jwt", "--channel", "notifications", "--count", "1")
    assert refused.returncode == 3 and "refused" in refused.stderr
    assert tail("--url", zero_config.http, "--since", "soon").returncode == 2
    assert tail("--url", zero_config.http, "--data-dir", str(zero_config.data_dir), "NOPE/USD", "--count", "1").returncode == 2
    no_secret = tail("--url", zero_config.http, "--data-dir", str(tmp_path / "empty"), "--count", "1")
    assert no_secret.returncode == 2 and "no token" in no_secret.stderr
    assert not (tmp_path / "empty").exists()  # tail reads the secret, never creates one


def test_tail_strict_exits_4_at_a_gap(zero_config: Server, tmp_path: Path) -> None:
    async def scenario() -> None:
        # stderr to a file: only stdout (the ticks) is a pipe, and it is read throughout, so the
        # process's exit is never held up by a pipe nobody reads.
        err_file = (tmp_path / "stderr").open("wb")
        async with TcpProxy(zero_config.port) as proxy:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", TAIL, "tail", "--url", proxy.http, "--data-dir", str(zero_config.data_dir),
                "--mode", "tick", "--strict", stdout=asyncio.subprocess.PIPE, stderr=err_file,
                env=tail_env(),
            )
            try:
                assert proc.stdout is not None
                await asyncio.wait_for(proc.stdout.readline(), 30)  # ticks are flowing
                # Keep reading its output, so a full pipe never stalls it.
                drain = asyncio.create_task(proc.stdout.read())
                proxy.hold()  # its reconnect waits in the relay, without failed attempts to back off from
                proxy.cut()
                seen = zero_config.metric("tickfan_ticks_in_total")
                deadline = time.monotonic() + 30
                while zero_config.metric("tickfan_ticks_in_total") < seen + 200:  # the feed moved on without us
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.05)
                proxy.release()
                assert await asyncio.wait_for(proc.wait(), 60) == 4
                await drain
                err = (tmp_path / "stderr").read_text()
                assert "~ disconnected" in err and "~ reconnected" in err and "! gap BTC/USD: seq " in err
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
                err_file.close()

    run(scenario(), timeout=120)
