"""The load harness (benches/load) against a real `tickfan serve`, once per core, at smoke size.

200 clients on two symbols, half in `tick` mode and half in `auto` (200 ticks/s per symbol, so
auto batches), 5 s of publishing through POST /api/ticks. It proves the harness runs end to end
and that nothing is lost: every subscriber holds a gap-free, duplicate-free seq run and receives
every accepted tick, in both frame kinds. No speed is asserted.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "benches" / "load" / "run.py"


@pytest.mark.e2e
@pytest.mark.parametrize("core", ["rust", "python"])
def test_load_smoke(core: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(RUN), "--servers", f"tickfan-{core}", "--scenarios", "smoke",
         "--duration-s", "5", "--settle-s", "1", "--pause-s", "0", "--no-ceiling", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("TICKFAN_")},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [path] = glob.glob(str(tmp_path / "load-*.json"))
    [row] = json.loads(Path(path).read_text())["results"]
    assert "error" not in row, f"{row['error']}\n{row.get('server_log_tail', '')}"
    assert row["subscribed"] == row["clients"] == 200, row["failures"]
    assert row["publisher"]["failed_posts"] == 0, row["publisher"]["errors"]
    assert row["expected_ticks"] > 0
    assert row["gaps"] == 0 and row["missing_in_gaps"] == 0
    assert row["dups"] == 0 and row["malformed"] == 0
    assert row["tick_frames"] > 0 and row["batch_frames"] > 0, "both frame kinds decoded"
    assert row["delivered_ticks"] == row["expected_ticks"]
    assert row["lat_p50_ms"] is not None
    assert Path(path).with_suffix(".md").exists() and Path(path).with_suffix(".png").exists()


def test_client_accounting_counts_gaps_duplicates_and_both_frame_kinds() -> None:
    """The checks the smoke test relies on can fail: fed frames directly, no sockets."""
    import asyncio
    import time

    sys.path.insert(0, str(ROOT / "benches" / "load"))
    import client  # noqa: PLC0415

    st = client.Stats()
    st.window_ms = 1_000
    loop = asyncio.new_event_loop()
    try:
        c = client.Client(st, "token", b"", loop.create_future())
        now_ms = time.time_ns() // 1_000_000

        def tick(seq: int, ts: int) -> client.MarketData:
            return client.MarketData(symbol="BTC/USD", seq=seq, ts=ts, size=1.5)

        def batch(seq: int, ts: list[int]) -> client.MarketDataBatch:
            return client.MarketDataBatch(
                symbol="BTC/USD", seq=seq, count=len(ts), ts=ts, size=[150_000_000] * len(ts), size_decimals=8
            )

        c._tick(tick(1, 500), st)  # a snapshot from before the window: seq base only
        c._tick(tick(2, now_ms), st)
        c._batch(batch(3, [now_ms, 1, 0]), st)  # seq 3..5
        c._tick(tick(8, now_ms), st)  # 6 and 7 missing
        c._tick(tick(8, now_ms), st)  # duplicate
        c._batch(batch(9, [now_ms, 0]), st)
        st.flush()
    finally:
        loop.close()
    assert (st.gaps, st.missing, st.dups) == (1, 2, 1)
    assert st.ticks == 1 + 3 + 1 + 2  # the snapshot and the duplicate are not counted
    assert st.batch_frames == 2 and st.tick_frames == 2
    assert sum(st.bins) == st.ticks
