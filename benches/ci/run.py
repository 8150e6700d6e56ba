"""`make bench-ci`: a short, fixed benchmark run whose ratios must stay above their floors.

    python benches/ci/run.py

1. The micro-benchmarks (benches/micro, pytest-benchmark; [micro] of benches/floors.toml picks
   which) -> benches/results/ci/micro.json.
2. A short load run (benches/load/run.py; [load] picks the scenarios, the servers and the
   settings) -> benches/results/ci/load.json and load.md.
3. The checker (benches/ci/check.py): one line per ratio, a closing line, summary.md.

Every step runs even when an earlier one failed, so the output reports everything; the exit
status is non-zero when any step failed or any ratio is below its floor. The previous run's files
are removed first: a step that fails leaves no stale result behind for the checker to pass on.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check import FLOORS, RESULTS, ROOT, load_floors  # noqa: E402
from check import main as check_main  # noqa: E402

PY = sys.executable


def step(title: str, argv: list[str]) -> int:
    print(f"== bench-ci: {title}", flush=True)
    t0 = time.perf_counter()
    code = subprocess.run(argv, cwd=ROOT).returncode
    print(f"== bench-ci: {title}: exit {code} after {time.perf_counter() - t0:.0f} s", flush=True)
    return code


def tidy_micro_json(path: Path) -> None:
    """Drops each benchmark's per-round timings (stats.data): the statistics stay, and the file
    that is committed after each run shrinks tenfold. commit_info.dirty then says whether the
    code differed from the commit, leaving out benches/results/ci/ itself, which every run
    rewrites."""
    if not path.exists():
        return
    run = json.loads(path.read_text())
    for bench in run.get("benchmarks", []):
        bench.get("stats", {}).pop("data", None)
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", f":(exclude){RESULTS.relative_to(ROOT)}"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    if status.returncode == 0 and "commit_info" in run:
        run["commit_info"]["dirty"] = bool(status.stdout.strip())
    path.write_text(json.dumps(run, indent=1) + "\n")


def main() -> int:
    t0 = time.perf_counter()
    floors = load_floors(FLOORS)
    RESULTS.mkdir(parents=True, exist_ok=True)
    for stale in ("micro.json", "load.json", "load.md", "summary.md"):
        (RESULTS / stale).unlink(missing_ok=True)
    micro = floors.get("micro", {})
    failed: list[str] = []
    argv = [PY, "-m", "pytest", "benches/micro", "-q", "-p", "no:cacheprovider", "--benchmark-only",
            "--benchmark-columns=min,median,rounds", "--benchmark-sort=name",
            f"--benchmark-json={RESULTS / 'micro.json'}"]  # fmt: skip
    if micro.get("select"):
        argv += ["-k", micro["select"]]
    if micro.get("timer"):
        argv.append(f"--benchmark-timer={micro['timer']}")
    if micro.get("max_time_s"):
        argv.append(f"--benchmark-max-time={micro['max_time_s']}")
    if step("micro-benchmarks", argv):
        failed.append("micro-benchmarks")
    tidy_micro_json(RESULTS / "micro.json")
    load = floors["load"]
    argv = [PY, "benches/load/run.py", "--servers", ",".join(load["servers"].values()),
            "--scenarios", ",".join(load["scenarios"]), *load.get("args", []),
            "--out", str(RESULTS), "--name", "load", "--no-plot"]  # fmt: skip
    if step("load run", argv):
        failed.append("load run")
    print("== bench-ci: ratios against benches/floors.toml", flush=True)
    ratios = check_main(["--results", str(RESULTS), "--floors", str(FLOORS)])
    for name in failed:
        print(f"benchmarks: the {name} step failed (see above)")
    print(f"== bench-ci: {time.perf_counter() - t0:.0f} s in all; results in {RESULTS.relative_to(ROOT)}/")
    return 1 if failed or ratios else 0


if __name__ == "__main__":
    sys.exit(main())
