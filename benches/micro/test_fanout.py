"""Fan-out: one tick to 10,000 tick-mode subscribers, draining every queue included."""

from __future__ import annotations

import json

import pytest

SUBSCRIBERS = 10_000


@pytest.mark.benchmark(group="fanout")
def test_fanout(benchmark, make_core):
    core = make_core([("BTC/USD", 2, 8)])
    conns = [core.connect() for _ in range(SUBSCRIBERS)]
    for conn in conns:
        core.subscribe(conn, ["BTC/USD"], "tick")
    clock = {"ts": 1_731_283_200_000}

    def setup():
        clock["ts"] += 1
        return ([("BTC/USD", 43125.37, 0.015, clock["ts"])],), {}

    def fan_out(ticks):
        core.ingest(ticks, 0)
        drain = core.drain
        return [drain(conn) for conn in conns]

    drained = benchmark.pedantic(fan_out, setup=setup, rounds=30, warmup_rounds=1)
    assert len(drained) == SUBSCRIBERS
    assert all(len(frames) == 1 for frames in drained)
    message = json.loads(drained[-1][0])
    assert (message["type"], message["ts"], message["price"]) == (
        "market_data", clock["ts"], 43125.37,
    )
