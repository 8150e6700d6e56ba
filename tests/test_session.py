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
from tickfan.errors import UnknownConnection
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
    # Found by the fuzzer: the typed pass refused the tag, the untyped pass raised DecodeError.
    "lone_surrogate_escape": ('{"type": "unsubscribe", "symbols": {"\\ud95c[": 1}}', ErrorCode.INVALID_JSON),
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


def test_a_sustained_flood_is_closed_with_rate_limited_and_1008(impl: ModuleType) -> None:
    async def scenario(hub: Any) -> None:
        sock = await FakeSocket(hub).authed()
        i = 0
        while not sock.task.done():
            sock.push('{"type": "ping", "ts": %d}' % i)
            i += 1
            if i % 10 == 0:
                await asyncio.sleep(0.005)  # ~2,000 messages/s, 100 times the limit
            assert i < 100_000, "the flood was never closed"
        assert sock.close_code == 1008
        errors = [f for f in sock.frames if f["type"] == "error"]
        assert [e["code"] for e in errors] == ["rate_limited", "rate_limited"]  # once per flood, then the close
        assert sock.frames[-1] == errors[-1] and "closed" in errors[-1]["error"]
        assert hub.metrics.rate_limit_closes == 1

    _run(impl, scenario, rate_limit_per_s=20.0, rate_limit_burst=5, rate_limit_close_s=0.3)


def test_floods_separated_by_a_quiet_second_are_not_one_sustained_flood(impl: ModuleType) -> None:
    async def scenario(hub: Any) -> None:
        sock = await FakeSocket(hub).authed()
        for flood in range(3):  # 3 floods over more than 2 s, each much shorter than 1 s
            for i in range(30):
                sock.push('{"type": "ping", "ts": %d}' % i)
            await sock.wait(lambda s: len([f for f in s.frames if f["type"] == "error"]) == flood + 1)
            await asyncio.sleep(1.1)  # the quiet second that ends a flood (the behaviour under test)
        sock.push('{"type": "ping", "ts": -1}')
        await sock.wait(lambda s: s.frames[-1].get("ts") == -1)
        assert sock.close_code is None and hub.metrics.rate_limit_closes == 0

    _run(impl, scenario, rate_limit_per_s=20.0, rate_limit_burst=5, rate_limit_close_s=1.5)


def test_refused_messages_are_not_decoded(impl: ModuleType) -> None:
    async def scenario(hub: Any) -> None:
        sock = await FakeSocket(hub).authed()
        decoded: list[Any] = []
        real = sock.session._decoder.decode

        def counting(frame: Any) -> Any:
            decoded.append(frame)
            return real(frame)

        sock.session._decoder.decode = counting  # type: ignore[method-assign]
        for i in range(200):
            sock.push('{"type": "ping", "ts": %d}' % i)
        await sock.wait(lambda s: any(f.get("code") == "rate_limited" for f in s.frames))
        await sock.wait(lambda s: s.inbox.empty())
        assert len(decoded) < 50  # the burst (5) and what refilled meanwhile, not the 200

    _run(impl, scenario, rate_limit_per_s=20.0, rate_limit_burst=5, rate_limit_close_s=30.0)


def _tick_frames(sock: FakeSocket) -> list[dict[str, Any]]:
    return [f for f in sock.frames if f["type"] == "market_data"]


def test_a_stalled_peer_is_a_slow_consumer_its_queue_dropped_and_told_why_when_it_reads_again(impl: ModuleType) -> None:
    async def scenario(hub: Any) -> None:
        sock = await FakeSocket(hub).authed()
        sock.push('{"type": "subscribe", "symbols": ["LTC/USD"], "mode": "tick"}')
        await sock.wait(lambda s: any(f["type"] == "subscribed" for f in s.frames))
        sock.hold = True  # the peer stops reading: the next send never completes
        for i in range(20):
            hub.apply([("LTC/USD", 70.0, 1.0, 1_000 + i)])
        await sock.wait(lambda s: s.held == 1)
        for i in range(20, 200):  # more while stalled: queued until the deadline, then dropped
            hub.apply([("LTC/USD", 70.0, 1.0, 1_000 + i)])
        assert hub.core.queued(sock.session.conn_id)[0] == 180
        await sock.wait(lambda s: hub.metrics.send_timeouts == 1)
        assert hub.metrics.slow_consumers_disconnected == 1
        with pytest.raises(UnknownConnection):  # the queue is gone, and nothing more is queued
            hub.core.queued(sock.session.conn_id)
        assert sock.transport._batch == []  # the 19 frames the writer had in hand too
        sock.release()  # the peer reads again, within the close's bounded time
        assert await sock.closed() == 1013
        # The one frame that was in flight, then the error: the rest of the batch in hand was dropped.
        assert [f["seq"] for f in _tick_frames(sock)] == [1]
        assert sock.frames[-1]["type"] == "error" and sock.frames[-1]["code"] == "slow_consumer"

    _run(impl, scenario, send_timeout_s=0.2, shutdown_timeout_s=10.0)


def test_a_peer_that_never_reads_again_is_dropped_after_the_bounded_close(impl: ModuleType) -> None:
    async def scenario(hub: Any) -> None:
        sock = await FakeSocket(hub).authed()
        sock.hold = True
        sock.push('{"type": "ping", "ts": 1}')  # its pong never completes
        await sock.wait(lambda s: hub.metrics.send_timeouts == 1)
        assert await sock.closed(timeout=5) is None  # no close could be written: the transport is dropped
        assert sock.held >= 2  # the stalled pong, then the close the server tried before giving up
        assert hub.sessions == {} and hub.metrics.connections["market_data"] == 0

    _run(impl, scenario, send_timeout_s=0.2, shutdown_timeout_s=0.3)


def test_a_busy_writer_that_keeps_sending_is_not_stalled(impl: ModuleType) -> None:
    async def scenario(hub: Any) -> None:
        sock = await FakeSocket(hub).authed()
        sock.push('{"type": "subscribe", "symbols": ["LTC/USD"], "mode": "tick"}')
        await sock.wait(lambda s: any(f["type"] == "subscribed" for f in s.frames))
        loop = asyncio.get_running_loop()
        end = loop.time() + 1.0  # five send deadlines of steady traffic
        i = 0
        while loop.time() < end:
            hub.apply([("LTC/USD", 70.0, 1.0, 1_000 + i)])
            i += 1
            await asyncio.sleep(0.01)
        await sock.wait(lambda s: len(_tick_frames(s)) == i)
        assert hub.metrics.send_timeouts == 0 and sock.close_code is None

    _run(impl, scenario, send_timeout_s=0.2)


def test_an_unauthenticated_slot_is_given_back_once_at_auth_or_at_the_end(impl: ModuleType) -> None:
    async def scenario(hub: Any) -> None:
        assert hub.admit("10.0.0.1") and hub.admit("10.0.0.1")
        assert not hub.admit("10.0.0.1")  # the limit is 2
        assert hub.admit("10.0.0.2")  # per address
        first = FakeSocket(hub, peer="10.0.0.1")
        second = FakeSocket(hub, peer="10.0.0.1")
        await first.authed()  # gives its slot back
        assert hub.metrics.unauthenticated == 2 and hub.admit("10.0.0.1")
        hub.release("10.0.0.1")
        first.push('{"type": "auth", "token": "not-a-token"}')  # a refused refresh ends the socket
        second.push('{"type": "ping", "ts": 1}')  # not auth first: ends the socket
        assert await first.closed() == 1008 and await second.closed() == 1008
        assert hub.metrics.unauthenticated == 1  # only 10.0.0.2's; nothing given back twice
        assert hub.metrics.unauthenticated_refused == 1

    _run(impl, scenario, max_unauthenticated_per_peer=2)
