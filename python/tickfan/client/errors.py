"""The SDK's errors, rooted at ``tickfan.TickfanError`` like every error tickfan raises."""

from __future__ import annotations

from typing import Any

from tickfan.errors import TickfanError

__all__ = ["ClientError", "AuthError", "ProtocolError", "GapError", "ApiError"]


class ClientError(TickfanError):
    """Root of the SDK's errors."""


class AuthError(ClientError):
    """The server refused the token, and a fresh one from the provider too (or the provider
    itself raised ``AuthError``). The message never contains a token."""


class ProtocolError(ClientError):
    """The server broke the wire contract (a malformed frame) or closed with 1009 (a frame of
    ours was too large): reconnecting would not help."""


class GapError(ClientError):
    """A gap in seq, raised instead of yielding ``Gap`` when the channel has ``on_gap="raise"``."""

    def __init__(self, gap: Any) -> None:
        super().__init__(f"gap in {gap.symbol}: seq {gap.from_seq}..{gap.to_seq} missing ({gap.reason})")
        self.gap = gap


class ApiError(ClientError):
    """An HTTP call answered with an error status; ``status_code`` and the parsed ``body``."""

    def __init__(self, status_code: int, message: str, body: Any = None) -> None:
        super().__init__(f"HTTP {status_code}: {message}")
        self.status_code = status_code
        self.body = body
