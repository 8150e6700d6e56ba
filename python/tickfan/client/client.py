"""``Client``: the channels of one server, and thin calls for its HTTP API.

``Client(url, token)``: ``url`` is the server's base (``http://127.0.0.1:8000``; ``https``
gives ``wss`` sockets); ``token`` a string or a provider (sync or async callable). Every channel
and HTTP call uses that token; HTTP calls send it as a Bearer header, retry once with a fresh
one after a 401, and raise ``ApiError`` for any other error status.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import httpx
import msgspec

from tickfan.client.channel import Channel, MarketChannel, NotificationsChannel, Options
from tickfan.client.errors import ApiError, AuthError
from tickfan.client.events import Candle, Mode, Notification
from tickfan.client.state import MarketState, MetricsState, NotificationState, PassState
from tickfan.client.tokens import TokenProvider, TokenSource

__all__ = ["Client", "SymbolInfo", "Candles", "Alert"]


class SymbolInfo(msgspec.Struct, frozen=True):
    symbol: str
    price_decimals: int
    size_decimals: int


class Candles(msgspec.Struct, frozen=True):
    symbol: str
    interval: str
    candles: list[Candle]
    complete: bool


class Alert(msgspec.Struct, frozen=True):
    id: int
    symbol: str
    direction: str
    level: float
    created_at: int


class Client:
    """One server. ``async with Client(url, token=...) as c:`` closes every channel on exit."""

    def __init__(self, url: str, token: TokenProvider, *,
                 options: Options | None = None, http_timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        scheme, sep, rest = self.url.partition("://")
        if not sep or scheme not in ("http", "https", "ws", "wss"):
            raise ValueError(f"url must start with http://, https://, ws:// or wss://, got {url!r}")
        self._ws_base = {"http": "ws", "https": "wss"}.get(scheme, scheme) + "://" + rest
        self._http_base = {"ws": "http", "wss": "https"}.get(scheme, scheme) + "://" + rest
        self.tokens = TokenSource(token)
        self.options = options or Options()
        self._http = httpx.AsyncClient(base_url=self._http_base, timeout=http_timeout_s)
        self._channels: list[Channel[Any]] = []

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for channel in self._channels:
            await channel.close()
        await self._http.aclose()

    # --- channels --------------------------------------------------------------------------------

    def _opts(self, changes: dict[str, Any]) -> Options:
        return replace(self.options, **changes) if changes else self.options

    def _add(self, channel: Channel[Any]) -> Any:
        self._channels.append(channel)
        return channel

    def market(self, symbols: Sequence[str] = (), *, mode: Mode = "auto", interval_ms: int | None = None,
               backfill: str | None = "1s", since_ms: int | None = None, **options: Any) -> MarketChannel:
        """Ticks of ``symbols`` in ``mode``. After a reconnect: ``Backfill`` of ``backfill``
        candles from the last ts seen (None: no backfill); ``since_ms``: a backfill on the first
        connect too. ``options`` override ``Options`` fields (``queue_size``, ``on_gap``...)."""
        state = MarketState(backfill_interval=backfill, since_ms=since_ms)
        state.subscribe(list(symbols), mode, interval_ms)
        return self._add(MarketChannel(self._ws_base + "/ws/market-data", state, self.tokens, self._opts(options)))

    def bot_status(self, **options: Any) -> Channel[PassState]:
        """``BotStatus`` of the token's user: every known bot after each auth, then updates."""
        return self._add(Channel(self._ws_base + "/ws/bot-status", PassState(), self.tokens, self._opts(options)))

    def notifications(self, **options: Any) -> NotificationsChannel:
        """``Notification``s of the token's user, each id once; ``MarkedRead`` acks."""
        async def catch_up(after: int) -> list[Notification]:
            return await self.list_notifications(after=after, limit=1000)

        return self._add(NotificationsChannel(self._ws_base + "/ws/notifications", NotificationState(), self.tokens,
                                              self._opts(options), catch_up=catch_up))

    def metrics(self, interval_ms: int | None = None, **options: Any) -> Channel[MetricsState]:
        """The server's ``Metrics`` every ``interval_ms`` (server default 1000)."""
        return self._add(Channel(self._ws_base + "/ws/performance-metrics", MetricsState(interval_ms), self.tokens,
                                 self._opts(options)))

    # --- HTTP ------------------------------------------------------------------------------------

    async def _request(self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None) -> Any:
        for fresh in (False, True):
            token = await self.tokens.get(fresh=fresh)
            response = await self._http.request(method, path, json=json, params=params,
                                                headers={"Authorization": "Bearer " + token})
            del token
            if response.status_code != 401 or not self.tokens.refreshable:
                break
        if response.status_code == 401:
            raise AuthError(f"the server refused the token for {method} {path}")
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = response.text
            message = body.get("error") if isinstance(body, dict) else None
            raise ApiError(response.status_code, str(message or response.reason_phrase), body)
        return None if response.status_code == 204 or not response.content else response.json()

    async def publish(self, ticks: Iterable[Mapping[str, Any] | Sequence[Any]]) -> int:
        """``POST /api/ticks`` (publish scope): dicts ``{symbol, price, size, ts}`` or tuples
        ``(symbol, price, size, ts)``; all or nothing. Returns how many were accepted."""
        body = [dict(t) if isinstance(t, Mapping) else dict(zip(("symbol", "price", "size", "ts"), t)) for t in ticks]
        return int((await self._request("POST", "/api/ticks", json=body))["accepted"])

    async def symbols(self) -> list[SymbolInfo]:
        """``GET /api/symbols``: the universe with each symbol's decimals."""
        return msgspec.convert((await self._request("GET", "/api/symbols"))["symbols"], list[SymbolInfo])

    async def candles(self, symbol: str, interval: str = "1m", *, since: int | None = None,
                      limit: int | None = None) -> Candles:
        """``GET /api/candles``: with ``since`` the backfill rules, else the most recent ``limit``."""
        params: dict[str, Any] = {"symbol": symbol, "interval": interval}
        if since is not None:
            params["since"] = since
        if limit is not None:
            params["limit"] = limit
        return msgspec.convert(await self._request("GET", "/api/candles", params=params), Candles)

    async def set_bot_status(self, bot_id: str, status: str, *, user_id: str, detail: Any = None) -> int:
        """``POST /api/bots/{bot_id}/status`` (publish scope); returns the user's running count."""
        body = {"user_id": user_id, "status": status, "detail": detail}
        return int((await self._request("POST", f"/api/bots/{quote(bot_id, safe='')}/status", json=body))["running_count"])

    async def notify(self, user_id: str, title: str, *, kind: str = "info", body: str = "", data: Any = None) -> int:
        """``POST /api/notifications`` (publish scope); returns the new id."""
        payload = {"user_id": user_id, "kind": kind, "title": title, "body": body, "data": data}
        return int((await self._request("POST", "/api/notifications", json=payload))["id"])

    async def list_notifications(self, *, after: int = 0, limit: int | None = None) -> list[Notification]:
        """``GET /api/notifications``: the token user's, id > ``after``, oldest first, read ones included."""
        params: dict[str, Any] = {"after": after}
        if limit is not None:
            params["limit"] = limit
        return msgspec.convert((await self._request("GET", "/api/notifications", params=params))["notifications"],
                               list[Notification])

    async def mark_read(self, ids: Iterable[int]) -> list[int]:
        """``POST /api/notifications/read``; returns the ids now read (the user's own only)."""
        return list((await self._request("POST", "/api/notifications/read", json={"ids": list(ids)}))["ids"])

    async def create_alert(self, symbol: str, *, above: float | None = None, below: float | None = None) -> int:
        """``POST /api/alerts`` with exactly one of ``above``/``below``; returns its id."""
        body: dict[str, Any] = {"symbol": symbol}
        if above is not None:
            body["above"] = above
        if below is not None:
            body["below"] = below
        return int((await self._request("POST", "/api/alerts", json=body))["id"])

    async def alerts(self) -> list[Alert]:
        """``GET /api/alerts``: the token user's armed alerts."""
        return msgspec.convert((await self._request("GET", "/api/alerts"))["alerts"], list[Alert])

    async def delete_alert(self, alert_id: int) -> None:
        """``DELETE /api/alerts/{id}``; ``ApiError`` 404 when unknown, fired, or another user's."""
        await self._request("DELETE", f"/api/alerts/{int(alert_id)}")

