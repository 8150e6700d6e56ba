"""A load scenario (S2 by default) against tickfan variants side by side, in one run (issue 9,
deliverable 6): the memory broker with one worker, and ``--broker redis://`` with 1 and 2
Granian workers on a private redis-server (a fresh one per run, AOF ``always``).

    python benches/redis/workers.py                                  # S2, 3 rounds
    python benches/redis/workers.py --rounds 1 --scale 0.2 --duration-s 5
    python benches/redis/workers.py --scenario S1 --variants main,old \\
        --old-exe ../s9-bench-old/.venv/bin/tickfan                  # another checkout's server

The load itself is ``benches/load`` unchanged (its client, publisher, scenario table and
per-run summary: ``run.run_one``); this only adds the server variants and, around each
publishing window, Redis's CPU (``INFO cpu``) and the machine's load average. Variants run
in rounds (A B C, A B C, ...) so a change in the machine's other load hits them alike; the
table gives each variant's median over the rounds and its ratio to the first variant.

Writes ``benches/results/workers-<UTC stamp>.json`` (every row as ``benches/load`` records it,
plus ``redis_cpu_s``, ``redis_us_per_tick_in``, ``loadavg``). Traffic only to 127.0.0.1, bounded
in time as ``benches/load`` bounds it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "benches" / "load"))
sys.path.insert(0, str(HERE))

import run as load  # noqa: E402
from cluster import start_redis  # noqa: E402
from servers import SERVERS, ServerSpec  # noqa: E402

UNLIMITED_PEER = ["--max-unauthenticated-per-peer", "1000000"]


@dataclass(frozen=True)
class Variant(ServerSpec):
    """``tickfan serve`` as ``benches/load`` starts ``tickfan-rust``, plus ``extra`` flags;
    ``exe``: another checkout's ``tickfan`` (whose flags may predate ``UNLIMITED_PEER``)."""

    extra: tuple[str, ...] = ()
    exe: str = ""
    redis: bool = False
    cpus: str = ""  # taskset CPU list for the server's process tree ("": not pinned)

    def command(self, port: int, ingest_port: int, data_dir: str) -> list[str]:
        cmd = SERVERS["tickfan-rust"].command(port, ingest_port, data_dir)
        if self.exe:
            cmd = [self.exe, *cmd[cmd.index("serve") :]]
            if not self.old_has_peer_limit():
                i = cmd.index(UNLIMITED_PEER[0])
                del cmd[i : i + 2]
        cmd += list(self.extra)
        return ["taskset", "-c", self.cpus, *cmd] if self.cpus else cmd

    def old_has_peer_limit(self) -> bool:
        out = subprocess.run([self.exe, "serve", "--help"], capture_output=True, text=True).stdout
        return UNLIMITED_PEER[0] in out


def variants(names: list[str], old_exe: str, cpus: str = "") -> list[Variant]:
    """``memory-w1``; ``redis-wN`` (N Granian workers, each a node, on this run's Redis);
    ``main`` (this checkout) and ``old`` (``old_exe``), both as ``benches/load``'s tickfan-rust."""
    out = []
    for n in names:
        if n == "memory-w1":
            out.append(Variant(n, "memory broker, 1 worker", "tickfan-rust as benches/load starts it", cpus=cpus))
        elif n.startswith("redis-w"):
            w = int(n.removeprefix("redis-w"))
            out.append(Variant(n, f"Redis broker, {w} worker(s)", f"--broker redis:// --workers {w}",
                               extra=("--broker", "redis://", "--workers", str(w)), redis=True, cpus=cpus))  # fmt: skip
        elif n == "main":
            out.append(Variant(n, "this checkout", "tickfan-rust as benches/load starts it", cpus=cpus))
        elif n == "old":
            out.append(Variant(n, f"other checkout ({old_exe})", "tickfan-rust, another checkout's server", exe=old_exe, cpus=cpus))
        else:
            raise SystemExit(f"unknown variant {n!r}")
    return out


class RedisWindow:
    """Redis CPU over each publishing window: wraps ``benches/load``'s publisher call."""

    def __init__(self) -> None:
        self.client: redis.Redis | None = None
        self.last: dict[str, float] = {}
        self._inner = load.run_publisher

    async def run_publisher(self, port, rate, symbols, decimals, duration_s, env) -> dict:  # noqa: ANN001
        cpu0 = self._cpu()
        out = await self._inner(port, rate, symbols, decimals, duration_s, env)
        await asyncio.sleep(1.0)  # the readers' last reads
        self.last = {"redis_cpu_s": self._cpu() - cpu0} if self.client is not None else {}
        return out

    def _cpu(self) -> float:
        if self.client is None:
            return 0.0
        info = self.client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def one(v: Variant, sc: load.Scenario, args: argparse.Namespace, log_dir: str, window: RedisWindow,
              redis_cpus: str = "") -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="tickfan-workers-bench-"))
    rproc = None
    try:
        spec = v
        if v.redis:
            rproc, rport = start_redis(tmp / "redis", "always", redis_cpus)
            url = f"redis://127.0.0.1:{rport}/0"
            spec = Variant(v.name, v.label, v.notes, extra=tuple(url if x.startswith("redis://") else x for x in v.extra),
                           redis=True, cpus=v.cpus)  # fmt: skip
            window.client = redis.Redis(port=rport)
            version = window.client.info("server")["redis_version"]
        else:
            window.client = None
        SERVERS[v.name] = spec
        window.last = {}
        row = await load.run_one(v.name, sc, args, log_dir)
        row.update(window.last)
        if v.redis:
            row["redis_version"] = version
            if row.get("rate_accepted") and "redis_cpu_s" in row:
                ticks_in = row["publisher"].get("accepted", 0) or row["rate_accepted"] * row["publisher"]["duration_s"]
                row["redis_us_per_tick_in"] = 1e6 * row["redis_cpu_s"] / ticks_in if ticks_in else None
        row["loadavg"] = os.getloadavg()
        return row
    finally:
        if rproc is not None:
            rproc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                rproc.wait(20)
            if rproc.poll() is None:
                rproc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


KEYS = ("frames_per_s", "ticks_per_s", "delivered_pct", "lat_p50_ms", "lat_p99_ms", "server_cpu_pct",
        "server_cpu_us_per_frame", "server_cpu_us_per_tick", "client_cpu", "machine_cpu_pct", "redis_cpu_s", "redis_us_per_tick_in",
        "subscribed", "all_subscribed_s", "gaps", "dups")  # fmt: skip


def value(row: dict, key: str) -> float | None:
    if key == "client_cpu":
        c = row.get("client_cpu_pct_per_proc")
        return max(c) if c else None
    v = row.get(key)
    return float(v) if isinstance(v, (int, float)) else None


def summary(rows: list[dict], names: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for n in names:
        mine = [r for r in rows if r["server"] == n and "error" not in r]
        out[n] = {"runs": len(mine), "errors": [r["error"] for r in rows if r["server"] == n and "error" in r]}
        for k in KEYS:
            vals = [x for x in (value(r, k) for r in mine) if x is not None]
            out[n][k] = statistics.median(vals) if vals else None
            out[n][k + "_all"] = vals
    base = out[names[0]]
    for n in names[1:]:
        for k in ("frames_per_s", "ticks_per_s", "lat_p99_ms", "lat_p50_ms", "server_cpu_us_per_tick"):
            if base.get(k) and out[n].get(k) is not None:
                out[n][k + "_ratio"] = out[n][k] / base[k]
    return out


def table(s: dict[str, dict[str, Any]]) -> str:
    cols = [("frames_per_s", "frames/s", "{:,.0f}"), ("ticks_per_s", "ticks/s", "{:,.0f}"), ("delivered_pct", "deliv. %", "{:.1f}"),
            ("lat_p50_ms", "p50 ms", "{:.1f}"), ("lat_p99_ms", "p99 ms", "{:.1f}"),
            ("server_cpu_pct", "server CPU %", "{:.0f}"), ("server_cpu_us_per_tick", "server us/tick", "{:.2f}"), ("client_cpu", "client CPU %", "{:.0f}"),
            ("machine_cpu_pct", "machine %", "{:.0f}"), ("redis_us_per_tick_in", "Redis us/tick in", "{:.1f}"),
            ("frames_per_s_ratio", "frames/s ratio", "{:.2f}"), ("lat_p99_ms_ratio", "p99 ratio", "{:.2f}"),
            ("server_cpu_us_per_tick_ratio", "us/tick ratio", "{:.2f}")]  # fmt: skip
    lines = ["| variant | runs | " + " | ".join(c[1] for c in cols) + " |", "|---" * (len(cols) + 2) + "|"]
    for n, r in s.items():
        cells = [(f.format(r[k]) if r.get(k) is not None else "-") for k, _, f in cols]
        lines.append(f"| {n} | {r['runs']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> Path:
    names = args.variants.split(",")
    vs = variants(names, args.old_exe, args.server_cpus)
    sc = load.SCENARIOS[args.scenario]
    largs = load.parse_args(["--scale", str(args.scale), "--duration-s", str(args.duration_s),
                             "--client-procs", str(args.client_procs), "--no-ceiling"])  # fmt: skip
    window = RedisWindow()
    load.run_publisher = window.run_publisher
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    log_dir = tempfile.mkdtemp(prefix=f"tickfan-workers-{stamp}-")
    run: dict[str, Any] = {"kind": "tickfan-workers", "started": stamp, "command": " ".join(sys.argv),
                           "machine": load.machine(), "scenario": args.scenario, "rounds": args.rounds,
                           "settings": vars(args), "server_logs": log_dir, "results": []}  # fmt: skip
    for rnd in range(args.rounds):
        for v in vs:
            t = time.perf_counter()
            row = await one(v, sc, largs, log_dir, window, args.redis_cpus)
            row["round"], row["run_wall_s"] = rnd, time.perf_counter() - t
            run["results"].append(row)
            extra = f" redis {row['redis_us_per_tick_in']:.1f} us/tick in" if row.get("redis_us_per_tick_in") else ""
            print(f"round {rnd} {load.brief(row)}{extra} load {row['loadavg'][0]:.2f}", flush=True)
            await asyncio.sleep(largs.pause_s)
    run["loadavg_at_end"] = os.getloadavg()
    run["summary"] = summary(run["results"], names)
    run["table"] = table(run["summary"])
    Path(args.out).mkdir(parents=True, exist_ok=True)
    out = Path(args.out) / f"{args.name or 'workers-' + stamp}.json"
    out.write_text(json.dumps(run, indent=1))
    print(run["table"])
    print(f"wrote {out}")
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", default="S2", choices=sorted(load.SCENARIOS))
    p.add_argument("--variants", default="memory-w1,redis-w1,redis-w2",
                   help="comma-separated, the first is the baseline: memory-w1, redis-wN (N workers), main, old")  # fmt: skip
    p.add_argument("--old-exe", default="", help="the `old` variant's tickfan executable")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--scale", type=float, default=1.0, help="multiply the scenario's client count")
    p.add_argument("--duration-s", type=float, default=10.0, help="publishing time per run")
    p.add_argument("--client-procs", type=int, default=1)
    p.add_argument("--server-cpus", default="", help="taskset CPU list for the server (bigger machines; see README)")
    p.add_argument("--redis-cpus", default="", help="taskset CPU list for redis-server")
    p.add_argument("--out", default=str(ROOT / "benches" / "results"))
    p.add_argument("--name", help="output base name (default workers-<stamp>)")
    return p.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
