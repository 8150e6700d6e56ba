"""The publisher: ticks at a fixed total rate through the public ingest path, POST /api/ticks.

One keep-alive HTTP/1.1 connection to 127.0.0.1, a bearer token with scope "publish". Every
--post-interval-ms it sends the ticks that are due (rate x elapsed - sent), round-robin over the
symbols, each stamped at send time: `ts` in ms and the microseconds within that ms in `size`
(see wire.py). A POST answered late simply makes the next one larger, so the offered rate holds
as long as the server answers at all; the achieved rate is reported. It stops by itself after
--duration-s and prints one `RESULT {...}` line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time

import msgspec
import uvloop

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wire import START_PRICE, fine_size, mint_token  # noqa: E402


class HttpConnection:
    """The smallest keep-alive HTTP/1.1 client that POSTs JSON and reads the answer."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(self, method: str, path: str, token: str, body: bytes = b"") -> tuple[int, bytes]:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("server closed the connection")
        status = int(status_line.split()[1])
        length, chunked = 0, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        if chunked:
            parts = []
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                data = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(data[:-2])
            return status, b"".join(parts)
        return status, await self.reader.readexactly(length)


async def fetch_symbols(host: str, port: int, token: str) -> dict[str, tuple[int, int]] | None:
    """GET /api/symbols as {name: (price_decimals, size_decimals)}; None if not served."""
    conn = HttpConnection(host, port)
    try:
        await conn.open()
        status, body = await asyncio.wait_for(conn.request("GET", "/api/symbols", token), 10)
    except (OSError, asyncio.TimeoutError, ValueError):
        return None
    finally:
        if getattr(conn, "writer", None):
            conn.writer.close()
    if status != 200:
        return None
    data = json.loads(body)
    items = data.get("symbols", data) if isinstance(data, dict) else data
    if isinstance(items, dict):  # {name: {...}} rather than [{"symbol": name, ...}]
        items = [{"symbol": k, **v} for k, v in items.items() if isinstance(v, dict)]
    out: dict[str, tuple[int, int]] = {}
    for it in items:
        name = it.get("symbol") or it.get("name") if isinstance(it, dict) else None
        if name:
            out[name] = (int(it.get("price_decimals", 2)), int(it.get("size_decimals", 8)))
    return out or None


async def publish(args: argparse.Namespace) -> dict:
    secret = os.environ["TICKFAN_JWT_SECRET"]
    token = mint_token(secret, "load-publisher", scope="publish")
    symbols = args.symbols.split(",")
    decimals = {s: tuple(v) for s, v in json.loads(args.decimals).items()} if args.decimals else {}
    pdec = {s: decimals.get(s, (2, 8))[0] for s in symbols}
    sdec = {s: decimals.get(s, (2, 8))[1] for s in symbols}
    rng = random.Random(args.seed)
    price = {s: START_PRICE.get(s, 1) * 10 ** pdec[s] for s in symbols}
    accepted = {s: 0 for s in symbols}
    conn = HttpConnection(args.host, args.port)
    await conn.open()
    encoder = msgspec.json.Encoder()
    interval = args.post_interval_ms / 1000
    # A server slower than the offer gets larger POSTs, up to half a second of ticks each.
    max_batch = args.max_batch or max(int(args.rate / 2), 1)
    unacked = 0
    unacked_per_symbol: dict[str, int] = {}
    n_sym = len(symbols)
    sent = posts = failed = 0
    errors: list[str] = []
    post_ms: list[float] = []
    last_ts = 0
    start = time.perf_counter()
    start_ns = time.time_ns()
    end = start + args.duration_s
    next_post = start
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        due = min(int(args.rate * (now - start)) - sent, max_batch)
        if due > 0:
            t_ns = time.time_ns()
            ts = max(t_ns // 1_000_000, last_ts)
            last_ts = ts
            t_us = ts * 1000 + (t_ns // 1000) % 1000 if ts == t_ns // 1_000_000 else ts * 1000
            batch = []
            counts: dict[str, int] = {}
            for j in range(due):
                s = symbols[(sent + j) % n_sym]
                p = price[s] + rng.choice((-1, 0, 1)) * 10 ** max(pdec[s] - 2, 0)
                price[s] = p = max(p, 1)
                batch.append({"symbol": s, "price": p / 10 ** pdec[s], "size": fine_size(t_us, sdec[s]), "ts": ts})
                counts[s] = counts.get(s, 0) + 1
            body = encoder.encode(batch)
            t_post = time.perf_counter()
            try:
                status, reply = await asyncio.wait_for(
                    conn.request("POST", args.path, token, body), max(end - t_post, 0) + args.grace_s
                )
            except (OSError, asyncio.TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:
                # Sent but never answered: the server may still apply these ticks.
                failed += 1
                unacked += due
                sent += due
                errors.append(f"{type(exc).__name__} after {time.perf_counter() - t_post:.1f} s: {exc}")
                for s_, c in counts.items():
                    unacked_per_symbol[s_] = unacked_per_symbol.get(s_, 0) + c
                break
            post_ms.append((time.perf_counter() - t_post) * 1000)
            posts += 1
            sent += due
            if status == 202:
                for s, c in counts.items():
                    accepted[s] += c
            else:
                failed += 1
                if len(errors) < 5:
                    errors.append(f"{status}: {reply[:300].decode(errors='replace')}")
        next_post += interval
        delay = next_post - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            next_post = time.perf_counter()
    duration = time.perf_counter() - start
    conn.writer.close()
    post_ms.sort()
    total = sum(accepted.values())
    return {
        "rate_target": args.rate,
        "sent": sent,
        "accepted": total,
        "accepted_per_symbol": accepted,
        "unacked": unacked,
        "unacked_per_symbol": unacked_per_symbol,
        "rate_accepted": total / duration if duration else 0.0,
        "posts": posts,
        "failed_posts": failed,
        "errors": errors[:5],
        "start_ns": start_ns,
        "duration_s": duration,
        "post_ms_p50": post_ms[len(post_ms) // 2] if post_ms else None,
        "post_ms_p99": post_ms[int(len(post_ms) * 0.99)] if post_ms else None,
        "post_ms_max": post_ms[-1] if post_ms else None,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", choices=["127.0.0.1"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/api/ticks")
    p.add_argument("--rate", type=float, required=True, help="ticks per second, all symbols together")
    p.add_argument("--symbols", required=True, help="comma-separated, published round-robin")
    p.add_argument("--decimals", default="", help='JSON {"SYM": [price_decimals, size_decimals]}')
    p.add_argument("--duration-s", type=float, required=True)
    p.add_argument("--post-interval-ms", type=float, default=10.0)
    p.add_argument("--max-batch", type=int, default=0, help="ticks per POST at most (0: half a second's worth)")
    p.add_argument("--grace-s", type=float, default=5.0, help="how long a late answer is awaited")
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args(argv)


async def main(args: argparse.Namespace) -> None:
    result = await asyncio.wait_for(publish(args), args.duration_s + args.grace_s + 5)
    sys.stdout.write("RESULT " + json.dumps(result, separators=(",", ":")) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    uvloop.run(main(parse_args()))
