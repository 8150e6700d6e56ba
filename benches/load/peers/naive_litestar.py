"""The naive baseline: what a plain Litestar WebSocket fan-out usually looks like.

A set of sockets per symbol; POST /api/ticks numbers each tick and, for every subscriber,
JSON-encodes the tick again and awaits the send (`send_json`). No batching, no shared encoded
bytes, no per-connection queue. It speaks just enough of PROTOCOL.md for the load harness: the
`auth` handshake (HS256 JWT verified with PyJWT), `subscribe` (mode and interval are accepted
and ignored: every tick goes out as its own `market_data` frame), `ping`, GET /api/symbols,
GET /healthz and POST /api/ticks with a publish-scope bearer token.

    python benches/load/peers/naive_litestar.py --port 8001    # secret from TICKFAN_JWT_SECRET
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import jwt
from litestar import Litestar, Request, WebSocket, get, post, websocket
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException, WebSocketDisconnect

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from wire import DEFAULT_UNIVERSE  # noqa: E402

SECRET = os.environ.get("TICKFAN_JWT_SECRET", "")
SUBSCRIBERS: dict[str, set[WebSocket]] = {s: set() for s in DEFAULT_UNIVERSE}
SEQ: dict[str, int] = {s: 0 for s in DEFAULT_UNIVERSE}
EPOCH = str(os.getpid())


def verify(token: Any) -> dict | None:
    try:
        return jwt.decode(token, SECRET, algorithms=["HS256"], options={"require": ["sub", "exp"]})
    except (jwt.PyJWTError, TypeError):
        return None


@websocket("/ws/market-data")
async def market_data(socket: WebSocket) -> None:
    await socket.accept()
    mine: set[str] = set()
    try:
        first = await socket.receive_json()
        claims = verify(first.get("token")) if isinstance(first, dict) and first.get("type") == "auth" else None
        if claims is None:
            await socket.send_json({"type": "error", "code": "auth_required", "error": "Authentication required"})
            await socket.close(code=1008)
            return
        await socket.send_json({"type": "auth_success", "user_id": claims["sub"], "expires_at": claims["exp"]})
        while True:
            msg = await socket.receive_json()
            kind = msg.get("type") if isinstance(msg, dict) else None
            if kind == "subscribe":
                known = [s for s in msg.get("symbols", []) if s in SUBSCRIBERS]
                for s in known:
                    SUBSCRIBERS[s].add(socket)
                    mine.add(s)
                await socket.send_json(
                    {"type": "subscribed", "symbols": known, "mode": msg.get("mode", "auto"), "epoch": EPOCH}
                )
            elif kind == "ping":
                await socket.send_json({"type": "pong", "ts": msg.get("ts")})
    except WebSocketDisconnect:
        pass
    finally:
        for s in mine:
            SUBSCRIBERS[s].discard(socket)


@post("/api/ticks", status_code=202)
async def ingest(request: Request) -> dict:
    claims = verify(request.headers.get("authorization", "").removeprefix("Bearer "))
    if claims is None:
        raise NotAuthorizedException("a valid bearer token is required")
    if "publish" not in str(claims.get("scope", "")).split():
        raise PermissionDeniedException("publish scope required")
    ticks = await request.json()
    for t in ticks:
        s = t["symbol"]
        SEQ[s] += 1
        msg = {"type": "market_data", "symbol": s, "seq": SEQ[s], "ts": t["ts"], "price": t["price"], "size": t["size"]}
        for ws in list(SUBSCRIBERS[s]):
            try:
                await ws.send_json(msg)
            except Exception:  # a gone subscriber must not stop the fan-out
                SUBSCRIBERS[s].discard(ws)
    return {"accepted": len(ticks)}


@get("/api/symbols")
async def symbols() -> dict:
    return {"symbols": [{"symbol": s, "price_decimals": p, "size_decimals": d} for s, (p, d) in DEFAULT_UNIVERSE.items()]}


@get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}


app = Litestar(route_handlers=[market_data, ingest, symbols, healthz])


if __name__ == "__main__":
    from granian import Granian

    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8001)
    ap.add_argument("--backlog", type=int, default=1024, help="Granian's default")
    ap.add_argument("--http1-buffer-size", type=int, default=0, help="Granian's max_buffer_size (0: its default)")
    a = ap.parse_args()
    from granian.http import HTTP1Settings

    extra = {"http1_settings": HTTP1Settings(max_buffer_size=a.http1_buffer_size)} if a.http1_buffer_size else {}
    Granian(
        "naive_litestar:app",
        address=a.host,
        port=a.port,
        interface="asgi",
        workers=1,
        backlog=a.backlog,
        working_dir=Path(__file__).resolve().parent,
        log_level="warning",
        **extra,
    ).serve()
