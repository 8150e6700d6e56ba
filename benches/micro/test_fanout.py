"""Fan-out: one tick to 10,000 tick-mode subscribers, and handing the frames to 10,000 writers.

Two groups, because they are two different costs in the server:

* ``fanout`` is the core's fan-out: ``ingest`` validates the tick, assigns its seq, updates the
  candles, encodes the frame once and queues it to every subscriber's bounded queue.
* ``handoff`` is the per-connection hand-off that follows in the server: ``take_ready`` (which
  writers to wake: 10,000 ids) and one ``drain`` per connection (each writer task calls it when it
  wakes). That is 10,000 Python objects and calls whatever the core does (~100-200 ns each), so the
  Rust/Python ratio there is small by nature; it is reported, not hidden. In the server, each of
  those connections then costs a task wake-up and a socket send (~15 us), which dwarfs both.
"""

from __future__ import annotations

import json

import pytest

SUBSCRIBERS = 10_000


def _subscribed_core(make_core):
    core = make_core([("BTC/USD", 2, 8)])
    conns = [core.connect() for _ in range(SUBSCRIBERS)]
    for conn in conns:
        core.subscribe(conn, ["BTC/USD"], "tick")
    return core, conns


def _check_frame(frame: str, ts: int) -> None:
    message = json.loads(frame)
    assert (message["type"], message["ts"], message["price"], message["size"]) == (
        "market_data", ts, 43125.37, 0.015,
    )


@pytest.mark.benchmark(group="fanout")
def test_fanout(benchmark, make_core):
    core, conns = _subscribed_core(make_core)
    clock = {"ts": 1_731_283_200_000}

    def setup():
        for conn in conns:  # empty the queues between rounds, outside the timed part
            core.drain(conn)
        clock["ts"] += 1
        return ([("BTC/USD", 43125.37, 0.015, clock["ts"])], 0), {}

    accepted = benchmark.pedantic(core.ingest, setup=setup, rounds=30, warmup_rounds=1)
    assert accepted == 1
    drained = [core.drain(conn) for conn in conns]
    assert all(len(frames) == 1 for frames in drained)
    _check_frame(drained[-1][0], clock["ts"])


@pytest.mark.benchmark(group="handoff")
def test_handoff(benchmark, make_core):
    core, conns = _subscribed_core(make_core)
    clock = {"ts": 1_731_283_200_000}

    def setup():
        clock["ts"] += 1
        core.ingest([("BTC/USD", 43125.37, 0.015, clock["ts"])], 0)
        return (), {}

    take_ready = getattr(core, "take_ready", lambda: conns)  # the naive core has no readiness

    def hand_off():
        drain = core.drain
        return [drain(conn) for conn in take_ready()]

    drained = benchmark.pedantic(hand_off, setup=setup, rounds=30, warmup_rounds=1)
    assert len(drained) == SUBSCRIBERS
    assert all(len(frames) == 1 for frames in drained)
    _check_frame(drained[-1][0], clock["ts"])
