"""The client's own ceiling: how many frames and ticks per second one client.py process can read.

A firehose server (picows, pre-formatted frames written straight to the transport, paced only
by TCP flow control) floods 100 subscribed connections with `market_data` frames, then with
`market_data_batch` frames of 50 ticks; client.py reads them exactly as in a real run (decode,
seq check, latency histogram). Where the client process sits near 100% of a core, the numbers
are its ceiling; any server run whose client CPU approaches that is client-bound, and run.py
flags it. The firehose's latencies are meaningless (it queues as much as the socket takes).

    python benches/load/ceiling.py            # prints both ceilings as JSON
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
PY = sys.executable
BATCH_TICKS = 50


def ws_frame(payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload


async def firehose(port: int, mode: str) -> None:
    from picows import WSListener, WSMsgType, ws_create_server

    conns: list = []

    class Conn(WSListener):
        def __init__(self) -> None:
            self.paused = False
            self.seq = 0  # index of the next chunk
            self.raw = None

        def on_ws_connected(self, transport) -> None:
            self.raw = transport.underlying_transport

        def on_ws_disconnected(self, transport) -> None:
            if self in conns:
                conns.remove(self)

        def pause_writing(self) -> None:
            self.paused = True

        def resume_writing(self) -> None:
            self.paused = False

        def on_ws_frame(self, transport, frame) -> None:
            if frame.msg_type is not WSMsgType.TEXT:
                transport.disconnect()
                return
            data = frame.get_payload_as_bytes()
            if b'"auth"' in data:
                transport.send(WSMsgType.TEXT, b'{"type":"auth_success","user_id":"x","expires_at":0}')
            elif b'"subscribe"' in data:
                transport.send(WSMsgType.TEXT, b'{"type":"subscribed","symbols":["BTC/USD"],"mode":"tick","epoch":"1"}')
                conns.append(self)

    tick = b'{"type":"market_data","symbol":"BTC/USD","seq":%d,"ts":%d,"price":43125.37,"size":1.%03d}'
    zeros = b",".join([b"0"] * (BATCH_TICKS - 1))
    sizes = b",".join([b"100000000"] * BATCH_TICKS)
    prices = b",".join([b"4312537"] + [b"1"] * (BATCH_TICKS - 1))
    batch = (
        b'{"type":"market_data_batch","symbol":"BTC/USD","seq":%d,"count":' + str(BATCH_TICKS).encode()
        + b',"price_decimals":2,"size_decimals":8,"ts":[%d,' + zeros + b'],"price":[' + prices
        + b'],"size":[' + sizes + b"]}"
    )  # fmt: skip

    per_chunk = 64 if mode == "tick" else 8
    cache: dict[int, bytes] = {}

    def chunk(c: Conn) -> bytes:
        # Every connection reads the same seq sequence, so chunk j is formatted once and
        # written to all: the firehose spends its CPU in write(), not in formatting.
        j = c.seq
        c.seq += 1
        out = cache.get(j)
        if out is None:
            ts, frac = divmod(time.time_ns() // 1000, 1000)
            if mode == "tick":
                first = 1 + j * per_chunk
                out = b"".join(ws_frame(tick % (first + i, ts, frac)) for i in range(per_chunk))
            else:
                first = 1 + j * per_chunk * BATCH_TICKS
                out = b"".join(ws_frame(batch % (first + i * BATCH_TICKS, ts)) for i in range(per_chunk))
            cache[j] = out
            if len(cache) > 4096:
                for k in sorted(cache)[:2048]:
                    del cache[k]
        return out

    asyncio.get_running_loop().call_later(120, os._exit, 0)  # bounded, whatever happens
    server = await ws_create_server(lambda r: Conn(), "127.0.0.1", port)
    async with server:
        while True:
            wrote = False
            for c in list(conns):
                if not c.paused and c.raw is not None and not c.raw.is_closing():
                    c.raw.write(chunk(c))
                    wrote = True
            await asyncio.sleep(0 if wrote else 0.001)


async def measure(mode: str, clients: int, duration_s: float) -> dict:
    from servers import free_port

    port = free_port()
    env = {**os.environ, "TICKFAN_JWT_SECRET": secrets.token_hex(16)}
    fh = await asyncio.create_subprocess_exec(PY, __file__, "--serve", str(port), "--mode", mode, env=env)
    try:
        for _ in range(100):
            try:
                _, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        cl = await asyncio.create_subprocess_exec(
            PY, os.path.join(HERE, "client.py"), "--url", f"ws://127.0.0.1:{port}/ws/market-data",
            "--clients", str(clients), "--symbols", "BTC/USD", "--deadline-s", str(duration_s + 60),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env, limit=1 << 24,
        )  # fmt: skip
        ready = json.loads((await asyncio.wait_for(cl.stdout.readline(), 60)).decode().split(" ", 1)[1])
        await asyncio.sleep(0.5)
        cl.stdin.write(b"GO 0\n")  # count every tick: the socket buffers hold a backlog from before
        await asyncio.wait_for(cl.stdout.readline(), 60)  # GOING
        await asyncio.sleep(duration_s)
        cl.stdin.write(b"END\n")
        line = (await asyncio.wait_for(cl.stdout.readline(), 60)).decode()
        res = json.loads(line.split(" ", 1)[1])
        await cl.wait()
    finally:
        if fh.returncode is None:
            fh.kill()  # our own child, by its PID
            await fh.wait()
    wall = res["wall_s"] or 1.0
    return {
        "frame_kind": "market_data" if mode == "tick" else f"market_data_batch x{BATCH_TICKS}",
        "clients": ready["subscribed"],
        "frames_per_s": res["frames"] / wall,
        "ticks_per_s": res["ticks"] / wall,
        "bytes_per_s": res["bytes"] / wall,
        "client_cpu_pct": 100.0 * res["cpu_s"] / wall,
        # normalised to one full core: the ceiling when the client has a core to itself
        "frames_per_cpu_s": res["frames"] / res["cpu_s"] if res["cpu_s"] else None,
        "ticks_per_cpu_s": res["ticks"] / res["cpu_s"] if res["cpu_s"] else None,
        "gaps": res["gaps"],
    }


async def measure_ceiling(duration_s: float = 5.0, clients: int = 100, log=None) -> dict:
    out = {}
    for mode in ("tick", "batch"):
        out[mode] = await measure(mode, clients, duration_s)
        if log:
            r = out[mode]
            log(f"ceiling {r['frame_kind']}: {r['frames_per_s']:,.0f} frames/s, {r['ticks_per_s']:,.0f} ticks/s "
                f"at {r['client_cpu_pct']:.0f}% client CPU")  # fmt: skip
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="tick", choices=["tick", "batch"], help=argparse.SUPPRESS)
    ap.add_argument("--duration-s", type=float, default=5.0)
    ap.add_argument("--clients", type=int, default=100)
    a = ap.parse_args()
    if a.serve:
        import uvloop

        uvloop.run(firehose(a.serve, a.mode))
    else:
        print(json.dumps(asyncio.run(measure_ceiling(a.duration_s, a.clients, log=print)), indent=1))
