"""PROTOCOL.md section 1 against a real server: the auth handshake, refresh and expiry."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tickfan_e2e import SECRET, Server, expect_close, recv_json, recv_until, run

pytestmark = pytest.mark.e2e


def claims(**extra: object) -> dict[str, object]:
    return {"sub": "alice", "exp": int(time.time()) + 86400, **extra}


def _rsa_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


BAD_TOKENS = {
    "garbage": "not-a-jwt",
    "empty": "",
    "other_secret": jwt.encode(claims(), "another-secret-" + "y" * 40, algorithm="HS256"),
    "alg_none": jwt.encode(claims(), None, algorithm="none"),
    "hs512_same_secret": jwt.encode(claims(), SECRET, algorithm="HS512"),
    "rs256": jwt.encode(claims(), _rsa_pem(), algorithm="RS256"),
    "expired": jwt.encode({"sub": "alice", "exp": int(time.time()) - 10}, SECRET, algorithm="HS256"),
    "missing_sub": jwt.encode({"exp": int(time.time()) + 86400}, SECRET, algorithm="HS256"),
    "missing_exp": jwt.encode({"sub": "alice"}, SECRET, algorithm="HS256"),
    "empty_sub": jwt.encode({"sub": "", "exp": int(time.time()) + 86400}, SECRET, algorithm="HS256"),
}


def test_auth_success_reports_user_and_expiry(server: Server) -> None:
    token = server.token("alice", ttl_s=900)
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]

    async def scenario() -> dict[str, object]:
        async with await server.connect() as ws:
            await ws.send(json.dumps({"type": "auth", "token": token}))
            return await recv_json(ws)

    assert run(scenario()) == {"type": "auth_success", "user_id": "alice", "expires_at": exp}


@pytest.mark.parametrize("kind", sorted(BAD_TOKENS))
def test_bad_tokens_are_refused_with_1008(server: Server, kind: str) -> None:
    async def scenario() -> tuple[int | None, list[dict[str, object]]]:
        async with await server.connect() as ws:
            await ws.send(json.dumps({"type": "auth", "token": BAD_TOKENS[kind]}))
            return await expect_close(ws)

    code, seen = run(scenario())
    assert code == 1008
    assert seen == [{"type": "error", "code": "auth_required", "error": "Authentication required"}]


@pytest.mark.parametrize(
    "first",
    [
        '{"type": "ping", "ts": 1}',
        "this is not json",
        "[1, 2]",
        '{"type": "auth", "token": 42}',
        '{"type": "auth"}',
        '{"type": "subscribe", "symbols": ["BTC/USD"]}',
        '{"type": "auth", "token": 1e400}',
        '{"type": "ping", "ts": 1e400}',
        '{"type": "auth", "token": ' + "[" * 3000 + "]" * 3000 + "}",
        "[" * 3000 + "]" * 3000,
    ],
    ids=["ping_first", "garbage", "array", "token_not_string", "token_missing", "subscribe_first",
         "token_1e400", "ping_1e400", "token_deep", "deep_array"],
)
def test_first_message_must_be_a_valid_auth(server: Server, first: str) -> None:
    async def scenario() -> tuple[int | None, list[dict[str, object]]]:
        async with await server.connect() as ws:
            await ws.send(first)
            return await expect_close(ws)

    code, seen = run(scenario())
    assert code == 1008
    assert [m["code"] for m in seen] == ["auth_required"]


def test_auth_timeout_closes_silent_sockets(server: Server) -> None:
    # the session server runs with --auth-timeout-ms 800
    async def scenario() -> tuple[float, int | None, list[dict[str, object]]]:
        start = time.monotonic()  # before connecting: the server's timer cannot start earlier
        async with await server.connect() as ws:
            code, seen = await expect_close(ws, timeout=5)
            return time.monotonic() - start, code, seen

    elapsed, code, seen = run(scenario())
    assert code == 1008
    assert [m["code"] for m in seen] == ["auth_required"]
    # not before the configured timeout (800 ms): a bound that holds however slow the machine
    assert elapsed >= 0.8 - 0.002


def test_refresh_with_same_sub_gets_new_auth_success(server: Server) -> None:
    async def scenario() -> tuple[dict[str, object], dict[str, object]]:
        ws = await server.authed("alice")
        async with ws:
            fresh = server.token("alice", ttl_s=7200)
            await ws.send(json.dumps({"type": "auth", "token": fresh}))
            reply = await recv_json(ws)
            await ws.send(json.dumps({"type": "ping", "ts": 7}))
            pong = await recv_json(ws)
            return reply, pong

    reply, pong = run(scenario())
    assert reply["type"] == "auth_success" and reply["user_id"] == "alice"
    assert reply["expires_at"] >= int(time.time()) + 7000
    assert pong["type"] == "pong"  # still open, nothing else in between


@pytest.mark.parametrize("kind", ["other_sub", "invalid"])
def test_refresh_refused_closes_1008(server: Server, kind: str) -> None:
    async def scenario() -> tuple[int | None, list[dict[str, object]]]:
        ws = await server.authed("alice")
        token = server.token("mallory") if kind == "other_sub" else BAD_TOKENS["other_secret"]
        await ws.send(json.dumps({"type": "auth", "token": token}))
        return await expect_close(ws)

    code, seen = run(scenario())
    assert code == 1008
    assert [m["code"] for m in seen] == ["auth_required"]


def test_expiry_closes_with_token_expired(server: Server) -> None:
    token = jwt.encode({"sub": "alice", "exp": int(time.time()) + 2}, SECRET, algorithm="HS256")

    async def scenario() -> tuple[int | None, list[dict[str, object]]]:
        async with await server.connect() as ws:
            await ws.send(json.dumps({"type": "auth", "token": token}))
            assert (await recv_json(ws))["type"] == "auth_success"
            return await expect_close(ws, timeout=6)

    code, seen = run(scenario())
    assert code == 1008
    assert seen[-1]["type"] == "error" and seen[-1]["code"] == "token_expired"


def test_refresh_postpones_expiry(server: Server) -> None:
    short = jwt.encode({"sub": "alice", "exp": int(time.time()) + 2}, SECRET, algorithm="HS256")

    async def scenario() -> dict[str, object]:
        async with await server.connect() as ws:
            await ws.send(json.dumps({"type": "auth", "token": short}))
            await recv_json(ws)
            await ws.send(json.dumps({"type": "auth", "token": server.token("alice")}))
            await recv_json(ws)
            await asyncio.sleep(3)  # past the first token's exp
            await ws.send(json.dumps({"type": "ping", "ts": 1}))
            return await recv_json(ws)

    assert run(scenario())["type"] == "pong"


def test_tokens_never_reach_the_log(fresh_server: Callable[..., Server]) -> None:
    # at debug, the most verbose level: a token logged at any level would show
    srv = fresh_server("--log-level", "debug")
    bad = BAD_TOKENS["other_secret"]
    good = srv.token("alice")
    refresh = srv.token("alice", ttl_s=7200)
    publisher = srv.publisher_headers()["Authorization"].split(" ", 1)[1]

    async def scenario() -> None:
        async with await srv.connect() as ws:
            await ws.send(json.dumps({"type": "auth", "token": bad}))
            await expect_close(ws)
        async with await srv.connect("/ws/notifications") as ws:
            await ws.send(json.dumps({"type": "auth", "token": good}))
            assert (await recv_json(ws))["type"] == "auth_success"
            await ws.send(json.dumps({"type": "auth", "token": refresh}))
            await recv_until(ws, lambda m: m["type"] == "auth_success")

    run(scenario())
    for token in (bad, good, publisher):
        httpx.get(srv.http + "/api/symbols", headers={"Authorization": "Bearer " + token})
    httpx.post(srv.http + "/api/ticks", json=[], headers={"Authorization": "Bearer " + publisher})
    srv.stop()
    log = srv.log_path.read_text(errors="replace")
    assert " DEBUG " in log  # the server did log at debug
    for token in (bad, good, refresh, publisher):
        assert token not in log and token.rsplit(".", 1)[1] not in log
    assert SECRET not in log
