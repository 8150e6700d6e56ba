"""``tickfan tail [SYMBOL...]``: print a channel's events, one per line, on the SDK.

stdout carries the data (ticks, or bot statuses, notifications, metrics; with ``--since`` first
the candles of the backfill); stderr carries what happened to the stream (``! gap ...``,
``~ disconnected ...``, ``~ reconnected ...``). Exit status: 0 done (``--count``, ``--duration``,
Ctrl-C, or the stream ended), 1 protocol error, 2 usage, 3 the server refused the token, 4 a gap
with ``--strict``. Imports nothing of the server: the SDK, plus ``tickfan.auth`` (PyJWT) only when
it mints the token itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

import httpx
import msgspec

from tickfan.client.channel import Options
from tickfan.client.client import Client
from tickfan.client.errors import ApiError, AuthError, ClientError, ProtocolError
from tickfan.client.events import (
    Backfill,
    BotStatus,
    Disconnected,
    Gap,
    Metrics,
    Notification,
    Reconnected,
    SeqReset,
    ServerError,
    Subscribed,
    SubscribeError,
    Tick,
    Unknown,
)
from tickfan.client.tokens import TokenProvider

__all__ = ["add_parser", "run", "parse_duration_ms"]

EXIT_DONE, EXIT_PROTOCOL, EXIT_USAGE, EXIT_AUTH, EXIT_GAP = 0, 1, 2, 3, 4
DEFAULT_USER = "local"  # the dashboard's local user: the same sub sees the same bots and notifications
MINTED_TTL_S = 900  # minted tokens are refreshed in-band at 80 % of this
_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_encode = msgspec.json.Encoder().encode


class UsageError(Exception):
    """Bad arguments or set-up: exit status 2."""


def parse_duration_ms(text: str) -> int:
    """``500ms``, ``30s``, ``5m``, ``2h``, ``1d``, or a bare number of seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 30s, 5m, 2h)")
    return int(float(match.group(1)) * _UNITS_MS[match.group(2) or "s"])


def add_parser(sub: Any) -> None:
    tail = sub.add_parser(
        "tail", help="print live ticks (or bots, notifications, metrics), one per line",
        description="Print a channel's events one per line on stdout; gaps and reconnects on stderr. "
                    "Exit: 0 done, 1 protocol error, 2 usage, 3 token refused, 4 gap with --strict.",
    )  # fmt: skip
    tail.add_argument("symbols", nargs="*", metavar="SYMBOL", help="symbols (market channel; default BTC/USD)")
    tail.add_argument("--url", default="http://127.0.0.1:8000", help="the server (default http://127.0.0.1:8000)")
    tail.add_argument("--channel", choices=("market", "bots", "notifications", "metrics"), default="market")
    tail.add_argument("--mode", choices=("auto", "tick", "batch", "conflate"), default="auto", help="market subscription mode")
    tail.add_argument("--interval-ms", type=int, default=None, help="batch/conflate window, or the metrics period")
    tail.add_argument("--format", choices=("text", "jsonl"), default="text")
    tail.add_argument("--count", type=int, default=None, metavar="N", help="stop after N lines of data")
    tail.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    tail.add_argument("--since", type=parse_duration_ms, default=None, metavar="AGO",
                      help="first print the candles of the last AGO (e.g. 5m)")
    tail.add_argument("--candles", choices=("1s", "1m", "5m", "1h"), default="1m", help="backfill candle interval")
    tail.add_argument("--strict", action="store_true", help="exit 4 at the first gap")
    tail.add_argument("--no-reconnect", dest="reconnect", action="store_false", help="stop when the socket closes")
    tail.add_argument("--token", default=None, help="a JWT [TICKFAN_TOKEN]; else one is minted from --data-dir's secret")
    tail.add_argument("--data-dir", dest="data_dir", default=None, help="the server's data dir, to mint a token [TICKFAN_DATA_DIR]")
    tail.add_argument("--sub", default=DEFAULT_USER, help=f"the user of a minted token (default {DEFAULT_USER})")


def token_provider(args: argparse.Namespace) -> TokenProvider:
    """``--token``, else ``TICKFAN_TOKEN``, else a provider minting short-lived tokens as
    ``tickfan token`` would (the secret is read, never created)."""
    if args.token:
        return str(args.token)
    if os.environ.get("TICKFAN_TOKEN"):
        return os.environ["TICKFAN_TOKEN"]
    from tickfan.auth import SECRET_FILE, mint, recorded_algorithm
    from tickfan.config import Config
    from tickfan.errors import ConfigError

    try:
        config = Config.build({"data_dir": Path(args.data_dir) if args.data_dir else None})
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    for algorithm in (config.jwt_algorithm, recorded_algorithm(config.data_dir)):
        if algorithm is not None and algorithm != "HS256":
            raise UsageError(f"the server accepts {algorithm} tokens, which only your identity provider can sign; "
                             "pass --token or set TICKFAN_TOKEN")
    secret = config.jwt_secret
    if not secret:
        try:
            secret = (config.data_dir / SECRET_FILE).read_text().strip()
        except OSError:
            raise UsageError(f"no token: pass --token, set TICKFAN_TOKEN, or point --data-dir at the server's "
                             f"data dir (no JWT secret in {str(config.data_dir)!r})") from None
    ttl = min(MINTED_TTL_S, config.jwt_max_lifetime_s)
    audience, issuer, sub = config.jwt_audience, config.jwt_issuer, args.sub

    def provide() -> str:
        return mint(secret, sub, ttl_s=ttl, audience=audience, issuer=issuer)

    return provide


def iso(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms // 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{ts_ms % 1000:03d}Z"


def decimal(value: float, decimals: int | None, *, strip: bool = False) -> str:
    if decimals is None:
        return repr(value)
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if strip and "." in text else text


class Printer:
    """Formats events; returns True for a line of data (what ``--count`` counts)."""

    def __init__(self, fmt: str, decimals: dict[str, tuple[int, int]], out: TextIO, err: TextIO) -> None:
        self.jsonl = fmt == "jsonl"
        self.decimals = decimals
        self.out, self.err = out, err
        self.reconnected = False

    def data(self, text: str) -> bool:
        print(text, file=self.out, flush=True)
        return True

    def note(self, text: str) -> bool:
        print(text, file=self.err, flush=True)
        return False

    def __call__(self, ev: Any) -> bool:
        if isinstance(ev, Tick):
            if self.jsonl:
                return self.data(_encode(ev).decode())
            pd, sd = self.decimals.get(ev.symbol, (None, None))
            return self.data(f"{iso(ev.ts)} {ev.symbol} {decimal(ev.price, pd)} {decimal(ev.size, sd, strip=True)} #{ev.seq}")
        if isinstance(ev, Backfill):
            if self.reconnected:
                return self.note(f"~ backfilled {ev.symbol}: {len(ev.candles)} candles of {ev.interval} since {iso(ev.since or 0)}")
            if self.jsonl:
                self.data(_encode(ev).decode())
                return False
            pd = self.decimals.get(ev.symbol, (None, None))[0]
            for c in ev.candles:
                prices = " ".join(decimal(p, pd) for p in (c.open, c.high, c.low, c.close))
                self.data(f"{iso(c.ts)} {ev.symbol} candle {ev.interval} {prices} {decimal(c.volume, 12, strip=True)}")
            return False
        if isinstance(ev, BotStatus):
            if self.jsonl:
                return self.data(_encode(ev).decode())
            detail = "" if ev.detail is None else " " + _encode(ev.detail).decode()
            return self.data(f"{iso(ev.ts)} {ev.bot_id} {ev.status} running={ev.running_count}{detail}")
        if isinstance(ev, Notification):
            if self.jsonl:
                return self.data(_encode({"type": "notification", "notification": ev}).decode())
            return self.data(f"{iso(ev.created_at)} #{ev.id} [{ev.kind}] {ev.title}{' (read)' if ev.read else ''}")
        if isinstance(ev, Metrics):
            if self.jsonl:
                return self.data(_encode(ev).decode())
            conns = sum((ev.connections or {}).values())
            p99 = (ev.fanout_latency_ms or {}).get("p99")
            rss = f"{ev.rss_bytes / 2**20:.0f}MiB" if ev.rss_bytes is not None else "?"
            return self.data(f"{iso(ev.ts)} core={ev.core} connections={conns} in={ev.ticks_in_per_s}/s "
                             f"out={ev.messages_out_per_s}/s p99={p99}ms rss={rss}")
        if isinstance(ev, Gap):
            count = "?" if ev.to_seq is None else ev.to_seq - ev.from_seq + 1  # None: a server's epoch gap
            return self.note(f"! gap {ev.symbol}: seq {ev.from_seq}..{ev.to_seq} missing ({count} ticks, {ev.reason})")
        if isinstance(ev, Disconnected):
            code = "no close frame" if ev.code is None else f"code {ev.code}"
            return self.note(f"~ disconnected ({code}: {ev.reason or '-'}); retrying in {ev.retry_in_s:.1f} s")
        if isinstance(ev, Reconnected):
            self.reconnected = True
            return self.note(f"~ reconnected (connection {ev.connection}, after {ev.attempts} failed attempts)")
        if isinstance(ev, SeqReset):
            return self.note(f"~ the server restarted: seq numbering reset (epoch {ev.previous_epoch} -> {ev.epoch})")
        if isinstance(ev, (SubscribeError, ServerError)):
            return self.note(f"! {ev.code}: {ev.error}")
        if isinstance(ev, Unknown):
            return self.note(f"? unknown message type {ev.kind!r}")
        if isinstance(ev, Subscribed):
            return False
        return False


async def tail(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    provider = token_provider(args)
    symbols = list(dict.fromkeys(args.symbols)) or ["BTC/USD"]
    if args.symbols and args.channel != "market":
        raise UsageError("symbols apply to --channel market only")
    options = Options(reconnect=args.reconnect)
    async with Client(args.url, token=provider, options=options) as client:
        decimals: dict[str, tuple[int, int]] = {}
        if args.channel == "market":
            try:
                decimals = {s.symbol: (s.price_decimals, s.size_decimals) for s in await client.symbols()}
            except httpx.HTTPError as exc:
                print(f"tickfan tail: cannot reach {args.url}: {exc}", file=err)
                return EXIT_PROTOCOL
            unknown = [s for s in symbols if s not in decimals]
            if unknown:
                raise UsageError(f"unknown symbols: {', '.join(unknown)} (GET /api/symbols lists them)")
            since = time.time_ns() // 1_000_000 - args.since if args.since is not None else None
            channel: Any = client.market(symbols, mode=args.mode, interval_ms=args.interval_ms,
                                         backfill=args.candles, since_ms=since)
        elif args.channel == "bots":
            channel = client.bot_status()
        elif args.channel == "notifications":
            channel = client.notifications()
        else:
            channel = client.metrics(args.interval_ms)
        show = Printer(args.format, decimals, out, err)
        lines = 0
        timeout = asyncio.timeout(args.duration) if args.duration is not None else contextlib.nullcontext()
        try:
            async with timeout:
                async for ev in channel:
                    if show(ev):
                        lines += 1
                        if args.count is not None and lines >= args.count:
                            return EXIT_DONE
                    if isinstance(ev, Gap) and args.strict:
                        return EXIT_GAP
        except TimeoutError:
            return EXIT_DONE
    return EXIT_DONE


def run(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run ``tickfan tail``; return the exit status."""
    if args.count is not None and args.count < 1 or args.duration is not None and args.duration <= 0:
        print("tickfan tail: --count and --duration must be > 0", file=err)
        return EXIT_USAGE
    try:
        return asyncio.run(tail(args, out, err))
    except KeyboardInterrupt:
        return EXIT_DONE
    except UsageError as exc:
        print(f"tickfan tail: {exc}", file=err)
        return EXIT_USAGE
    except AuthError as exc:
        print(f"tickfan tail: {exc}", file=err)
        return EXIT_AUTH
    except (ProtocolError, ApiError, ClientError) as exc:
        print(f"tickfan tail: {exc}", file=err)
        return EXIT_PROTOCOL
    except BrokenPipeError:
        return EXIT_DONE
