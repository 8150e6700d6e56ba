"""Overload: many tick-mode clients offered about twice what one worker writes (issue 12).

    python benches/load/overload.py                          # 10,000 clients, 100 ticks/s x 1,000 = 100,000 frames/s
    python benches/load/overload.py --clients 2000 --rate 20 # the same shape, scaled down 5x

Shape: ``--clients`` tick-mode clients, one symbol each over the first 10 symbols of the
universe (``--clients / 10`` subscribers per symbol), ``--rate`` ticks/s over those symbols
through ``POST /api/ticks``, so ``rate x clients / 10`` frames/s are offered. A fresh
``tickfan serve`` (default settings: 10,000-frame queues, degraded at 1,000, back at 100,
conflated at 1 s, cut after the queue stays full for 5 s) on Granian, or the fast lane.

What is checked, per connection that stayed open: every seq of its symbol from 1 to the last
one published is either received (once, in order) or inside a ``gap`` range the server sent
(``reason`` whatever it is; conflated ticks of a degraded period are reported by the gap of
its recovery). ``uncovered`` counts the seqs neither received nor reported: silent loss, which
must be 0. Latency: of every ``market_data`` frame delivered (conflated ones included), from
the publisher's send time (``ts`` plus the microseconds carried in ``size``, wire.py) to the
client's receive.

Client processes (``overload.py client``) speak the line protocol of client.py: READY, GO <ms>,
GOING, STATUS, END <json {symbol: last seq}>, RESULT. Everything is on 127.0.0.1 and bounded in
time (--deadline-s for the clients, --duration-s for the publisher).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import secrets
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from latency import FINE_BIN_US, FINE_LIMIT_US, N_BINS, bin_of, merge_sparse, percentiles_ms, to_sparse  # noqa: E402

PY = sys.executable


# --- the client process ------------------------------------------------------------------------


def client_main(args: argparse.Namespace) -> None:
    import msgspec
    import uvloop
    from picows import WSCloseCode, WSListener, WSMsgType, ws_connect

    from client import raise_fd_limit, subscribe_message
    from wire import mint_token

    class Tick(msgspec.Struct, tag_field="type", tag="market_data"):
        symbol: str
        seq: int
        ts: int
        size: float

    class Gap(msgspec.Struct, tag_field="type", tag="gap"):
        symbol: str
        from_seq: int
        to_seq: int | None
        reason: str = ""

    class Degraded(msgspec.Struct, tag_field="type", tag="degraded"):
        symbols: list[str] = []

    class AuthOk(msgspec.Struct, tag_field="type", tag="auth_success"):
        user_id: str = ""

    class Subscribed(msgspec.Struct, tag_field="type", tag="subscribed"):
        epoch: str = ""

    class Err(msgspec.Struct, tag_field="type", tag="error"):
        code: str = ""

    decode = msgspec.json.Decoder(Tick | Gap | Degraded | AuthOk | Subscribed | Err).decode

    class Stats:
        def __init__(self) -> None:
            self.window_ms = 1 << 62
            self.frames = self.ticks = self.dups = self.gaps = self.degraded = 0
            self.bins = [0] * N_BINS
            self.max_lat_us = 0
            self.errors: dict[str, int] = {}
            self.close_codes: dict[str, int] = {}
            self.reasons: dict[str, int] = {}

    st = Stats()

    class Conn(WSListener):
        __slots__ = ("token", "sub", "done", "symbol", "runs", "gap_ranges", "closed", "transport")

        def __init__(self, token: str, symbol: str, done: asyncio.Future) -> None:
            self.token, self.symbol, self.done = token, symbol, done
            self.sub = subscribe_message([symbol], "tick", None)
            self.runs: list[list[int]] = []  # received seqs as [first, last] runs, increasing
            self.gap_ranges: list[tuple[int, int]] = []
            self.closed = False

        def on_ws_connected(self, transport) -> None:
            self.transport = transport
            transport.send(WSMsgType.TEXT, b'{"type":"auth","token":"' + self.token.encode() + b'"}')

        def on_ws_disconnected(self, transport) -> None:
            self.closed = True
            if not self.done.done():
                self.done.set_exception(ConnectionError("disconnected before subscribed"))

        def on_ws_frame(self, transport, frame) -> None:
            if frame.msg_type is not WSMsgType.TEXT:
                if frame.msg_type is WSMsgType.CLOSE:
                    code = str(frame.get_close_code().value)
                    st.close_codes[code] = st.close_codes.get(code, 0) + 1
                    self.closed = True
                    transport.send_close(WSCloseCode.OK)
                    transport.disconnect()
                return
            st.frames += 1
            m = decode(frame.get_payload_as_bytes())
            tm = type(m)
            if tm is Tick:
                runs = self.runs
                seq = m.seq
                if runs and seq <= runs[-1][1]:
                    st.dups += 1
                    return
                if runs and seq == runs[-1][1] + 1:
                    runs[-1][1] = seq
                else:
                    runs.append([seq, seq])
                if m.ts >= st.window_ms:
                    lat = time.time_ns() // 1000 - m.ts * 1000 - round((m.size - 1.0) * 1000)
                    st.ticks += 1
                    st.bins[lat // FINE_BIN_US if 0 <= lat < FINE_LIMIT_US else bin_of(lat)] += 1
                    if lat > st.max_lat_us:
                        st.max_lat_us = lat
            elif tm is Gap:
                st.gaps += 1
                st.reasons[m.reason] = st.reasons.get(m.reason, 0) + 1
                if m.to_seq is not None:
                    self.gap_ranges.append((m.from_seq, m.to_seq))
            elif tm is Degraded:
                st.degraded += 1
            elif tm is AuthOk:
                transport.send(WSMsgType.TEXT, self.sub)
            elif tm is Subscribed:
                if not self.done.done():
                    self.done.set_result(None)
            elif tm is Err:
                st.errors[m.code] = st.errors.get(m.code, 0) + 1

        def coverage(self, last: int) -> tuple[int, int]:
            """(seqs received or reported in 1..last, of them received)."""
            spans = sorted([(a, b) for a, b in self.runs] + self.gap_ranges)
            covered, hi = 0, 0
            for a, b in spans:
                a, b = max(a, hi + 1), min(b, last)
                if b >= a:
                    covered += b - a + 1
                    hi = b
            received = sum(min(b, last) - a + 1 for a, b in self.runs if a <= last)
            return covered, received

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(args.deadline_s, lambda: os._exit(3))
        raise_fd_limit(args.clients + 256)
        symbols = args.symbols.split(",")
        secret = os.environ["TICKFAN_JWT_SECRET"]
        sem = asyncio.Semaphore(500)
        conns: list[Conn] = []
        failed = 0

        async def open_one(k: int) -> None:
            nonlocal failed
            async with sem:
                done = loop.create_future()
                conn = Conn(mint_token(secret, f"overload-{k}"), symbols[k % len(symbols)], done)
                try:
                    await asyncio.wait_for(
                        ws_connect(lambda: conn, args.url, read_buffer_init_size=4096, enable_auto_ping=False), 60
                    )
                    await asyncio.wait_for(done, 60)
                    conns.append(conn)
                except Exception:  # noqa: BLE001 - counted
                    failed += 1

        await asyncio.gather(*(open_one(args.first_index + i) for i in range(args.clients)))
        print("READY " + json.dumps({"subscribed": len(conns), "failed": failed}), flush=True)
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        finals: dict[str, int] = {}
        while True:
            line = (await reader.readline()).decode().strip()
            if not line:
                break
            if line.startswith("GO "):
                st.window_ms = int(line.split()[1])
                print("GOING {}", flush=True)
            elif line == "STATUS":
                print("STATUS " + json.dumps({"frames": st.frames}), flush=True)
            elif line.startswith("END "):
                finals = json.loads(line[4:])
                break
        expected = covered = received = uncovered_conns = 0
        open_conns = [c for c in conns if not c.closed]
        for c in open_conns:
            last = finals.get(c.symbol, 0)
            cov, rec = c.coverage(last)
            expected += last
            covered += cov
            received += rec
            uncovered_conns += cov < last
        print("RESULT " + json.dumps({
            "connections": len(conns), "open_at_end": len(open_conns), "frames": st.frames,
            "latency_ticks": st.ticks, "bins": to_sparse(st.bins), "max_lat_us": st.max_lat_us,
            "dups": st.dups, "gap_frames": st.gaps, "gap_reasons": st.reasons, "degraded_frames": st.degraded,
            "errors": st.errors, "close_codes": st.close_codes,
            "expected_seqs": expected, "received_seqs": received, "covered_seqs": covered,
            "uncovered_seqs": expected - covered, "connections_with_uncovered": uncovered_conns,
        }), flush=True)
        os._exit(0)

    uvloop.run(main())


# --- the orchestrator ---------------------------------------------------------------------------


async def orchestrate(args: argparse.Namespace) -> dict:
    from publisher import fetch_symbols
    from run import ClientProc, machine, run_publisher
    from servers import SERVERS, RunningServer
    from wire import mint_token

    secret = secrets.token_hex(32)
    env = {**os.environ, "TICKFAN_JWT_SECRET": secret}
    log_dir = tempfile.mkdtemp(prefix="tickfan-overload-")
    spec = SERVERS[args.server]
    server = RunningServer(spec, secret, log_dir)
    result: dict = {"settings": vars(args).copy(), "machine": machine(), "server": args.server, "log_dir": log_dir}
    try:
        server.wait_ready()
        universe = await fetch_symbols("127.0.0.1", server.ingest_port, mint_token(secret, "probe"))
        symbols = list(universe)[:10]
        url = f"ws://127.0.0.1:{server.port}/ws/market-data"
        per = -(-args.clients // args.client_procs)
        procs = []
        for i in range(args.client_procs):
            n = min(per, args.clients - i * per)
            proc = await asyncio.create_subprocess_exec(
                PY, os.path.abspath(__file__), "client", "--url", url, "--clients", str(n),
                "--first-index", str(i * per), "--symbols", ",".join(symbols), "--deadline-s", str(args.deadline_s),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                env=env, limit=1 << 24,
            )  # fmt: skip
            procs.append(ClientProc(proc))
        t0 = time.perf_counter()
        ready = await asyncio.gather(*(p.expect("READY", args.deadline_s) for p in procs))
        result["connect_s"] = time.perf_counter() - t0
        result["ready"] = ready
        await asyncio.sleep(2)
        go = time.time_ns() // 1_000_000
        for p in procs:
            p.send(f"GO {go}")
        await asyncio.gather(*(p.expect("GOING", 30) for p in procs))
        m0 = server.scrape() or {}
        cpu0, t_go = server.cpu_s(), time.perf_counter()
        load0 = os.getloadavg()
        pub = await run_publisher(server.ingest_port, args.rate, symbols, universe, args.duration_s, env)
        # Drain: until no frame arrived for --quiet-s, at most --drain-max-s.
        last, quiet_since, t_drain = -1, time.perf_counter(), time.perf_counter()
        while time.perf_counter() - t_drain < args.drain_max_s:
            for p in procs:
                p.send("STATUS")
            frames = sum(s["frames"] for s in await asyncio.gather(*(p.expect("STATUS", 30) for p in procs)))
            if frames != last:
                last, quiet_since = frames, time.perf_counter()
            elif time.perf_counter() - quiet_since >= args.quiet_s:
                break
            await asyncio.sleep(0.2)
        wall = time.perf_counter() - t_go
        cpu1, m1 = server.cpu_s(), server.scrape() or {}
        finals = {s: pub["accepted_per_symbol"].get(s, 0) + pub.get("unacked_per_symbol", {}).get(s, 0) for s in symbols}
        for p in procs:
            p.send("END " + json.dumps(finals))
        parts = await asyncio.gather(*(p.expect("RESULT", 120) for p in procs))
        await asyncio.gather(*(p.finish() for p in procs))
        bins = merge_sparse([r["bins"] for r in parts])
        total = {k: sum(r[k] for r in parts) for k in (
            "connections", "open_at_end", "frames", "latency_ticks", "dups", "gap_frames", "degraded_frames",
            "expected_seqs", "received_seqs", "covered_seqs", "uncovered_seqs", "connections_with_uncovered",
        )}  # fmt: skip
        closes: dict[str, int] = {}
        reasons: dict[str, int] = {}
        for r in parts:
            for k, v in r["close_codes"].items():
                closes[k] = closes.get(k, 0) + v
            for k, v in r["gap_reasons"].items():
                reasons[k] = reasons.get(k, 0) + v
        subs_per_symbol = args.clients / len(symbols)
        result.update(
            symbols=symbols,
            offered_frames_per_s=args.rate * subs_per_symbol,
            publisher=pub,
            totals=total,
            close_codes=closes,
            gap_reasons=reasons,
            latency_ms=percentiles_ms(bins, (0.5, 0.99, 0.999)),
            max_latency_ms=max(r["max_lat_us"] for r in parts) / 1000,
            delivered_frames_per_s=total["frames"] / wall,
            server_cpu_pct=100 * (cpu1 - cpu0) / wall,
            server_rss_bytes=server.rss_bytes(),
            server_metrics={k: m1.get(k, 0) - m0.get(k, 0) for k in (
                "tickfan_frames_out_total", "tickfan_frames_dropped_total", "tickfan_slow_consumers_disconnected_total",
                "tickfan_send_timeouts_total",
            )},  # fmt: skip
            window_s=wall,
            load_avg_during=[load0, os.getloadavg()],
        )
    finally:
        server.stop()
    return result


def markdown(r: dict) -> str:
    t = r["totals"]
    lat = r["latency_ms"]
    s = r["settings"]
    lines = [
        f"# Overload: {s['clients']:,} tick-mode clients, {s['rate']:g} ticks/s ({r['offered_frames_per_s']:,.0f} frames/s offered), {r['server']}",
        "",
        f"Command: `python benches/load/overload.py --server {r['server']} --clients {s['clients']} --rate {s['rate']:g} "
        f"--duration-s {s['duration_s']:g} --client-procs {s['client_procs']}`; commit {r['machine']['commit']}, "
        f"{r['machine']['cores']} cores shared with other work (load average {r['load_avg_during'][0][0]:.1f} -> "
        f"{r['load_avg_during'][1][0]:.1f} during the run).",
        "",
        "| figure | value |",
        "| --- | ---: |",
        f"| ticks accepted (publisher) | {r['publisher']['accepted']:,} at {r['publisher']['rate_accepted']:,.0f}/s |",
        f"| frames delivered | {t['frames']:,} ({r['delivered_frames_per_s']:,.0f}/s over {r['window_s']:.1f} s) |",
        f"| latency of delivered ticks p50 / p99 / p99.9 / max | {lat['p50']} / {lat['p99']} / {lat['p99.9']} / {r['max_latency_ms']:.0f} ms |",
        f"| connections open at the end | {t['open_at_end']:,} of {t['connections']:,} (closes: {r['close_codes'] or 'none'}) |",
        f"| seqs owed to open connections | {t['expected_seqs']:,} |",
        f"| received | {t['received_seqs']:,} |",
        f"| received or inside a reported gap | {t['covered_seqs']:,} |",
        f"| **uncovered (lost silently)** | **{t['uncovered_seqs']:,}** ({t['connections_with_uncovered']} connections) |",
        f"| duplicates | {t['dups']:,} |",
        f"| `degraded` / `gap` frames | {t['degraded_frames']:,} / {t['gap_frames']:,} (reasons {r['gap_reasons'] or 'none'}) |",
        f"| server: frames dropped (over the limit) / slow-consumer closes | {r['server_metrics']['tickfan_frames_dropped_total']:,.0f} / {r['server_metrics']['tickfan_slow_consumers_disconnected_total']:,.0f} |",
        f"| server CPU / RSS | {r['server_cpu_pct']:.0f}% / {r['server_rss_bytes'] / 2**20:,.0f} MiB |",
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command")
    c = sub.add_parser("client")
    c.add_argument("--url", required=True)
    c.add_argument("--clients", type=int, required=True)
    c.add_argument("--first-index", type=int, default=0)
    c.add_argument("--symbols", required=True)
    c.add_argument("--deadline-s", type=float, default=600)
    p.add_argument("--server", default="tickfan-rust", choices=["tickfan-rust", "tickfan-fast"])
    p.add_argument("--clients", type=int, default=10_000)
    p.add_argument("--rate", type=float, default=100.0, help="ticks/s over the 10 symbols")
    p.add_argument("--duration-s", type=float, default=15.0)
    p.add_argument("--client-procs", type=int, default=2)
    p.add_argument("--quiet-s", type=float, default=3.0)
    p.add_argument("--drain-max-s", type=float, default=60.0)
    p.add_argument("--deadline-s", type=float, default=600.0)
    p.add_argument("--out", default=os.path.join(ROOT, "benches", "results"))
    return p.parse_args(argv)


def main() -> int:
    args = parse_args()
    if args.command == "client":
        client_main(args)
        return 0
    import uvloop

    result = uvloop.run(orchestrate(args))
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = os.path.join(args.out, f"overload-{args.server}-{stamp}")
    with open(base + ".json", "w") as f:
        json.dump(result, f, indent=1)
    with open(base + ".md", "w") as f:
        f.write(markdown(result))
    sys.stdout.write(markdown(result) + f"\n{base}.json\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
