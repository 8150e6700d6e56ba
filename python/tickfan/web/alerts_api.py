"""``POST /api/alerts``, ``GET /api/alerts``, ``DELETE /api/alerts/{id}`` (PROTOCOL.md section 6).

A user token is enough; each user sees and deletes only their own alerts (another user's id is
a 404, indistinguishable from an unknown one). Body: ``{"symbol", "above"}`` or
``{"symbol", "below"}``, exactly one of the two, a finite number > 0.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import msgspec
from msgspec import Meta
from litestar import Request, Response, delete, get, post

from tickfan.errors import InvalidArgument, UnknownSymbol
from tickfan.stores import Alert
from tickfan.web.api import MAX_BODY_BYTES, ApiError, broker_of, decode_body, require_principal

__all__ = ["ROUTES"]

_MAX_ID = 2**53 - 1
MAX_SYMBOL_CHARS = 64
"""Longer than any universe name (at most 32): a longer ``symbol`` is a 422 at decoding."""


class _AlertBody(msgspec.Struct, forbid_unknown_fields=True):
    symbol: Annotated[str, Meta(max_length=MAX_SYMBOL_CHARS)]
    above: float | None = None
    below: float | None = None


def _view(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "symbol": alert.symbol,
        "direction": alert.direction,
        "level": alert.level,
        "created_at": alert.created_at,
    }


@post("/api/alerts", status_code=201, request_max_body_size=MAX_BODY_BYTES)
async def create_alert(request: Request[Any, Any, Any]) -> dict[str, int]:
    principal = require_principal(request)
    body: _AlertBody = await decode_body(request, _AlertBody)
    if (body.above is None) == (body.below is None):
        raise ApiError(422, 'Give exactly one of "above" or "below"')
    direction, level = ("above", body.above) if body.above is not None else ("below", body.below)
    assert level is not None
    if not math.isfinite(level) or level <= 0:
        raise ApiError(422, f'"{direction}" must be a finite number > 0')
    try:
        alert = await broker_of(request).add_alert(principal.sub, body.symbol, direction, level)
    except UnknownSymbol:
        raise ApiError(422, f"unknown symbol {body.symbol[:40]!r}") from None
    except InvalidArgument as exc:
        raise ApiError(422, str(exc)) from None
    return {"id": alert.id}


@get("/api/alerts")
async def list_alerts(request: Request[Any, Any, Any]) -> dict[str, list[dict[str, Any]]]:
    principal = require_principal(request)
    return {"alerts": [_view(a) for a in await broker_of(request).store.list_alerts(principal.sub)]}


@delete("/api/alerts/{alert_id:int}", status_code=204)
async def delete_alert(request: Request[Any, Any, Any], alert_id: int) -> Response[None]:
    principal = require_principal(request)
    if not 0 < alert_id <= _MAX_ID or not await broker_of(request).delete_alert(principal.sub, alert_id):
        raise ApiError(404, f"no alert {alert_id} of yours")
    return Response(None, status_code=204)


ROUTES = [create_alert, list_alerts, delete_alert]
