"""PROTOCOL.md section 6 (the market-data routes) against a real server."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest

from tickfan_e2e import SECRET, Server, now_ms

pytestmark = pytest.mark.e2e


def test_health_and_readiness(server: Server) -> None:
    assert httpx.get(server.http + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(server.http + "/readyz")
    assert ready.status_code == 200
    assert ready.json()["core"] == server.core


def test_symbols_lists_the_universe_with_decimals(server: Server) -> None:
    response = httpx.get(server.http + "/api/symbols", headers=server.user_headers())
    assert response.status_code == 200
    symbols = {s["symbol"]: s for s in response.json()["symbols"]}
    assert {"BTC/USD", "ETH/USD"} <= set(symbols) and len(symbols) >= 10
    assert symbols["BTC/USD"] == {"symbol": "BTC/USD", "price_decimals": 2, "size_decimals": 8}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": "Basic YWxpY2U6cHc="},
        {"Authorization": "Bearer " + jwt.encode({"sub": "a", "exp": int(time.time()) - 5}, SECRET, algorithm="HS256")},
        {"Authorization": "Bearer " + jwt.encode({"sub": "a", "exp": int(time.time()) + 60}, None, algorithm="none")},
    ],
    ids=["none", "garbage", "basic", "expired", "alg_none"],
)
@pytest.mark.parametrize("route", ["GET /api/symbols", "GET /api/candles?symbol=BTC/USD", "POST /api/ticks"])
def test_401_without_a_valid_token(server: Server, headers: dict[str, str], route: str) -> None:
    method, path = route.split(" ")
    response = httpx.request(method, server.http + path, headers=headers, json=[])
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]


def test_403_for_a_user_token_on_publish(server: Server) -> None:
    tick = [{"symbol": "BTC/USD", "price": 1.0, "size": 1.0, "ts": now_ms()}]
    response = httpx.post(server.http + "/api/ticks", json=tick, headers=server.user_headers())
    assert response.status_code == 403
    assert "publish" in response.json()["error"]


def test_publish_accepts_ticks_and_updates_candles(server: Server) -> None:
    ts = now_ms()
    ticks = [
        {"symbol": "DOT/USD", "price": 6.5, "size": 1.25, "ts": ts},
        {"symbol": "DOT/USD", "price": 6.75, "size": 0.5, "ts": ts},
        {"symbol": "DOT/USD", "price": 6.25, "size": 2.0, "ts": ts},
    ]
    response = server.publish(ticks)
    assert response.status_code == 202 and response.json() == {"accepted": 3}
    body = httpx.get(server.http + "/api/candles", params={"symbol": "DOT/USD", "interval": "1s", "since": ts}, headers=server.user_headers()).json()
    assert body["symbol"] == "DOT/USD" and body["interval"] == "1s" and body["complete"] is True
    open_ts, o, h, l, c, v = body["candles"][-1]
    assert open_ts == ts - ts % 1000
    assert (o, h, l, c) == (6.5, 6.75, 6.25, 6.25) and v == pytest.approx(3.75)
    recent = httpx.get(server.http + "/api/candles", params={"symbol": "DOT/USD", "limit": 1}, headers=server.user_headers()).json()
    assert recent["interval"] == "1m" and len(recent["candles"]) == 1


@pytest.mark.parametrize(
    "bad,index_msg",
    [
        ({"symbol": "NOPE/USD", "price": 1.0, "size": 1.0}, "unknown symbol"),
        ({"symbol": "DOT/USD", "price": "1.0", "size": 1.0}, "price"),
        ({"symbol": "DOT/USD", "price": -1.0, "size": 1.0}, "price"),
        ({"symbol": "DOT/USD", "price": 1.00001, "size": 1.0}, "decimals"),
        ({"symbol": "DOT/USD", "size": 1.0}, "missing"),
        ({"symbol": 7, "price": 1.0, "size": 1.0}, "symbol"),
    ],
    ids=["unknown_symbol", "price_string", "negative_price", "too_many_decimals", "missing_price", "symbol_int"],
)
def test_422_names_offending_items_and_applies_nothing(server: Server, bad: dict[str, object], index_msg: str) -> None:
    ts = now_ms()
    before = server.metric("tickfan_ticks_in_total")
    good = {"symbol": "AVAX/USD", "price": 36.125, "size": 1.0, "ts": ts}
    response = server.publish([good, {"ts": ts, **bad}, good])
    assert response.status_code == 422
    body = response.json()
    assert [e["index"] for e in body["errors"]] == [1]
    assert index_msg in body["errors"][0]["error"]
    assert server.metric("tickfan_ticks_in_total") == before


def test_ts_regression_is_refused(server: Server) -> None:
    ts = now_ms()
    assert server.publish([{"symbol": "LINK/USD", "price": 14.0, "size": 1.0, "ts": ts}]).status_code == 202
    response = server.publish([
        {"symbol": "LINK/USD", "price": 14.1, "size": 1.0, "ts": ts + 1},
        {"symbol": "LINK/USD", "price": 14.2, "size": 1.0, "ts": ts - 1000},
    ])
    assert response.status_code == 422
    assert [e["index"] for e in response.json()["errors"]] == [1]
    assert "earlier" in response.json()["errors"][0]["error"]
    # nothing applied: the first item (ts + 1) is absent from the candles
    candles = httpx.get(server.http + "/api/candles", params={"symbol": "LINK/USD", "interval": "1s", "since": ts}, headers=server.user_headers()).json()["candles"]
    assert candles[-1][4] == 14.0


@pytest.mark.parametrize(
    "body,status",
    [(b"{not json", 400), (b"", 400), (b'{"symbol": "BTC/USD"}', 422), (b'"ticks"', 422)],
    ids=["invalid_json", "empty", "not_array", "string"],
)
def test_malformed_bodies(server: Server, body: bytes, status: int) -> None:
    headers = {**server.publisher_headers(), "Content-Type": "application/json"}
    response = httpx.post(server.http + "/api/ticks", content=body, headers=headers)
    assert response.status_code == status
    assert response.json()["error"] and response.json()["status_code"] == status


def test_candles_validation(server: Server) -> None:
    h = server.user_headers()
    assert httpx.get(server.http + "/api/candles", params={"symbol": "NOPE/USD"}, headers=h).status_code == 422
    assert httpx.get(server.http + "/api/candles", params={"symbol": "BTC/USD", "interval": "9m"}, headers=h).status_code == 422
    missing = httpx.get(server.http + "/api/candles", headers=h)
    assert missing.status_code == 400 and missing.json()["error"]


@pytest.mark.parametrize(
    "params,status",
    [
        ({"limit": 0}, 422),
        ({"limit": -1}, 422),
        ({"limit": 100_001}, 422),
        ({"limit": "abc"}, 400),
        ({"limit": "1.5"}, 400),
        ({"since": "abc"}, 400),
        ({"since": -1}, 422),
        ({"since": 2**53}, 422),
        ({"limit": 1}, 200),
        ({"limit": 100_000}, 200),
        ({"since": 0, "limit": 1}, 200),
    ],
    ids=["limit_0", "limit_negative", "limit_over", "limit_text", "limit_float", "since_text",
         "since_negative", "since_over", "limit_min", "limit_max", "since_min"],
)
def test_candles_query_parameters_in_and_out_of_range(server: Server, params: dict[str, object], status: int) -> None:
    response = httpx.get(server.http + "/api/candles", params={"symbol": "BTC/USD", **params}, headers=server.user_headers())
    assert response.status_code == status, response.text
    if status != 200:
        assert response.json()["status_code"] == status and response.json()["error"]


@pytest.mark.parametrize(
    "params,status",
    [({"limit": 0}, 422), ({"limit": 1001}, 422), ({"after": -1}, 422), ({"after": 2**53}, 422),
     ({"after": "x"}, 400), ({"limit": 1000}, 200), ({"limit": 1}, 200)],
    ids=["limit_0", "limit_over", "after_negative", "after_over", "after_text", "limit_max", "limit_min"],
)
def test_notifications_query_parameters_in_and_out_of_range(server: Server, params: dict[str, object], status: int) -> None:
    response = httpx.get(server.http + "/api/notifications", params=params, headers=server.user_headers())
    assert response.status_code == status, response.text


def test_metrics_exposition(server: Server) -> None:
    text = httpx.get(server.http + "/metrics").text
    for name in (
        'tickfan_connections{channel="market_data"}',
        'tickfan_connections{channel="bot_status"}',
        "tickfan_ticks_in_total",
        "tickfan_frames_out_total",
        "tickfan_bytes_out_total",
        "tickfan_frames_dropped_total",
        "tickfan_slow_consumers_disconnected_total",
        "tickfan_fanout_latency_seconds_bucket",
    ):
        assert name in text
