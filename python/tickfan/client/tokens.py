"""Where tokens come from: a string, or a provider called for a fresh one.

A token is a secret: it never appears in a repr, a log line or an exception message.
"""

from __future__ import annotations

import base64
import inspect
import json
import time
from collections.abc import Awaitable, Callable
from typing import Union

from tickfan.client.errors import AuthError

__all__ = ["TokenProvider", "TokenSource"]

TokenProvider = Union[str, Callable[[], Union[str, Awaitable[str]]]]


class TokenSource:
    """Hands out tokens: the fixed string, or the provider's answer (sync or async).

    ``get(fresh=True)`` always asks the provider (every new socket, every in-band refresh, a
    retry after a refusal); ``get()`` reuses the last token while more than 30 s of it remain
    (HTTP calls). A provider that raises ``AuthError`` stops the client; other exceptions are
    retried like a failed connection.
    """

    def __init__(self, token: TokenProvider) -> None:
        if not (isinstance(token, str) or callable(token)):
            raise TypeError("token must be a str or a callable returning one")
        if isinstance(token, str) and not token:
            raise ValueError("token must not be empty")
        self._provider = token
        self._last: str | None = token if isinstance(token, str) else None
        self._exp: float | None = None
        self.calls = 0

    @property
    def refreshable(self) -> bool:
        return not isinstance(self._provider, str)

    async def get(self, *, fresh: bool = False) -> str:
        if isinstance(self._provider, str):
            return self._provider
        if not fresh and self._last is not None and (self._exp is None or self._exp - time.time() > 30):
            return self._last
        self.calls += 1
        value = self._provider()
        if inspect.isawaitable(value):
            value = await value
        if not isinstance(value, str) or not value:
            raise AuthError("the token provider returned no token")
        self._last, self._exp = value, _exp_of(value)
        return value

    def __repr__(self) -> str:
        return "TokenSource(<provider>)" if self.refreshable else "TokenSource(<token>)"


def _exp_of(token: str) -> float | None:
    """The unverified ``exp`` claim, only to know when to ask again (the server verifies)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        exp = claims.get("exp")
        return float(exp) if isinstance(exp, (int, float)) else None
    except (IndexError, ValueError, AttributeError):
        return None
