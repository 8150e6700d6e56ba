"""The checker of `make bench-ci` (benches/ci/check.py) against benches/floors.toml.

Result files are written here in the shapes pytest-benchmark and benches/load/run.py write, with
every ratio set relative to its floor in the real floors file; the checker runs as a process, as
in CI. Nothing is timed: the floors live only in the benchmark step.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / "benches" / "ci" / "check.py"
FLOORS = ROOT / "benches" / "floors.toml"


def floors() -> dict:
    with open(FLOORS, "rb") as f:
        return tomllib.load(f)


def write_results(path: Path, times_floor: dict[str, float], default: float = 3.0, error: str | None = None) -> None:
    """micro.json and load.json in `path` where ratio NAME measures times_floor[NAME] x its floor."""
    spec = floors()
    servers = spec["load"]["servers"]
    benchmarks: dict[tuple[str, str], float] = {}
    rows: dict[tuple[str, str], dict] = {}
    for ratio in spec["ratio"]:
        value = ratio["floor"] * times_floor.get(ratio["name"], default)
        if ratio["source"] == "micro":
            fast = (ratio["fast"]["group"], ratio["fast"]["impl"])
            benchmarks[fast] = 1e-4
            benchmarks[(ratio["slow"]["group"], ratio["slow"]["impl"])] = 1e-4 * value
        elif all(side["server"] in servers for side in (ratio["slow"], ratio["fast"])):
            metric = ratio["metric"]
            fast_key = (ratio["fast"]["scenario"], servers[ratio["fast"]["server"]])
            slow_key = (ratio["slow"]["scenario"], servers[ratio["slow"]["server"]])
            rows.setdefault(fast_key, {})[metric] = 10.0
            rows.setdefault(slow_key, {})[metric] = 10.0 * value
    micro = {
        "machine_info": {"cpu": {"brand_raw": "test cpu"}, "python_version": "3.11"},
        "commit_info": {"id": "0123456789abcdef", "dirty": False, "branch": "test"},
        "datetime": "2026-12-02T00:00:00",
        "benchmarks": [
            {"group": g, "name": f"test_{g}[{i}]", "params": {"make_core": i}, "stats": {"median": m, "rounds": 5}}
            for (g, i), m in benchmarks.items()
        ],
    }
    load = {
        "started": "20261202T000000Z",
        "machine": {"cpu": "test cpu", "cores": 2, "commit": "0123456", "load_avg_at_start": [1.0, 1.0, 1.0]},
        "results": [
            {"scenario": s, "server": srv, "clients": 50, "gaps": 0, **metrics}
            | ({"error": error} if error and (s, srv) == ("ci-batch", "tickfan-python") else {})
            for (s, srv), metrics in rows.items()
        ],
    }
    (path / "micro.json").write_text(json.dumps(micro))
    (path / "load.json").write_text(json.dumps(load))


def floor_of(name: str) -> float:
    return next(r["floor"] for r in floors()["ratio"] if r["name"] == name)


def run_check(results: Path, floors_path: Path = FLOORS) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECK), "--results", str(results), "--floors", str(floors_path)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip


def test_every_ratio_above_its_floor_passes_and_writes_the_summary(tmp_path: Path) -> None:
    write_results(tmp_path, {})
    proc = run_check(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    armed = [r for r in floors()["ratio"] if "pending" not in r]
    fanout = floor_of("fanout rust/python")
    assert f"benchmarks: fanout rust/python {3 * fanout:.1f}x (floor {fanout:g}x) ok" in lines
    assert lines[-1].startswith(f"benchmarks: {len(armed)} ratios, all above their floors")
    summary = (tmp_path / "summary.md").read_text()
    assert "`0123456789ab`" in summary and "test cpu" in summary and "2026-12-02" in summary
    slow = f"{0.3 * fanout:.2f} ms"  # 3 x the floor over a fast side of 100 µs
    assert f"| fanout rust/python | {slow} | 100.0 µs | {3 * fanout:.1f}x | {fanout:g}x | ok |" in summary


def test_a_ratio_below_its_floor_fails_after_every_line_is_reported(tmp_path: Path) -> None:
    # The Rust core as slow as the twin on fan-out: 1x against its floor.
    fanout, batch = floor_of("fanout rust/python"), floor_of("batch rust/python")
    write_results(tmp_path, {"fanout rust/python": 1 / fanout})
    proc = run_check(tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert f"benchmarks: fanout rust/python 1.0x (floor {fanout:g}x) BELOW FLOOR" in lines
    assert f"benchmarks: batch rust/python {3 * batch:.1f}x (floor {batch:g}x) ok" in lines  # the rest too
    assert len(lines) == len(floors()["ratio"]) + 1
    assert "1 below their floors or not measured: fanout rust/python" in lines[-1]
    assert "**BELOW FLOOR**" in (tmp_path / "summary.md").read_text()


def test_a_ratio_that_could_not_be_measured_fails(tmp_path: Path) -> None:
    write_results(tmp_path, {}, error="TimeoutError: tickfan-python not ready after 60 s")
    proc = run_check(tmp_path)
    assert proc.returncode == 1, proc.stdout
    assert (
        "benchmarks: bytes/tick tick/batch, python twin not measured "
        "(tickfan-python in ci-batch: TimeoutError: tickfan-python not ready after 60 s) FAILED"
    ) in proc.stdout.splitlines()
    (tmp_path / "micro.json").unlink()  # a micro step that wrote nothing
    proc = run_check(tmp_path)
    assert proc.returncode == 1
    assert "benchmarks: candles rust/python not measured (no micro-benchmark results) FAILED" in proc.stdout


def test_a_pending_ratio_is_reported_until_its_server_is_configured_then_armed(tmp_path: Path) -> None:
    # A load ratio whose server role is not in [load.servers] and that carries a `pending` note
    # (as the fast lane's did before its transport existed) is reported, not failed.
    name = "server CPU/frame granian/fast-lane"
    text = FLOORS.read_text()
    unarmed = text.replace('fast_lane = "tickfan-fast"', '# fast_lane = "tickfan-fast"', 1)
    unarmed = unarmed.replace(f'name = "{name}"', f'name = "{name}"\npending = "no such transport here"', 1)
    assert unarmed != text
    pending_floors = tmp_path / "pending.toml"
    pending_floors.write_text(unarmed)
    write_results(tmp_path, {})
    proc = run_check(tmp_path, pending_floors)
    assert proc.returncode == 0, proc.stdout
    assert f"benchmarks: {name} pending (no such transport here)" in proc.stdout.splitlines()
    # Armed (the real floors file): a load run without the fast lane's server fails.
    load = json.loads((tmp_path / "load.json").read_text())
    load["results"] = [r for r in load["results"] if r["server"] != "tickfan-fast"]
    (tmp_path / "load.json").write_text(json.dumps(load))
    proc = run_check(tmp_path)
    assert proc.returncode == 1
    assert (
        f"benchmarks: {name} not measured (tickfan-fast was not run in ci-tick) FAILED"
        in proc.stdout.splitlines()
    )