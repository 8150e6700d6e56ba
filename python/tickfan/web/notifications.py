"""``/ws/notifications`` and its HTTP side (PROTOCOL.md sections 5 and 6).

Notifications are stored first (durable, in the broker's :class:`tickfan.stores.Store`), then
published by the broker and pushed to the user's open sockets on every node; a client that was offline reads them on connect (``initial_notifications``,
the 50 most recent unread) or by polling ``GET /api/notifications?after=``. Both views come from
the same rows, so they agree.

Decisions where the protocol is silent (docs/protocol.md):

* ``mark_read`` (socket) and ``POST /api/notifications/read`` (HTTP) answer with the ids that
  are the user's own, read now, sorted and unique; already-read ids of the user are included
  (a retry confirms them); ids that are unknown or another user's are ignored and not echoed,
  so the answer leaks nothing about other users.
* ``marked_read`` goes only to the socket that asked; other sockets of the same user are not
  told (they see ``read: true`` on their next poll or reconnect).
* A notification created while a socket is loading its initial list is sent after that list,
  exactly once (in the list or live, never both).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, get, post
from msgspec import Meta, Struct

from tickfan.auth import PUBLISH_SCOPE
from tickfan.brokers import Broker
from tickfan.protocol import encode
from tickfan.session import Session
from tickfan.stores import Notification
from tickfan.web.api import ApiError, broker_of, require_principal
from tickfan.web.per_user import PerUserChannel

__all__ = ["NotificationsChannel", "MarkRead", "ROUTES", "INITIAL_UNREAD", "MAX_IDS"]

INITIAL_UNREAD = 50
MAX_IDS = 1000
"""Most ids one ``mark_read`` may name."""
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_MAX_ID = 2**53 - 1
_MAX_TEXT = 16_384

NotificationId = Annotated[int, Meta(ge=0, le=_MAX_ID)]


class MarkRead(Struct, tag="mark_read", tag_field="type", frozen=True):
    ids: Annotated[list[NotificationId], Meta(max_length=MAX_IDS)]


class _MarkedRead(Struct, tag="marked_read", tag_field="type"):
    ids: list[int]


class _Initial(Struct, tag="initial_notifications", tag_field="type"):
    notifications: list[Notification]


class _Live(Struct, tag="notification", tag_field="type"):
    notification: Notification


_PENDING = "notifications_pending"


class NotificationsChannel(PerUserChannel):
    name = "notifications"
    path = "/ws/notifications"
    messages = (MarkRead,)

    def __init__(self, broker: Broker) -> None:
        super().__init__()
        self.broker = broker
        self.store = broker.store

    async def on_authenticated(self, session: Session) -> None:
        assert session.principal is not None
        # Join before reading so nothing created during the read is missed; hold live ones
        # back until the initial list is out, and drop those the list already holds.
        session.state[_PENDING] = []
        self.join(session)
        try:
            unread = await self.store.unread_notifications(session.principal.sub, INITIAL_UNREAD)
        finally:
            pending: list[Notification] = session.state.pop(_PENDING)
        session.send(encode(_Initial(unread)))
        listed = {n.id for n in unread}
        for notification in pending:
            if notification.id not in listed:
                session.send(encode(_Live(notification)))

    async def on_message(self, session: Session, message: Struct) -> None:
        if isinstance(message, MarkRead):
            assert session.principal is not None
            ids = await self.store.mark_read(session.principal.sub, list(message.ids))
            session.send(encode(_MarkedRead(ids)))

    def deliver(self, user_id: str, notification: Notification) -> None:
        """Push a stored notification to the user's sockets (the hub calls it for each one)."""
        frame: str | None = None
        for session in self.sessions(user_id):
            pending = session.state.get(_PENDING)
            if pending is not None:
                pending.append(notification)
                continue
            if frame is None:
                frame = encode(_Live(notification))
            session.send(frame)


# --- HTTP ----------------------------------------------------------------------------------


class _CreateBody(Struct, forbid_unknown_fields=True):
    user_id: Annotated[str, Meta(min_length=1, max_length=256)]
    kind: Annotated[str, Meta(min_length=1, max_length=64)]
    title: Annotated[str, Meta(max_length=_MAX_TEXT)]
    body: Annotated[str, Meta(max_length=_MAX_TEXT)] = ""
    data: dict[str, Any] | None = None


class _ReadBody(Struct, forbid_unknown_fields=True):
    ids: Annotated[list[NotificationId], Meta(max_length=MAX_IDS)]


async def _decode(request: Request[Any, Any, Any], kind: type[Any]) -> Any:
    try:
        return msgspec.json.decode(await request.body(), type=kind)
    except msgspec.ValidationError as exc:
        raise ApiError(422, f"Invalid body: {exc}") from None
    except msgspec.DecodeError:
        raise ApiError(400, "The body is not valid JSON") from None


@post("/api/notifications", status_code=201)
async def create_notification(request: Request[Any, Any, Any]) -> dict[str, int]:
    """Store and push a notification (publish scope): 201 ``{"id"}``."""
    require_principal(request, PUBLISH_SCOPE)
    body: _CreateBody = await _decode(request, _CreateBody)
    notification = await broker_of(request).notify(
        body.user_id, body.kind, body.title, body.body, body.data
    )
    return {"id": notification.id}


@get("/api/notifications")
async def list_notifications(
    request: Request[Any, Any, Any], after: int = 0, limit: int = DEFAULT_LIMIT
) -> dict[str, list[Notification]]:
    """The polling fallback: the caller's notifications with id > ``after``, oldest first."""
    principal = require_principal(request)
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError(422, f"limit must be between 1 and {MAX_LIMIT}")
    if not 0 <= after <= _MAX_ID:
        raise ApiError(422, f"after must be between 0 and {_MAX_ID}")
    store = broker_of(request).store
    return {"notifications": await store.list_notifications(principal.sub, after, limit)}


@post("/api/notifications/read", status_code=200)
async def mark_notifications_read(request: Request[Any, Any, Any]) -> dict[str, list[int]]:
    """Mark the caller's notifications read: 200 ``{"ids": [...]}`` (same rule as ``mark_read``)."""
    principal = require_principal(request)
    body: _ReadBody = await _decode(request, _ReadBody)
    return {"ids": await broker_of(request).store.mark_read(principal.sub, list(body.ids))}


ROUTES = [create_notification, list_notifications, mark_notifications_read]
