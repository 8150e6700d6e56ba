"""`make bench-compare`: this checkout's `make bench-ci` results beside the last committed ones.

    python benches/ci/compare.py                  # working tree vs HEAD's benches/results/ci/
    python benches/ci/compare.py --baseline REV   # vs another commit's

When the working tree holds no new run (its files equal HEAD's), the baseline is the previous
commit that changed them, so the command always shows the latest step of the trend. Prints
pytest-benchmark's own compare of the two micro runs, then the ratios, the medians and the load
figures side by side, with the change. Reads only; never fails on a regression (the floors of
`make bench-ci` do that).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check import FLOORS, RESULTS, ROOT, check, fmt_time, load_floors, load_rows, micro_medians  # noqa: E402

FILES = ("micro.json", "load.json")
LOAD_METRICS = (("bytes_per_tick", "bytes/tick", ".1f"), ("server_cpu_us_per_frame", "server CPU µs/frame", ".1f"))


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout


def committed(rev: str, name: str) -> dict | None:
    rel = (RESULTS / name).relative_to(ROOT).as_posix()
    try:
        return json.loads(git("show", f"{rev}:{rel}"))
    except subprocess.CalledProcessError:
        return None


def pick_baseline(current: dict[str, dict | None]) -> str:
    """HEAD, or the commit before HEAD's results when the working tree holds no new run."""
    if all(committed("HEAD", n) == current[n] for n in FILES):
        rel = [(RESULTS / n).relative_to(ROOT).as_posix() for n in FILES]
        revs = git("log", "-n", "2", "--format=%H", "HEAD", "--", *rel).split()
        if len(revs) == 2:
            return revs[1]
    return "HEAD"


def change(then: float | None, now: float | None) -> str:
    if not then or not now:
        return "-"
    return f"{(now / then - 1) * 100:+.0f}%"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline", help="a commit (default: HEAD, or the one before when nothing new was run)")
    args = p.parse_args(argv)
    current = {n: (json.loads((RESULTS / n).read_text()) if (RESULTS / n).exists() else None) for n in FILES}
    if current["micro.json"] is None and current["load.json"] is None:
        print("no results in benches/results/ci/: run `make bench-ci` first")
        return 1
    rev = args.baseline or pick_baseline(current)
    base = {n: committed(rev, n) for n in FILES}
    short = git("rev-parse", "--short", rev).strip()
    print(f"baseline: benches/results/ci/ at {short} ({(base['micro.json'] or {}).get('datetime', '?')})")
    print(f"current:  benches/results/ci/ in the working tree ({(current['micro.json'] or {}).get('datetime', '?')})")
    if base["micro.json"] is None and base["load.json"] is None:
        print(f"nothing committed under benches/results/ci/ at {short}")
        return 1

    if base["micro.json"] and current["micro.json"]:
        with tempfile.TemporaryDirectory() as tmp:
            paths = []
            for label, data in ((f"0001_{short}", base), ("0002_now", current)):
                path = Path(tmp) / f"{label}.json"
                path.write_text(json.dumps(data["micro.json"]))
                paths.append(str(path))
            print(f"\npytest-benchmark compare: (0001_{short}) is the baseline, (0002_now) the current run")
            exe = Path(sys.executable).with_name("pytest-benchmark")
            subprocess.run([str(exe), "compare", "--group-by=group", "--sort=name", "--columns=min,median,iqr,rounds",
                            *paths], cwd=ROOT)  # fmt: skip

    floors = load_floors(FLOORS)
    then = {o.name: o for o in check(floors, base["micro.json"], base["load.json"])}
    now = {o.name: o for o in check(floors, current["micro.json"], current["load.json"])}
    print("\nRatios (slow / fast; the floor fails `make bench-ci`):\n")
    print(f"{'ratio':<40} {'baseline':>9} {'current':>9} {'change':>7} {'floor':>6}")
    for name, o in now.items():
        b = then.get(name)
        fmt = lambda x: "pending" if x is not None and x.pending else (f"{x.value:.1f}x" if x and x.value else "-")  # noqa: E731
        print(f"{name:<40} {fmt(b):>9} {fmt(o):>9} {change(b and b.value, o.value):>7} {o.floor:>5g}x")

    m0, m1 = micro_medians(base["micro.json"]), micro_medians(current["micro.json"])
    if m0 or m1:
        print("\nMicro-benchmark medians:\n")
        print(f"{'group / implementation':<28} {'baseline':>10} {'current':>10} {'change':>7}")
        for key in sorted(set(m0) | set(m1)):
            a, b = m0.get(key), m1.get(key)
            print(f"{key[0] + ' / ' + key[1]:<28} {fmt_time(a) if a else '-':>10} {fmt_time(b) if b else '-':>10} {change(a, b):>7}")

    r0, r1 = load_rows(base["load.json"]), load_rows(current["load.json"])
    if r0 or r1:
        print("\nLoad run:\n")
        print(f"{'scenario / server':<28} {'metric':<20} {'baseline':>10} {'current':>10} {'change':>7}")
        for key in sorted(set(r0) | set(r1)):
            for metric, label, fmt in LOAD_METRICS:
                a, b = (r0.get(key) or {}).get(metric), (r1.get(key) or {}).get(metric)
                cells = [format(a, fmt) if a else "-", format(b, fmt) if b else "-"]
                print(f"{key[0] + ' / ' + key[1]:<28} {label:<20} {cells[0]:>10} {cells[1]:>10} {change(a, b):>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
