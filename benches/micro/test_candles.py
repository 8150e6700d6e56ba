"""Candles: 1,000,000 candle updates (ticks ingested with no subscriber), and a backfill."""

from __future__ import annotations

import pytest

UPDATES = 1_000_000
CHUNK = 10_000
STEP_MS = 100  # 1,000,000 ticks span 100,000 s: about 28 hours of candles
PRICES = [(4_312_500 + (i * 37) % 500) / 100 for i in range(97)]
SIZES = [(1 + (i * 7919) % 100_000) / 10**8 for i in range(89)]


@pytest.mark.benchmark(group="candles")
def test_candles(benchmark, make_core):
    cores = []
    chunks = [
        [("BTC/USD", PRICES[i % 97], SIZES[i % 89], i * STEP_MS) for i in range(start, start + CHUNK)]
        for start in range(0, UPDATES, CHUNK)
    ]

    def setup():  # a fresh core per round: every round ingests the same ticks from ts 0
        cores.append(make_core([("BTC/USD", 2, 8)]))
        return (cores[-1], chunks), {}

    def ingest(core, chunks):
        now_ms = 0
        for chunk in chunks:
            now_ms += 1000
            core.ingest(chunk, now_ms)

    benchmark.pedantic(ingest, setup=setup, rounds=3, iterations=1)
    core = cores[-1]
    hours, _ = core.backfill("BTC/USD", "1h", 0)
    assert len(hours) == 28  # 100,000 s from ts 0
    assert hours[1][0] == 3_600_000
    assert hours[1][5] == pytest.approx(sum(SIZES[i % 89] for i in range(36_000, 72_000)))
    seconds, _ = core.backfill("BTC/USD", "1s", 0)
    assert len(seconds) == 3600 and seconds[-1][0] == (UPDATES - 1) * STEP_MS // 1000 * 1000


BACKFILL = 1_440
MINUTE = 60_000


@pytest.mark.benchmark(group="backfill")
def test_backfill(benchmark, make_core):
    core = make_core([("BTC/USD", 2, 8)])
    ticks = [("BTC/USD", PRICES[i % 97], SIZES[i % 89], i * MINUTE) for i in range(2 * BACKFILL)]
    for start in range(0, len(ticks), 100):
        core.ingest(ticks[start : start + 100], start * 100)
    since = BACKFILL * MINUTE  # the oldest of the 1,440 one-minute candles held
    candles, complete = benchmark(core.backfill, "BTC/USD", "1m", since)
    assert len(candles) == BACKFILL and complete is True
    assert candles[0][0] == since and candles[-1][0] == (2 * BACKFILL - 1) * MINUTE
    assert candles[0][1] == PRICES[BACKFILL % 97]
