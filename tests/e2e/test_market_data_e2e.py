"""PROTOCOL.md section 3 against a real server: subscriptions, modes, batches, backfill."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from tickfan.batch_codec import decode_batch
from tickfan_e2e import TEST_SYMBOLS, Server, barrier, expect_close, now_ms, recv_json, recv_until, run

pytestmark = pytest.mark.e2e


async def subscribe(ws: Any, symbols: list[str], **extra: Any) -> dict[str, Any]:
    await ws.send(json.dumps({"type": "subscribe", "symbols": symbols, **extra}))
    return (await recv_until(ws, lambda m: m["type"] == "subscribed"))[0]


def test_subscribe_ack_epoch_and_snapshot(server: Server) -> None:
    ts = now_ms()
    assert server.publish([{"symbol": "XRP/USD", "price": 0.61234, "size": 10.5, "ts": ts}]).status_code == 202

    async def scenario() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        async with await server.authed() as a, await server.authed("bob") as b:
            ack = await subscribe(a, ["XRP/USD"], mode="batch", interval_ms=100)
            snapshot = await recv_json(a)
            ack_b = await subscribe(b, ["XRP/USD"], mode="tick")
            return ack, snapshot, ack_b

    ack, snapshot, ack_b = run(scenario())
    assert ack["symbols"] == ["XRP/USD"] and ack["mode"] == "batch" and ack["interval_ms"] == 100
    assert isinstance(ack["epoch"], str) and ack["epoch"] and ack["epoch"] == ack_b["epoch"]
    assert snapshot["type"] == "market_data" and snapshot["symbol"] == "XRP/USD"
    assert (snapshot["ts"], snapshot["price"], snapshot["size"]) == (ts, 0.61234, 10.5)
    assert isinstance(snapshot["seq"], int) and snapshot["seq"] >= 1


def test_tick_mode_every_tick_with_consecutive_seq(server: Server) -> None:
    async def scenario() -> list[dict[str, Any]]:
        async with await server.authed() as ws:
            await subscribe(ws, ["ADA/USD"], mode="tick")
            ts = now_ms()
            ticks = [{"symbol": "ADA/USD", "price": round(0.38 + i / 100000, 5), "size": 1.0 + i, "ts": ts + i} for i in range(30)]
            assert (await server.apublish(ticks)).status_code == 202
            out = []
            while len(out) < 30:
                m = await recv_json(ws)
                if m["type"] == "market_data" and m["ts"] >= ts:
                    out.append(m)
            return out

    got = run(scenario())
    seqs = [m["seq"] for m in got]
    assert seqs == list(range(seqs[0], seqs[0] + 30))
    assert got[0]["price"] == 0.38 and got[29]["size"] == 30.0
    assert list(got[0]) == ["type", "symbol", "seq", "ts", "price", "size"]


def test_batch_mode_decodes_to_the_tick_stream(server: Server) -> None:
    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        async with await server.authed() as tick_ws, await server.authed() as batch_ws:
            await subscribe(tick_ws, ["DOGE/USD"], mode="tick")
            await subscribe(batch_ws, ["DOGE/USD"], mode="batch", interval_ms=50)
            ts = now_ms()
            ticks = [{"symbol": "DOGE/USD", "price": round(0.082 + i / 1e6, 6), "size": round(5.0 + i / 10, 1), "ts": ts + i // 3} for i in range(40)]
            assert (await server.apublish(ticks[:25])).status_code == 202
            assert (await server.apublish(ticks[25:])).status_code == 202
            singles, batches = [], []
            while len(singles) < 40:
                m = await recv_json(tick_ws)
                if m["type"] == "market_data" and m["ts"] >= ts:
                    singles.append(m)
            decoded: list[dict[str, Any]] = []
            while len(decoded) < 40:
                m = await recv_json(batch_ws)
                if m["type"] == "market_data_batch":
                    batches.append(m)
                    decoded += decode_batch(m)
            return singles, decoded, batches

    singles, decoded, batches = run(scenario())
    assert decoded == singles
    assert all(b["price_decimals"] == 6 and b["size_decimals"] == 1 for b in batches)
    assert len(batches) < 40  # gathered, not one per tick


def test_conflate_sends_leading_tick_then_at_most_one_per_interval_and_the_latest_last(server: Server) -> None:
    interval_ms = 200
    bursts, per_burst = 10, 20
    prices = [round(6.0 + i / 1000, 3) for i in range(bursts * per_burst)]

    async def scenario() -> tuple[dict[str, Any], list[dict[str, Any]], float]:
        async with await server.authed() as ws:
            ack = await subscribe(ws, ["DOT/USD"], mode="conflate", interval_ms=interval_ms)
            await barrier(ws)  # the snapshot of an earlier DOT/USD tick, if any
            ts = now_ms()
            started = time.monotonic()
            for burst in range(bursts):
                chunk = prices[burst * per_burst : (burst + 1) * per_burst]
                ticks = [{"symbol": "DOT/USD", "price": p, "size": 1.0, "ts": ts} for p in chunk]
                assert (await server.apublish(ticks)).status_code == 202
            last, before = await recv_until(ws, lambda m: m["type"] == "market_data" and m["price"] == prices[-1])
            elapsed_ms = (time.monotonic() - started) * 1000
            return ack, [m for m in before if m["type"] == "market_data"] + [last], elapsed_ms

    ack, got, elapsed_ms = run(scenario())
    assert ack["mode"] == "conflate" and ack["interval_ms"] == interval_ms
    # leading edge: the first tick goes out at once; trailing edge: the latest tick comes last
    assert got[0]["price"] == prices[0]
    assert got[-1]["price"] == prices[-1] and got[-1]["seq"] - got[0]["seq"] == len(prices) - 1
    seqs = [m["seq"] for m in got]
    assert seqs == sorted(set(seqs))
    # at most one frame per interval after the first: the server sent these within the time
    # this client measured (publishing to receiving the last one), so this bound always holds
    assert 2 <= len(got) <= 2 + elapsed_ms // interval_ms, (len(got), elapsed_ms)
    assert len(got) < len(prices) // 4  # and far fewer than the ticks


def test_auto_mode_sends_low_rate_symbols_as_ticks(server: Server) -> None:
    async def scenario() -> dict[str, Any]:
        async with await server.authed() as ws:
            ack = await subscribe(ws, ["SOL/USD"])
            assert ack["mode"] == "auto"
            ts = now_ms()
            assert (await server.apublish([{"symbol": "SOL/USD", "price": 98.412, "size": 1.0, "ts": ts}])).status_code == 202
            return (await recv_until(ws, lambda m: m.get("ts") == ts))[0]

    assert run(scenario())["type"] == "market_data"


def test_unsubscribe_stops_the_stream(server: Server) -> None:
    async def scenario() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        async with await server.authed() as ws:
            await subscribe(ws, ["BTC/EUR", "ETH/BTC"], mode="tick")
            await ws.send(json.dumps({"type": "unsubscribe", "symbols": ["BTC/EUR", "SOL/USD"]}))
            ack, _ = await recv_until(ws, lambda m: m["type"] == "unsubscribed")
            ts = now_ms()
            ticks = [{"symbol": "BTC/EUR", "price": 39870.5, "size": 1.0, "ts": ts}, {"symbol": "ETH/BTC", "price": 0.053125, "size": 1.0, "ts": ts}]
            assert (await server.apublish(ticks)).status_code == 202
            await ws.send(json.dumps({"type": "ping", "ts": 1}))
            seen = []
            while True:
                m = await recv_json(ws)
                if m["type"] == "pong":
                    return ack, seen
                seen.append(m)

    ack, seen = run(scenario())
    assert ack["symbols"] == ["BTC/EUR"]
    assert [m["symbol"] for m in seen if m["type"] == "market_data"] == ["ETH/BTC"]


def test_resubscribe_replaces_mode(server: Server) -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        async with await server.authed() as ws:
            await subscribe(ws, ["LTC/USD"], mode="batch", interval_ms=60000)
            ack = await subscribe(ws, ["LTC/USD"], mode="tick")
            ts = now_ms()
            assert (await server.apublish([{"symbol": "LTC/USD", "price": 71.25, "size": 2.0, "ts": ts}])).status_code == 202
            return ack, (await recv_until(ws, lambda m: m.get("ts") == ts or m["type"] == "market_data_batch", timeout=3))[0]

    ack, message = run(scenario())
    assert ack["mode"] == "tick"
    assert message["type"] == "market_data"  # not held for the old 60 s batch window


def test_backfill(server: Server) -> None:
    symbol = TEST_SYMBOLS[0]
    base = (now_ms() // 60000 - 90) * 60000  # 90 minutes ago, on a minute boundary
    ticks = [{"symbol": symbol, "price": 100.0 + i, "size": 1.0, "ts": base + i * 60000} for i in range(5)]
    ticks.append({"symbol": symbol, "price": 99.0, "size": 0.5, "ts": base + 4 * 60000 + 10})
    assert server.publish(ticks).status_code == 202

    async def scenario() -> list[dict[str, Any]]:
        async with await server.authed() as ws:
            await ws.send(json.dumps({"type": "backfill_request", "symbols": [symbol, "NOPE/USD"], "since": base + 2 * 60000 + 5}))
            first = await recv_json(ws)
            second = await recv_json(ws)
            await ws.send(json.dumps({"type": "backfill_request", "symbols": [symbol], "since": 0, "interval": "5m"}))
            third = await recv_json(ws)
            return [first, second, third]

    backfill, error, five = run(scenario())
    assert backfill["type"] == "backfill" and backfill["symbol"] == symbol and backfill["interval"] == "1m"
    assert backfill["complete"] is True
    assert backfill["candles"] == [
        [base + 2 * 60000, 102.0, 102.0, 102.0, 102.0, 1.0],
        [base + 3 * 60000, 103.0, 103.0, 103.0, 103.0, 1.0],
        [base + 4 * 60000, 104.0, 104.0, 99.0, 99.0, 1.5],
    ]
    assert error["code"] == "unknown_symbol" and "NOPE/USD" in error["error"]
    assert five["interval"] == "5m" and five["complete"] is True
    assert sum(c[5] for c in five["candles"]) == 5.5


def test_slow_consumer_is_closed_1013_while_others_keep_receiving(server: Server) -> None:
    # History for big backfill frames (~150 KB each) on test-only symbols.
    base = now_ms() - 4000 * 1000
    for symbol in TEST_SYMBOLS[1:]:
        ticks = [{"symbol": symbol, "price": 100.0 + (i % 50), "size": 1.0, "ts": base + i * 1000} for i in range(3600)]
        assert server.publish(ticks).status_code == 202
    before = server.metric("tickfan_slow_consumers_disconnected_total")

    async def scenario() -> tuple[int | None, list[dict[str, Any]], list[int]]:
        slow = await server.stalled("slow")
        fast = await server.authed("fast")
        await subscribe(fast, ["ETH/USD"], mode="tick")
        request = {"type": "backfill_request", "symbols": TEST_SYMBOLS[1:], "since": 0, "interval": "1s"}
        for _ in range(30):  # ~13 MB of answers; the slow client reads none of it (a few MB fit in buffers)
            await slow.send(json.dumps(request))
        received: list[int] = []
        deadline = time.monotonic() + 30
        while await asyncio.to_thread(server.metric, "tickfan_slow_consumers_disconnected_total") == before:
            assert time.monotonic() < deadline, "the slow consumer was never disconnected"
            ts = now_ms()
            assert (await server.apublish([{"symbol": "ETH/USD", "price": 2291.55, "size": 1.0, "ts": ts}])).status_code == 202
            received.append((await recv_until(fast, lambda m: m.get("ts") == ts))[0]["seq"])
        ts = now_ms()
        assert (await server.apublish([{"symbol": "ETH/USD", "price": 2291.56, "size": 1.0, "ts": ts}])).status_code == 202
        received.append((await recv_until(fast, lambda m: m.get("ts") == ts))[0]["seq"])
        code, seen = await expect_close(slow, timeout=20)
        await fast.send(json.dumps({"type": "ping", "ts": 5}))
        assert (await recv_until(fast, lambda m: m["type"] == "pong"))[0]["ts"] == 5
        await fast.close()
        return code, seen, received

    code, seen, received = run(scenario(), timeout=90)
    assert code == 1013
    assert seen[-1] == {"type": "error", "code": "slow_consumer", "error": seen[-1]["error"]}
    assert all(m["type"] == "backfill" for m in seen[:-1])
    assert received == list(range(received[0], received[0] + len(received)))
