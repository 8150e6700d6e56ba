"""Run the load scenarios against every server, side by side, and write JSON, Markdown and a plot.

    python benches/load/run.py                       # everything (make bench-load)
    python benches/load/run.py --servers tickfan-rust --scenarios S4 --scale 0.1 --duration-s 3

For each (scenario, server): a fresh server process on a fresh port and data dir, the client
processes (client.py) connect, authenticate and subscribe, the publisher (publisher.py) offers
ticks through POST /api/ticks for --duration-s, the clients drain for --drain-s, then report;
the server is stopped by PID. See README.md for the method and what every number means.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass

import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from latency import merge_sparse, percentiles_ms  # noqa: E402
from publisher import fetch_symbols  # noqa: E402
from servers import SERVERS, RunningServer, build_rust_peer  # noqa: E402
from wire import DEFAULT_UNIVERSE, mint_token  # noqa: E402

PY = sys.executable
ROOT = os.path.dirname(os.path.dirname(HERE))


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    clients: int
    rate: float  # ticks/s offered, all symbols together; 0: no publishing
    n_symbols: int = 1  # the first n of the universe, BTC/USD first; client k takes symbol k % n
    mode: str | None = None
    storm: bool = False  # connect storm + idle memory: measure the handshakes, publish nothing
    connect_only: bool = False  # storm: WebSocket upgrade only, no auth, no subscribe


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("S1", "high-frequency fan-out: 1,000 clients on BTC/USD, 1,000 ticks/s, auto", 1000, 1000, 1, "auto"),
        Scenario("S2", "many sockets: 10,000 clients, 10 symbols x 5 ticks/s, tick", 10000, 50, 10, "tick"),
        Scenario("S3", "connect storm + idle memory: 10,000 clients", 10000, 0, 10, "tick", storm=True),
        # S3's floor: the same storm, only the upgrade (its target compares against this).
        Scenario("S3c", "connect storm, upgrade only (no auth, no subscribe): 10,000 clients", 10000, 0, 10, None,
                 storm=True, connect_only=True),
        Scenario("S4", "low load, latency floor: 100 clients, 200 ticks/s, tick", 100, 200, 1, "tick"),
        # Every 10 ms POST carries 20 ticks: 20 frames queue up per connection at once (a burst).
        Scenario("S5", "burst: 100 clients on BTC/USD, 2,000 ticks/s, tick (20 frames per connection per POST)", 100, 2000, 1, "tick"),
        # CI: proves the harness runs and nothing is lost; both frame kinds (tick and batch) decoded.
        Scenario("smoke", "smoke: 200 clients, 2 symbols x 200 ticks/s, tick and auto", 200, 400, 2, "tick,auto"),
        # make bench-ci: the same small load in each mode, for bytes per tick and server CPU per frame.
        Scenario("ci-tick", "CI: 50 clients on BTC/USD, 200 ticks/s, tick", 50, 200, 1, "tick"),
        Scenario("ci-batch", "CI: 50 clients on BTC/USD, 200 ticks/s, batch", 50, 200, 1, "batch"),
    )
}


def machine() -> dict:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpu": cpu,
        "cores": psutil.cpu_count(),
        "mem_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "commit": commit,
        "load_avg_at_start": os.getloadavg(),
    }


class ClientProc:
    """One client.py process and its line protocol."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, argv: list[str], env: dict[str, str]) -> ClientProc:
        proc = await asyncio.create_subprocess_exec(
            PY, os.path.join(HERE, "client.py"), *argv,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
            limit=1 << 24,
        )  # fmt: skip
        return cls(proc)

    async def expect(self, tag: str, timeout_s: float) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            line = await asyncio.wait_for(self.proc.stdout.readline(), max(deadline - time.monotonic(), 0.1))
            if not line:
                err = (await self.proc.stderr.read())[-2000:].decode(errors="replace")
                raise RuntimeError(f"client exited before {tag}: {err}")
            text = line.decode().strip()
            if text.startswith(tag + " "):
                return json.loads(text[len(tag) + 1 :])

    def send(self, line: str) -> None:
        self.proc.stdin.write(line.encode() + b"\n")

    async def finish(self) -> None:
        try:
            await asyncio.wait_for(self.proc.wait(), 15)
        except asyncio.TimeoutError:
            self.proc.kill()  # our own child, by its PID
            await self.proc.wait()


async def run_publisher(port: int, rate: float, symbols: list[str], decimals: dict, duration_s: float, env: dict) -> dict:
    proc = await asyncio.create_subprocess_exec(
        PY, os.path.join(HERE, "publisher.py"), "--port", str(port), "--rate", str(rate),
        "--symbols", ",".join(symbols), "--decimals", json.dumps({s: decimals[s] for s in symbols}),
        "--duration-s", str(duration_s),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), duration_s + 30)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    for line in out.decode().splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"publisher failed: {err.decode(errors='replace')[-2000:]}")


async def run_one(spec_name: str, sc: Scenario, args: argparse.Namespace, log_dir: str) -> dict:
    spec = SERVERS[spec_name]
    secret = secrets.token_hex(32)
    env = {**os.environ, "TICKFAN_JWT_SECRET": secret}
    clients = max(int(sc.clients * args.scale), 1)
    row: dict = {"server": spec.name, "server_label": spec.label, "server_notes": spec.notes,
                 "scenario": sc.name, "scenario_title": sc.title, "clients": clients,
                 "mode": sc.mode, "rate_offered": sc.rate}  # fmt: skip
    server = RunningServer(spec, secret, log_dir)
    procs: list[ClientProc] = []
    try:
        await asyncio.to_thread(server.wait_ready)
        universe = await fetch_symbols("127.0.0.1", server.ingest_port, mint_token(secret, "load-probe")) or DEFAULT_UNIVERSE
        names = sorted(universe, key=lambda s: (s != "BTC/USD", s))[: sc.n_symbols]
        row["symbols"] = names
        await asyncio.sleep(0.5)
        rss0, cpu_start = server.rss_bytes(), server.cpu_s()
        storm_spy = await start_profiler(server, sc, args) if args.profile and sc.storm else None
        n_procs = max(1, min(args.client_procs, clients))
        per, extra = divmod(clients, n_procs)
        first = 0
        for i in range(n_procs):
            n = per + (1 if i < extra else 0)
            argv = ["--url", f"ws://127.0.0.1:{server.port}/ws/market-data", "--clients", str(n),
                    "--first-index", str(first), "--symbols", ",".join(names),
                    "--concurrency", str(args.concurrency), "--deadline-s", str(args.duration_s + 300)]  # fmt: skip
            if sc.mode:
                argv += ["--mode", sc.mode]
            if sc.connect_only:
                argv.append("--connect-only")
            procs.append(await ClientProc.start(argv, env))
            first += n
        readies = await asyncio.gather(*(p.expect("READY", 120) for p in procs))
        connect_cpu_s = server.cpu_s() - cpu_start
        if storm_spy is not None:
            row["profile"] = await finish_profiler(*storm_spy)
        subscribers: dict[str, int] = {}
        failures: dict[str, int] = {}
        for r in readies:
            for s, c in r["subscribers"].items():
                subscribers[s] = subscribers.get(s, 0) + c
            for k, c in r["failures"].items():
                failures[k] = failures.get(k, 0) + c
        subscribed = sum(r["subscribed"] for r in readies)
        times = [r["all_subscribed_s"] for r in readies if r["all_subscribed_s"] is not None]
        row.update(subscribed=subscribed, failed=clients - subscribed, failures=failures,
                   all_subscribed_s=max(times) if times else None,
                   connect_server_cpu_s=connect_cpu_s,
                   connect_client_cpu_pct=[r.get("connect_cpu_pct") for r in readies])  # fmt: skip
        if sc.storm:
            await asyncio.sleep(args.settle_s)
            rss1 = server.rss_bytes()
            row.update(rss_before_bytes=rss0, rss_idle_bytes=rss1,
                       rss_per_conn_bytes=(rss1 - rss0) / subscribed if subscribed else None)  # fmt: skip
            for p in procs:
                p.send("END")
            await asyncio.gather(*(p.expect("RESULT", 30) for p in procs))
            return row
        await asyncio.sleep(args.settle_s)
        window_ms = time.time_ns() // 1_000_000
        for p in procs:
            p.send(f"GO {window_ms}")
        await asyncio.gather(*(p.expect("GOING", 30) for p in procs))
        m0 = await asyncio.to_thread(server.scrape)
        spy = await start_profiler(server, sc, args) if args.profile else None
        cpu0, wall0 = server.cpu_s(), time.perf_counter()
        threads0 = server.thread_cpu_s()
        psutil.cpu_percent()  # starts the machine-wide window
        pub = await run_publisher(server.ingest_port, sc.rate, names, universe, args.duration_s, env)
        expected = sum(published(pub, s) * n for s, n in subscribers.items())
        row["drain_s"] = await drain(procs, expected, args.drain_s, args.drain_max_s)
        cpu1, wall1 = server.cpu_s(), time.perf_counter()
        threads1 = server.thread_cpu_s()
        machine_pct = psutil.cpu_percent()
        rss_busy = server.rss_bytes()
        m1 = await asyncio.to_thread(server.scrape)
        if spy is not None:
            row["profile"] = await finish_profiler(*spy)
        for p in procs:
            p.send("END")
        results = await asyncio.gather(*(p.expect("RESULT", 60) for p in procs))
        row.update(summarise(results, pub, subscribers, cpu1 - cpu0, wall1 - wall0))
        # Against the rate asked rather than the rate the server managed to ingest.
        asked = sc.rate / len(names) * pub["duration_s"] * sum(subscribers.values())
        row["asked_deliveries"] = asked
        row["delivered_of_asked_pct"] = 100.0 * row["delivered_ticks"] / asked if asked else None
        row["server_threads_cpu_s"] = {k: round(v - threads0.get(k, 0.0), 3) for k, v in threads1.items()
                                       if v - threads0.get(k, 0.0) >= 0.01}  # fmt: skip
        row["server_rss_bytes"] = rss_busy
        row["machine_cpu_pct"] = machine_pct
        row["machine_saturated"] = machine_pct >= 90.0
        if m0 is not None and m1 is not None:
            row["server_metrics"] = server_side(m0, m1)
        return row
    except Exception as exc:  # one failing server must not sink the whole run
        row["error"] = f"{type(exc).__name__}: {exc}"
        row["server_log_tail"] = server.log_tail(1500)
        return row
    finally:
        for p in procs:
            if p.proc.returncode is None:
                p.send("END")
        await asyncio.gather(*(p.finish() for p in procs), return_exceptions=True)
        await asyncio.to_thread(server.stop)


async def start_profiler(server: RunningServer, sc: Scenario, args: argparse.Namespace):
    """py-spy over the server's process tree for the publishing window (collapsed stacks)."""
    os.makedirs(args.profile, exist_ok=True)
    path = os.path.join(os.path.abspath(args.profile), f"{sc.name}-{server.spec.name}.txt")
    spy = os.path.join(os.path.dirname(PY), "py-spy")
    proc = await asyncio.create_subprocess_exec(
        spy, "record", "--pid", str(server.pid), "--subprocesses", "--rate", "200",
        "--format", "raw", "--output", path, "--nonblocking",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    return proc, path


async def finish_profiler(proc: asyncio.subprocess.Process, path: str) -> dict:
    proc.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
    try:
        await asyncio.wait_for(proc.wait(), 30)
    except asyncio.TimeoutError:
        proc.kill()  # our own child, by its PID
        await proc.wait()
    err = (await proc.stderr.read()).decode(errors="replace")[-500:] if proc.stderr else ""
    return {"collapsed_stacks": path, "py_spy_tail": err, **top_frames(path)}


# Frames that wrap every sample of a Granian worker: left out of the "total" ranking.
_WRAPPERS = ("multiprocessing/", "granian/server/", "tickfan/cli.py", "<module>", "process ")


def top_frames(path: str, n: int = 20) -> dict[str, list[tuple[str, float]]]:
    """From py-spy raw output: the share of busy samples (those with a Python frame) per leaf
    frame ("self") and per function anywhere on the stack ("total")."""
    leaf: dict[str, int] = {}
    incl: dict[str, int] = {}
    busy = 0
    try:
        with open(path) as f:
            for line in f:
                stack, _, count = line.rstrip().rpartition(" ")
                frames = stack.split(";")[1:]  # the first element names the process
                if not frames:
                    continue
                c = int(count)
                busy += c
                leaf[frames[-1]] = leaf.get(frames[-1], 0) + c
                for fn in {fr.split(" (")[0] + " (" + fr.split(" (")[-1].split(":")[0] + ")" for fr in frames}:
                    if not any(w in fn for w in _WRAPPERS):
                        incl[fn] = incl.get(fn, 0) + c
    except (OSError, ValueError):
        return {}

    def top(d: dict[str, int]) -> list[tuple[str, float]]:
        return [(k, round(100 * v / busy, 1)) for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:n]]

    return {"busy_samples": busy, "self": top(leaf), "total": top(incl)}


def server_side(m0: dict[str, float], m1: dict[str, float]) -> dict:
    """What the server itself saw during the window (tickfan's /metrics): its ingest-to-first-write
    latency quantiles (histogram bucket upper bounds), frames out, drops, slow consumers."""
    d = {k: m1[k] - m0.get(k, 0.0) for k in m1}
    prefix = "tickfan_fanout_latency_seconds_bucket{le="
    buckets = sorted(
        (float(k[len(prefix) :].split('"')[1]), v) for k, v in d.items() if k.startswith(prefix)
    )
    out: dict = {}
    total = buckets[-1][1] if buckets else 0
    for q in (0.5, 0.99):
        le = next((b for b, c in buckets if total and c >= q * total), None)
        out[f"fanout_p{q * 100:g}_ms_le"] = None if le is None else le * 1000
    for key in ("tickfan_frames_out", "tickfan_frames_dropped", "tickfan_slow_consumers_disconnected",
                "tickfan_send_failures", "tickfan_ticks_in"):  # fmt: skip
        for k, v in d.items():
            if k == key or k.startswith(key + "{") or k == key + "_total":
                out[key.removeprefix("tickfan_")] = out.get(key.removeprefix("tickfan_"), 0) + v
    return out


def published(pub: dict, symbol: str) -> int:
    """Ticks of `symbol` the server got: accepted, plus those of a POST left unanswered at the
    end (a server slower than the offer still applies them)."""
    return pub["accepted_per_symbol"].get(symbol, 0) + pub.get("unacked_per_symbol", {}).get(symbol, 0)


async def drain(procs: list[ClientProc], expected: int, quiet_s: float, max_s: float) -> float:
    """Wait until every expected tick has arrived, or none has for `quiet_s`, or `max_s` passed."""
    t0 = time.perf_counter()
    last, last_change = -1, t0
    while time.perf_counter() - t0 < max_s:
        for p in procs:
            p.send("STATUS")
        got = sum(s["ticks"] for s in await asyncio.gather(*(p.expect("STATUS", 30) for p in procs)))
        now = time.perf_counter()
        if got >= expected:
            break
        if got != last:
            last, last_change = got, now
        elif now - last_change >= quiet_s:
            break
        await asyncio.sleep(0.1)
    return time.perf_counter() - t0


def summarise(results: list[dict], pub: dict, subscribers: dict[str, int], server_cpu_s: float, wall_s: float) -> dict:
    ticks = sum(r["ticks"] for r in results)
    expected = sum(published(pub, s) * n for s, n in subscribers.items())
    firsts = [r["first_tick_ns"] for r in results if r["first_tick_ns"]]
    lasts = [r["last_tick_ns"] for r in results if r["last_tick_ns"]]
    # Delivery rate over the publishing time, or longer if delivery lagged behind it.
    span = max(pub["duration_s"], ((max(lasts) - pub["start_ns"]) / 1e9) if lasts else 0.0)
    hist = merge_sparse([r["bins"] for r in results])
    pct = percentiles_ms(hist)
    client_cpu = [r["cpu_s"] / r["wall_s"] * 100 if r["wall_s"] else 0.0 for r in results]
    errors: dict[str, int] = {}
    closes: dict[str, int] = {}
    for r in results:
        for k, c in r["errors"].items():
            errors[k] = errors.get(k, 0) + c
        for k, c in r["close_codes"].items():
            closes[k] = closes.get(k, 0) + c
    frames = sum(r["frames"] for r in results)
    payload = sum(r["bytes"] for r in results)
    return {
        "publisher": {k: v for k, v in pub.items() if k != "accepted_per_symbol"},
        "rate_accepted": pub["rate_accepted"],
        "expected_ticks": expected,
        "delivered_ticks": ticks,
        "delivered_pct": 100.0 * ticks / expected if expected else None,
        "offered_deliveries_per_s": expected / pub["duration_s"] if pub["duration_s"] else None,
        "ticks_per_s": ticks / span if span else 0.0,
        "frames_per_s": sum(r["frames"] for r in results) / span if span else 0.0,
        "bytes_per_s": sum(r["bytes"] for r in results) / span if span else 0.0,
        "frames": frames,
        "bytes": payload,
        "bytes_per_tick": payload / ticks if ticks else None,
        "tick_frames": sum(r["tick_frames"] for r in results),
        "batch_frames": sum(r["batch_frames"] for r in results),
        "gaps": sum(r["gaps"] for r in results),
        "missing_in_gaps": sum(r["missing"] for r in results),
        "dups": sum(r["dups"] for r in results),
        "malformed": sum(r["malformed"] for r in results) + sum(r["undecodable"] for r in results),
        "dropped_connections": sum(r["dropped_live"] for r in results),
        "degraded": sum(r.get("degraded", 0) for r in results),
        "gap_notices": sum(r.get("gap_notices", 0) for r in results),
        "errors": errors,
        "close_codes": closes,
        "lat_p50_ms": pct["p50"],
        "lat_p99_ms": pct["p99"],
        "lat_p999_ms": pct["p99.9"],
        "lat_max_ms": max((r["max_lat_us"] for r in results), default=0) / 1000,
        "first_delivery_after_start_ms": (min(firsts) - pub["start_ns"]) / 1e6 if firsts else None,
        "span_s": span,
        "server_cpu_s": server_cpu_s,
        "server_cpu_pct": 100.0 * server_cpu_s / wall_s if wall_s else None,
        "server_cpu_us_per_tick": 1e6 * server_cpu_s / ticks if ticks else None,
        "server_cpu_us_per_frame": 1e6 * server_cpu_s / frames if frames else None,
        "client_cpu_pct_per_proc": client_cpu,
        "client_bound": any(c >= 90.0 for c in client_cpu),
    }


async def main(args: argparse.Namespace) -> int:
    out_dir = os.path.abspath(args.out)
    os.makedirs(out_dir, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    log_dir = tempfile.mkdtemp(prefix=f"tickfan-load-{stamp}-")  # server logs, named in the JSON
    run = {
        "kind": "tickfan-load",
        "started": stamp,
        "command": " ".join([os.path.relpath(PY, ROOT) if PY.startswith(ROOT) else PY, *sys.argv]),
        "machine": machine(),
        "settings": {k: v for k, v in vars(args).items()},
        "server_logs": log_dir,
        "scenarios": {k: asdict(v) for k, v in SCENARIOS.items()},
        "results": [],
    }
    if {"rust-ref", "rust-ref-fws"} & set(args.servers.split(",")):
        build_rust_peer()
    if args.ceiling:
        from ceiling import measure_ceiling

        run["ceiling"] = await measure_ceiling(duration_s=min(args.duration_s, 5.0), log=print)
    for sc_name in args.scenarios.split(","):
        sc = SCENARIOS[sc_name]
        for name in args.servers.split(","):
            t = time.perf_counter()
            row = await run_one(name, sc, args, log_dir)
            row["run_wall_s"] = time.perf_counter() - t
            run["results"].append(row)
            print(brief(row), flush=True)
            await asyncio.sleep(args.pause_s)  # let the sockets of the last run clear
    name = args.name or f"load-{stamp}"
    path = os.path.join(out_dir, f"{name}.json")
    with open(path, "w") as f:
        json.dump(run, f, indent=1)
    from report import write_report

    written = write_report(run, out_dir, name, plot_png=args.plot)
    print(f"wrote {path}", *written, sep="\n      ")
    return 0


def brief(row: dict) -> str:
    if "error" in row:
        return f"{row['scenario']} {row['server']:<15} ERROR {row['error']}"
    if "ticks_per_s" not in row:
        return (f"{row['scenario']} {row['server']:<15} subscribed {row['subscribed']}/{row['clients']} "
                f"in {row['all_subscribed_s']}s, failed {row['failed']}, "
                f"idle RSS/conn {row.get('rss_per_conn_bytes') or 0:.0f} B")  # fmt: skip
    return (f"{row['scenario']} {row['server']:<15} {row['ticks_per_s']:>11,.0f} ticks/s "
            f"({row['delivered_pct'] or 0:.2f}%) gaps {row['gaps']} p50 {row['lat_p50_ms']} p99 {row['lat_p99_ms']} "
            f"max {row['lat_max_ms']:.1f} ms, server {row['server_cpu_us_per_tick'] or 0:.2f} us/tick "
            f"({row['server_cpu_pct'] or 0:.0f}%), client {max(row['client_cpu_pct_per_proc']):.0f}%")  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--servers", default=",".join(SERVERS), help=f"comma-separated, from {','.join(SERVERS)}")
    p.add_argument("--scenarios", default="S1,S2,S3,S3c,S4,S5", help=f"comma-separated, from {','.join(SCENARIOS)}")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every scenario's client count (dev runs)")
    p.add_argument("--duration-s", type=float, default=10.0, help="publishing time per run")
    p.add_argument("--drain-s", type=float, default=2.0,
                   help="after publishing, wait for deliveries until none arrives for this long")  # fmt: skip
    p.add_argument("--drain-max-s", type=float, default=15.0, help="the longest wait for deliveries")
    p.add_argument("--settle-s", type=float, default=2.0, help="pause after subscribing, before measuring")
    p.add_argument("--pause-s", type=float, default=2.0, help="pause between runs")
    p.add_argument("--client-procs", type=int, default=1, help="client processes per run")
    p.add_argument("--concurrency", type=int, default=1000, help="handshakes in flight per client process")
    p.add_argument("--ceiling", action=argparse.BooleanOptionalAction, default=True,
                   help="first measure the client's own ceiling (ceiling.py)")  # fmt: skip
    p.add_argument("--out", default=os.path.join(ROOT, "benches", "results"))
    p.add_argument("--name", help="base name of the output files (default: load-<UTC stamp>)")
    p.add_argument("--plot", action=argparse.BooleanOptionalAction, default=True, help="write the PNG plot")
    p.add_argument("--profile", metavar="DIR", help="py-spy the server during each publishing window into DIR")
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
