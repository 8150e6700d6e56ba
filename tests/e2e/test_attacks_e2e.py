"""The attack corpus: every hostile input we know of, with its expected answer, against a real server.

One table, :data:`CASES`: each row names an attack, says what it sends (``what``), runs it
(``attack``) and states the answer (``expect``): an HTTP status, or the error codes a socket
gets and how it ends (a close code, or ``open``: it still answers a ping). Every row runs on
both cores under :func:`guarded`: while the attack runs, a publisher publishes ticks over HTTP
and a watcher subscribed to them must see every one with contiguous ``seq`` (the harness's
:class:`Watcher`); afterwards ``/healthz`` must answer and a fresh socket must authenticate.

Servers are shared per core for the whole session: ``hs`` (HS256 with ``aud``/``iss`` and an
Origin allow-list configured, so the claim and origin checks are live) and ``rs`` (RS256 with
a public key, for algorithm confusion). ``docs/security.md`` lists every row;
:func:`test_security_doc_lists_every_attack` keeps the two in step.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tickfan_e2e import CORES, SECRET, Server, Watcher, barrier, next_ts, recv_json, recv_until, run, users

pytestmark = pytest.mark.e2e

AUDIENCE = "tickfan-e2e"
ISSUER = "https://issuer.e2e.invalid"
ALLOWED_ORIGIN = "https://app.example"
AUTH_TIMEOUT_MS = 1500
UNAUTH_PER_PEER = 16
FLOOD_CLOSE_S = 2
MAX_BYTES = 64 * 1024
BACK, FUTURE = "TEST/BACK", "TEST/FUTURE"
OPEN = "open"
MD, BOTS, NOTES, PERF = "/ws/market-data", "/ws/bot-status", "/ws/notifications", "/ws/performance-metrics"
DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


SERVER_KEY = _rsa_key()  # the RS server's identity provider
ATTACKER_KEY = _rsa_key()
SERVER_PUBLIC_PEM = SERVER_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)


# --- the answer ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What the server answered: an HTTP ``status``, or a socket's error ``codes`` and its
    ``close`` (a close code, or ``open``); ``body`` only where the body is the point."""

    status: int | None = None
    codes: tuple[str, ...] = ()
    close: int | str | None = None
    body: Any = None

    def text(self) -> str:
        """The answer as docs/security.md states it."""
        if self.status is not None:
            out = f"HTTP {self.status}"
        else:
            codes = ", ".join(f"`{c}`" for c in self.codes) or "no error"
            out = f"{codes}; stays open" if self.close == OPEN else f"{codes}; close {self.close}"
        if self.body is not None:
            out += f" `{json.dumps(self.body, separators=(',', ':'))}`"
        return out


def http(status: int, body: Any = None) -> Answer:
    return Answer(status=status, body=body)


def ws(*codes: str, close: int | str = OPEN, body: Any = None) -> Answer:
    return Answer(codes=codes, close=close, body=body)


# --- the servers and their tokens -----------------------------------------------------------------


class Target(Server):
    """A server of the corpus: mints its own tokens (``aud``/``iss``/algorithm as configured)."""

    def __init__(self, core: str, data_dir: Path, *extra: str, algorithm: str = "HS256", claims: dict[str, Any] | None = None) -> None:
        super().__init__(core, data_dir, *extra)
        self.algorithm = algorithm
        self.base_claims = claims or {}

    def claims(self, sub: str = "alice", ttl_s: int = 3600, **extra: Any) -> dict[str, Any]:
        now = int(time.time())
        return {"sub": sub, "iat": now, "exp": now + ttl_s, **self.base_claims, **extra}

    def sign(self, claims: dict[str, Any]) -> str:
        key: Any = SECRET if self.algorithm == "HS256" else SERVER_KEY
        return jwt.encode(claims, key, algorithm=self.algorithm)

    def token(self, sub: str = "alice", *, ttl_s: int = 3600, scopes: tuple[str, ...] = ()) -> str:
        extra = {"scope": " ".join(scopes)} if scopes else {}
        return self.sign(self.claims(sub, ttl_s, **extra))

    def publisher_headers(self) -> dict[str, str]:
        return {"Authorization": "Bearer " + self.token("service-backend", scopes=("publish",))}

    def user_headers(self, sub: str = "alice") -> dict[str, str]:
        return {"Authorization": "Bearer " + self.token(sub)}


def _universe(path: Path) -> Path:
    from tickfan.config import DEFAULT_UNIVERSE

    items = [{"symbol": s.symbol, "price_decimals": s.price_decimals, "size_decimals": s.size_decimals} for s in DEFAULT_UNIVERSE]
    items += [{"symbol": name, "price_decimals": 2, "size_decimals": 4} for name in (BACK, FUTURE)]
    path.write_text(json.dumps(items))
    return path


COMMON_FLAGS = ("--feed", "none", "--auth-timeout-ms", str(AUTH_TIMEOUT_MS), "--log-level", "warning")


@pytest.fixture(scope="session", params=CORES)
def core(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def hs(core: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    data = tmp_path_factory.mktemp(f"attack-hs-{core}")
    srv = Target(
        core, data, *COMMON_FLAGS,
        "--symbols", str(_universe(data / "symbols.json")),
        "--jwt-audience", AUDIENCE, "--jwt-issuer", ISSUER,
        "--allowed-origins", ALLOWED_ORIGIN,
        "--max-unauthenticated-per-peer", str(UNAUTH_PER_PEER),
        "--rate-limit-close-s", str(FLOOD_CLOSE_S),
        claims={"aud": AUDIENCE, "iss": ISSUER},
    ).start()  # fmt: skip
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def rs(core: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    data = tmp_path_factory.mktemp(f"attack-rs-{core}")
    (data / "public.pem").write_bytes(SERVER_PUBLIC_PEM)
    srv = Target(
        core, data, *COMMON_FLAGS,
        "--symbols", str(_universe(data / "symbols.json")),
        "--jwt-algorithm", "RS256", "--jwt-public-key", str(data / "public.pem"),
        algorithm="RS256",
    ).start()  # fmt: skip
    yield srv
    srv.stop()


class Listener:
    """A TCP listener on 127.0.0.1 that counts connections: a token's ``jku``/``x5u`` points here."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


LISTENER = Listener()  # one per test process; nothing may ever connect to it


# --- attacks -----------------------------------------------------------------------------------

Attack = Callable[[Target], Awaitable[Answer]]


async def _outcome(sock: Any, *, probe: bool, timeout: float = 10.0) -> Answer:
    """Error codes read from ``sock`` until it closes or (``probe``) answers a ping."""
    codes: list[str] = []
    marker = uuid.uuid4().int % 2**52
    if probe:
        try:
            await sock.send(json.dumps({"type": "ping", "ts": marker}))
        except ConnectionClosed:
            pass
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"neither a close nor the pong; codes so far {codes}")
            message = json.loads(await asyncio.wait_for(sock.recv(), left))
            if message.get("type") == "error":
                assert isinstance(message.get("error"), str) and message["error"], message
                codes.append(message["code"])
            elif probe and message.get("type") == "pong" and message.get("ts") == marker:
                return ws(*codes)
    except ConnectionClosed as exc:
        return ws(*codes, close=exc.rcvd.code if exc.rcvd is not None else None)


def frames(*sent: str | bytes | Callable[[Target], str], auth: bool = True, path: str = MD) -> Attack:
    """Send ``sent`` on a socket (authenticated first unless ``auth`` is False); callables make
    a frame from the target (tokens)."""

    async def attack(t: Target) -> Answer:
        sock = await (t.authed(users("attacker")[0], path) if auth else t.connect(path))
        async with sock:
            if auth and path == NOTES:
                await recv_until(sock, lambda m: m["type"] == "initial_notifications")
            for frame in sent:
                await sock.send(frame(t) if callable(frame) else frame)
            return await _outcome(sock, probe=auth, timeout=10.0 if auth else AUTH_TIMEOUT_MS / 1000 + 5)

    return attack


def ws_token(make: Callable[[Target], Any]) -> Attack:
    """Authenticate a socket with the token ``make`` builds."""
    return frames(lambda t: json.dumps({"type": "auth", "token": make(t)}), auth=False)


def request(method: str, path: str, *, who: str | None = "publisher", body: Any = None, raw: bytes | None = None, headers: Callable[[Target], dict[str, str]] | None = None) -> Attack:
    """One HTTP request; ``who``: "publisher", "user" or None (no token); ``headers`` overrides."""

    async def attack(t: Target) -> Answer:
        if headers is not None:
            h = headers(t)
        else:
            h = {"publisher": t.publisher_headers(), "user": t.user_headers(users("attacker")[0]), None: {}}[who]
        kwargs: dict[str, Any] = {"content": raw, "headers": {**h, "content-type": "application/json"}} if raw is not None else {"json": body, "headers": h}
        async with httpx.AsyncClient(base_url=t.http, timeout=30) as client:
            r = await client.request(method, path, **kwargs)
        if r.status_code >= 400:
            assert r.headers["content-type"].startswith("application/json"), r.headers
            assert r.json()["error"], r.text
        if r.status_code == 401:
            assert r.headers.get("www-authenticate") == "Bearer"
        return http(r.status_code)

    return attack


def bearer_of(make: Callable[[Target], Any]) -> Callable[[Target], dict[str, str]]:
    return lambda t: {"Authorization": f"Bearer {make(t)}".strip()}


# --- tokens -------------------------------------------------------------------------------------


def _signed(key: Any, alg: str, headers: dict[str, Any] | None = None, **claims: Any) -> Callable[[Target], str]:
    def make(t: Target) -> str:
        return jwt.encode(t.claims(**claims), key, algorithm=alg, headers=headers)

    return make


def _with(**claims: Any) -> Callable[[Target], str]:
    """A correctly signed token with ``claims`` changed (``None`` removes a claim)."""

    def make(t: Target) -> str:
        c = t.claims()
        for name, value in claims.items():
            if value is None:
                c.pop(name, None)
            else:
                c[name] = value() if callable(value) else value
        return t.sign(c)

    return make


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hand_signed(key: bytes, header: dict[str, Any] | None = None) -> Callable[[Target], str]:
    """HS256 signed by hand with ``key``: PyJWT refuses the keys these attacks need (a PEM, b"")."""

    def make(t: Target) -> str:
        head = _b64(json.dumps({"alg": "HS256", "typ": "JWT", **(header or {})}).encode())
        payload = _b64(json.dumps(t.claims()).encode())
        sig = hmac.new(key, f"{head}.{payload}".encode(), hashlib.sha256).digest()
        return f"{head}.{payload}.{_b64(sig)}"

    return make


ATTACKER_JWK = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(ATTACKER_KEY.public_key()))
ATTACKER_PEM = ATTACKER_KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
WRONG_SECRET = "not-the-server-secret-" + "w" * 40

TOKENS: dict[str, tuple[str, str, Callable[[Target], Any]]] = {
    # name: (server, what, token)
    "alg_none": ("hs", "`alg: none`, no signature", _signed(None, "none")),
    "wrong_secret": ("hs", "HS256 signed with another secret", _signed(WRONG_SECRET, "HS256")),
    "hs512_same_secret": ("hs", "HS512 with the server's own secret (algorithm not pinned?)", _signed(SECRET, "HS512")),
    "rs256_on_hs_server": ("hs", "RS256 signed with the attacker's key on an HS256 server", _signed(ATTACKER_PEM, "RS256")),
    "expired": ("hs", "`exp` 10 s in the past", _with(exp=lambda: int(time.time()) - 10)),
    "nbf_future": ("hs", "`nbf` one hour ahead", _with(nbf=lambda: int(time.time()) + 3600)),
    "missing_sub": ("hs", "no `sub`", _with(sub=None)),
    "sub_not_string": ("hs", "`sub: 42`", _with(sub=42)),
    "sub_empty": ("hs", '`sub: ""`', _with(sub="")),
    "missing_exp": ("hs", "no `exp`", _with(exp=None)),
    "exp_not_number": ("hs", '`exp: "tomorrow"`', _with(exp="tomorrow")),
    "exp_1e30": ("hs", "`exp` = 10^30 (a token for ever)", _with(exp=10**30)),
    "exp_beyond_max_lifetime": ("hs", "`exp` one day and one hour ahead (maximum lifetime one day)", _with(exp=lambda: int(time.time()) + 86_400 + 3600)),
    "lifetime_from_iat": ("hs", "`iat` ten days ago, `exp` in an hour (lifetime over the maximum)", _with(iat=lambda: int(time.time()) - 10 * 86_400, exp=lambda: int(time.time()) + 3600)),
    "wrong_aud": ("hs", "`aud` of another service (audience configured)", _with(aud="another-service")),
    "missing_aud": ("hs", "no `aud` (audience configured)", _with(aud=None)),
    "wrong_iss": ("hs", "`iss` of another issuer (issuer configured)", _with(iss="https://evil.example")),
    "kid_path_traversal": ("hs", "`kid: ../../../../dev/null`, signed with an empty key", _hand_signed(b"", {"kid": "../../../../dev/null"})),
    "jku_remote_keys": ("hs", "RS256 by the attacker, `jku` pointing at a listener on 127.0.0.1", _signed(ATTACKER_PEM, "RS256", {"jku": LISTENER.url + "/jwks.json"})),
    "x5u_remote_cert": ("hs", "RS256 by the attacker, `x5u` pointing at a listener on 127.0.0.1", _signed(ATTACKER_PEM, "RS256", {"x5u": LISTENER.url + "/cert.pem"})),
    "jwk_embedded_key": ("hs", "RS256 by the attacker with its public key embedded as `jwk`", _signed(ATTACKER_PEM, "RS256", {"jwk": ATTACKER_JWK})),
    "garbage": ("hs", "`not-a-jwt`", lambda t: "not-a-jwt"),
    "empty": ("hs", "an empty string", lambda t: ""),
    "rs_hs256_public_key_as_secret": ("rs", "HS256 signed with the server's RS256 public key (PEM) as HMAC secret", _hand_signed(SERVER_PUBLIC_PEM)),
    "rs_alg_none": ("rs", "`alg: none` on the RS256 server", _signed(None, "none")),
    "rs_other_key": ("rs", "RS256 signed with another private key", _signed(ATTACKER_PEM, "RS256")),
}


def _no_fetch(attack: Attack) -> Attack:
    async def checked(t: Target) -> Answer:
        answer = await attack(t)
        assert LISTENER.connections == 0, "the server fetched a key URL from a token header"
        return answer

    return checked


def _oversized_token(t: Target) -> str:
    """An attacker's 65+ KiB token (it cannot sign with the server's key)."""
    return jwt.encode(t.claims(pad="x" * (MAX_BYTES + 1024)), WRONG_SECRET, algorithm="HS256")


# --- the custom attacks --------------------------------------------------------------------------


async def _silent(t: Target) -> Answer:
    """Open a socket and say nothing: the auth timeout closes it."""
    async with await t.connect() as sock:
        return await _outcome(sock, probe=False, timeout=AUTH_TIMEOUT_MS / 1000 + 5)


async def _cross_site_origin(t: Target) -> Answer:
    try:
        sock = await t.connect(origin="https://evil.example")
    except InvalidStatus as exc:
        status = exc.response.status_code
    else:
        await sock.close()
        status = 101
    # the allow-listed origin still works
    sock = await t.connect(origin=ALLOWED_ORIGIN)
    async with sock:
        await sock.send(json.dumps({"type": "auth", "token": t.token("alice")}))
        assert (await recv_json(sock))["type"] == "auth_success"
    return http(status)


def _frame_of_bytes(total: int, char: str) -> str:
    """A ping of exactly ``total`` UTF-8 bytes, padded with ``char`` (1-4 bytes each)."""
    head, tail = '{"type":"ping","ts":1,"pad":"', '"}'
    room = total - len(head) - len(tail)
    width = len(char.encode())
    frame = head + char * (room // width) + "x" * (room % width) + tail
    assert len(frame.encode()) == total
    return frame


def _deep(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


def _deep_object(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


async def _publisher(t: Target) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=t.http, timeout=30, headers=t.publisher_headers())


async def _idor_alert(t: Target) -> Answer:
    alice, mallory = users("alice", "mallory")
    async with httpx.AsyncClient(base_url=t.http, timeout=30) as c:
        r = await c.post("/api/alerts", json={"symbol": "BTC/USD", "above": 10**9}, headers=t.user_headers(alice))
        assert r.status_code == 201, r.text
        alert_id = r.json()["id"]
        denied = await c.delete(f"/api/alerts/{alert_id}", headers=t.user_headers(mallory))
        assert (await c.get("/api/alerts", headers=t.user_headers(mallory))).json() == {"alerts": []}
        mine = (await c.get("/api/alerts", headers=t.user_headers(alice))).json()["alerts"]
        assert [a["id"] for a in mine] == [alert_id]  # still armed
        unknown = await c.delete(f"/api/alerts/{alert_id + 10**6}", headers=t.user_headers(mallory))
        assert (unknown.status_code, unknown.json()["error"].replace(str(alert_id + 10**6), "N")) == (
            denied.status_code, denied.json()["error"].replace(str(alert_id), "N"))  # fmt: skip
        return http(denied.status_code)


async def _alice_notification(t: Target) -> tuple[str, str, int]:
    alice, mallory = users("alice", "mallory")
    async with await _publisher(t) as pub:
        r = await pub.post("/api/notifications", json={"user_id": alice, "kind": "info", "title": "secret", "data": {"k": 1}})
        assert r.status_code == 201, r.text
    return alice, mallory, int(r.json()["id"])


async def _idor_notification_http(t: Target) -> Answer:
    alice, mallory, nid = await _alice_notification(t)
    async with httpx.AsyncClient(base_url=t.http, timeout=30) as c:
        r = await c.post("/api/notifications/read", json={"ids": [nid]}, headers=t.user_headers(mallory))
        listed = (await c.get("/api/notifications", params={"after": nid - 1}, headers=t.user_headers(mallory))).json()
        assert listed == {"notifications": []}
        own = (await c.get("/api/notifications", params={"after": nid - 1}, headers=t.user_headers(alice))).json()
        assert [(n["id"], n["read"]) for n in own["notifications"]] == [(nid, False)]
    return http(r.status_code, r.json())


async def _idor_notification_ws(t: Target) -> Answer:
    alice, mallory, nid = await _alice_notification(t)
    async with await t.authed(mallory, NOTES) as sock:
        initial = await recv_json(sock)
        assert initial == {"type": "initial_notifications", "notifications": []}
        await sock.send(json.dumps({"type": "mark_read", "ids": [nid]}))
        reply, _ = await recv_until(sock, lambda m: m["type"] in ("marked_read", "error"))
        answer = await _outcome(sock, probe=True)
    async with httpx.AsyncClient(base_url=t.http, timeout=30) as c:
        own = (await c.get("/api/notifications", params={"after": nid - 1}, headers=t.user_headers(alice))).json()
    assert [(n["id"], n["read"]) for n in own["notifications"]] == [(nid, False)]
    return ws(*answer.codes, close=answer.close, body=reply)


async def _idor_bots(t: Target) -> Answer:
    alice, mallory = users("alice", "mallory")
    async with await _publisher(t) as pub:
        r = await pub.post("/api/bots/b-1/status", json={"user_id": alice, "status": "running", "detail": {"pnl": 1}})
        assert r.status_code == 200, r.text
        r = await pub.post("/api/bots/b-1/status", json={"user_id": mallory, "status": "paused", "detail": None})
        assert r.status_code == 200 and r.json()["running_count"] == 0  # same bot_id, another user's bot
    async with await t.authed(mallory, BOTS) as sock:
        seen = await barrier(sock)
    assert [(m["bot_id"], m["status"]) for m in seen] == [("b-1", "paused")]
    async with await t.authed(alice, BOTS) as sock:
        seen = await barrier(sock)
    assert [(m["bot_id"], m["status"], m["detail"]) for m in seen] == [("b-1", "running", {"pnl": 1})]
    # a user token cannot write another user's bot state
    async with httpx.AsyncClient(base_url=t.http, timeout=30) as c:
        r = await c.post("/api/bots/b-1/status", json={"user_id": alice, "status": "error"}, headers=t.user_headers(mallory))
    return http(r.status_code)


async def _ts_backwards(t: Target) -> Answer:
    ts = next_ts()
    async with await _publisher(t) as pub:
        assert (await pub.post("/api/ticks", json=[{"symbol": BACK, "price": 1.0, "size": 1.0, "ts": ts}])).status_code == 202
        r = await pub.post("/api/ticks", json=[{"symbol": BACK, "price": 1.0, "size": 1.0, "ts": ts - 60_000}])
        assert "earlier" in r.json()["errors"][0]["error"]
        later = await pub.post("/api/ticks", json=[{"symbol": BACK, "price": 1.0, "size": 1.0, "ts": next_ts()}])
        assert later.status_code == 202  # the symbol still trades
    return http(r.status_code)


async def _far_future_ts(t: Target) -> Answer:
    """A tick stamped in microseconds (~1000x ahead) must not freeze its symbol."""
    async with await _publisher(t) as pub:
        r = await pub.post("/api/ticks", json=[{"symbol": FUTURE, "price": 1.0, "size": 1.0, "ts": next_ts() * 1000}])
        later = await pub.post("/api/ticks", json=[{"symbol": FUTURE, "price": 1.0, "size": 1.0, "ts": next_ts()}])
        assert later.status_code == 202, later.text
    return http(r.status_code)


async def _huge_tick_array(t: Target) -> Answer:
    ts = next_ts()
    items = [{"symbol": "NOPE/USD", "price": 1.0, "size": 1.0, "ts": ts}] * 50_000
    answer = await request("POST", "/api/ticks", body=[{"symbol": "ADA/USD", "price": 0.5, "size": 1.0, "ts": ts}, *items])(t)
    async with httpx.AsyncClient(base_url=t.http, timeout=30, headers=t.user_headers()) as c:
        r = await c.get("/api/candles", params={"symbol": "ADA/USD", "interval": "1s", "since": ts})
    assert r.json()["candles"] == []  # nothing of the request was applied
    return answer


TICKS_MAX_BODY = 10_000_000  # Litestar's default request_max_body_size, kept for POST /api/ticks
MAX_BODY = 1024 * 1024  # every other write route


def oversized_body(path: str, who: str, size: int, *, chunked: bool) -> Attack:
    """POST ``size`` bytes: declared up front (``Content-Length``, only a few bytes sent), or
    streamed chunked without a length, then read the answer. (Nothing is sent past ``size``: data
    the server never reads would make its close a TCP reset, which can eat the answer.)"""

    async def attack(t: Target) -> Answer:
        h = t.publisher_headers() if who == "publisher" else t.user_headers(users("attacker")[0])
        reader, writer = await asyncio.open_connection("127.0.0.1", t.port)
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAuthorization: {h['Authorization']}\r\n"
        try:
            if chunked:
                writer.write((head + "Transfer-Encoding: chunked\r\n\r\n").encode())
                left = size
                while left:
                    n = min(left, 65536)
                    writer.write(b"%x\r\n" % n + b"1" * n + b"\r\n")
                    await writer.drain()
                    left -= n
            else:
                writer.write((head + f"Content-Length: {size}\r\n\r\n").encode() + b"[1,")
                await writer.drain()
            status_line = await asyncio.wait_for(reader.readline(), 30)
        finally:
            writer.close()
        return http(int(status_line.split()[1]))

    return attack


def _limit(path: str) -> int:
    return TICKS_MAX_BODY if path == "/api/ticks" else MAX_BODY


async def _flood_before_auth(t: Target) -> Answer:
    async with await t.connect() as sock:
        for i in range(200):
            try:
                await sock.send(json.dumps({"type": "ping", "ts": i}))
            except ConnectionClosed:
                break
        return await _outcome(sock, probe=False)


async def _short_flood(t: Target) -> Answer:
    async with await t.authed(users("flooder")[0]) as sock:
        for i in range(300):
            await sock.send(json.dumps({"type": "ping", "ts": i}))
        await asyncio.sleep(1.2)  # lets the bucket refill so the probe's ping is accepted
        return await _outcome(sock, probe=True)


async def _persistent_flood(t: Target) -> Answer:
    """Keep over the rate limit (a ping every millisecond), reading meanwhile, until closed."""
    async with await t.authed(users("flooder")[0]) as sock:
        codes: list[str] = []

        async def read() -> Answer:
            try:
                while True:
                    message = json.loads(await sock.recv())
                    if message["type"] == "error":
                        codes.append(message["code"])
            except ConnectionClosed as exc:
                return ws(*codes, close=exc.rcvd.code if exc.rcvd is not None else None)

        reader = asyncio.create_task(read())
        deadline = time.monotonic() + FLOOD_CLOSE_S + 10
        try:
            while time.monotonic() < deadline and not reader.done():
                await sock.send('{"type":"ping","ts":1}')
                await asyncio.sleep(0.001)
        except ConnectionClosed:
            pass
        return await asyncio.wait_for(reader, 10)


async def _unauthenticated_metric(t: Target) -> float:
    async with httpx.AsyncClient(base_url=t.http, timeout=10) as c:
        text = (await c.get("/metrics")).text
    return float(next(line for line in text.splitlines() if line.startswith("tickfan_unauthenticated_connections")).split()[-1])


async def _over_the_unauthenticated_limit(t: Target) -> Answer:
    """Hold the per-address limit of silent sockets, then open one more."""
    deadline = time.monotonic() + 10
    while await _unauthenticated_metric(t) > 0:  # sockets of earlier cases still closing
        assert time.monotonic() < deadline, "unauthenticated sockets of earlier cases never went away"
        await asyncio.sleep(0.05)
    held = [await t.connect() for _ in range(UNAUTH_PER_PEER)]
    try:
        async with await t.connect() as extra:
            answer = await _outcome(extra, probe=False, timeout=10)
            reason = extra.close_reason
        assert reason == "too many unauthenticated connections from this address", reason
        # the held sockets are still served: one of them authenticates
        await held[0].send(json.dumps({"type": "auth", "token": t.token(users("alice")[0])}))
        assert (await recv_json(held[0]))["type"] == "auth_success"
    finally:
        for sock in held:
            await sock.close()
    while await _unauthenticated_metric(t) > 0:  # let the guard's fresh socket in
        assert time.monotonic() < deadline + 10, "the held sockets were never released"
        await asyncio.sleep(0.05)
    return answer


# --- the table ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    what: str
    attack: Attack = field(repr=False, compare=False)
    expect: Answer
    on: str = "hs"


def _token_cases() -> list[Case]:
    out = []
    for name, (on, what, make) in TOKENS.items():
        wrap = _no_fetch if name.startswith(("jku", "x5u")) else (lambda a: a)
        out.append(Case(f"ws_token_{name}", f"socket `auth` with a token: {what}", wrap(ws_token(make)), ws("auth_required", close=1008), on))
        out.append(Case(f"http_token_{name}", f"`GET /api/symbols` with a token: {what}", wrap(request("GET", "/api/symbols", headers=bearer_of(make))), http(401), on))
    return out


TICK = {"symbol": "ADA/USD", "price": 0.5, "size": 1.0, "ts": 1}
WRITES = [("POST", "/api/ticks"), ("POST", "/api/notifications"), ("POST", "/api/bots/b-1/status")]
USER_WRITES = [("POST", "/api/alerts"), ("POST", "/api/notifications/read"), ("DELETE", "/api/alerts/1")]
READS = [("GET", "/api/symbols"), ("GET", "/api/candles?symbol=BTC/USD"), ("GET", "/api/notifications"), ("GET", "/api/alerts")]
JSON_BODIES = [("/api/ticks", "publisher"), ("/api/notifications", "publisher"), ("/api/bots/b-1/status", "publisher"), ("/api/alerts", "user"), ("/api/notifications/read", "user")]


def _slug(path: str) -> str:
    return path.strip("/").replace("/api/", "").replace("api/", "").replace("/", "_").replace("-", "_").split("?")[0]


def _tick(**change: Any) -> list[dict[str, Any]]:
    return [{**TICK, "ts": next_ts(), **change}]


CASES: list[Case] = [
    *_token_cases(),
    Case("ws_token_oversized", "socket `auth` with an 88 KB token (over the frame limit)",
         frames(lambda t: json.dumps({"type": "auth", "token": _oversized_token(t)}), auth=False), ws("message_too_large", close=1009)),
    Case("http_token_oversized", "`GET /api/symbols` with an 88 KB token signed with another secret", request("GET", "/api/symbols", headers=bearer_of(_oversized_token)), http(401)),
    Case("ws_token_not_string", "socket `auth` with `token: 42`", frames('{"type":"auth","token":42}', auth=False), ws("auth_required", close=1008)),
    Case("ws_token_1e400", "socket `auth` with `token: 1e400`", frames('{"type":"auth","token":1e400}', auth=False), ws("auth_required", close=1008)),
    # --- before authentication
    Case("ws_preauth_ping", "`ping` as the first message", frames('{"type":"ping","ts":1}', auth=False), ws("auth_required", close=1008)),
    Case("ws_preauth_subscribe", "`subscribe` as the first message", frames('{"type":"subscribe","symbols":["BTC/USD"]}', auth=False), ws("auth_required", close=1008)),
    Case("ws_preauth_garbage", "not JSON as the first message", frames("hello", auth=False), ws("auth_required", close=1008)),
    Case("ws_preauth_array", "a JSON array as the first message", frames("[1,2]", auth=False), ws("auth_required", close=1008)),
    Case("ws_preauth_binary", "a binary frame as the first message", frames(b"\x00\x01binary", auth=False), ws("auth_required", close=1008)),
    Case("ws_preauth_deep_nesting", "20,000-deep nested arrays as the first message", frames(_deep(20_000), auth=False), ws("auth_required", close=1008)),
    Case("ws_preauth_oversized", "a 65 KiB + 1 byte first message", frames(_frame_of_bytes(MAX_BYTES + 1, "x"), auth=False), ws("message_too_large", close=1009)),
    Case("ws_preauth_flood", "200 pings without authenticating", _flood_before_auth, ws("auth_required", close=1008)),
    Case("ws_auth_timeout", "a socket that never sends anything", _silent, ws("auth_required", close=1008)),
    # --- malformed frames after authentication
    Case("ws_invalid_json", "`{not json`", frames("{not json"), ws("invalid_json")),
    Case("ws_nan", '`{"type":"ping","ts":NaN}`', frames('{"type":"ping","ts":NaN}'), ws("invalid_json")),
    Case("ws_infinity", '`{"type":"ping","ts":Infinity}`', frames('{"type":"ping","ts":Infinity}'), ws("invalid_json")),
    Case("ws_1e400", '`{"type":"ping","ts":1e400}` (out of range)', frames('{"type":"ping","ts":1e400}'), ws("invalid_message")),
    Case("ws_1e400_in_subscribe", "`interval_ms: 1e400` in a subscribe", frames('{"type":"subscribe","symbols":["BTC/USD"],"interval_ms":1e400}'), ws("invalid_message")),
    Case("ws_non_object_number", "`42`", frames("42"), ws("invalid_message")),
    Case("ws_non_object_string", '`"a string"`', frames('"a string"'), ws("invalid_message")),
    Case("ws_non_object_array", "`[1,2,3]`", frames("[1,2,3]"), ws("invalid_message")),
    Case("ws_non_object_null", "`null`", frames("null"), ws("invalid_message")),
    Case("ws_no_type", '`{"no_type":1}`', frames('{"no_type":1}'), ws("invalid_message")),
    Case("ws_deep_nesting_array", "20,000-deep nested arrays", frames(_deep(20_000)), ws("invalid_message")),
    Case("ws_deep_nesting_object", "10,000-deep nested objects", frames(_deep_object(10_000)), ws("invalid_message")),
    Case("ws_deep_nesting_in_field", "`subscribe` whose `symbols` is 20,000-deep nested arrays", frames('{"type":"subscribe","symbols":' + _deep(20_000) + "}"), ws("invalid_message")),
    Case("ws_deep_nesting_extra_field", "`ping` with an extra field of 20,000-deep nested arrays", frames('{"type":"ping","ts":1,"x":' + _deep(20_000) + "}"), ws("invalid_message")),
    Case("ws_binary_frame", "a binary frame after auth", frames(b'{"type":"ping","ts":1}'), ws("invalid_message")),
    Case("ws_frame_over_limit", "a 65,537-byte frame (ASCII)", frames(_frame_of_bytes(MAX_BYTES + 1, "x")), ws("message_too_large", close=1009)),
    Case("ws_frame_over_limit_multibyte", "a 65,537-byte frame of 2-byte characters (32,769 characters)", frames(_frame_of_bytes(MAX_BYTES + 1, "é")), ws("message_too_large", close=1009)),
    Case("ws_frame_at_limit_multibyte", "a frame of exactly 65,536 bytes of 4-byte characters", frames(_frame_of_bytes(MAX_BYTES, "😀")), ws()),
    Case("ws_frame_2mb", "a 2 MiB frame", frames(_frame_of_bytes(2 * 1024 * 1024, "x")), ws("message_too_large", close=1009)),
    Case("ws_huge_symbol_array", "`subscribe` with 10,001 symbols", frames(json.dumps({"type": "subscribe", "symbols": ["A"] * 10_001})), ws("invalid_message")),
    Case("ws_huge_mark_read", "`mark_read` with 1,001 ids", frames(json.dumps({"type": "mark_read", "ids": list(range(1001))}), path=NOTES), ws("invalid_message")),
    Case("ws_negative_since", "`backfill_request` with `since: -1`", frames('{"type":"backfill_request","symbols":["BTC/USD"],"since":-1}'), ws("invalid_message")),
    Case("ws_negative_interval", "`subscribe` with `interval_ms: -50`", frames('{"type":"subscribe","symbols":["BTC/USD"],"interval_ms":-50}'), ws("invalid_message")),
    Case("ws_fractional_interval", "`subscribe` with `interval_ms: 50.5`", frames('{"type":"subscribe","symbols":["BTC/USD"],"interval_ms":50.5}'), ws("invalid_message")),
    Case("ws_negative_mark_read", "`mark_read` with `ids: [-1]`", frames('{"type":"mark_read","ids":[-1]}', path=NOTES), ws("invalid_message")),
    Case("ws_huge_mark_read_id", "`mark_read` with `ids: [2^53]`", frames('{"type":"mark_read","ids":[9007199254740992]}', path=NOTES), ws("invalid_message")),
    Case("ws_negative_set_interval", "`set_interval` with `interval_ms: -250`", frames('{"type":"set_interval","interval_ms":-250}', path=PERF), ws("invalid_message")),
    Case("ws_unknown_symbol", "`subscribe` to `NOPE/USD`", frames('{"type":"subscribe","symbols":["NOPE/USD"],"mode":"tick"}'), ws("unknown_symbol")),
    Case("ws_unknown_symbol_backfill", "`backfill_request` for `NOPE/USD`", frames('{"type":"backfill_request","symbols":["NOPE/USD"],"since":0}'), ws("unknown_symbol")),
    Case("ws_short_flood", "300 pings at once, then quiet", _short_flood, ws("rate_limited")),
    Case("ws_persistent_flood", f"pings over the rate limit without pause (closed after `--rate-limit-close-s`, {FLOOD_CLOSE_S} s here)", _persistent_flood, ws("rate_limited", "rate_limited", close=1008)),
    Case("ws_unauthenticated_over_limit", f"a silent socket beyond the per-address limit ({UNAUTH_PER_PEER} here) of unauthenticated sockets", _over_the_unauthenticated_limit, ws(close=1013)),
    *[
        Case(f"ws_unknown_type_{_slug(p)}", f"`teleport` message on `{p}`", frames('{"type":"teleport"}', path=p), ws("unknown_type"))
        for p in (MD, BOTS, NOTES, PERF)
    ],
    # --- other users' data
    Case("idor_alert_delete", "delete another user's alert by id", _idor_alert, http(404)),
    Case("idor_notification_read_http", "mark another user's notification read over HTTP", _idor_notification_http, http(200, {"ids": []})),
    Case("idor_notification_read_ws", "`mark_read` of another user's notification id", _idor_notification_ws, ws(body={"type": "marked_read", "ids": []})),
    Case("idor_bot_status", "a user token posting another user's bot status", _idor_bots, http(403)),
    # --- scopes and missing tokens
    *[Case(f"scope_{m.lower()}_{_slug(p)}", f"`{m} {p}` with a user token (no `publish` scope)", request(m, p, who="user", body={}), http(403)) for m, p in WRITES],
    *[Case(f"no_token_{m.lower()}_{_slug(p)}", f"`{m} {p}` without a token", request(m, p, who=None, body={}), http(401)) for m, p in WRITES + USER_WRITES + READS],
    # --- HTTP bodies
    *[Case(f"http_invalid_json_{_slug(p)}", f"`POST {p}` with `{{not json`", request("POST", p, who=who, raw=b"{not json"), http(400)) for p, who in JSON_BODIES],
    *[Case(f"http_deep_nesting_{_slug(p)}", f"`POST {p}` with 20,000-deep nested arrays", request("POST", p, who=who, raw=_deep(20_000).encode()), http(400)) for p, who in JSON_BODIES],
    *[Case(f"http_oversized_body_{_slug(p)}", f"`POST {p}` declaring a body of {_limit(p):,} + 1 bytes", oversized_body(p, who, _limit(p) + 1, chunked=False), http(413)) for p, who in JSON_BODIES],
    *[Case(f"http_oversized_chunked_{_slug(p)}", f"`POST {p}` streaming {_limit(p):,} + 1 bytes chunked, no length", oversized_body(p, who, _limit(p) + 1, chunked=True), http(413)) for p, who in JSON_BODIES],
    Case("http_non_array_ticks", "`POST /api/ticks` with an object", request("POST", "/api/ticks", body={"symbol": "ADA/USD"}), http(422)),
    Case("http_non_object_notification", "`POST /api/notifications` with `[1,2]`", request("POST", "/api/notifications", body=[1, 2]), http(422)),
    Case("http_non_object_bot_status", '`POST /api/bots/b-1/status` with `"x"`', request("POST", "/api/bots/b-1/status", body="x"), http(422)),
    Case("http_non_object_alert", "`POST /api/alerts` with `42`", request("POST", "/api/alerts", who="user", body=42), http(422)),
    Case("http_huge_tick_array", "`POST /api/ticks` with 50,001 items, one valid", _huge_tick_array, http(422)),
    Case("http_huge_read_ids", "`POST /api/notifications/read` with 1,001 ids", request("POST", "/api/notifications/read", who="user", body={"ids": list(range(1001))}), http(422)),
    Case("http_tick_nan", "a tick with `price: NaN`", request("POST", "/api/ticks", raw=b'[{"symbol":"ADA/USD","price":NaN,"size":1,"ts":1}]'), http(400)),
    Case("http_tick_infinity", "a tick with `price: Infinity`", request("POST", "/api/ticks", raw=b'[{"symbol":"ADA/USD","price":Infinity,"size":1,"ts":1}]'), http(400)),
    Case("http_tick_1e400", "a tick with `price: 1e400`", request("POST", "/api/ticks", raw=b'[{"symbol":"ADA/USD","price":1e400,"size":1,"ts":1}]'), http(400)),
    Case("http_tick_negative_price", "a tick with `price: -1`", request("POST", "/api/ticks", body=_tick(price=-1.0)), http(422)),
    Case("http_tick_zero_price", "a tick with `price: 0`", request("POST", "/api/ticks", body=_tick(price=0)), http(422)),
    Case("http_tick_negative_size", "a tick with `size: -1`", request("POST", "/api/ticks", body=_tick(size=-1.0)), http(422)),
    Case("http_tick_too_precise", "a tick with more decimals than the symbol has (`0.500001` for 5)", request("POST", "/api/ticks", body=_tick(price=0.500001)), http(422)),
    Case("http_tick_negative_ts", "a tick with `ts: -1`", request("POST", "/api/ticks", body=_tick(ts=-1)), http(422)),
    Case("http_tick_fractional_ts", "a tick with `ts: 1.5`", request("POST", "/api/ticks", body=_tick(ts=1.5)), http(422)),
    Case("http_tick_ts_over_2_53", "a tick with `ts: 2^53`", request("POST", "/api/ticks", body=_tick(ts=2**53)), http(422)),
    Case("http_tick_unknown_symbol", "a tick of `NOPE/USD`", request("POST", "/api/ticks", body=_tick(symbol="NOPE/USD")), http(422)),
    Case("http_ts_backwards", "a tick a minute older than its symbol's last one", _ts_backwards, http(422)),
    Case("http_far_future_ts", "a tick stamped in microseconds (~1000x ahead of the clock)", _far_future_ts, http(422)),
    Case("http_notification_9mb_data", "a notification whose `data` is 9 MB (declared)", oversized_body("/api/notifications", "publisher", 9_000_000, chunked=False), http(413)),
    Case("http_notification_data_over_cap", "a notification whose `data` is 16,385 bytes of JSON", request("POST", "/api/notifications", body={"user_id": "victim", "kind": "info", "title": "t", "data": {"b": "x" * (16_384 - 7)}}), http(422)),
    Case("http_notification_data_at_cap", "a notification whose `data` is exactly 16,384 bytes of JSON", request("POST", "/api/notifications", body={"user_id": "victim", "kind": "info", "title": "t", "data": {"b": "x" * (16_384 - 8)}}), http(201)),
    Case("http_notification_data_too_deep", "a notification whose `data` nests 33 levels", request("POST", "/api/notifications", body={"user_id": "victim", "kind": "info", "title": "t", "data": json.loads(_deep_object(33))}), http(422)),
    Case("http_notification_data_32_levels", "a notification whose `data` nests 32 levels", request("POST", "/api/notifications", body={"user_id": "victim", "kind": "info", "title": "t", "data": json.loads(_deep_object(32))}), http(201)),
    Case("http_notification_long_title", "a notification whose `title` is 16,385 characters", request("POST", "/api/notifications", body={"user_id": "victim", "kind": "info", "title": "x" * 16_385}), http(422)),
    Case("http_bot_5mb_detail", "a bot status whose `detail` is 5 MB (declared)", oversized_body("/api/bots/b-1/status", "publisher", 5_000_000, chunked=False), http(413)),
    Case("http_bot_detail_over_cap", "a bot status whose `detail` is 4,097 bytes of JSON", request("POST", "/api/bots/b-1/status", body={"user_id": "victim", "status": "running", "detail": {"b": "x" * (4096 - 7)}}), http(422)),
    Case("http_alert_nan", "an alert with `above: NaN`", request("POST", "/api/alerts", who="user", raw=b'{"symbol":"BTC/USD","above":NaN}'), http(400)),
    Case("http_alert_1e400", "an alert with `above: 1e400`", request("POST", "/api/alerts", who="user", raw=b'{"symbol":"BTC/USD","above":1e400}'), http(400)),
    Case("http_alert_negative", "an alert with `below: -1`", request("POST", "/api/alerts", who="user", body={"symbol": "BTC/USD", "below": -1}), http(422)),
    Case("http_alert_unknown_symbol", "an alert on `NOPE/USD`", request("POST", "/api/alerts", who="user", body={"symbol": "NOPE/USD", "above": 1}), http(422)),
    # --- query parameters
    *[
        Case(f"http_query_{name}", f"`GET {path}`", request("GET", path, who="user"), http(status))
        for name, path, status in [
            ("candles_limit_0", "/api/candles?symbol=BTC/USD&limit=0", 422),
            ("candles_limit_100001", "/api/candles?symbol=BTC/USD&limit=100001", 422),
            ("candles_limit_abc", "/api/candles?symbol=BTC/USD&limit=abc", 400),
            ("candles_since_abc", "/api/candles?symbol=BTC/USD&since=abc", 400),
            ("candles_since_negative", "/api/candles?symbol=BTC/USD&since=-1", 422),
            ("candles_since_over_2_53", "/api/candles?symbol=BTC/USD&since=9007199254740992", 422),
            ("candles_bad_interval", "/api/candles?symbol=BTC/USD&interval=7m", 422),
            ("candles_unknown_symbol", "/api/candles?symbol=NOPE/USD", 422),
            ("candles_no_symbol", "/api/candles", 400),
            ("notifications_limit_0", "/api/notifications?limit=0", 422),
            ("notifications_limit_1001", "/api/notifications?limit=1001", 422),
            ("notifications_after_negative", "/api/notifications?after=-1", 422),
            ("notifications_after_abc", "/api/notifications?after=abc", 400),
        ]
    ],
    Case("http_delete_alert_not_int", "`DELETE /api/alerts/abc`", request("DELETE", "/api/alerts/abc", who="user"), http(404)),
    Case("http_delete_alert_huge_id", "`DELETE /api/alerts/<10^23>`", request("DELETE", "/api/alerts/" + "9" * 23, who="user"), http(404)),
    # --- origins
    Case("ws_cross_site_origin", "a WebSocket upgrade from `Origin: https://evil.example` (allow-list set)", _cross_site_origin, http(403)),
]


# --- the guard: others unaffected, the server still serves ----------------------------------------


async def guarded(t: Target, attack: Attack) -> Answer:
    """Run ``attack`` while a :class:`Watcher` publishes and watches ticks; check it got every
    tick with contiguous ``seq``, and that the server still serves."""
    async with Watcher(t) as watcher:
        answer = await attack(t)
        await watcher.finish()
    watcher.assert_contiguous()
    async with httpx.AsyncClient(base_url=t.http, timeout=10) as c:
        assert (await c.get("/healthz")).json() == {"status": "ok"}
    async with await t.authed(users("fresh")[0]) as fresh:
        assert await barrier(fresh) == []
    return answer


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_attack(case: Case, request: pytest.FixtureRequest, core: str) -> None:
    target: Target = request.getfixturevalue(case.on)
    observed = run(guarded(target, case.attack), timeout=90)
    assert observed == case.expect, f"answered {observed.text()}, expected {case.expect.text()}"


def test_case_names_are_unique() -> None:
    names = [c.name for c in CASES]
    assert len(names) == len(set(names))


def doc_row(case: Case) -> str:
    return f"| `{case.name}` | {case.what} | {case.expect.text()} |"


def test_security_doc_lists_every_attack() -> None:
    """docs/security.md has one row per case, with the answer this suite checks."""
    doc = DOC.read_text().splitlines()
    missing = [doc_row(c) for c in CASES if doc_row(c) not in doc]
    assert not missing, "docs/security.md lacks (or states differently) these rows:\n" + "\n".join(missing)


if __name__ == "__main__":  # PYTHONPATH=tests/e2e python tests/e2e/test_attacks_e2e.py: the doc's table
    print("| case | attack | answer |\n| --- | --- | --- |")
    for case in CASES:
        print(doc_row(case))
