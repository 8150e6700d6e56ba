"""``/ws/bot-status`` and ``POST /api/bots/{bot_id}/status`` (PROTOCOL.md sections 4 and 6).

After ``auth_success`` a socket gets one ``bot_status`` per bot of its user that the server
knows (by ``bot_id``; each carries the user's current ``running_count``), then every update of
that user's bots and nothing else. The channel accepts only ``auth`` and ``ping``.

Bot state is durable: the broker stores it (``Broker.put_bot``, in the broker's store) and
publishes each update; the channel pushes the updates of a user to that user's sockets
(:meth:`BotStatusChannel.deliver`, called by the hub) and reads the initial list from the store.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, post
from msgspec import Meta

from tickfan.auth import PUBLISH_SCOPE
from tickfan.bots import STATUSES, BotState
from tickfan.brokers import Broker
from tickfan.protocol import encode
from tickfan.session import Session
from tickfan.web.api import MAX_BODY_BYTES, ApiError, broker_of, decode_body, json_value_problem, require_principal
from tickfan.web.per_user import PerUserChannel

__all__ = ["BotStatusChannel", "ROUTES", "MAX_BOT_ID_CHARS"]

MAX_BOT_ID_CHARS = 128
_MAX_USER_ID_CHARS = 256
MAX_DETAIL_BYTES = 4096
"""Largest ``detail``, in bytes of compact JSON (nested at most ``MAX_JSON_DEPTH`` deep)."""


_PENDING = "bots_pending"


class BotStatusChannel(PerUserChannel):
    name = "bot_status"
    path = "/ws/bot-status"

    def __init__(self, broker: Broker) -> None:
        super().__init__()
        self.broker = broker

    async def on_authenticated(self, session: Session) -> None:
        assert session.principal is not None
        # Join before reading so no update is missed; hold live updates back until the initial
        # list is out. A bot with a held update is left out of the list: the update is at
        # least as new, so the socket never sees a bot's state go back in time.
        session.state[_PENDING] = []
        self.join(session)
        try:
            states = await self.broker.store.bots(session.principal.sub)
        finally:
            pending: list[BotState] = session.state.pop(_PENDING)
        updated = {state.bot_id for state in pending}
        for state in states:
            if state.bot_id not in updated:
                session.send(encode(state))
        for state in pending:
            session.send(encode(state))

    def deliver(self, user_id: str, state: BotState) -> None:
        """Push a stored update to the user's sockets (the hub calls it for every update)."""
        frame: str | None = None
        for session in self.sessions(user_id):
            pending = session.state.get(_PENDING)
            if pending is not None:
                pending.append(state)
                continue
            if frame is None:
                frame = encode(state)
            session.send(frame)


class _StatusBody(msgspec.Struct, forbid_unknown_fields=True):
    user_id: Annotated[str, Meta(min_length=1, max_length=_MAX_USER_ID_CHARS)]
    status: str
    detail: Any = None


@post("/api/bots/{bot_id:str}/status", status_code=200, request_max_body_size=MAX_BODY_BYTES)
async def post_bot_status(request: Request[Any, Any, Any], bot_id: str) -> dict[str, Any]:
    """Publish a bot's status for the user in the body (publish scope).

    200 ``{"bot_id", "status", "running_count"}``; 422 for an unknown ``status``, a missing,
    empty or over 256 characters ``user_id``, a ``detail`` that is not an object or null or is
    over 4096 bytes of JSON or 32 levels deep, or a ``bot_id`` over 128 characters.
    """
    require_principal(request, PUBLISH_SCOPE)
    if not 1 <= len(bot_id) <= MAX_BOT_ID_CHARS:
        raise ApiError(422, f"bot_id must be 1 to {MAX_BOT_ID_CHARS} characters")
    body: _StatusBody = await decode_body(request, _StatusBody)
    if body.status not in STATUSES:
        raise ApiError(422, f"status must be one of {', '.join(STATUSES)}")
    if body.detail is not None and not isinstance(body.detail, dict):
        raise ApiError(422, "detail must be a JSON object or null")
    problem = None if body.detail is None else json_value_problem("detail", body.detail, MAX_DETAIL_BYTES)
    if problem is not None:
        raise ApiError(422, f"Invalid body: {problem} - at `$.detail`")
    state = await broker_of(request).put_bot(body.user_id, bot_id, body.status, body.detail)
    return {"bot_id": bot_id, "status": body.status, "running_count": state.running_count}


ROUTES = [post_bot_status]
