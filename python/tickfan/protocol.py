"""The wire protocol: inbound message types, error and close codes, control-frame encoders.

All JSON goes through msgspec. Inbound messages are Structs in a tagged union on ``type``; a
channel adds its own message types to the common ones (``auth``, ``ping``) and gets one decoder
for the union. Decoding tells apart the four ways a frame can be wrong (``invalid_json``,
``invalid_message``, ``unknown_type``, and a valid message), so the session can answer each with
its error code. Outbound control frames (acks, errors, pong, backfill) are encoded here; tick
frames are encoded by the core, once per tick.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Annotated, Any, Literal, Union

import msgspec
from msgspec import Meta, Struct

__all__ = [
    "ErrorCode",
    "CloseCode",
    "ERROR_CLOSE",
    "FLOOD_CLOSE",
    "PEER_LIMIT_REASON",
    "ERROR_TEXT",
    "Auth",
    "Ping",
    "Subscribe",
    "Unsubscribe",
    "BackfillRequest",
    "MARKET_DATA_MESSAGES",
    "MessageDecoder",
    "DecodeFailure",
    "encode",
    "error_frame",
    "auth_success_frame",
    "pong_frame",
]


class ErrorCode(enum.StrEnum):
    """Every ``code`` an ``error`` frame can carry (PROTOCOL.md section 2)."""

    # recoverable: the socket stays open
    INVALID_JSON = "invalid_json"
    INVALID_MESSAGE = "invalid_message"
    UNKNOWN_TYPE = "unknown_type"
    UNKNOWN_SYMBOL = "unknown_symbol"
    TOO_MANY_SYMBOLS = "too_many_symbols"
    RATE_LIMITED = "rate_limited"
    # fatal: the server closes after sending
    MESSAGE_TOO_LARGE = "message_too_large"
    AUTH_REQUIRED = "auth_required"
    TOKEN_EXPIRED = "token_expired"
    SLOW_CONSUMER = "slow_consumer"


class CloseCode(enum.IntEnum):
    """WebSocket close codes the server uses (RFC 6455 section 7.4.1)."""

    NORMAL = 1000
    GOING_AWAY = 1001  # server shutdown
    POLICY_VIOLATION = 1008  # auth_required, token_expired, rate_limited after a sustained flood
    MESSAGE_TOO_BIG = 1009  # message_too_large
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012  # the broker's epoch changed: resubscribe
    TRY_AGAIN_LATER = 1013  # slow_consumer; a new socket over the per-address unauthenticated limit


ERROR_CLOSE: dict[ErrorCode, CloseCode] = {
    ErrorCode.MESSAGE_TOO_LARGE: CloseCode.MESSAGE_TOO_BIG,
    ErrorCode.AUTH_REQUIRED: CloseCode.POLICY_VIOLATION,
    ErrorCode.TOKEN_EXPIRED: CloseCode.POLICY_VIOLATION,
    ErrorCode.SLOW_CONSUMER: CloseCode.TRY_AGAIN_LATER,
}
"""The fatal codes and the close code that follows each."""

PEER_LIMIT_REASON = "too many unauthenticated connections from this address"
"""Close reason (with 1013, right after the accept) for a socket over ``max_unauthenticated_per_peer``."""

FLOOD_CLOSE = CloseCode.POLICY_VIOLATION
"""The close after ``rate_limited`` when a flood outlasts ``rate_limit_close_s``: the client broke
the documented rate for that long (1008, as for other policy breaches; not 1013, which invites an
immediate reconnect)."""

ERROR_TEXT: dict[ErrorCode, str] = {
    ErrorCode.AUTH_REQUIRED: "Authentication required",
    ErrorCode.TOKEN_EXPIRED: "Token expired",
    ErrorCode.SLOW_CONSUMER: "Connection closed: the client did not keep up with its messages",
    ErrorCode.RATE_LIMITED: "Too many messages; slow down",
}

# --- inbound ---------------------------------------------------------------------------------

_MAX_SAFE_INT = 2**53 - 1
Number = Union[int, float]
SymbolList = Annotated[list[str], Meta(max_length=10_000)]


class Auth(Struct, tag="auth", tag_field="type", frozen=True):
    token: str


class Ping(Struct, tag="ping", tag_field="type", frozen=True):
    ts: Number


class Subscribe(Struct, tag="subscribe", tag_field="type", frozen=True):
    symbols: SymbolList
    mode: Literal["tick", "batch", "conflate", "auto"] = "auto"
    interval_ms: Annotated[int, Meta(ge=10, le=60_000)] | None = None
    # Tick-level resume: the last seq the client holds per symbol, and the epoch it saw.
    resume: Annotated[dict[str, Annotated[int, Meta(ge=0, le=_MAX_SAFE_INT)]], Meta(max_length=10_000)] | None = None
    epoch: Annotated[str, Meta(max_length=64)] | None = None


class Unsubscribe(Struct, tag="unsubscribe", tag_field="type", frozen=True):
    symbols: SymbolList


class BackfillRequest(Struct, tag="backfill_request", tag_field="type", frozen=True):
    symbols: SymbolList
    since: Annotated[int, Meta(ge=0, le=_MAX_SAFE_INT)]
    interval: str = "1m"


COMMON_MESSAGES: tuple[type[Struct], ...] = (Auth, Ping)
MARKET_DATA_MESSAGES: tuple[type[Struct], ...] = (Subscribe, Unsubscribe, BackfillRequest)


class DecodeFailure(Exception):
    """A frame that is not a valid message; ``code`` is the error code to answer with."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class MessageDecoder:
    """Decodes one channel's inbound frames: the common messages plus ``extra`` types."""

    def __init__(self, extra: Sequence[type[Struct]] = ()) -> None:
        types = (*COMMON_MESSAGES, *extra)
        self.tags = frozenset(t.__struct_config__.tag for t in types)
        self._decoder = msgspec.json.Decoder(Union[types])  # type: ignore[valid-type]

    def decode(self, frame: str | bytes) -> Struct:
        """Return the message, or raise :class:`DecodeFailure` saying what is wrong; nothing else.

        This is the one seam between untrusted bytes and the server: whatever either decoding
        pass raises (a number out of range, nesting deeper than the decoder's recursion limit,
        anything else) becomes a :class:`DecodeFailure`, so no frame can end a socket silently.
        """
        try:
            return self._decoder.decode(frame)
        except msgspec.ValidationError as exc:
            raise self._classify(frame, exc) from None
        except msgspec.DecodeError:
            raise DecodeFailure(ErrorCode.INVALID_JSON, "The message is not valid JSON") from None
        except RecursionError:
            raise DecodeFailure(ErrorCode.INVALID_MESSAGE, _TOO_DEEP) from None
        except Exception:  # noqa: BLE001 - see the docstring: a frame never escapes as an exception
            raise DecodeFailure(ErrorCode.INVALID_MESSAGE, _UNDECODABLE) from None

    def _classify(self, frame: str | bytes, exc: msgspec.ValidationError) -> DecodeFailure:
        # Slow path, only for bad messages: decode untyped to tell the cases apart.
        try:
            value: Any = msgspec.json.decode(frame)
        except msgspec.ValidationError as untyped:  # e.g. a number out of range anywhere
            return DecodeFailure(ErrorCode.INVALID_MESSAGE, _reason("Invalid message", untyped))
        except msgspec.DecodeError:  # the typed pass stopped early; e.g. a lone surrogate escape
            return DecodeFailure(ErrorCode.INVALID_JSON, "The message is not valid JSON")
        except RecursionError:
            return DecodeFailure(ErrorCode.INVALID_MESSAGE, _TOO_DEEP)
        except Exception:  # noqa: BLE001 - as in decode
            return DecodeFailure(ErrorCode.INVALID_MESSAGE, _UNDECODABLE)
        if not isinstance(value, dict):
            return DecodeFailure(ErrorCode.INVALID_MESSAGE, "A message must be a JSON object")
        kind = value.get("type")
        if not isinstance(kind, str):
            return DecodeFailure(ErrorCode.INVALID_MESSAGE, "A message needs a string field 'type'")
        if kind not in self.tags:
            return DecodeFailure(ErrorCode.UNKNOWN_TYPE, f"Unknown message type {kind[:64]!r}")
        return DecodeFailure(ErrorCode.INVALID_MESSAGE, _reason(f"Invalid {kind!r} message", exc))


_TOO_DEEP = "The message is nested too deeply"
_UNDECODABLE = "The message cannot be decoded"
_MAX_REASON_CHARS = 200


def _reason(prefix: str, exc: Exception) -> str:
    """``prefix: <the decoder's reason>``, cut short: a reason can quote the client's input."""
    text = str(exc)
    if len(text) > _MAX_REASON_CHARS:
        text = text[:_MAX_REASON_CHARS] + "..."
    return f"{prefix}: {text}"


# --- outbound --------------------------------------------------------------------------------


class _Error(Struct, tag="error", tag_field="type"):
    code: str
    error: str


class _AuthSuccess(Struct, tag="auth_success", tag_field="type"):
    user_id: str
    expires_at: int


class _Pong(Struct, tag="pong", tag_field="type"):
    ts: Number
    server_ts: int


_encoder = msgspec.json.Encoder()


def encode(obj: Any) -> str:
    """Compact JSON text of a Struct, dict or list."""
    return _encoder.encode(obj).decode()


def error_frame(code: ErrorCode, message: str | None = None) -> str:
    return encode(_Error(code.value, message or ERROR_TEXT.get(code, code.value)))


def auth_success_frame(user_id: str, expires_at: int) -> str:
    return encode(_AuthSuccess(user_id, expires_at))


def pong_frame(ts: int | float, server_ts: int) -> str:
    return encode(_Pong(ts, server_ts))
