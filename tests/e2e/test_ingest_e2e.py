"""Tick ingest against a real server: the far-future ``ts`` bound (``--max-ts-skew-ms``) and
the simulated feed going on for every symbol when one symbol's ticks are refused."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx
import pytest

from tickfan_e2e import Server, next_ts, now_ms, recv_until, run

pytestmark = pytest.mark.e2e

SYMBOL = "LTC/USD"


def candles(server: Server, symbol: str) -> list[list[float]]:
    params = {"symbol": symbol, "interval": "1s", "since": 0}
    body = httpx.get(server.http + "/api/candles", params=params, headers=server.user_headers()).json()
    return list(body["candles"])


def test_far_future_ts_is_refused_with_422_and_nothing_applies(fresh_server: Callable[..., Server]) -> None:
    server = fresh_server()  # its own: the session servers' symbols carry other tests' timestamps
    before_candles = candles(server, SYMBOL)
    before = server.metric("tickfan_ticks_in_total")
    ts = next_ts()
    response = server.publish([
        {"symbol": SYMBOL, "price": 10.0, "size": 1.0, "ts": ts},
        {"symbol": SYMBOL, "price": 11.0, "size": 1.0, "ts": ts * 1000},  # microseconds
    ])
    assert response.status_code == 422
    body = response.json()
    assert [e["index"] for e in body["errors"]] == [1]
    assert f"ts {ts * 1000} is more than 60000 ms ahead of the server clock" in body["errors"][0]["error"]
    assert server.metric("tickfan_ticks_in_total") == before
    assert candles(server, SYMBOL) == before_candles
    # the symbol is not frozen: the next tick at the server's time is accepted
    ok = server.publish([{"symbol": SYMBOL, "price": 10.0, "size": 1.0, "ts": next_ts()}])
    assert ok.status_code == 202, ok.text


def test_skew_setting_is_honoured(fresh_server: Callable[..., Server]) -> None:
    srv = fresh_server("--max-ts-skew-ms", "1000")
    response = srv.publish([{"symbol": "ETH/USD", "price": 2000.0, "size": 1.0, "ts": now_ms() + 30_000}])
    assert response.status_code == 422
    assert "more than 1000 ms ahead" in response.json()["errors"][0]["error"]


def test_sim_feed_goes_on_for_other_symbols_when_one_is_refused(fresh_server: Callable[..., Server]) -> None:
    srv = fresh_server("--feed", "sim", "--sim-seed", "3")
    # a publisher stamps ETH/USD 30 s ahead (within the skew): the simulator's ETH/USD ticks are
    # refused for 30 s; BTC/USD and the others must keep flowing
    ahead = srv.publish([{"symbol": "ETH/USD", "price": 2000.0, "size": 1.0, "ts": now_ms() + 30_000}])
    assert ahead.status_code == 202, ahead.text

    async def scenario() -> list[int]:
        ws = await srv.authed("watcher")
        await ws.send(json.dumps({"type": "subscribe", "symbols": ["BTC/USD"], "mode": "tick"}))
        await recv_until(ws, lambda m: m["type"] == "subscribed")
        seqs: list[int] = []
        while len(seqs) < 100:
            message, _ = await recv_until(ws, lambda m: m["type"] == "market_data")
            seqs.append(message["seq"])
        await ws.close()
        return seqs

    seqs = run(scenario())
    assert seqs == list(range(seqs[0], seqs[0] + 100))
    # Counted where the feed runs (with --workers 2, one worker: /metrics answers from either).
    deadline = time.monotonic() + 10
    while (refused := srv.metric("tickfan_ticks_refused_total")) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert refused > 0
    log = srv.log()
    assert "Traceback" not in log and " ERROR " not in log
    assert log.count("simulated ticks refused") == 1  # one line a minute at most
