"""Batching: 1,000 ticks to 1,000 batch-mode subscribers, including the flush.

Timed: ``ingest`` of the 1,000 ticks and the ``flush`` that encodes the window once and queues
it to every subscriber. The per-connection ``drain`` is the hand-off to the writers, measured
on its own in ``test_fanout.py`` (group ``handoff``); here it runs untimed, to check the frames.
"""

from __future__ import annotations

import json

import pytest

SUBSCRIBERS = 1_000
TICKS = 1_000
PRICES = [(4_312_500 + (i * 37) % 500) / 100 for i in range(97)]
SIZES = [(1 + (i * 7919) % 100_000) / 10**8 for i in range(89)]


@pytest.mark.benchmark(group="batch")
def test_batch(benchmark, make_core):
    core = make_core([("BTC/USD", 2, 8)])
    conns = [core.connect() for _ in range(SUBSCRIBERS)]
    for conn in conns:
        core.subscribe(conn, ["BTC/USD"], "batch", 50)
    clock = {"now": 0, "ts": 1_731_283_200_000}

    def setup():
        for conn in conns:  # the previous round's frames, outside the timed part
            core.drain(conn)
        clock["now"] += 1000
        ts = clock["ts"]
        clock["ts"] += TICKS
        ticks = [
            ("BTC/USD", PRICES[i % len(PRICES)], SIZES[i % len(SIZES)], ts + i)
            for i in range(TICKS)
        ]
        return (ticks, clock["now"]), {}

    def batch(ticks, now_ms):
        core.ingest(ticks, now_ms)
        core.flush(now_ms + 50)

    benchmark.pedantic(batch, setup=setup, rounds=20, warmup_rounds=1)
    drained = [core.drain(conn) for conn in conns]
    assert all(len(frames) == 1 for frames in drained)
    message = json.loads(drained[0][0])
    assert (message["type"], message["count"]) == ("market_data_batch", TICKS)
    assert message["ts"][1:] == [1] * (TICKS - 1)
    assert drained[-1][0] == drained[0][0]
