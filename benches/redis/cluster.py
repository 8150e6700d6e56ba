"""Redis broker costs on 127.0.0.1 (issue 9, deliverable 6, the parts that need no load farm).

    python benches/redis/cluster.py [--duration-s 10]

Starts a private redis-server (AOF, fsync ``--appendfsync``, default ``always``) and two ``tickfan serve`` nodes (Rust core,
``--feed none``) on it, plus one memory-broker node for the baseline, then measures:

1. **Redis CPU per ingested tick**: 1,000 ticks/s posted in batches (``--batches``, 50 then 10
   and 200; alternately to node A and B, both reading the log), Redis's ``used_cpu_user +
   used_cpu_sys`` over the window divided by the ticks, gross and above the idle rate measured
   first (the nodes' health checks and blocked reads; Redis alone, before the nodes start, is
   recorded too), split into the main thread's user and system time, with ``INFO commandstats``
   and optionally a ``perf record`` of Redis (``--perf DIR``); and the same for 1-tick batches
   at up to 200/s (the unbatched worst case).
2. **Cross-node latency at the S4 rate** (200 ticks/s, one symbol, tick mode): a socket on node
   A and one on node B; every tick is posted to A; latency is from just before the POST to the
   frame's arrival. Baseline: the same on the memory-broker node. ``--rounds`` rounds (memory
   node, then the Redis pair); the medians over the rounds are ``latency_s4``.

Writes ``benches/results/redis-<stamp>.json`` and prints a table. Traffic only to 127.0.0.1,
bounded by ``--duration-s``. Client and servers share the machine's cores: figures are upper
bounds on cost and latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import redis
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))

from tickfan.auth import mint  # noqa: E402

SECRET = "bench-secret-" + "b" * 40
SYMBOL = "BTC/USD"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(directory: Path, fsync: str, cpus: str = "") -> tuple[subprocess.Popen[bytes], int]:
    directory.mkdir(parents=True, exist_ok=True)
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (Debian: apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [*(["taskset", "-c", cpus] if cpus else []), binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
         "--appendfsync", fsync, "--dir", str(directory), "--logfile", str(directory / "redis.log")],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            return proc, port
        except redis.RedisError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not start")


def start_node(data_dir: Path, *extra: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TICKFAN_JWT_SECRET": SECRET}
    with (data_dir / "server.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tickfan", "serve", "--port", str(port), "--core", "rust", "--feed", "none",
             "--log-level", "warning", "--data-dir", str(data_dir), *extra],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"node in {data_dir} did not become ready")


def redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def redis_cpu_split(client: redis.Redis) -> dict[str, float]:
    """The process's user and system CPU, and the main thread's (commands, replies, the AOF
    write and, with ``appendfsync always``, its fsync) apart from the background threads'."""
    info = client.info("cpu")
    return {k: float(info[k]) for k in ("used_cpu_user", "used_cpu_sys", "used_cpu_user_main_thread",
                                        "used_cpu_sys_main_thread") if k in info}  # fmt: skip


async def publish_at(ports: list[int], rate: float, batch: int, duration_s: float, start_price: float) -> int:
    """Post ``rate`` ticks/s in batches of ``batch``, round-robin over ``ports``; return ticks sent."""
    headers = {"Authorization": "Bearer " + mint(SECRET, "bench", ttl_s=3600, scopes=["publish"])}
    interval = batch / rate
    sent = 0
    async with httpx.AsyncClient(timeout=10) as client:
        t0 = time.perf_counter()
        i = 0
        while time.perf_counter() - t0 < duration_s:
            due = t0 + i * interval
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            ts = time.time_ns() // 1_000_000
            body = [{"symbol": SYMBOL, "price": round(start_price + (sent + k) * 0.01, 2), "size": 1.0, "ts": ts} for k in range(batch)]
            r = await client.post(f"http://127.0.0.1:{ports[i % len(ports)]}/api/ticks", json=body, headers=headers)
            if r.status_code != 202:
                raise SystemExit(f"publish refused: {r.status_code} {r.text}")
            sent += batch
            i += 1
    return sent


def command_usec(client: redis.Redis) -> dict[str, tuple[int, int]]:
    """``{command: (calls, usec)}`` from ``INFO commandstats`` (time inside the commands)."""
    return {name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"])) for name, v in client.info("commandstats").items()}


async def idle_cpu_per_s(client: redis.Redis, seconds: float) -> float:
    """Redis CPU seconds per second with the nodes connected and nothing published (their
    health checks, lease renewals and blocked reads, and Redis's own cron)."""
    before, t0 = redis_cpu(client), time.perf_counter()
    await asyncio.sleep(seconds)
    return (redis_cpu(client) - before) / (time.perf_counter() - t0)


async def cost(ports: list[int], client: redis.Redis, rate: float, batch: int, duration_s: float, start_price: float,
               idle_per_s: float, redis_pid: int = 0, perf_out: str = "") -> dict[str, Any]:
    before, t0, cmds0, split0 = redis_cpu(client), time.perf_counter(), command_usec(client), redis_cpu_split(client)
    perf = start_perf(redis_pid, perf_out) if perf_out else None
    sent = await publish_at(ports, rate, batch, duration_s, start_price)
    await asyncio.sleep(1.0)  # the readers' last reads
    used, wall, cmds1 = redis_cpu(client) - before, time.perf_counter() - t0, command_usec(client)
    split1 = redis_cpu_split(client)
    if perf is not None:
        stop_perf(perf)
    net = max(0.0, used - idle_per_s * wall)
    inside = {
        name: {"calls": calls - cmds0.get(name, (0, 0))[0], "usec": usec - cmds0.get(name, (0, 0))[1]}
        for name, (calls, usec) in cmds1.items()
        if calls - cmds0.get(name, (0, 0))[0] > 0
    }
    return {"rate": rate, "batch": batch, "ticks": sent, "redis_cpu_s": round(used, 4),
            "redis_us_per_tick": round(used / sent * 1e6, 3),
            "redis_us_per_tick_above_idle": round(net / sent * 1e6, 3),
            "redis_us_per_batch": round(used / (sent / batch) * 1e6, 1),
            "redis_us_per_batch_above_idle": round(net / (sent / batch) * 1e6, 1),
            "cpu_split_us_per_tick": {k: round((split1[k] - split0[k]) / sent * 1e6, 3) for k in split1},
            "commands_us_per_tick": round(sum(v["usec"] for v in inside.values()) / sent, 3),
            "commands": inside, **({"perf": perf_out} if perf_out else {})}


def start_perf(pid: int, out: str) -> subprocess.Popen[bytes] | None:
    """``perf record`` of the Redis process (call graphs) for one window, when perf is installed."""
    perf = shutil.which("perf")
    if perf is None:
        return None
    return subprocess.Popen([perf, "record", "-g", "-F", "999", "-p", str(pid), "-o", out],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def stop_perf(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


async def latency(publish_port: int, watch_ports: list[int], rate: float, duration_s: float, start_price: float) -> dict[int, list[float]]:
    """Single ticks to ``publish_port`` at ``rate``; ms from before the POST to each watcher's frame."""
    token = mint(SECRET, "watcher", ttl_s=3600)
    sockets = []
    for port in watch_ports:
        ws = await connect(f"ws://127.0.0.1:{port}/ws/market-data", max_size=None)
        await ws.send(json.dumps({"type": "auth", "token": token}))
        await ws.recv()
        await ws.send(json.dumps({"type": "subscribe", "symbols": [SYMBOL], "mode": "tick"}))
        while json.loads(await ws.recv())["type"] != "subscribed":
            pass
        sockets.append(ws)
    sent_at: dict[float, float] = {}
    arrivals: dict[int, list[tuple[float, float]]] = {p: [] for p in watch_ports}

    async def watch(port: int, ws: Any) -> None:
        async for text in ws:
            now = time.perf_counter()
            message = json.loads(text)
            if message.get("type") == "market_data":
                arrivals[port].append((message["price"], now))

    tasks = [asyncio.create_task(watch(p, ws)) for p, ws in zip(watch_ports, sockets)]
    headers = {"Authorization": "Bearer " + mint(SECRET, "bench", ttl_s=3600, scopes=["publish"])}
    async with httpx.AsyncClient(timeout=10) as client:
        t0 = time.perf_counter()
        i = 0
        while time.perf_counter() - t0 < duration_s:
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            price = round(start_price + i * 0.01, 2)
            sent_at[price] = time.perf_counter()
            body = [{"symbol": SYMBOL, "price": price, "size": 1.0, "ts": time.time_ns() // 1_000_000}]
            r = await client.post(f"http://127.0.0.1:{publish_port}/api/ticks", json=body, headers=headers)
            if r.status_code != 202:
                raise SystemExit(f"publish refused: {r.status_code} {r.text}")
            i += 1
    await asyncio.sleep(1.0)
    for task in tasks:
        task.cancel()
    for ws in sockets:
        await ws.close()
    return {port: [(t - sent_at[p]) * 1000 for p, t in got if p in sent_at] for port, got in arrivals.items()}


def quantiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    if not ordered:
        return {"n": 0}
    return {"n": len(ordered), "p50_ms": round(statistics.median(ordered), 3),
            "p99_ms": round(ordered[min(len(ordered) - 1, (len(ordered) * 99) // 100)], 3)}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="tickfan-redis-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        rproc, rport = start_redis(tmp / "redis", args.appendfsync)
        procs.append(rproc)
        bare_idle = await idle_cpu_per_s(redis.Redis(port=rport), min(args.duration_s, 5.0))
        url = f"redis://127.0.0.1:{rport}/0"
        a, pa = start_node(tmp / "a", "--broker", url)
        b, pb = start_node(tmp / "b", "--broker", url)
        m, pm = start_node(tmp / "m")
        procs += [a, b, m]
        client = redis.Redis(port=rport)
        result: dict[str, Any] = {"duration_s": args.duration_s, "appendfsync": args.appendfsync,
                                  "redis_version": client.info("server")["redis_version"],
                                  "loadavg_at_start": os.getloadavg()}  # fmt: skip
        result["redis_bare_idle_cpu_per_s"] = round(bare_idle, 5)
        idle = await idle_cpu_per_s(client, args.duration_s)
        result["redis_idle_cpu_per_s"] = round(idle, 5)
        for batch in args.batches:
            perf_out = f"{args.perf}/redis-batch{batch}.data" if args.perf else ""
            result[f"cost_batched_{batch}"] = await cost([pa, pb], client, 1000.0, batch, args.duration_s,
                                                         1000.0 + batch * 1000, idle, rproc.pid, perf_out)  # fmt: skip
        result["cost_batched"] = result[f"cost_batched_{args.batches[0]}"]
        result["cost_single"] = await cost([pa, pb], client, 200.0, 1, args.duration_s, 20000.0, idle)
        rounds: list[dict[str, Any]] = []
        for rnd in range(args.rounds):
            price = 30000.0 + rnd * 1000
            single = await latency(pm, [pm], 200.0, args.duration_s, price)
            cluster = await latency(pa, [pa, pb], 200.0, args.duration_s, price)
            rounds.append({"memory_single_node": quantiles(single[pm]), "redis_same_node": quantiles(cluster[pa]),
                           "redis_cross_node": quantiles(cluster[pb])})  # fmt: skip
        result["latency_s4_rounds"] = rounds
        if not rounds:
            return result
        result["latency_s4"] = {
            k: {q: round(statistics.median(r[k][q] for r in rounds), 3) for q in ("p50_ms", "p99_ms")}
            for k in ("memory_single_node", "redis_same_node", "redis_cross_node")
        }
        lat = result["latency_s4"]
        result["cross_node_p99_above_single_ms"] = round(lat["redis_cross_node"]["p99_ms"] - lat["memory_single_node"]["p99_ms"], 3)
        result["loadavg_at_end"] = os.getloadavg()
        return result
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration-s", type=float, default=10.0, help="publishing time per measurement")
    parser.add_argument("--appendfsync", default="always", choices=("always", "everysec"),
                        help="Redis AOF fsync policy (always: what docs/operations.md asks for)")
    parser.add_argument("--batches", default="50,10,200", type=lambda t: [int(x) for x in t.split(",")],
                        help="batch sizes of the 1,000 ticks/s cost runs; the first is `cost_batched`")
    parser.add_argument("--rounds", type=int, default=3, help="latency rounds (memory node, then the Redis pair)")
    parser.add_argument("--perf", metavar="DIR", help="perf record Redis during each batched cost run into DIR")
    parser.add_argument("--out", default=str(ROOT / "benches" / "results"))
    args = parser.parse_args()
    result = asyncio.run(main(args))
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    os.makedirs(args.out, exist_ok=True)
    path = Path(args.out) / f"redis-{'' if args.appendfsync == 'always' else args.appendfsync + '-'}{stamp}.json"
    path.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    print(f"written {path}")
