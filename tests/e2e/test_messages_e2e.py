"""PROTOCOL.md section 2 against a real server: ping, recoverable errors, limits, isolation."""

from __future__ import annotations

import asyncio
import json

import pytest

from tickfan_e2e import Server, expect_close, now_ms, recv_json, recv_until, run

pytestmark = pytest.mark.e2e


def test_ping_echoes_ts_and_adds_server_ts(server: Server) -> None:
    async def scenario() -> list[dict[str, object]]:
        async with await server.authed() as ws:
            out = []
            for ts in (1731283200123, 12.5):
                await ws.send(json.dumps({"type": "ping", "ts": ts}))
                out.append(await recv_json(ws))
            return out

    before = now_ms()
    first, second = run(scenario())
    assert first["type"] == "pong" and first["ts"] == 1731283200123
    assert second["ts"] == 12.5
    assert isinstance(first["server_ts"], int) and first["server_ts"] >= before


RECOVERABLE = [
    ("{not json", "invalid_json"),
    ('"a string"', "invalid_message"),
    ("[1, 2, 3]", "invalid_message"),
    ('{"no_type": 1}', "invalid_message"),
    ('{"type": 5}', "invalid_message"),
    ('{"type": "teleport"}', "unknown_type"),
    ('{"type": "ping"}', "invalid_message"),
    ('{"type": "ping", "ts": "soon"}', "invalid_message"),
    ('{"type": "subscribe", "symbols": "BTC/USD"}', "invalid_message"),
    ('{"type": "subscribe", "symbols": [1, 2]}', "invalid_message"),
    ('{"type": "subscribe", "symbols": ["BTC/USD"], "mode": "turbo"}', "invalid_message"),
    ('{"type": "subscribe", "symbols": ["BTC/USD"], "interval_ms": 5}', "invalid_message"),
    ('{"type": "subscribe", "symbols": ["BTC/USD"], "interval_ms": 60001}', "invalid_message"),
    ('{"type": "subscribe", "symbols": ["BTC/USD"], "interval_ms": "50"}', "invalid_message"),
    ('{"type": "backfill_request", "symbols": ["BTC/USD"]}', "invalid_message"),
    ('{"type": "backfill_request", "symbols": ["BTC/USD"], "since": -1}', "invalid_message"),
    ('{"type": "backfill_request", "symbols": ["BTC/USD"], "since": 0, "interval": "7m"}', "invalid_message"),
    ('{"type": "subscribe", "symbols": ["NOPE/USD"]}', "unknown_symbol"),
    # Numbers out of range and deep nesting: the decoder raised past the session (socket dropped, 1005).
    ('{"type": "ping", "ts": 1e400}', "invalid_message"),
    ('{"type": "auth", "token": 1e400}', "invalid_message"),
    ('{"type": "subscribe", "symbols": ["BTC/USD"], "interval_ms": -1e400}', "invalid_message"),
    ('{"type": "ping", "ts": ' + "[" * 3000 + "]" * 3000 + "}", "invalid_message"),
    ("[" * 3000 + "]" * 3000, "invalid_message"),
    ('{"type": "ping", "ts": 1, "x": ' + '{"a":' * 3000 + "1" + "}" * 3000 + "}", "invalid_message"),
]


@pytest.mark.parametrize("frame,code", RECOVERABLE, ids=[c + ":" + f[:30] for f, c in RECOVERABLE])
def test_recoverable_errors_keep_the_socket_open(server: Server, frame: str, code: str) -> None:
    async def scenario() -> tuple[dict[str, object], dict[str, object]]:
        async with await server.authed() as ws:
            await ws.send(frame)
            error = await recv_json(ws)
            await ws.send(json.dumps({"type": "ping", "ts": 3}))
            pong, _ = await recv_until(ws, lambda m: m["type"] == "pong")
            return error, pong

    error, pong = run(scenario())
    assert error["type"] == "error" and error["code"] == code
    assert isinstance(error["error"], str) and error["error"]
    assert pong["ts"] == 3


def test_unknown_symbols_are_named_and_known_ones_still_subscribed(server: Server) -> None:
    async def scenario() -> tuple[dict[str, object], dict[str, object]]:
        async with await server.authed() as ws:
            await ws.send(json.dumps({"type": "subscribe", "symbols": ["ETH/USD", "NOPE/XYZ"], "mode": "tick"}))
            error = await recv_json(ws)
            ack, _ = await recv_until(ws, lambda m: m["type"] == "subscribed")
            return error, ack

    error, ack = run(scenario())
    assert error["code"] == "unknown_symbol" and "NOPE/XYZ" in str(error["error"])
    assert ack["symbols"] == ["ETH/USD"]


def test_too_many_symbols_applies_nothing(server: Server) -> None:
    # the session server allows 6 symbols per connection
    async def scenario() -> tuple[dict[str, object], dict[str, object]]:
        async with await server.authed() as ws:
            many = ["BTC/USD", "ETH/USD", "SOL/USD", "XRP/USD", "ADA/USD", "DOGE/USD", "LTC/USD"]
            await ws.send(json.dumps({"type": "subscribe", "symbols": many, "mode": "tick"}))
            error = await recv_json(ws)
            await ws.send(json.dumps({"type": "subscribe", "symbols": many[:6], "mode": "tick"}))
            ack, _ = await recv_until(ws, lambda m: m["type"] == "subscribed")
            return error, ack

    error, ack = run(scenario())
    assert error["code"] == "too_many_symbols"
    assert len(ack["symbols"]) == 6  # the refused request left room for six


def test_rate_limit_answers_one_rate_limited_per_flood_and_stays_open(server: Server) -> None:
    async def flood_then_ping(ws, marker: int) -> list[dict[str, object]]:
        for i in range(500):
            await ws.send(json.dumps({"type": "ping", "ts": i}))
        await asyncio.sleep(0.5)  # let the bucket refill a little (not an assertion)
        await ws.send(json.dumps({"type": "ping", "ts": marker}))
        replies: list[dict[str, object]] = []
        while not replies or replies[-1].get("ts") != marker:
            replies.append(await recv_json(ws))
        return replies

    async def scenario() -> tuple[list[dict[str, object]], list[dict[str, object]]]:
        async with await server.authed() as ws:
            first = await flood_then_ping(ws, 999)
            await asyncio.sleep(1.2)  # a quiet second ends the flood
            await ws.send(json.dumps({"type": "ping", "ts": 1000}))
            await recv_until(ws, lambda m: m.get("ts") == 1000)
            return first, await flood_then_ping(ws, 1001)

    for replies, marker in zip(run(scenario()), (999, 1001)):
        codes = [m.get("code") for m in replies if m["type"] == "error"]
        pongs = [m for m in replies if m["type"] == "pong"]
        assert codes == ["rate_limited"]  # once per flood, not once per dropped message
        assert 20 <= len(pongs) < 500  # the burst went through, the flood did not
        assert pongs[-1]["ts"] == marker  # after the flood the socket works again


@pytest.mark.parametrize("size", [64 * 1024 + 1, 2 * 1024 * 1024])
def test_oversized_frames_close_1009(server: Server, size: int) -> None:
    async def scenario() -> tuple[int | None, list[dict[str, object]]]:
        async with await server.authed() as ws:
            await ws.send('{"type":"ping","ts":1,"pad":"' + "x" * size + '"}')
            return await expect_close(ws)

    code, seen = run(scenario())
    assert code == 1009
    assert [m["code"] for m in seen] == ["message_too_large"]


def test_a_frame_just_under_the_limit_is_accepted(server: Server) -> None:
    async def scenario() -> dict[str, object]:
        async with await server.authed() as ws:
            frame = '{"type":"ping","ts":1,"pad":"' + "x" * (60 * 1024) + '"}'
            await ws.send(frame)
            return await recv_json(ws)

    assert run(scenario())["type"] == "pong"


def test_a_socket_dying_mid_fanout_does_not_affect_others(server: Server) -> None:
    async def scenario() -> list[list[int]]:
        clients = [await server.authed(f"user{i}") for i in range(5)]
        for ws in clients:
            await ws.send(json.dumps({"type": "subscribe", "symbols": ["LTC/USD"], "mode": "tick"}))
            await recv_until(ws, lambda m: m["type"] == "subscribed")
        base = now_ms()
        first = await server.apublish([{"symbol": "LTC/USD", "price": 70.0, "size": 1.0, "ts": base}])
        assert first.status_code == 202
        clients[0].transport.abort()  # gone without a close frame, frames still queued for it
        clients[2].transport.abort()
        ticks = [{"symbol": "LTC/USD", "price": 70.0 + i / 100, "size": 1.0, "ts": base} for i in range(300)]
        for chunk in range(3):
            response = await server.apublish(ticks[chunk * 100 : (chunk + 1) * 100])
            assert response.status_code == 202
        seqs: list[list[int]] = []
        for ws in (clients[1], clients[3], clients[4]):
            got = []
            while len(got) < 301:
                m = await recv_json(ws)
                if m["type"] == "market_data" and m["symbol"] == "LTC/USD":
                    got.append(m["seq"])
            seqs.append(got[-301:])
            await ws.close()
        return seqs

    for seqs in run(scenario()):
        assert seqs == list(range(seqs[0], seqs[0] + 301))
