"""The socket path in-process (tests/socket_harness.py): the decode seam and the session's
answers to malformed frames, before and after auth, on both cores."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

import msgspec
import pytest

from socket_harness import FakeSocket, make_hub
from tickfan.protocol import MARKET_DATA_MESSAGES, DecodeFailure, ErrorCode, MessageDecoder

DEEP = '{"type": "ping", "ts": ' + "[" * 5000 + "]" * 5000 + "}"
DEEP_ARRAY = "[" * 5000 + "]" * 5000

# Frames each decoding pass raised on before the seam caught everything (out-of-range numbers:
# ValidationError in the untyped pass; deep nesting: RecursionError).
MALFORMED = {
    "ping_ts_1e400": ('{"type": "ping", "ts": 1e400}', ErrorCode.INVALID_MESSAGE),
    "auth_token_1e400": ('{"type": "auth", "token": 1e400}', ErrorCode.INVALID_MESSAGE),
    "subscribe_interval_1e400": ('{"type": "subscribe", "symbols": [], "interval_ms": 1e400}', ErrorCode.INVALID_MESSAGE),
    "unknown_type_with_1e400": ('{"type": "teleport", "x": -1e400}', ErrorCode.INVALID_MESSAGE),
    "deep_value": (DEEP, ErrorCode.INVALID_MESSAGE),
    "deep_array": (DEEP_ARRAY, ErrorCode.INVALID_MESSAGE),
    "not_json": ("{nope", ErrorCode.INVALID_JSON),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_the_decoder_raises_only_decode_failure(name: str) -> None:
    frame, code = MALFORMED[name]
    decoder = MessageDecoder(MARKET_DATA_MESSAGES)
    with pytest.raises(DecodeFailure) as info:
        decoder.decode(frame)
    assert info.value.code is code
    assert info.value.message


def test_the_decoder_turns_any_decoder_exception_into_invalid_message() -> None:
    decoder = MessageDecoder(MARKET_DATA_MESSAGES)

    class Boom:
        def decode(self, frame: Any) -> Any:
            raise MemoryError("simulated")

    decoder._decoder = Boom()  # type: ignore[assignment]
    with pytest.raises(DecodeFailure) as info:
        decoder.decode('{"type": "ping", "ts": 1}')
    assert info.value.code is ErrorCode.INVALID_MESSAGE


def test_a_long_validation_reason_is_cut_short() -> None:
    decoder = MessageDecoder(MARKET_DATA_MESSAGES)
    with pytest.raises(DecodeFailure) as info:
        decoder.decode('{"type": "subscribe", "symbols": ["BTC/USD"], "mode": "' + "m" * 10_000 + '"}')
    assert info.value.code is ErrorCode.INVALID_MESSAGE and len(info.value.message) < 400


def _run(core: ModuleType, scenario: Callable[..., Awaitable[None]], **settings: Any) -> None:
    async def main() -> None:
        hub = make_hub(core, **settings)
        await hub.start()
        try:
            await asyncio.wait_for(scenario(hub), 30)
        finally:
            await hub.stop()

    asyncio.run(main())


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_frames_after_auth_get_an_error_and_the_socket_stays_open(impl: ModuleType, name: str) -> None:
    frame, code = MALFORMED[name]

    async def scenario(hub: Any) -> None:
        sock = await FakeSocket(hub).authed()
        sock.push(frame)
        error = await sock.next_frame()
        assert error["type"] == "error" and error["code"] == code.value
        sock.push('{"type": "ping", "ts": 7}')
        assert await sock.next_frame() == {"type": "pong", "ts": 7, "server_ts": sock.frames[-1]["server_ts"]}
        assert not sock.task.done() and sock.close_code is None

    _run(impl, scenario)


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_frames_before_auth_get_auth_required_and_1008(impl: ModuleType, name: str) -> None:
    frame, _ = MALFORMED[name]

    async def scenario(hub: Any) -> None:
        sock = FakeSocket(hub)
        sock.push(frame)
        assert await sock.closed() == 1008
        assert [f["code"] for f in sock.frames] == ["auth_required"]

    _run(impl, scenario)


def test_a_verifier_that_raises_refuses_the_token_with_1008(impl: ModuleType) -> None:
    async def scenario(hub: Any) -> None:
        def explode(token: object) -> Any:
            raise OverflowError("simulated")

        hub.verifier.verify = explode
        sock = FakeSocket(hub)
        sock.push('{"type": "auth", "token": "x.y.z"}')
        assert await sock.closed() == 1008
        assert [f["code"] for f in sock.frames] == ["auth_required"]

    _run(impl, scenario)


def test_a_channel_bug_closes_1011_not_a_bare_drop(impl: ModuleType) -> None:
    async def scenario(hub: Any) -> None:
        sock = await FakeSocket(hub).authed()

        def explode(*args: Any) -> Any:
            raise RuntimeError("simulated")

        sock.session.send = explode  # type: ignore[method-assign]  # the pong's send fails
        sock.push('{"type": "ping", "ts": 1}')
        assert await sock.closed() == 1011

    _run(impl, scenario)


def test_msgspec_still_raises_what_the_seam_exists_for() -> None:
    # If msgspec ever stops raising these, the seam's special cases can go; until then they stay.
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode("1e400")
    with pytest.raises(RecursionError):
        msgspec.json.decode(DEEP_ARRAY)
