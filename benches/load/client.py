"""The load generator: one process holding many authenticated, subscribed WebSocket clients.

Built on picows (a Cython WebSocket parser whose callbacks hand over each frame without an
await) and uvloop, with msgspec decoding every frame into small typed structs (`wire.py`).
Per frame the hot path is one decode, one clock read and a few dict and list operations; per
tick of a batch it is one step of an `accumulate` over the ts deltas and one histogram
increment. Seq continuity is checked per connection and symbol from (seq, count) alone.

Control (driven by run.py, one JSON line each way):
  stdout  READY {...}   once every client is subscribed or has failed
  stdin   GO <ms>       start counting; ticks sent before <ms> (snapshots) are not counted
  stdout  GOING {}      counting (the publisher starts only after this)
  stdin   STATUS        stdout STATUS {"ticks": n, "frames": n}, counted so far
  stdin   END           report and exit
  stdout  RESULT {...}
The process exits by itself at --deadline-s whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import sys
import time
from itertools import chain

import numpy as np

import psutil
import uvloop
from picows import WSCloseCode, WSListener, WSMsgType, ws_connect

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from latency import COARSE_BIN_US, FINE_BIN_US, FINE_LIMIT_US, N_BINS, N_FINE, bin_of, to_sparse  # noqa: E402
from wire import AuthSuccess, Degraded, Error, Gap, MarketData, MarketDataBatch, Subscribed, decoder, mint_token  # noqa: E402

NEVER_MS = 1 << 62
FLUSH_TICKS = 200_000  # pending batch ticks before a vectorised latency pass (~2 MB of ints)


def raise_fd_limit(want: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(want, soft)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Stats:
    """Process-wide counters; the listeners write here directly (one attribute hop)."""

    def __init__(self) -> None:
        self.window_ms = NEVER_MS
        self.fine = True
        self.reset()
        self.gaps = 0
        self.missing = 0
        self.dups = 0
        self.errors: dict[str, int] = {}
        self.close_codes: dict[str, int] = {}
        self.dropped_live = 0
        self.malformed = 0
        self.undecodable = 0
        self.degraded = 0  # `degraded` notices: the server switched a slow socket to conflation
        self.gap_notices = 0  # `gap` notices (the ticks a degraded socket missed)

    def reset(self) -> None:
        self.frames = 0
        self.bytes = 0
        self.tick_frames = 0
        self.batch_frames = 0
        self.ticks = 0
        self.max_lat_us = 0
        self.first_tick_ns = 0
        self.last_tick_ns = 0
        self.bins = [0] * N_BINS
        self.p_now: list[int] = []
        self.p_ts: list[list[int]] = []
        self.p_size: list[list[int]] = []
        self.p_one: list[int] = []
        self.p_ticks = 0

    def flush(self) -> None:
        """Latencies of the pending batch ticks, vectorised; adds them to ticks and bins."""
        if not self.p_ticks:
            return
        counts = np.fromiter((len(t) for t in self.p_ts), dtype=np.int64, count=len(self.p_ts))
        n = int(counts.sum())
        ts = np.fromiter(chain.from_iterable(self.p_ts), dtype=np.int64, count=n)
        cs = np.cumsum(ts)
        ends = np.cumsum(counts)
        before = np.concatenate(([0], cs[ends[:-1] - 1]))  # running sum before each frame's first tick
        abs_ts = cs - np.repeat(before, counts)
        lat = np.repeat(np.asarray(self.p_now, dtype=np.int64), counts) - abs_ts * 1000
        if self.fine:
            sz = np.fromiter(chain.from_iterable(self.p_size), dtype=np.int64, count=n)
            one = np.repeat(np.asarray(self.p_one, dtype=np.int64), counts)
            lat -= (sz - one) * 1000 // one
        lat = lat[abs_ts >= self.window_ms]
        if lat.size:
            idx = np.where(
                lat < FINE_LIMIT_US,
                np.maximum(lat, 0) // FINE_BIN_US,
                np.minimum(N_FINE + (lat - FINE_LIMIT_US) // COARSE_BIN_US, N_BINS - 1),
            )
            hist = np.bincount(idx, minlength=N_BINS)
            bins = self.bins
            for i in np.flatnonzero(hist).tolist():
                bins[i] += int(hist[i])
            self.max_lat_us = max(self.max_lat_us, int(lat.max()))
            self.ticks += int(lat.size)
        self.p_now, self.p_ts, self.p_size, self.p_one = [], [], [], []
        self.p_ticks = 0


class Client(WSListener):
    __slots__ = ("st", "token", "sub_msg", "done", "next_seq", "transport", "live")

    def __init__(self, st: Stats, token: str, sub_msg: bytes | None, done: asyncio.Future) -> None:
        """`sub_msg` None: connect only (the upgrade is the end; no auth, no subscribe)."""
        self.st = st
        self.token = token
        self.sub_msg = sub_msg
        self.done = done
        self.next_seq: dict[str, int] = {}
        self.transport = None
        self.live = False

    def on_ws_connected(self, transport) -> None:
        self.transport = transport
        if self.sub_msg is None:
            self.done.set_result(time.perf_counter())
            return
        transport.send(WSMsgType.TEXT, b'{"type":"auth","token":"' + self.token.encode() + b'"}')

    def on_ws_disconnected(self, transport) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError("disconnected before subscribed"))
        elif self.live:
            self.st.dropped_live += 1

    def on_ws_frame(self, transport, frame) -> None:
        if frame.msg_type is not WSMsgType.TEXT:
            if frame.msg_type is WSMsgType.CLOSE:
                code = str(frame.get_close_code().value)
                cc = self.st.close_codes
                cc[code] = cc.get(code, 0) + 1
                transport.send_close(WSCloseCode.OK)
                transport.disconnect()
            return
        payload = frame.get_payload_as_bytes()
        st = self.st
        st.frames += 1
        st.bytes += len(payload)
        try:
            m = decoder.decode(payload)
        except Exception:
            st.undecodable += 1
            return
        tm = type(m)
        if tm is MarketDataBatch:
            self._batch(m, st)
        elif tm is MarketData:
            self._tick(m, st)
        elif tm is AuthSuccess:
            transport.send(WSMsgType.TEXT, self.sub_msg)
        elif tm is Subscribed:
            if not self.done.done():
                self.live = True
                self.done.set_result(time.perf_counter())
        elif tm is Degraded:
            st.degraded += 1
        elif tm is Gap:
            st.gap_notices += 1
        elif tm is Error:
            er = st.errors
            er[m.code] = er.get(m.code, 0) + 1
            if not self.done.done():
                self.done.set_exception(PermissionError(m.code))

    def _tick(self, m: MarketData, st: Stats) -> None:
        sym = m.symbol
        seq = m.seq
        exp = self.next_seq.get(sym)
        if exp is not None and seq != exp:
            if seq > exp:
                st.gaps += 1
                st.missing += seq - exp
            else:
                st.dups += 1
                return
        self.next_seq[sym] = seq + 1
        ts = m.ts
        if ts < st.window_ms:
            return
        now = time.time_ns()
        lat = now // 1000 - ts * 1000
        if st.fine:
            lat -= round((m.size - 1.0) * 1000)
        st.ticks += 1
        st.tick_frames += 1
        st.bins[lat // FINE_BIN_US if 0 <= lat < FINE_LIMIT_US else bin_of(lat)] += 1
        if lat > st.max_lat_us:
            st.max_lat_us = lat
        if not st.first_tick_ns:
            st.first_tick_ns = now
        st.last_tick_ns = now

    def _batch(self, m: MarketDataBatch, st: Stats) -> None:
        sym = m.symbol
        seq = m.seq
        count = m.count
        malformed = count != len(m.ts) or count != len(m.size) or not count
        if malformed:
            st.malformed += 1
        exp = self.next_seq.get(sym)
        if exp is not None and seq != exp:
            if seq > exp:
                st.gaps += 1
                st.missing += seq - exp
            else:
                st.dups += 1
                return
        self.next_seq[sym] = seq + count
        ts = m.ts
        if malformed or sum(ts) < st.window_ms:  # the last tick's ts is the sum of the deltas: all before the window
            return
        # Per-tick latency is computed later, vectorised (Stats.flush): here only O(1) appends.
        now = time.time_ns()
        st.p_now.append(now // 1000)
        st.p_ts.append(ts)
        st.p_size.append(m.size)
        st.p_one.append(10**m.size_decimals)
        st.p_ticks += count
        st.batch_frames += 1
        if not st.first_tick_ns:
            st.first_tick_ns = now
        st.last_tick_ns = now
        if st.p_ticks >= FLUSH_TICKS:
            st.flush()


def subscribe_message(symbols: list[str], mode: str | None, interval_ms: int | None) -> bytes:
    msg: dict[str, object] = {"type": "subscribe", "symbols": symbols}
    if mode:
        msg["mode"] = mode
    if interval_ms:
        msg["interval_ms"] = interval_ms
    return json.dumps(msg, separators=(",", ":")).encode()


def emit(tag: str, obj: dict) -> None:
    sys.stdout.write(tag + " " + json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def main(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    loop.call_later(args.deadline_s, lambda: (emit("RESULT", {"timeout": True}), os._exit(3)))
    fd_limit = raise_fd_limit(args.clients + 256)
    st = Stats()
    st.fine = args.fine_timing
    symbols = args.symbols.split(",")
    modes = args.mode.split(",") if args.mode else [None]
    secret = os.environ["TICKFAN_JWT_SECRET"]
    plans = []
    for i in range(args.clients):
        k = args.first_index + i
        syms = [symbols[(k + j) % len(symbols)] for j in range(args.symbols_per_client)]
        token = mint_token(secret, f"load-{k}")
        mode = modes[(k // len(symbols)) % len(modes)]  # every symbol sees every mode
        plans.append((token, syms, None if args.connect_only else subscribe_message(syms, mode, args.interval_ms)))

    sem = asyncio.Semaphore(args.concurrency)
    failures: dict[str, int] = {}
    subscribers: dict[str, int] = {}
    transports = []
    t0 = time.perf_counter()
    c0 = psutil.Process().cpu_times()

    async def open_one(token: str, syms: list[str], sub_msg: bytes | None) -> float | None:
        async with sem:
            done = loop.create_future()
            try:
                transport, _ = await asyncio.wait_for(
                    ws_connect(
                        lambda: Client(st, token, sub_msg, done),
                        args.url,
                        websocket_handshake_timeout=args.connect_timeout_s,
                        read_buffer_init_size=4096,
                        enable_auto_ping=False,
                    ),
                    args.connect_timeout_s,
                )
                transports.append(transport)
                t_sub = await asyncio.wait_for(done, args.connect_timeout_s)
            except Exception as exc:  # every failure is counted, by kind
                kind = type(exc).__name__ + (f":{exc}" if isinstance(exc, PermissionError) else "")
                failures[kind] = failures.get(kind, 0) + 1
                return None
        for s in syms if sub_msg is not None else ():
            subscribers[s] = subscribers.get(s, 0) + 1
        return t_sub - t0

    times = await asyncio.gather(*(open_one(*p) for p in plans))
    ok = sorted(t for t in times if t is not None)
    c1 = psutil.Process().cpu_times()
    connect_wall = time.perf_counter() - t0
    gc.collect()
    gc.freeze()
    emit(
        "READY",
        {
            "clients": args.clients,
            "subscribed": len(ok),
            "failed": args.clients - len(ok),
            "failures": failures,
            "subscribers": subscribers,
            "all_subscribed_s": ok[-1] if ok else None,
            "p50_subscribed_s": ok[len(ok) // 2] if ok else None,
            "connect_cpu_pct": 100.0 * (c1.user + c1.system - c0.user - c0.system) / connect_wall if connect_wall else None,
            "fd_limit": fd_limit,
            "pid": os.getpid(),
        },
    )

    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    me = psutil.Process()
    cpu0 = wall0 = None
    while True:
        raw = await reader.readline()
        line = raw.decode().strip()
        if not raw or line == "END":  # EOF: the orchestrator is gone
            break
        if line == "STATUS":
            emit("STATUS", {"ticks": st.ticks + st.p_ticks, "frames": st.frames})
        elif line.startswith("GO"):
            st.reset()
            st.window_ms = int(line.split()[1])
            c = me.cpu_times()
            cpu0, wall0 = c.user + c.system, time.perf_counter()
            emit("GOING", {})
    st.flush()
    c = me.cpu_times()
    cpu = (c.user + c.system - cpu0) if cpu0 is not None else 0.0
    wall = (time.perf_counter() - wall0) if wall0 is not None else 0.0
    emit(
        "RESULT",
        {
            "frames": st.frames,
            "bytes": st.bytes,
            "tick_frames": st.tick_frames,
            "batch_frames": st.batch_frames,
            "ticks": st.ticks,
            "gaps": st.gaps,
            "missing": st.missing,
            "dups": st.dups,
            "malformed": st.malformed,
            "undecodable": st.undecodable,
            "degraded": st.degraded,
            "gap_notices": st.gap_notices,
            "errors": st.errors,
            "close_codes": st.close_codes,
            "dropped_live": st.dropped_live,
            "max_lat_us": st.max_lat_us,
            "first_tick_ns": st.first_tick_ns,
            "last_tick_ns": st.last_tick_ns,
            "bins": to_sparse(st.bins),
            "cpu_s": cpu,
            "wall_s": wall,
            "rss_bytes": me.memory_info().rss,
        },
    )
    for t in transports:
        t.disconnect(graceful=False)
    os._exit(0)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="ws://127.0.0.1:PORT/ws/market-data")
    p.add_argument("--clients", type=int, required=True)
    p.add_argument("--first-index", type=int, default=0, help="index of this process's first client")
    p.add_argument("--symbols", required=True, help="comma-separated; client k takes symbols[k % n]...")
    p.add_argument("--symbols-per-client", type=int, default=1)
    p.add_argument("--mode", default=None, help="subscribe mode, or comma-separated modes taken in turn "
                   "(omitted: the server's default)")
    p.add_argument("--interval-ms", type=int, default=None)
    p.add_argument("--connect-only", action="store_true",
                   help="open the WebSocket and stop there: no auth, no subscribe (counted as subscribed)")
    p.add_argument("--concurrency", type=int, default=1000, help="handshakes in flight at once")
    p.add_argument("--connect-timeout-s", type=float, default=30.0)
    p.add_argument("--fine-timing", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--deadline-s", type=float, default=300.0, help="hard stop, whatever happens")
    return p.parse_args(argv)


if __name__ == "__main__":
    uvloop.run(main(parse_args()))
