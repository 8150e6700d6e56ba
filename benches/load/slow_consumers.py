"""A healthy client's latency with slow consumers present vs without them (issue 12).

    python benches/load/slow_consumers.py                        # 100 healthy, 10 slow, 1,750 ticks/s
    python benches/load/slow_consumers.py --server tickfan-fast  # the same on the fast lane

One fresh ``tickfan serve`` (default settings) for the whole run. Phases alternate on it,
``without`` then ``with``, ``--rounds`` times, so both conditions see the same server and the
same machine load: in each phase ``--healthy`` tick-mode clients (client.py, one symbol each
over 10 symbols) measure per-tick latency while the publisher (publisher.py) offers ``--rate``
ticks/s for ``--duration-s``; in ``with`` phases ``--slow`` more connections subscribe to all
10 symbols in tick mode (the whole rate each) and read one frame every ``--slow-read-ms`` from
a 16 KiB receive buffer, far slower than they are sent. The server degrades them (conflation),
recovers them with a ``gap``, and closes them with 1013 only if one stays over its queue limit
for the grace; what they saw is reported.

The figure of merit is the ratio of the healthy clients' p99 with slow consumers to without,
each condition's p99 taken over all its phases' ticks together (target: at most 2).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import secrets
import socket
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from latency import merge_sparse, percentiles_ms  # noqa: E402
from publisher import fetch_symbols  # noqa: E402
from run import ClientProc, drain, machine, run_publisher  # noqa: E402
from servers import SERVERS, RunningServer  # noqa: E402
from wire import mint_token  # noqa: E402


class Slow:
    """One slow consumer: tick mode on every symbol, reading a frame every ``read_s``."""

    def __init__(self, url: str, port: int, token: str, symbols: list[str], read_s: float) -> None:
        self.url, self.port, self.token, self.symbols, self.read_s = url, port, token, symbols, read_s
        self.frames = self.degraded = self.gaps = 0
        self.close_code: int | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        from websockets.asyncio.client import connect

        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        sock.connect(("127.0.0.1", self.port))
        sock.setblocking(False)
        self.ws = await connect(self.url, sock=sock, max_queue=1, max_size=None, open_timeout=30)
        await self.ws.send(json.dumps({"type": "auth", "token": self.token}))
        await self.ws.send(json.dumps({"type": "subscribe", "symbols": self.symbols, "mode": "tick"}))
        while json.loads(await self.ws.recv())["type"] != "subscribed":
            pass
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            while True:
                m = json.loads(await self.ws.recv())
                self.frames += 1
                self.degraded += m["type"] == "degraded"
                self.gaps += m["type"] == "gap"
                await asyncio.sleep(self.read_s)
        except ConnectionClosed as exc:
            self.close_code = exc.rcvd.code if exc.rcvd is not None else None

    async def stop(self) -> dict:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.ws.close()
        return {"frames": self.frames, "degraded": self.degraded, "gaps": self.gaps, "close_code": self.close_code}


async def phase(server: RunningServer, env: dict, args: argparse.Namespace, symbols: list[str], universe: dict,
                secret: str, with_slow: bool, index: int) -> dict:
    url = f"ws://127.0.0.1:{server.port}/ws/market-data"
    client = await ClientProc.start(
        ["--url", url, "--clients", str(args.healthy), "--first-index", str(index * args.healthy),
         "--symbols", ",".join(symbols), "--mode", "tick", "--deadline-s", "300"], env)  # fmt: skip
    ready = await client.expect("READY", 120)
    slow = [Slow(url, server.port, mint_token(secret, f"slow-{index}-{i}"), symbols, args.slow_read_ms / 1000)
            for i in range(args.slow if with_slow else 0)]  # fmt: skip
    await asyncio.gather(*(s.start() for s in slow))
    # Warm-up: the publisher runs --warmup-s before the healthy clients count, so the slow
    # consumers have filled the kernel's and the server's socket buffers (a few MB) and their
    # queues are past the high-water mark when the measurement starts.
    publishing = asyncio.create_task(
        run_publisher(server.ingest_port, args.rate, symbols, universe, args.warmup_s + args.duration_s, env))
    await asyncio.sleep(args.warmup_s)
    go = time.time_ns() // 1_000_000
    client.send(f"GO {go}")
    await client.expect("GOING", 30)
    m0 = server.scrape() or {}
    load0 = os.getloadavg()
    pub = await publishing
    # Owed: the ticks published after GO (the warm-up's are not counted), at the accepted rate.
    expected = int(pub["rate_accepted"] * args.duration_s) * args.healthy // len(symbols) * len(symbols)
    await drain([client], expected, 2.0, 15.0)
    m1 = server.scrape() or {}
    client.send("END")
    res = await client.expect("RESULT", 60)
    await client.finish()
    slow_seen = await asyncio.gather(*(s.stop() for s in slow))
    return {
        "with_slow": with_slow,
        "healthy_subscribed": ready["subscribed"],
        "ticks": res["ticks"],
        "expected_ticks_approx": expected,
        "missing": res["missing"],
        "dups": res["dups"],
        "latency_ms": percentiles_ms(merge_sparse([res["bins"]])),
        "bins": res["bins"],
        "rate_accepted": pub["rate_accepted"],
        "slow": slow_seen,
        "server": {k: m1.get(k, 0) - m0.get(k, 0) for k in (
            "tickfan_frames_out_total", "tickfan_frames_dropped_total",
            "tickfan_slow_consumers_disconnected_total", "tickfan_send_timeouts_total",
        )},  # fmt: skip
        "load_avg": [load0, os.getloadavg()],
    }


async def orchestrate(args: argparse.Namespace) -> dict:
    secret = secrets.token_hex(32)
    env = {**os.environ, "TICKFAN_JWT_SECRET": secret}
    log_dir = tempfile.mkdtemp(prefix="tickfan-slow-")
    server = RunningServer(SERVERS[args.server], secret, log_dir)
    out: dict = {"settings": vars(args).copy(), "machine": machine(), "server": args.server, "log_dir": log_dir}
    try:
        server.wait_ready()
        universe = await fetch_symbols("127.0.0.1", server.ingest_port, mint_token(secret, "probe"))
        symbols = list(universe)[:10]
        phases = []
        for r in range(args.rounds):
            for with_slow in (False, True):
                phases.append(await phase(server, env, args, symbols, universe, secret, with_slow, len(phases)))
                p = phases[-1]
                print(f"round {r} {'with' if with_slow else 'without'}: p99 {p['latency_ms']['p99']} ms, "
                      f"{p['ticks']} ticks, slow {p['slow']}", flush=True)  # fmt: skip
    finally:
        server.stop()
    for p in phases:
        p.pop("bins_merged", None)
    cond = {}
    for with_slow in (False, True):
        ps = [p for p in phases if p["with_slow"] is with_slow]
        cond["with" if with_slow else "without"] = {
            "latency_ms": percentiles_ms(merge_sparse([p["bins"] for p in ps])),
            "ticks": sum(p["ticks"] for p in ps),

            "missing": sum(p["missing"] for p in ps),
            "dups": sum(p["dups"] for p in ps),
        }
    for p in phases:
        p.pop("bins")
    out.update(symbols=symbols, phases=phases, conditions=cond,
               p99_ratio=cond["with"]["latency_ms"]["p99"] / cond["without"]["latency_ms"]["p99"])
    return out


def markdown(r: dict) -> str:
    s = r["settings"]
    c = r["conditions"]
    slow = [x for p in r["phases"] for x in p["slow"]]
    lines = [
        f"# Slow consumers: a healthy client's latency with {s['slow']} slow consumers vs without, {r['server']}",
        "",
        f"Command: `python benches/load/slow_consumers.py --server {r['server']} --healthy {s['healthy']} --slow {s['slow']} "
        f"--rate {s['rate']:g} --warmup-s {s['warmup_s']:g} --duration-s {s['duration_s']:g} --rounds {s['rounds']} --slow-read-ms {s['slow_read_ms']:g}`; "
        f"commit {r['machine']['commit']}, {r['machine']['cores']} cores shared with other work "
        f"(load average {r['phases'][0]['load_avg'][0][0]:.1f} at the start, {r['phases'][-1]['load_avg'][1][0]:.1f} at the end).",
        "",
        "| condition | healthy ticks received | missing (seq jumps) | dups | p50 ms | p99 ms | p99.9 ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in ("without", "with"):
        x = c[name]
        lat = x["latency_ms"]
        lines.append(f"| {name} slow consumers | {x['ticks']:,} | {x['missing']} | {x['dups']} | "
                     f"{lat['p50']} | {lat['p99']} | {lat['p99.9']} |")  # fmt: skip
    lines += [
        "",
        f"**p99 with / without: {r['p99_ratio']:.2f}x** (target <= 2).",
        "",
        "Per phase (in run order): " + "; ".join(
            f"{'with' if p['with_slow'] else 'without'} p99 {p['latency_ms']['p99']} ms" for p in r["phases"]) + ".",
        "",
        f"The slow consumers (all phases): {sum(x['frames'] for x in slow):,} frames read, "
        f"{sum(x['degraded'] for x in slow)} `degraded`, {sum(x['gaps'] for x in slow)} `gap`, closes "
        f"{sorted(x['close_code'] for x in slow if x['close_code'] is not None) or 'none'}; server: "
        f"{sum(p['server']['tickfan_frames_dropped_total'] for p in r['phases']):,.0f} frames dropped over the limit, "
        f"{sum(p['server']['tickfan_slow_consumers_disconnected_total'] for p in r['phases']):,.0f} slow-consumer closes.",
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server", default="tickfan-rust", choices=["tickfan-rust", "tickfan-fast"])
    p.add_argument("--healthy", type=int, default=100)
    p.add_argument("--slow", type=int, default=10)
    p.add_argument("--rate", type=float, default=1750.0, help="ticks/s over the 10 symbols")
    p.add_argument("--duration-s", type=float, default=10.0)
    p.add_argument("--warmup-s", type=float, default=20.0, help="publishing before the healthy clients count")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--slow-read-ms", type=float, default=10.0, help="a slow consumer reads one frame per this")
    p.add_argument("--out", default=os.path.join(ROOT, "benches", "results"))
    return p.parse_args(argv)


def main() -> int:
    args = parse_args()
    result = asyncio.run(orchestrate(args))
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = os.path.join(args.out, f"slow-consumers-{args.server}-{stamp}")
    with open(base + ".json", "w") as f:
        json.dump(result, f, indent=1)
    with open(base + ".md", "w") as f:
        f.write(markdown(result))
    sys.stdout.write(markdown(result) + f"\n{base}.json\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
