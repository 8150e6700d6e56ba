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
* Every stored field is capped at creation (``kind`` 64 characters, ``title`` and ``body``
  16384, ``user_id`` 256, ``data`` 16384 bytes of compact JSON nested at most 32 deep), and
  whatever is stored, one item never makes the channel unusable: an item stored with a larger
  field (before the caps existed, or written to the store directly) is sent with that field cut
  (:func:`fit`), and the initial list keeps the most recent unread items that fit in
  :func:`initial_budget` bytes (the older ones stay unread and are listed by polling).
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
import msgspec
from msgspec import Meta, Struct

from tickfan.auth import PUBLISH_SCOPE
from tickfan.brokers import Broker
from tickfan.protocol import encode
from tickfan.session import Session
from tickfan.stores import Notification
from tickfan.web.api import MAX_BODY_BYTES, ApiError, broker_of, decode_body, json_value_problem, require_principal
from tickfan.web.per_user import PerUserChannel

__all__ = [
    "NotificationsChannel",
    "MarkRead",
    "ROUTES",
    "INITIAL_UNREAD",
    "MAX_IDS",
    "MAX_DATA_BYTES",
    "INITIAL_BUDGET_BYTES",
    "TRUNCATED",
    "fit",
    "initial_budget",
]

INITIAL_UNREAD = 50
MAX_IDS = 1000
"""Most ids one ``mark_read`` may name."""
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_MAX_ID = 2**53 - 1
_MAX_TEXT = 16_384
MAX_KIND_CHARS = 64
MAX_USER_ID_CHARS = 256
MAX_DATA_BYTES = 16_384
"""Largest ``data``, in bytes of compact JSON."""
INITIAL_BUDGET_BYTES = 512 * 1024
"""Largest ``initial_notifications`` frame (half a common client's 1 MiB frame limit)."""
TRUNCATED: dict[str, Any] = {"truncated": True}
"""The ``data`` sent in place of a stored value over the caps."""

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


def fit(notification: Notification) -> Notification:
    """The notification as sent: unchanged within the caps; else ``kind``, ``title`` and
    ``body`` cut to their caps and ``data`` over its caps replaced by :data:`TRUNCATED`."""
    kind, title, body, data = notification.kind, notification.title, notification.body, notification.data
    data_ok = data is None or json_value_problem("data", data, MAX_DATA_BYTES) is None
    if data_ok and len(title) <= _MAX_TEXT and len(body) <= _MAX_TEXT and len(kind) <= MAX_KIND_CHARS:
        return notification
    return msgspec.structs.replace(
        notification,
        kind=kind[:MAX_KIND_CHARS],
        title=title[:_MAX_TEXT],
        body=body[:_MAX_TEXT],
        data=data if data_ok else TRUNCATED,
    )


def initial_budget(max_queue_bytes: int) -> int:
    """Bytes the initial list may take: :data:`INITIAL_BUDGET_BYTES`, at most half the queue."""
    return min(INITIAL_BUDGET_BYTES, max_queue_bytes // 2)


def within_budget(notifications: list[Notification], budget: int) -> list[Notification]:
    """The most recent of ``notifications`` (oldest first) whose frame fits ``budget`` bytes."""
    kept: list[Notification] = []
    total = len(encode(_Initial([])))
    for notification in reversed(notifications):
        total += len(encode(notification)) + 1  # + the comma
        if total > budget:
            break
        kept.append(notification)
    kept.reverse()
    return kept


class NotificationsChannel(PerUserChannel):
    name = "notifications"
    path = "/ws/notifications"
    messages = (MarkRead,)

    def __init__(self, broker: Broker, initial_budget_bytes: int = INITIAL_BUDGET_BYTES) -> None:
        super().__init__()
        self.broker = broker
        self.store = broker.store
        self.initial_budget_bytes = initial_budget_bytes

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
        listed = within_budget([fit(n) for n in unread], self.initial_budget_bytes)
        session.send(encode(_Initial(listed)))
        sent = {n.id for n in listed}
        for notification in pending:
            if notification.id not in sent:
                session.send(encode(_Live(fit(notification))))

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
                frame = encode(_Live(fit(notification)))
            session.send(frame)


# --- HTTP ----------------------------------------------------------------------------------


class _CreateBody(Struct, forbid_unknown_fields=True):
    user_id: Annotated[str, Meta(min_length=1, max_length=MAX_USER_ID_CHARS)]
    kind: Annotated[str, Meta(min_length=1, max_length=MAX_KIND_CHARS)]
    title: Annotated[str, Meta(max_length=_MAX_TEXT)]
    body: Annotated[str, Meta(max_length=_MAX_TEXT)] = ""
    data: dict[str, Any] | None = None


class _ReadBody(Struct, forbid_unknown_fields=True):
    ids: Annotated[list[NotificationId], Meta(max_length=MAX_IDS)]


@post("/api/notifications", status_code=201, request_max_body_size=MAX_BODY_BYTES)
async def create_notification(request: Request[Any, Any, Any]) -> dict[str, int]:
    """Store and push a notification (publish scope): 201 ``{"id"}``."""
    require_principal(request, PUBLISH_SCOPE)
    body: _CreateBody = await decode_body(request, _CreateBody)
    problem = None if body.data is None else json_value_problem("data", body.data, MAX_DATA_BYTES)
    if problem is not None:
        raise ApiError(422, f"Invalid body: {problem} - at `$.data`")
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
    return {"notifications": [fit(n) for n in await store.list_notifications(principal.sub, after, limit)]}


@post("/api/notifications/read", status_code=200, request_max_body_size=MAX_BODY_BYTES)
async def mark_notifications_read(request: Request[Any, Any, Any]) -> dict[str, list[int]]:
    """Mark the caller's notifications read: 200 ``{"ids": [...]}`` (same rule as ``mark_read``)."""
    principal = require_principal(request)
    body: _ReadBody = await decode_body(request, _ReadBody)
    return {"ids": await broker_of(request).store.mark_read(principal.sub, list(body.ids))}


ROUTES = [create_notification, list_notifications, mark_notifications_read]
