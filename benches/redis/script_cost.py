"""The ingest script alone on a private redis-server: Redis CPU per call and per tick by batch
size, back to back and paced (no tickfan nodes, no readers).

    python benches/redis/script_cost.py                 # back to back, 300 calls per size
    python benches/redis/script_cost.py --pace-s 0.05   # one call every 50 ms (1,000 ticks/s at 50)

Calls ``lua/ingest.lua`` exactly as ``RedisBroker.ingest`` does (same keys and arguments, one
symbol), ``--calls`` times per batch size, and prints ``INFO commandstats`` time per EVALSHA and
the whole process's CPU (``used_cpu_user + used_cpu_sys``) per call and per tick. Paced, the
process figure includes Redis's own idle work over the window (``hz``), measured first and
also printed. Traffic only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "python"))
sys.path.insert(0, str(HERE))

from cluster import start_redis  # noqa: E402

from tickfan.brokers.redis import EPOCH_KEYS, EVENTS, EVENTS_MAX, INTERNAL_KEY_TTL_MS, LASTTS, LOG, META, SEQ, _script  # noqa: E402


def cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def main(args: argparse.Namespace) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="tickfan-script-cost-"))
    proc, port = start_redis(tmp / "redis", args.appendfsync)
    out: dict = {"appendfsync": args.appendfsync, "pace_s": args.pace_s, "calls": args.calls}
    try:
        r = redis.Redis(port=port)
        out["redis_version"] = r.info("server")["redis_version"]
        ingest = r.register_script(_script("ingest.lua"))
        r.register_script(_script("epoch.lua"))(keys=EPOCH_KEYS, args=[secrets.token_hex(8)])
        c0, t0 = cpu(r), time.perf_counter()
        time.sleep(2.0)
        idle = (cpu(r) - c0) / (time.perf_counter() - t0)
        out["idle_cpu_per_s"] = round(idle, 5)
        ts = int(time.time() * 1000)
        for n in args.batches:
            r.config_resetstat()
            c0, t0 = cpu(r), time.perf_counter()
            for _ in range(args.calls):
                ts += 1
                rows = [["BTC/USD", 100.0 + i * 0.01, 1.0, ts] for i in range(n)]
                flat: list = []
                for row in rows:
                    flat += ("BTC/USD", ts, repr(row[1]))
                ingest(keys=[META, SEQ, LASTTS, LOG, EVENTS, f"tf:idem:~{uuid.uuid4().hex}"],
                       args=[secrets.token_hex(8), INTERNAL_KEY_TTL_MS, 0, ts, json.dumps(rows), EVENTS_MAX, "bench", n, *flat])  # fmt: skip
                if args.pace_s:
                    time.sleep(args.pace_s)
            used, wall = cpu(r) - c0, time.perf_counter() - t0
            stat = r.info("commandstats")["cmdstat_evalsha"]
            out[f"batch_{n}"] = {
                "evalsha_us_per_call": stat["usec_per_call"],
                "process_us_per_call": round(used / args.calls * 1e6, 1),
                "process_us_per_call_above_idle": round(max(0.0, used - idle * wall) / args.calls * 1e6, 1),
                "process_us_per_tick": round(used / args.calls / n * 1e6, 2),
            }
        return out
    finally:
        proc.terminate()
        proc.wait(20)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", default="1,10,50,200", type=lambda t: [int(x) for x in t.split(",")])
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--pace-s", type=float, default=0.0, help="sleep between calls (0: back to back)")
    p.add_argument("--appendfsync", default="always", choices=("always", "everysec"))
    print(json.dumps(main(p.parse_args()), indent=1))
