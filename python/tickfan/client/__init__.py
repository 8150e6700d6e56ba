"""tickfan's Python SDK: typed events from the four channels, and the HTTP API.

Importable without the server stack (no litestar, granian or core): websockets, msgspec and
httpx only. See docs/client.md::

    async with Client("http://127.0.0.1:8000", token=get_token) as c:
        async for ev in c.market(["BTC/USD"]):
            match ev:
                case Tick(symbol, seq, ts, price, size): ...
                case Gap() | Backfill() | Reconnected() | SeqReset(): ...
"""

from tickfan.client.channel import Channel, MarketChannel, NotificationsChannel, Options
from tickfan.client.client import Alert, Candles, Client, SymbolInfo
from tickfan.client.errors import ApiError, AuthError, ClientError, GapError, ProtocolError
from tickfan.client.events import (
    Backfill,
    BotStatus,
    Candle,
    Disconnected,
    Event,
    Gap,
    MarkedRead,
    Metrics,
    Notification,
    Reconnected,
    SeqReset,
    ServerError,
    Subscribed,
    SubscribeError,
    Tick,
    Unknown,
    Unsubscribed,
)
from tickfan.client.state import MarketState
from tickfan.client.tokens import TokenProvider

__all__ = [
    "Client", "Options", "Channel", "MarketChannel", "NotificationsChannel", "MarketState", "TokenProvider",
    "SymbolInfo", "Candles", "Alert",
    "Event", "Tick", "Gap", "Backfill", "Candle", "Subscribed", "Unsubscribed", "SeqReset", "Reconnected",
    "Disconnected", "SubscribeError", "ServerError", "Unknown", "BotStatus", "Notification", "MarkedRead", "Metrics",
    "ClientError", "AuthError", "ProtocolError", "GapError", "ApiError",
]  # fmt: skip
