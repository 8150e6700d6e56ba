"""What the load harness sends and reads on the wire (PROTOCOL.md v1), and its timing trick.

Fine timing: the protocol's `ts` is whole milliseconds, which alone would put a uniform
0..1 ms error on every latency. The publisher therefore also carries the microseconds within
that millisecond in the tick's `size`: `size = 1 + us_within_ms / 1000` (three decimals, so any
symbol whose `size_decimals >= 3` carries it exactly; fewer decimals carry it coarser). `size`
is free payload that the server must deliver losslessly (PROTOCOL.md section 3), so this stays
inside the protocol and costs the server nothing. Send time in microseconds is then
`ts * 1000 + round((size - 1) * 1000)`, or, in a batch (integer sizes in units of
10^-size_decimals), `ts * 1000 + (size - 10**d) * 1000 // 10**d`.
"""

from __future__ import annotations

import time

import jwt
import msgspec

# Used when a server (the picows peer) has no GET /api/symbols.
DEFAULT_UNIVERSE: dict[str, tuple[int, int]] = {
    "BTC/USD": (2, 8),
    "ETH/USD": (2, 8),
    "SOL/USD": (3, 6),
    "XRP/USD": (5, 2),
    "ADA/USD": (5, 2),
    "DOGE/USD": (6, 2),
    "LTC/USD": (2, 6),
    "DOT/USD": (4, 4),
    "AVAX/USD": (3, 5),
    "LINK/USD": (4, 4),
}

# Reference prices for the random walk, in whole units of the quote currency.
START_PRICE = {"BTC/USD": 43000, "ETH/USD": 2300, "SOL/USD": 100, "LTC/USD": 70, "LINK/USD": 15}


class MarketData(msgspec.Struct, tag_field="type", tag="market_data"):
    symbol: str
    seq: int
    ts: int
    size: float


class MarketDataBatch(msgspec.Struct, tag_field="type", tag="market_data_batch"):
    symbol: str
    seq: int
    count: int
    ts: list[int]
    size: list[int]
    size_decimals: int


class AuthSuccess(msgspec.Struct, tag_field="type", tag="auth_success"):
    user_id: str = ""


class Subscribed(msgspec.Struct, tag_field="type", tag="subscribed"):
    symbols: list[str] = []
    epoch: str = ""


class Error(msgspec.Struct, tag_field="type", tag="error"):
    code: str = ""
    error: str = ""


class Other(msgspec.Struct, tag_field="type", tag="pong"):
    pass


class Degraded(msgspec.Struct, tag_field="type", tag="degraded"):
    """A slow socket switched to conflation (docs/protocol.md, "Degraded before cut off")."""

    symbols: list[str] = []


class Gap(msgspec.Struct, tag_field="type", tag="gap"):
    symbol: str = ""
    from_seq: int = 0
    to_seq: int = 0
    reason: str = ""


Incoming = MarketData | MarketDataBatch | AuthSuccess | Subscribed | Error | Degraded | Gap | Other
decoder = msgspec.json.Decoder(Incoming)


def mint_token(secret: str, sub: str, *, ttl_s: int = 3600, scope: str | None = None) -> str:
    claims: dict[str, object] = {"sub": sub, "exp": int(time.time()) + ttl_s}
    if scope:
        claims["scope"] = scope
    return jwt.encode(claims, secret, algorithm="HS256")


def fine_size(t_us: int, size_decimals: int) -> float:
    """The tick size that carries the microseconds within the millisecond of `t_us`."""
    digits = min(size_decimals, 3)
    if digits <= 0:
        return 1.0
    scale = 10**digits
    # One correctly rounded division: its repr has at most `digits` decimals.
    return (scale + (t_us % 1000) // 10 ** (3 - digits)) / scale


def tick_sent_us(ts_ms: int, size: float, fine: bool) -> int:
    """Send time of a `market_data` tick, in microseconds."""
    if not fine:
        return ts_ms * 1000
    return ts_ms * 1000 + round((size - 1.0) * 1000)
