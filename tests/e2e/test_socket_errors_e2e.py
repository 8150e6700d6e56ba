"""The socket error paths a mutation audit found untested, against a real server: the inbound
size limit at its exact boundary in UTF-8 bytes, binary frames before and after auth, a flood
before auth, and ``unknown_type`` on every channel."""

from __future__ import annotations

import json

import pytest
from websockets.exceptions import ConnectionClosed

from tickfan_e2e import Server, expect_close, recv_json, recv_until, run

pytestmark = pytest.mark.e2e

LIMIT = 64 * 1024  # the server fixture runs with the default --max-message-bytes


def frame_of(nbytes: int, filler: str) -> str:
    """A valid ping of exactly ``nbytes`` UTF-8 bytes, padded with ``filler`` (then ASCII)."""
    head, tail = '{"type":"ping","ts":1,"pad":"', '"}'
    room = nbytes - len((head + tail).encode())
    width = len(filler.encode())
    pad = filler * (room // width) + "x" * (room % width)
    frame = head + pad + tail
    assert len(frame.encode()) == nbytes
    return frame


@pytest.mark.parametrize("filler", ["x", "é", "€", "😀"], ids=["ascii", "2-byte", "3-byte", "4-byte"])
def test_a_frame_of_exactly_the_limit_in_utf8_bytes_is_accepted(server: Server, filler: str) -> None:
    async def scenario() -> dict[str, object]:
        async with await server.authed() as ws:
            await ws.send(frame_of(LIMIT, filler))
            return await recv_json(ws)

    assert run(scenario())["type"] == "pong"


@pytest.mark.parametrize("filler", ["x", "é", "€", "😀"], ids=["ascii", "2-byte", "3-byte", "4-byte"])
def test_one_byte_over_the_limit_closes_1009(server: Server, filler: str) -> None:
    frame = frame_of(LIMIT + 1, filler)
    if filler != "x":
        assert len(frame) < LIMIT  # under the limit in characters: only bytes count

    async def scenario() -> tuple[int | None, list[dict[str, object]]]:
        async with await server.authed() as ws:
            await ws.send(frame)
            return await expect_close(ws)

    code, seen = run(scenario())
    assert code == 1009
    assert [m["code"] for m in seen] == ["message_too_large"]


def test_a_binary_frame_after_auth_is_invalid_message_and_the_socket_stays_open(server: Server) -> None:
    async def scenario() -> tuple[dict[str, object], dict[str, object]]:
        async with await server.authed() as ws:
            await ws.send(json.dumps({"type": "ping", "ts": 1}).encode())  # valid JSON, but binary
            error = await recv_json(ws)
            await ws.send(json.dumps({"type": "ping", "ts": 2}))
            pong, _ = await recv_until(ws, lambda m: m["type"] == "pong")
            return error, pong

    error, pong = run(scenario())
    assert error["type"] == "error" and error["code"] == "invalid_message"
    assert pong["ts"] == 2


@pytest.mark.parametrize("holding", ["auth", "garbage"])
def test_a_binary_frame_before_auth_is_auth_required_and_1008(server: Server, holding: str) -> None:
    payload = json.dumps({"type": "auth", "token": server.token()}).encode() if holding == "auth" else b"\x00\xff\x10"

    async def scenario() -> tuple[int | None, list[dict[str, object]]]:
        async with await server.connect() as ws:
            await ws.send(payload)
            return await expect_close(ws)

    code, seen = run(scenario())
    assert code == 1008
    assert [m["code"] for m in seen] == ["auth_required"]


def test_a_flood_before_auth_gets_one_auth_required_and_1008(server: Server) -> None:
    async def scenario() -> tuple[int | None, list[dict[str, object]]]:
        async with await server.connect() as ws:
            try:
                for i in range(300):
                    await ws.send(json.dumps({"type": "ping", "ts": i}))
            except ConnectionClosed:
                pass  # the server closed after the first: the rest went nowhere
            return await expect_close(ws)

    code, seen = run(scenario())
    assert code == 1008
    assert seen == [{"type": "error", "code": "auth_required", "error": "Authentication required"}]


CHANNEL_PATHS = ["/ws/market-data", "/ws/bot-status", "/ws/notifications", "/ws/performance-metrics"]
# A type no channel knows, and a type that belongs to another channel.
FOREIGN = {
    "/ws/market-data": ["teleport", "mark_read", "set_interval"],
    "/ws/bot-status": ["teleport", "subscribe", "mark_read"],
    "/ws/notifications": ["teleport", "subscribe", "set_interval"],
    "/ws/performance-metrics": ["teleport", "backfill_request", "mark_read"],
}


@pytest.mark.parametrize("path", CHANNEL_PATHS)
def test_unknown_type_on_every_channel_keeps_the_socket_open(server: Server, path: str) -> None:
    async def scenario() -> list[dict[str, object]]:
        async with await server.authed("unknown-type-user", path=path) as ws:
            errors = []
            for kind in FOREIGN[path]:
                await ws.send(json.dumps({"type": kind, "symbols": ["BTC/USD"], "ids": [1], "interval_ms": 500}))
                error, _ = await recv_until(ws, lambda m: m["type"] == "error")
                errors.append(error)
            await ws.send(json.dumps({"type": "ping", "ts": 11}))
            await recv_until(ws, lambda m: m["type"] == "pong" and m["ts"] == 11)
            return errors

    errors = run(scenario())
    assert [e["code"] for e in errors] == ["unknown_type"] * len(FOREIGN[path])
    for error, kind in zip(errors, FOREIGN[path], strict=True):
        assert kind in str(error["error"])
