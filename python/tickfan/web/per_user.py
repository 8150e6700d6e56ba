"""The base of channels whose messages belong to one user: ``/ws/bot-status``,
``/ws/notifications``.

A :class:`PerUserChannel` keeps its authenticated sessions by ``sub`` and delivers a frame only
to the sessions of the user it belongs to, so isolation is a dictionary lookup, not a filter
each caller must remember. A token refresh keeps the same ``sub`` (the session refuses any
other), so membership never changes after authentication.
"""

from __future__ import annotations

from tickfan.session import Channel, Session

__all__ = ["PerUserChannel"]


class PerUserChannel(Channel):
    """Sessions by user; :meth:`publish` sends to one user's sockets of this channel."""

    def __init__(self) -> None:
        self._by_user: dict[str, set[Session]] = {}

    def join(self, session: Session) -> None:
        """Start delivering the session's user's messages to it (call once authenticated)."""
        assert session.principal is not None
        self._by_user.setdefault(session.principal.sub, set()).add(session)

    def on_close(self, session: Session) -> None:
        if session.principal is None:
            return
        sessions = self._by_user.get(session.principal.sub)
        if sessions is not None:
            sessions.discard(session)
            if not sessions:
                del self._by_user[session.principal.sub]

    def sessions(self, user_id: str) -> list[Session]:
        """The user's open sessions on this channel, ordered by connection id."""
        return sorted(self._by_user.get(user_id, ()), key=lambda s: s.conn_id)
