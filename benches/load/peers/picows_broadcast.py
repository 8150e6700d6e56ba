"""A fast-Python peer: a small pub/sub broadcast on picows (Cython WebSocket) and uvloop.

Each tick is encoded and framed once (msgspec; a server frame is unmasked, so the same bytes
serve every subscriber), and each ingest request's frames for a symbol go to every subscriber
in ONE transport write, synchronously, with no awaits: about as fast as per-frame fan-out gets
in Python. Its best mode is `tick` frames only (every tick its own `market_data` frame; only the
TCP writes are coalesced): no batching, no conflation, no per-connection queue bound (a slow
reader's bytes pile up in its transport buffer). It verifies the `auth` JWT (HS256,
PyJWT) like the other servers, answers `subscribe` and `ping`.

picows serves GET upgrades only, so ingest (POST /api/ticks with a publish-scope bearer token,
GET /api/symbols, GET /healthz) listens on its own port, --ingest-port, with a minimal
keep-alive HTTP/1.1 protocol.

    python benches/load/peers/picows_broadcast.py --port 8002 --ingest-port 8003
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

import jwt
import msgspec
import uvloop
from picows import WSCloseCode, WSListener, WSMsgType, ws_create_server

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from wire import DEFAULT_UNIVERSE  # noqa: E402

SECRET = os.environ.get("TICKFAN_JWT_SECRET", "")
SUBSCRIBERS: dict[str, set[Any]] = {s: set() for s in DEFAULT_UNIVERSE}
SEQ: dict[str, int] = {s: 0 for s in DEFAULT_UNIVERSE}
EPOCH = str(os.getpid())
encode = msgspec.json.encode
decode = msgspec.json.decode
TEXT = WSMsgType.TEXT


def verify(token: Any) -> dict | None:
    try:
        return jwt.decode(token, SECRET, algorithms=["HS256"], options={"require": ["sub", "exp"]})
    except (jwt.PyJWTError, TypeError):
        return None


class Session(WSListener):
    def __init__(self) -> None:
        self.authed = False
        self.mine: set[str] = set()
        self.transport: Any = None

    def on_ws_connected(self, transport) -> None:
        self.transport = transport

    def on_ws_disconnected(self, transport) -> None:
        for s in self.mine:
            SUBSCRIBERS[s].discard(transport)

    def on_ws_frame(self, transport, frame) -> None:
        if frame.msg_type is WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()
            return
        if frame.msg_type is not TEXT:
            return
        try:
            msg = decode(frame.get_payload_as_bytes())
        except msgspec.DecodeError:
            transport.send(TEXT, b'{"type":"error","code":"invalid_json","error":"Invalid JSON"}')
            return
        kind = msg.get("type") if isinstance(msg, dict) else None
        if not self.authed:
            claims = verify(msg.get("token")) if kind == "auth" else None
            if claims is None:
                transport.send(TEXT, b'{"type":"error","code":"auth_required","error":"Authentication required"}')
                transport.send_close(WSCloseCode.POLICY_VIOLATION)
                transport.disconnect()
                return
            self.authed = True
            transport.send(TEXT, encode({"type": "auth_success", "user_id": claims["sub"], "expires_at": claims["exp"]}))
        elif kind == "subscribe":
            known = [s for s in msg.get("symbols", []) if s in SUBSCRIBERS]
            for s in known:
                SUBSCRIBERS[s].add(transport)
                self.mine.add(s)
            transport.send(
                TEXT, encode({"type": "subscribed", "symbols": known, "mode": msg.get("mode", "auto"), "epoch": EPOCH})
            )
        elif kind == "ping":
            transport.send(TEXT, encode({"type": "pong", "ts": msg.get("ts")}))


def ws_frame(payload: bytes) -> bytes:
    """An unmasked server TEXT frame: the same bytes serve every subscriber."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload


def ingest(body: bytes) -> int:
    """Number, encode and frame each tick once; then one write per subscriber per symbol."""
    ticks = decode(body)
    frames: dict[str, list[bytes]] = {}
    for t in ticks:
        s = t["symbol"]
        SEQ[s] = seq = SEQ[s] + 1
        payload = encode(
            {"type": "market_data", "symbol": s, "seq": seq, "ts": t["ts"], "price": t["price"], "size": t["size"]}
        )
        frames.setdefault(s, []).append(ws_frame(payload))
    for s, fs in frames.items():
        chunk = b"".join(fs)
        for tr in SUBSCRIBERS[s]:
            tr.underlying_transport.write(chunk)
    return len(ticks)


class IngestHttp(asyncio.Protocol):
    """Keep-alive HTTP/1.1 with Content-Length bodies: all the publisher needs."""

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            head_end = self.buf.find(b"\r\n\r\n")
            if head_end < 0:
                return
            lines = self.buf[:head_end].decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
            length = int(headers.get("content-length", "0"))
            if len(self.buf) < head_end + 4 + length:
                return
            body = self.buf[head_end + 4 : head_end + 4 + length]
            self.buf = self.buf[head_end + 4 + length :]
            method, path = lines[0].split()[:2]
            self.respond(*self.handle(method, path, headers, body))

    def handle(self, method: str, path: str, headers: dict, body: bytes) -> tuple[int, bytes]:
        if method == "GET" and path == "/healthz":
            return 200, b'{"status":"ok"}'
        if method == "GET" and path == "/api/symbols":
            return 200, encode(
                {"symbols": [{"symbol": s, "price_decimals": p, "size_decimals": d} for s, (p, d) in DEFAULT_UNIVERSE.items()]}
            )
        if method == "POST" and path == "/api/ticks":
            claims = verify(headers.get("authorization", "").removeprefix("Bearer "))
            if claims is None:
                return 401, b'{"error":"a valid bearer token is required"}'
            if "publish" not in str(claims.get("scope", "")).split():
                return 403, b'{"error":"publish scope required"}'
            try:
                return 202, encode({"accepted": ingest(body)})
            except (msgspec.DecodeError, KeyError, TypeError) as exc:
                return 422, encode({"error": str(exc)})
        return 404, b'{"error":"not found"}'

    def respond(self, status: int, body: bytes) -> None:
        self.transport.write(
            b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body)
        )


async def main(a: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    ws = await ws_create_server(
        lambda request: Session() if request.path == b"/ws/market-data" else None,
        a.host,
        a.port,
        backlog=a.backlog,
        read_buffer_init_size=4096,
    )
    http = await loop.create_server(IngestHttp, a.host, a.ingest_port)
    async with ws, http:
        await asyncio.gather(ws.serve_forever(), http.serve_forever())


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8002)
    ap.add_argument("--ingest-port", type=int, default=8003)
    ap.add_argument("--backlog", type=int, default=1024)
    uvloop.run(main(ap.parse_args()))
