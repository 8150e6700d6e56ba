"""HTTP routes (PROTOCOL.md section 6): ticks, symbols, candles, health, readiness, metrics.

Bearer JWT in ``Authorization``: :func:`require_principal` gives 401 without a valid token and
403 without the needed scope. Every error body is JSON: ``{"error": "<sentence>", "status_code": n}``,
plus ``"errors": [{"index", "error"}, ...]`` when ticks are refused.

Request bodies of every write route go through :func:`decode_json`, which tells two failures
apart the same way on every route:

* the body is not JSON the server can read (a syntax error, a number beyond the float range such
  as ``1e400``, nesting deeper than the decoder's recursion limit): **400**, "The body is not
  valid JSON: ...";
* the body is JSON but the wrong shape or values (a missing or unknown field, a wrong type, a
  string over its cap): **422** naming the field (msgspec's path, e.g. ``$.title``).

A body larger than the route's ``request_max_body_size`` is refused with **413** before it is
read. Free-form JSON values that are stored and later sent on a socket (notification ``data``,
bot ``detail``) are capped by :func:`json_value_problem`: at most ``max_bytes`` of compact JSON
and :data:`MAX_JSON_DEPTH` levels of nesting, so no stored value can outgrow a frame or a
client's queue, or the encoder's recursion limit.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.exceptions import HTTPException, NotAuthorizedException, PermissionDeniedException

from tickfan.auth import PUBLISH_SCOPE, AuthError, Principal
from tickfan.brokers import Broker
from tickfan.errors import BrokerUnavailable, InvalidArgument, TickRejected, UnknownSymbol
from tickfan.hub import Hub
from tickfan.metrics import CONTENT_TYPE

__all__ = [
    "ROUTES",
    "require_principal",
    "hub_of",
    "broker_of",
    "IDEMPOTENCY_KEY",
    "ApiError",
    "error_response",
    "decode_json",
    "decode_body",
    "json_value_problem",
    "MAX_BODY_BYTES",
    "MAX_JSON_DEPTH",
]

_TICK_KEYS = ("symbol", "price", "size", "ts")
RETRY_AFTER_S = "1"
"""``Retry-After`` of a 503 while the broker is unreachable (docs/protocol.md)."""
IDEMPOTENCY_KEY = "idempotency-key"
_MAX_KEY_CHARS = 256
_MAX_TS = 2**53 - 1


class ApiError(HTTPException):
    """An HTTP error with a JSON body; ``errors`` adds per-item details."""

    def __init__(self, status_code: int, detail: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail=detail, status_code=status_code)
        self.errors = errors


def error_response(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Litestar exception handler: every HTTP error as a JSON body."""
    if isinstance(exc, HTTPException):
        status, detail = exc.status_code, exc.detail
        headers = dict(exc.headers or {})
    elif isinstance(exc, BrokerUnavailable):
        status, headers = 503, {"Retry-After": RETRY_AFTER_S}
        detail = "The broker is unavailable; nothing is known to be applied. Retry (with the same Idempotency-Key)"
    else:
        status, detail, headers = 500, "Internal server error", {}
    body: dict[str, Any] = {"error": detail, "status_code": status}
    errors = getattr(exc, "errors", None)
    if errors:
        body["errors"] = errors
    extra = getattr(exc, "extra", None)
    if status == 400 and extra:
        body["details"] = extra
    if status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return Response(body, status_code=status, headers=headers, media_type="application/json")


MAX_BODY_BYTES = 1024 * 1024
"""Largest body of a notification, bot-status or alert request (413 beyond); ticks: 10 MB."""
MAX_JSON_DEPTH = 32
"""Deepest nesting of a stored free-form JSON value (the value itself is level 1)."""

_encode = msgspec.json.Encoder().encode


def decode_json(raw: bytes, kind: Any = Any) -> Any:
    """``raw`` decoded as ``kind``; :class:`ApiError` 400 (unreadable JSON) or 422 (wrong shape)."""
    try:
        return msgspec.json.decode(raw, type=kind)
    except RecursionError:
        raise ApiError(400, "The body is not valid JSON: it nests too deeply") from None
    except msgspec.ValidationError as exc:
        problem = _unreadable(raw)
        if problem is not None:
            raise ApiError(400, f"The body is not valid JSON: {problem}") from None
        raise ApiError(422, f"Invalid body: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, f"The body is not valid JSON: {exc}") from None


def _unreadable(raw: bytes) -> str | None:
    """Why ``raw`` is not readable JSON at all (slow path, only after a typed decode failed)."""
    try:
        msgspec.json.decode(raw)
    except RecursionError:
        return "it nests too deeply"
    except msgspec.DecodeError as exc:  # ValidationError included: "Number out of range"
        return str(exc)
    return None


async def decode_body(request: Request[Any, Any, Any], kind: Any = Any) -> Any:
    """The request's body decoded as ``kind`` (see :func:`decode_json`)."""
    return decode_json(await request.body(), kind)


def json_value_problem(field: str, value: Any, max_bytes: int) -> str | None:
    """Why ``value`` may not be stored as ``field``, or None: over ``max_bytes`` of compact
    JSON, or nested deeper than :data:`MAX_JSON_DEPTH`."""
    if _depth_over(value, MAX_JSON_DEPTH):
        return f"{field} nests deeper than {MAX_JSON_DEPTH} levels"
    size = len(_encode(value))
    if size > max_bytes:
        return f"{field} is {size} bytes of JSON, over its cap of {max_bytes} bytes"
    return None


def _depth_over(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def hub_of(request: Request[Any, Any, Any]) -> Hub:
    return request.app.state.hub  # type: ignore[no-any-return]


def broker_of(request: Request[Any, Any, Any]) -> Broker:
    return hub_of(request).broker


def require_principal(request: Request[Any, Any, Any], scope: str | None = None) -> Principal:
    """The request's principal; 401 without a valid bearer token, 403 without ``scope``."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthorizedException("A bearer token is required (Authorization: Bearer <JWT>)")
    try:
        principal = hub_of(request).verifier.verify(token.strip())
    except AuthError as exc:
        raise NotAuthorizedException("The token has expired" if exc.expired else "The token is invalid") from None
    if scope is not None and not principal.can(scope):
        raise PermissionDeniedException(f"This route needs a token with the {scope!r} scope")
    return principal


@post("/api/ticks", status_code=202)
async def post_ticks(request: Request[Any, Any, Any]) -> dict[str, int]:
    principal = require_principal(request, PUBLISH_SCOPE)
    hub = hub_of(request)
    key = request.headers.get(IDEMPOTENCY_KEY)
    if key is not None and not 1 <= len(key) <= _MAX_KEY_CHARS:
        raise ApiError(422, f"Idempotency-Key must be 1 to {_MAX_KEY_CHARS} characters")
    body = await decode_body(request)
    if not isinstance(body, list):
        raise ApiError(422, "The body must be a JSON array of ticks {symbol, price, size, ts}")
    ticks: list[Any] = []
    shape_errors: dict[int, str] = {}
    for index, item in enumerate(body):
        problem = _shape_problem(item)
        if problem is None:
            ticks.append((item["symbol"], item["price"], item["size"], item["ts"]))
        else:
            shape_errors[index] = problem
            ticks.append(None)  # the core refuses it as well, so nothing of the request applies
    try:
        # Keys are per publisher: two publishers never answer each other's retries.
        accepted = await hub.ingest(ticks, None if key is None else f"{principal.sub}\n{key}")
    except TickRejected as exc:
        messages = dict(exc.errors)
        messages.update(shape_errors)
        errors = [{"index": i, "error": messages[i]} for i in sorted(messages)]
        raise ApiError(422, f"{len(errors)} of {len(ticks)} ticks rejected; nothing was applied", errors) from None
    return {"accepted": accepted}


def _shape_problem(item: Any) -> str | None:
    if not isinstance(item, dict):
        return "tick must be an object {symbol, price, size, ts}"
    missing = [key for key in _TICK_KEYS if key not in item]
    if missing:
        return "missing field" + ("s " if len(missing) > 1 else " ") + ", ".join(missing)
    if not isinstance(item["symbol"], str):
        return "symbol must be a string"
    ts = item["ts"]
    if isinstance(ts, int) and not isinstance(ts, bool) and ts > _MAX_TS:
        return "ts out of range"
    return None


@get("/api/symbols")
async def get_symbols(request: Request[Any, Any, Any]) -> dict[str, Any]:
    require_principal(request)
    return {
        "symbols": [
            {"symbol": name, "price_decimals": pd, "size_decimals": sd}
            for name, pd, sd in hub_of(request).symbols()
        ]
    }


@get("/api/candles")
async def get_candles(
    request: Request[Any, Any, Any],
    symbol: str,
    interval: str = "1m",
    since: int | None = None,
    limit: int = 300,
) -> dict[str, Any]:
    require_principal(request)
    hub = hub_of(request)
    if not 1 <= limit <= 100_000:
        raise ApiError(422, "limit must be between 1 and 100000")
    if since is not None and not 0 <= since <= _MAX_TS:
        raise ApiError(422, f"since must be between 0 and {_MAX_TS}")
    if interval not in hub.intervals:
        raise ApiError(422, f"unknown interval {interval[:16]!r}; one of {', '.join(hub.intervals)}")
    try:
        if since is None:
            candles, complete = hub.recent_candles(symbol, interval, limit)
        else:
            candles, complete = hub.backfill(symbol, interval, since)
            candles = candles[:limit]
    except UnknownSymbol:
        raise ApiError(422, f"unknown symbol {symbol[:40]!r}") from None
    except InvalidArgument as exc:
        raise ApiError(422, str(exc)) from None
    return {"symbol": symbol, "interval": interval, "candles": candles, "complete": complete}


@get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz")
async def readyz(request: Request[Any, Any, Any]) -> Response[Any]:
    hub = hub_of(request)
    store_ok = await hub.broker.ready()
    ready = hub.ready and store_ok
    status = "ready" if ready else "starting" if not hub.ready else "unavailable"
    body = {"status": status, "core": hub.core_name, "broker": hub.config.broker.partition("://")[0],
            "store": "ok" if store_ok else "unreachable"}
    readiness = getattr(hub.broker, "readiness", None)  # the Redis broker says why not
    if readiness is not None and not store_ok:
        body["reason"] = readiness() or "unknown"
    return Response(body, status_code=200 if ready else 503)


@get("/metrics")
async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    return Response(hub_of(request).metrics.render(), media_type=CONTENT_TYPE)


ROUTES = [post_ticks, get_symbols, get_candles, healthz, readyz, metrics]
