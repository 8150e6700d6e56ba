"""Tick-level resume over real sockets: a client that reconnects gets exactly what it missed.

``sim_server``: the simulator ticks BTC/USD at ~250/s; a reference client stays subscribed in
tick mode the whole time and is the ground truth. ``fresh_server``: ``--feed none`` with a tiny
resume ring, for the exact ranges of ``gap``.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from tickfan.batch_codec import decode_batch
from tickfan_e2e import Client, Server, next_ts, recv_json, recv_until, run

SYMBOL = "BTC/USD"


def ticks_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    if message.get("symbol") != SYMBOL:
        return []
    if message["type"] == "market_data_batch":
        return decode_batch(message)
    if message["type"] == "market_data":
        return [message]
    return []


class Reference:
    """A tick-mode subscriber of SYMBOL reading in the background: every tick, in order."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.ticks: list[dict[str, Any]] = []
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.ws = await self.server.authed("resume-reference")
        await self.ws.send(json.dumps({"type": "subscribe", "symbols": [SYMBOL], "mode": "tick"}))
        await recv_until(self.ws, lambda m: m["type"] == "subscribed")
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            self.ticks += ticks_of(await recv_json(self.ws, 30))

    async def reach(self, seq: int) -> None:
        deadline = time.monotonic() + 30
        while not self.ticks or self.ticks[-1]["seq"] < seq:
            assert self.task is not None and not self.task.done(), self.task
            assert time.monotonic() < deadline, f"reference stuck at {self.ticks[-1:]}"
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        # Close first: the reader then ends with ConnectionClosed even if a cancel that races
        # with a completing recv (asyncio.wait_for on 3.11) is swallowed.
        assert self.task is not None
        await self.ws.close()
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


@pytest.mark.parametrize("mode", ["tick", "batch"])
def test_reconnect_under_sim_load_resumes_every_missed_tick_exactly_once(sim_server: Server, mode: str) -> None:
    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any], dict[str, Any], int]:
        ref = Reference(sim_server)
        await ref.start()
        try:
            got: list[dict[str, Any]] = []
            async with await sim_server.authed() as ws:
                await ws.send(json.dumps({"type": "subscribe", "symbols": [SYMBOL], "mode": mode}))
                ack1, _ = await recv_until(ws, lambda m: m["type"] == "subscribed")
                deadline = time.monotonic() + 30
                while len(got) < 100:
                    assert time.monotonic() < deadline, f"first session: {len(got)} ticks"
                    got += ticks_of(await recv_json(ws))
            last_seq = got[-1]["seq"]
            # Away for a while: the feed moves on by 200+ ticks.
            await ref.reach(last_seq + 200)
            async with await sim_server.authed() as ws:
                await ws.send(json.dumps({
                    "type": "subscribe", "symbols": [SYMBOL], "mode": mode,
                    "resume": {SYMBOL: last_seq}, "epoch": ack1["epoch"],
                }))
                ack2 = await recv_json(ws)
                first = await recv_json(ws)
                got += ticks_of(first)
                target = ref.ticks[-1]["seq"] + 100
                deadline = time.monotonic() + 30
                while got[-1]["seq"] < target:
                    assert time.monotonic() < deadline, f"second session at {got[-1]['seq']} of {target}"
                    m = await recv_json(ws)
                    assert m["type"] != "gap", m
                    got += ticks_of(m)
            await ref.reach(got[-1]["seq"])
            return got, list(ref.ticks), ack2, first, last_seq
        finally:
            await ref.stop()

    got, reference, ack, first, last_seq = run(scenario(), timeout=90)
    assert ack["type"] == "subscribed" and ack["resumed"] == [SYMBOL], ack
    # The missed ticks come first, in the subscription's mode.
    assert first["seq"] == last_seq + 1
    assert first["type"] == ("market_data_batch" if mode == "batch" else "market_data")
    seqs = [t["seq"] for t in got]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "a tick lost or duplicated"
    assert len(got) >= 400
    by_seq = {t["seq"]: t for t in reference}
    assert got == [by_seq[s] for s in seqs]  # the same ticks, byte-equal after decoding


def publish(server: Server, n: int) -> None:
    async def go() -> None:
        async with Client(server) as client:
            ticks = [{"symbol": SYMBOL, "price": 100.0 + i, "size": 1.0, "ts": next_ts()} for i in range(n)]
            r = await client.publish_ticks(ticks)
            assert r.status_code == 202, r.text

    run(go())


def test_gap_beyond_the_ring_and_across_epochs_names_the_exact_range(fresh_server: Any) -> None:
    srv = fresh_server("--resume-max-ticks", "5")
    publish(srv, 20)  # seq 1..20; the ring holds 16..20

    async def ask(mode: str, resume: dict[str, int], epoch: str | None) -> list[dict[str, Any]]:
        async with await srv.authed() as ws:
            message: dict[str, Any] = {"type": "subscribe", "symbols": [SYMBOL, "ETH/USD"], "mode": mode, "resume": resume}
            if epoch is not None:
                message["epoch"] = epoch
            await ws.send(json.dumps(message))
            out = [await recv_json(ws)]
            while out[-1]["type"] != "pong":
                if len(out) == 1:
                    await ws.send(json.dumps({"type": "ping", "ts": 1}))
                out.append(await recv_json(ws))
            return out[:-1]

    async def epoch_of() -> str:
        async with await srv.authed() as ws:
            await ws.send(json.dumps({"type": "subscribe", "symbols": ["ETH/USD"]}))
            return str((await recv_until(ws, lambda m: m["type"] == "subscribed"))[0]["epoch"])

    epoch = run(epoch_of())
    # Evicted: 15 is not held, so 15..20 cannot be had; the snapshot (seq 20) follows.
    evicted = run(ask("tick", {SYMBOL: 14}, epoch))
    assert evicted[0]["resumed"] == []
    assert evicted[1] == {"type": "gap", "symbol": SYMBOL, "from_seq": 15, "to_seq": 20, "reason": "evicted"}
    assert [(m["type"], m["seq"]) for m in evicted[2:]] == [("market_data", 20)]
    # Within the ring, batch mode: one batch of 16..20, no snapshot.
    held = run(ask("batch", {SYMBOL: 15, "ETH/USD": 0}, epoch))
    assert held[0]["resumed"] == [SYMBOL, "ETH/USD"]
    assert [(m["type"], m["seq"], m.get("count")) for m in held[1:]] == [("market_data_batch", 16, 5)]
    assert [t["price"] for t in decode_batch(held[1])] == [115.0, 116.0, 117.0, 118.0, 119.0]
    # Another epoch (or none): from last_seq + 1 to the current seq of this epoch, or null.
    other = run(ask("tick", {SYMBOL: 30, "ETH/USD": 7}, "not-this-epoch"))
    assert other[0]["resumed"] == []
    assert other[1] == {"type": "gap", "symbol": SYMBOL, "from_seq": 31, "to_seq": 20, "reason": "epoch"}
    assert other[2]["type"] == "market_data" and other[2]["seq"] == 20
    assert other[3] == {"type": "gap", "symbol": "ETH/USD", "from_seq": 8, "to_seq": None, "reason": "epoch"}
    missing = run(ask("tick", {SYMBOL: 19}, None))
    assert missing[1]["reason"] == "epoch"


def test_resume_naming_an_unrequested_symbol_is_invalid(fresh_server: Any) -> None:
    srv = fresh_server()

    async def go() -> dict[str, Any]:
        async with await srv.authed() as ws:
            await ws.send(json.dumps({"type": "subscribe", "symbols": [SYMBOL], "resume": {"ETH/USD": 3}, "epoch": "x"}))
            reply = await recv_json(ws)
            await ws.send(json.dumps({"type": "subscribe", "symbols": [SYMBOL], "resume": {SYMBOL: -1}}))
            return reply, await recv_json(ws)

    reply, negative = run(go())
    assert reply["type"] == "error" and reply["code"] == "invalid_message"
    assert "'ETH/USD'" in reply["error"]
    assert negative["type"] == "error" and negative["code"] == "invalid_message"


def test_a_burst_past_the_high_water_mark_degrades_once_then_recovers_with_nothing_lost(fresh_server: Any) -> None:
    """One publish of 300 ticks queues them in one call: the socket passes the 50-frame
    high-water mark and gets one ``degraded`` after them (the burst itself was queued whole, so
    conflation skipped nothing: no ``gap``). Once its queue is read it is back in tick mode.
    (What conflation skips while degraded, and the ``gap`` that reports it, is covered on both
    cores in tests/core/test_degrade.py and the differential test.)"""
    # The age rule off: its recovery hold would let the next tick arrive conflated first, and
    # the recovery's gap would then (rightly) cover it; this test is about the water marks.
    srv = fresh_server(
        "--high-water-frames", "50", "--low-water-frames", "0", "--degrade-interval-ms", "50", "--degrade-after-ms", "0"
    )  # fmt: skip

    async def go() -> list[dict[str, Any]]:
        async with await srv.authed() as ws, Client(srv) as client:
            await ws.send(json.dumps({"type": "subscribe", "symbols": [SYMBOL], "mode": "tick"}))
            await recv_until(ws, lambda m: m["type"] == "subscribed")
            ticks = [{"symbol": SYMBOL, "price": 100.0 + i / 100, "size": 1.0, "ts": next_ts()} for i in range(300)]
            assert (await client.publish_ticks(ticks)).status_code == 202
            _, seen = await recv_until(ws, lambda m: m["type"] == "degraded")
            seen.append({"type": "degraded"})
            # read to the end of the queue (the pong), so the socket recovers; then tick mode again
            await ws.send(json.dumps({"type": "ping", "ts": 1}))
            seen += (await recv_until(ws, lambda m: m["type"] == "pong"))[1]
            for price in (99.0, 98.0):
                tick = {"symbol": SYMBOL, "price": price, "size": 1.0, "ts": next_ts()}
                assert (await client.publish_ticks([tick])).status_code == 202
                m, between = await recv_until(ws, lambda m: m["type"] == "market_data")
                seen += between + [m]
            return seen

    seen = run(go())
    kinds = [m["type"] for m in seen]
    assert kinds.count("degraded") == 1 and "gap" not in kinds
    assert kinds.index("degraded") == 300
    seqs = [m["seq"] for m in seen if m["type"] == "market_data"]
    assert seqs == list(range(1, 303))  # every tick once, in order, the last two in tick mode


@pytest.mark.parametrize("mode", ["tick", "batch"])
def test_resume_on_the_other_node_of_a_cluster_loses_and_repeats_nothing(fresh_redis: Any, tmp_path: Any, mode: str) -> None:
    """Two nodes on one redis-server (A on the Rust core, B on the twin), ticks published to
    both while a client reads from A, disconnects, and resumes on B: every node derives the same
    resume ring from the same log, so B sends exactly the ticks the client missed."""
    nodes = [
        Server(core, tmp_path / name, "--feed", "none", "--broker", fresh_redis.url, "--log-level", "warning").start()
        for name, core in (("a", "rust"), ("b", "python"))
    ]
    a, b = nodes

    async def feed(stop: asyncio.Event) -> int:
        sent = 0
        async with Client(a) as ca, Client(b) as cb:
            while not stop.is_set():
                ticks = [{"symbol": SYMBOL, "price": 100.0 + (sent + i) % 97, "size": 1.0, "ts": next_ts()} for i in range(5)]
                r = await (ca if sent % 2 == 0 else cb).publish_ticks(ticks)
                assert r.status_code == 202, r.text
                sent += len(ticks)
                await asyncio.sleep(0.01)
        return sent

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any], int]:
        ref = Reference(b)  # the ground truth, on the node the client resumes on
        await ref.start()
        stop = asyncio.Event()
        feeder = asyncio.create_task(feed(stop))
        try:
            got: list[dict[str, Any]] = []
            async with await a.authed() as ws:
                await ws.send(json.dumps({"type": "subscribe", "symbols": [SYMBOL], "mode": mode}))
                ack1, _ = await recv_until(ws, lambda m: m["type"] == "subscribed")
                deadline = time.monotonic() + 30
                while len(got) < 100:
                    assert time.monotonic() < deadline, f"first session: {len(got)} ticks"
                    got += ticks_of(await recv_json(ws))
            last_seq = got[-1]["seq"]
            await ref.reach(last_seq + 200)  # away while the cluster moves on
            async with await b.authed() as ws:
                await ws.send(json.dumps({
                    "type": "subscribe", "symbols": [SYMBOL], "mode": mode,
                    "resume": {SYMBOL: last_seq}, "epoch": ack1["epoch"],
                }))
                ack2 = await recv_json(ws)
                target = ref.ticks[-1]["seq"] + 100
                deadline = time.monotonic() + 30
                while got[-1]["seq"] < target:
                    assert time.monotonic() < deadline, f"second session at {got[-1]['seq']} of {target}"
                    m = await recv_json(ws)
                    assert m["type"] != "gap", m
                    got += ticks_of(m)
            stop.set()
            sent = await feeder
            await ref.reach(got[-1]["seq"])
            return got, list(ref.ticks), ack2, sent
        finally:
            stop.set()
            await asyncio.gather(feeder, return_exceptions=True)
            await ref.stop()

    try:
        got, reference, ack, sent = run(scenario(), timeout=120)
    finally:
        for srv in nodes:
            srv.stop()
    assert ack["type"] == "subscribed" and ack["resumed"] == [SYMBOL], ack
    seqs = [t["seq"] for t in got]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "a tick lost or duplicated"
    assert len(got) >= 400 and sent >= seqs[-1] - seqs[0]
    by_seq = {t["seq"]: t for t in reference}
    assert got == [by_seq[s] for s in seqs]  # the same ticks on both nodes, byte-equal after decoding
