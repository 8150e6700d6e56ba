"""A hypothesis-driven fuzzer of the WebSocket path against a real server, bounded in time.

Each hypothesis example opens a socket on one of the four channels, authenticates (or not, or
with a bad token) and sends a few frames: valid messages, messages with fields dropped, retyped
or out of range, arbitrary JSON, mutated text (truncated, spliced, numbers beyond a double, deep
nesting), binary frames, and now and then a frame over the 64 KiB limit. After every frame a ping
barrier collects the server's answers, which must be exactly what docs/protocol.md promises for
that frame (an independent oracle below, not the server's decoder): a defined error with the
socket left open, or the documented error then close (1008 before auth, 1009 over the limit),
never a close without an error, a close without a code or a dropped connection. All the while a
watching client receives a publisher's ticks, and its ``seq`` must stay contiguous.

Time: ``TICKFAN_FUZZ_SECONDS`` per core (default 18: under a minute for both cores in
``make test``, server start included); set it higher for a longer run
(``TICKFAN_FUZZ_SECONDS=600 .venv/bin/python -m pytest tests/e2e/test_fuzz_e2e.py``). Hypothesis
runs batches of 20 examples until the time is up (no shrinking: a failure prints the drawn
channel, auth and frames). The server runs with a generous rate limit so every frame gets an
answer; flooding has its own tests (test_socket_abuse_e2e.py).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from tickfan.protocol import ErrorCode
from tickfan_e2e import WATCHED, Server, Watcher

pytestmark = pytest.mark.e2e

FUZZ_SECONDS = float(os.environ.get("TICKFAN_FUZZ_SECONDS", "18"))
LIMIT = 64 * 1024
MAX_ID = 2**53 - 1

CHANNEL_TYPES: dict[str, frozenset[str]] = {
    "/ws/market-data": frozenset({"auth", "ping", "subscribe", "unsubscribe", "backfill_request"}),
    "/ws/bot-status": frozenset({"auth", "ping"}),
    "/ws/notifications": frozenset({"auth", "ping", "mark_read"}),
    "/ws/performance-metrics": frozenset({"auth", "ping", "set_interval"}),
}
ALL_TYPES = sorted(set().union(*CHANNEL_TYPES.values()))
UNSOLICITED = {"market_data", "market_data_batch", "metrics", "notification", "bot_status"}
ERROR_CODES = {code.value for code in ErrorCode}
MODES = ("tick", "batch", "conflate", "auto")
INTERVALS = ("1s", "1m", "5m", "1h")

# --- the oracle: what docs/protocol.md says each message is ---------------------------------------


def _is_int(v: Any, lo: int, hi: int) -> bool:
    return type(v) is int and lo <= v <= hi


def _is_number(v: Any) -> bool:
    return type(v) in (int, float) and not (isinstance(v, float) and (math.isinf(v) or math.isnan(v)))


def _is_symbols(v: Any) -> bool:
    return type(v) is list and len(v) <= 10_000 and all(type(s) is str for s in v)


def _finite(v: Any) -> bool:
    """No number beyond a double anywhere (the decoder refuses the frame whatever the field)."""
    if isinstance(v, float):
        return not (math.isinf(v) or math.isnan(v))
    if isinstance(v, list):
        return all(_finite(x) for x in v)
    if isinstance(v, dict):
        return all(_finite(x) for x in v.values())
    return True


def well_formed(m: dict[str, Any]) -> bool:
    """The message's fields have the documented types and ranges (its ``type`` is known)."""
    kind = m["type"]
    if kind == "auth":
        return type(m.get("token")) is str
    if kind == "ping":
        return _is_number(m.get("ts"))
    if kind == "subscribe":
        return (
            "symbols" in m and _is_symbols(m["symbols"])
            and m.get("mode", "auto") in MODES and type(m.get("mode", "auto")) is str
            and (m.get("interval_ms") is None or _is_int(m["interval_ms"], 10, 60_000))
        )  # fmt: skip
    if kind == "unsubscribe":
        return "symbols" in m and _is_symbols(m["symbols"])
    if kind == "backfill_request":
        return (
            "symbols" in m and _is_symbols(m["symbols"]) and _is_int(m.get("since"), 0, MAX_ID)
            and type(m.get("interval", "1m")) is str
        )  # fmt: skip
    if kind == "mark_read":
        ids = m.get("ids")
        return type(ids) is list and len(ids) <= 1000 and all(_is_int(i, 0, MAX_ID) for i in ids)
    if kind == "set_interval":
        return _is_int(m.get("interval_ms"), 250, 60_000)
    raise AssertionError(kind)


def _reject_constant(name: str) -> Any:
    raise ValueError(name)  # NaN, Infinity: not JSON


def _strings_valid(v: Any) -> bool:
    """No lone surrogate escape (``"\\ud95c"``) in any string: not Unicode, so not JSON text."""
    try:
        if isinstance(v, str):
            v.encode()
        elif isinstance(v, list):
            return all(_strings_valid(x) for x in v)
        elif isinstance(v, dict):
            return all(_strings_valid(k) and _strings_valid(x) for k, x in v.items())
    except UnicodeEncodeError:
        return False
    return True


def parse(frame: str) -> tuple[bool, Any]:
    try:
        value = json.loads(frame, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return False, None
    return _strings_valid(value), value


@dataclass
class Verdict:
    """What one frame must get: ``close`` (the error code, then its close code) or answers."""

    close: tuple[str, int] | None = None
    error: set[str] | None = None  # exactly one error frame, with one of these codes
    replies: set[str] = field(default_factory=set)  # else: at least one of these types (or errors in ok_errors)
    ok_errors: set[str] = field(default_factory=set)
    may_be_silent: bool = False
    auth_ok: bool = False


def expect(frame: str | bytes, path: str, authed: bool, good_token: str) -> Verdict:
    if isinstance(frame, bytes):
        return Verdict(close=("auth_required", 1008)) if not authed else Verdict(error={"invalid_message"})
    if len(frame.encode()) > LIMIT:
        return Verdict(close=("message_too_large", 1009))
    ok, value = parse(frame)  # Python's parser: too deep (RecursionError) or not JSON -> not ok
    # Fields of a known type are checked; unknown fields are skipped whatever they hold.
    valid = (
        ok and isinstance(value, dict) and type(value.get("type")) is str and value["type"] in CHANNEL_TYPES[path]
        and well_formed(value)
    )  # fmt: skip
    if not authed:
        if valid and value["type"] == "auth" and value["token"] == good_token:
            return Verdict(auth_ok=True, replies={"auth_success"})
        return Verdict(close=("auth_required", 1008))
    if not ok:
        return Verdict(error={"invalid_json", "invalid_message"})
    if not valid and not _finite(value):
        return Verdict(error={"invalid_message"})  # the second, untyped pass refuses the number
    if not isinstance(value, dict) or type(value.get("type")) is not str:
        return Verdict(error={"invalid_message"})
    kind = value["type"]
    if kind not in CHANNEL_TYPES[path]:
        return Verdict(error={"unknown_type"})
    if not valid:
        return Verdict(error={"invalid_message"})
    if kind == "auth":
        if value["token"] == good_token:
            return Verdict(replies={"auth_success"})
        return Verdict(close=("auth_required", 1008))
    if kind == "ping":
        return Verdict(replies={"pong"})
    if kind == "subscribe":
        return Verdict(replies={"subscribed"}, ok_errors={"unknown_symbol", "too_many_symbols", "invalid_message"})
    if kind == "unsubscribe":
        return Verdict(replies={"unsubscribed"})
    if kind == "backfill_request":
        return Verdict(replies={"backfill"}, ok_errors={"unknown_symbol", "invalid_message"}, may_be_silent=not value["symbols"])
    if kind == "mark_read":
        return Verdict(replies={"marked_read"})
    return Verdict(may_be_silent=True)  # set_interval: no reply


# --- strategies ---------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)  # fmt: skip
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=5
)
symbols = st.lists(st.sampled_from(["BTC/USD", "ETH/USD", "SOL/USD", WATCHED, "NOPE/USD", "", "btc/usd"]), max_size=5)


def _field(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(good, good, good, good, good, json_values)  # mostly right, sometimes anything


FIELDS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "auth": {"token": st.just("GOOD") | st.text(max_size=40)},
    "ping": {"ts": st.integers(-(2**64), 2**64) | st.floats(allow_nan=False, allow_infinity=False)},
    "subscribe": {
        "symbols": symbols, "mode": st.sampled_from([*MODES, "turbo"]),
        "interval_ms": st.none() | st.integers(0, 70_000),
    },
    "unsubscribe": {"symbols": symbols},
    "backfill_request": {
        "symbols": symbols, "since": st.integers(-5, 2**54), "interval": st.sampled_from([*INTERVALS, "7m"]),
    },
    "mark_read": {"ids": st.lists(st.integers(-1, 2**54), max_size=5)},
    "set_interval": {"interval_ms": st.integers(0, 70_000)},
}  # fmt: skip


@st.composite
def messages(draw: st.DrawFn, path: str) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)  # not even an object with a type, usually
    if draw(st.integers(0, 2)):
        kind = draw(st.sampled_from(sorted(CHANNEL_TYPES[path])))  # mostly this channel's own types
    else:
        kind = draw(st.sampled_from([*ALL_TYPES, "teleport", ""]))
    message: dict[str, Any] = {"type": kind if draw(st.integers(0, 19)) else draw(json_values)}
    for name, strategy in FIELDS.get(kind, {}).items():
        if draw(st.integers(0, 7)):  # sometimes missing
            message[name] = draw(_field(strategy))
    if draw(st.integers(0, 5)) == 0:
        message[draw(st.text(max_size=6))] = draw(json_values)  # an unknown field (ignored)
    return message


@st.composite
def frames(draw: st.DrawFn, path: str, good_token: str) -> str | bytes:
    text = json.dumps(draw(messages(path))).replace('"GOOD"', json.dumps(good_token))
    how = draw(st.integers(0, 29))
    if how < 18:
        return text
    if how < 21:  # truncated
        return text[: draw(st.integers(0, max(0, len(text) - 1)))]
    if how < 23:  # a character spliced in
        at = draw(st.integers(0, len(text)))
        return text[:at] + draw(st.sampled_from(list('{}[]",:\\0e-') + ["\x00", "é", "😀"])) + text[at:]
    if how < 25:  # a number beyond a double (or 400 digits, or a non-JSON constant) as a field's value
        bad = draw(st.sampled_from(["1e400", "-1e400", "NaN", "Infinity", "1" * 400, "1e-400"]))
        key = draw(st.sampled_from(['"ts": ', '"interval_ms": ', '"since": ', '"token": ', '"type": ']))
        return text.replace(key, key + bad + ", " + key[:-3] + '_": ', 1)
    if how < 27:  # deep nesting, alone or as a field: well within or well past the decoders' limits
        depth = draw(st.integers(100, 400) | st.integers(2000, 5000))
        nest = draw(st.sampled_from(["[", '{"a":']))
        closing = "]" if nest == "[" else "}"
        deep = nest * depth + "1" + closing * depth
        return deep if draw(st.booleans()) else text[:-1] + (', "x": ' if len(text) > 2 else '"x": ') + deep + "}"
    if how < 29:
        return text.encode()  # binary
    return json.dumps({"type": "ping", "ts": 1, "pad": "x" * draw(st.integers(LIMIT - 20, LIMIT + 4000))})


# --- one hypothesis example: a socket and a few frames ----------------------------------------------


@dataclass
class Stats:
    frames: int = 0
    closes: dict[int, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)


async def _answers(ws: ClientConnection, marker: int) -> tuple[list[dict[str, Any]], int | None, bool]:
    """Everything the server sends until the pong of ``marker``: (answers, close code, closed)."""
    await ws.send(json.dumps({"type": "ping", "ts": marker}))
    out: list[dict[str, Any]] = []
    try:
        while True:
            m = json.loads(await asyncio.wait_for(ws.recv(), 15))
            if m.get("type") == "pong" and m.get("ts") == marker:
                return out, None, False
            if m.get("type") not in UNSOLICITED:
                out.append(m)
    except ConnectionClosed as exc:
        return out, (exc.rcvd.code if exc.rcvd is not None else None), True


async def _close_after(ws: ClientConnection) -> tuple[list[dict[str, Any]], int | None]:
    out: list[dict[str, Any]] = []
    try:
        while True:
            m = json.loads(await asyncio.wait_for(ws.recv(), 15))
            if m.get("type") not in UNSOLICITED:
                out.append(m)
    except ConnectionClosed as exc:
        return out, (exc.rcvd.code if exc.rcvd is not None else None)


def check(verdict: Verdict, answers: list[dict[str, Any]], code: int | None, closed: bool, where: str) -> None:
    errors = [a for a in answers if a.get("type") == "error"]
    for e in errors:
        assert e.get("code") in ERROR_CODES and isinstance(e.get("error"), str) and e["error"], where
    if verdict.close is not None:
        error, close = verdict.close
        assert closed and code == close, f"{where}: expected {error} then {close}, got close {code} after {answers}"
        assert [e["code"] for e in errors] == [error], f"{where}: {answers}"
        return
    assert not closed, f"{where}: unexpected close {code} after {answers}"
    if verdict.error is not None:
        assert len(answers) == 1 and errors and errors[0]["code"] in verdict.error, f"{where}: expected one of {verdict.error}, got {answers}"
        return
    kinds = {a.get("type") for a in answers}
    if verdict.may_be_silent and not answers:
        return
    assert answers, f"{where}: no answer"
    assert kinds & verdict.replies or {e["code"] for e in errors} & verdict.ok_errors, f"{where}: expected {verdict.replies}, got {answers}"
    assert {e["code"] for e in errors} <= verdict.ok_errors, f"{where}: {answers}"


async def fuzz_one(server: Server, path: str, sub: str, auth: str, frames_: list[str | bytes], good: str, stats: Stats) -> None:
    marker = random.getrandbits(62) + 1
    ws = await server.connect(path, max_size=None)
    authed = False
    try:
        if auth != "none":
            token = good if auth == "good" else auth
            await ws.send(json.dumps({"type": "auth", "token": token}))
            if auth == "good":
                answers, code, closed = await _answers(ws, marker)
                assert not closed and answers and answers[0]["type"] == "auth_success", (answers, code)
                authed = True
            else:
                answers, code = await _close_after(ws)
                check(Verdict(close=("auth_required", 1008)), answers, code, True, f"bad token {auth!r} on {path}")
                return
        for i, frame in enumerate(frames_):
            verdict = expect(frame, path, authed, good)
            stats.frames += 1
            await ws.send(frame)
            if verdict.close is not None:
                answers, code = await _close_after(ws)
                closed = True
            else:
                marker += 1
                answers, code, closed = await _answers(ws, marker)
            where = f"frame {i} on {path} (authenticated: {authed}): {str(frame)[:300]!r}"
            check(verdict, answers, code, closed, where)
            for a in answers:
                if a.get("type") == "error":
                    stats.errors[a["code"]] = stats.errors.get(a["code"], 0) + 1
            if closed:
                stats.closes[code or 0] = stats.closes.get(code or 0, 0) + 1
                return
            if verdict.auth_ok:
                authed = True
    finally:
        await ws.close()


def fuzz_batch(server: Server, stats: Stats, examples: int) -> Callable[[], None]:
    @settings(
        max_examples=examples, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    @given(data=st.data())
    def batch(data: st.DataObject) -> None:
        path = data.draw(st.sampled_from(sorted(CHANNEL_TYPES)), label="path")
        sub = f"fuzz-{random.getrandbits(32):08x}"
        good = server.token(sub)
        auth = data.draw(st.sampled_from(["good", "good", "good", "none", "not-a-token"]), label="auth")
        frames_ = data.draw(st.lists(frames(path, good), min_size=1, max_size=8), label="frames")
        asyncio.run(asyncio.wait_for(fuzz_one(server, path, sub, auth, frames_, good, stats), 60))

    return batch


# --- the test -------------------------------------------------------------------------------------


def _watch(server: Server, stop: threading.Event, result: dict[str, Any]) -> None:
    async def main() -> None:
        async with Watcher(server) as watcher:
            while not stop.is_set():
                await asyncio.sleep(0.05)
            await watcher.finish()
            result["published"] = watcher.published
            result["seqs"] = list(watcher.seqs)

    try:
        asyncio.run(main())
    except BaseException as exc:  # noqa: BLE001 - reported by the test
        result["error"] = exc


def test_fuzz_the_socket_path_while_a_watcher_keeps_a_contiguous_stream(fresh_server: Callable[..., Server]) -> None:
    # A generous rate limit: the oracle expects an answer to every frame, not rate_limited drops.
    server = fresh_server("--rate-limit-per-s", "100000", "--rate-limit-burst", "100000", "--auth-timeout-ms", "20000")
    stop, result = threading.Event(), {}
    watcher = threading.Thread(target=_watch, args=(server, stop, result), name="fuzz-watcher")
    watcher.start()
    stats = Stats()
    deadline = time.monotonic() + FUZZ_SECONDS
    try:
        while time.monotonic() < deadline:
            fuzz_batch(server, stats, examples=20)()
    finally:
        stop.set()
        watcher.join(60)
    assert "error" not in result, result.get("error")
    seqs = result["seqs"]
    assert result["published"] > 0 and len(seqs) == result["published"]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert server.proc is not None and server.proc.poll() is None
    assert httpx.get(server.http + "/healthz", timeout=5).status_code == 200
    print(f"fuzzed {stats.frames} frames; errors {stats.errors}; closes {stats.closes}; watcher got {len(seqs)} ticks")
    assert stats.frames > 0
