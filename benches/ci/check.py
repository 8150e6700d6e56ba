"""The ratio floors of `make bench-ci`: one run's result files against benches/floors.toml.

    python benches/ci/check.py                      # benches/results/ci/{micro,load}.json
    python benches/ci/check.py --results DIR --floors FILE --no-write

Prints one line per ratio (``benchmarks: fanout rust/python 16.3x (floor 4x) ok``) and one
closing line, writes ``summary.md`` beside the results (commit, machine, date, the ratios, the
medians and the load figures), and exits 1 when any ratio is below its floor or could not be
measured, 0 otherwise. Every line is printed before the exit status is decided. A ratio whose
server role is not configured yet (its floor carries a ``pending`` note) is reported as pending
and neither passes nor fails.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benches" / "micro"))
from table import fmt_time  # noqa: E402  (one formatter for every micro table)
RESULTS = ROOT / "benches" / "results" / "ci"
FLOORS = ROOT / "benches" / "floors.toml"


@dataclass(frozen=True)
class Outcome:
    """One ratio of one run: its value, or why there is none."""

    name: str
    floor: float
    value: float | None = None  # slow / fast
    slow: float | None = None
    fast: float | None = None
    unit: str = ""
    missing: str | None = None  # why it could not be measured: a failure
    pending: str | None = None  # not armed yet: neither a pass nor a failure

    @property
    def ok(self) -> bool:
        return self.pending is not None or (self.value is not None and self.value >= self.floor)

    def line(self) -> str:
        if self.pending is not None:
            return f"benchmarks: {self.name} pending ({self.pending})"
        if self.value is None:
            return f"benchmarks: {self.name} not measured ({self.missing}) FAILED"
        verdict = "ok" if self.ok else "BELOW FLOOR"
        return f"benchmarks: {self.name} {self.value:.1f}x (floor {self.floor:g}x) {verdict}"


def load_floors(path: Path = FLOORS) -> dict:
    with open(path, "rb") as f:
        return tomllib.load(f)


def micro_medians(micro: dict | None, stat: str = "median") -> dict[tuple[str, str], float]:
    """{(group, implementation): seconds} of a pytest-benchmark JSON: one statistic (the median)."""
    out: dict[tuple[str, str], float] = {}
    for bench in (micro or {}).get("benchmarks", []):
        impl = (bench.get("params") or {}).get("make_core") or bench.get("param") or bench["name"]
        out[(bench.get("group") or bench["name"], str(impl))] = bench["stats"][stat]
    return out


def load_rows(load: dict | None) -> dict[tuple[str, str], dict]:
    """{(scenario, server): result row} of a load run's JSON."""
    return {(r["scenario"], r["server"]): r for r in (load or {}).get("results", [])}


def measure(ratio: dict, floors: dict, micro: dict | None, load: dict | None) -> Outcome:
    name, floor = ratio["name"], float(ratio["floor"])
    sides: list[float] = []
    if ratio["source"] == "micro":
        medians = micro_medians(micro, ratio.get("metric", "median"))
        if micro is None:
            return Outcome(name, floor, missing="no micro-benchmark results")
        for side in (ratio["slow"], ratio["fast"]):
            key = (side["group"], side["impl"])
            if key not in medians:
                return Outcome(name, floor, missing=f"no {side['impl']} result in group {side['group']}")
            sides.append(medians[key])
        unit = "s"
    elif ratio["source"] == "load":
        servers = floors.get("load", {}).get("servers", {})
        roles = [ratio["slow"]["server"], ratio["fast"]["server"]]
        absent = [r for r in roles if r not in servers]
        if absent:
            if "pending" in ratio:
                return Outcome(name, floor, pending=ratio["pending"])
            return Outcome(name, floor, missing=f"server role {absent[0]} not in [load.servers]")
        if load is None:
            return Outcome(name, floor, missing="no load results")
        rows = load_rows(load)
        metric = ratio["metric"]
        picked = [(side["scenario"], servers[side["server"]]) for side in (ratio["slow"], ratio["fast"])]
        for scenario, server in picked:
            row = rows.get((scenario, server))
            if row is None:
                return Outcome(name, floor, missing=f"{server} was not run in {scenario}")
            if row.get("error"):
                error = " ".join(row["error"].split())  # one line, whatever the server logged
                return Outcome(name, floor, missing=f"{server} in {scenario}: {error[:200]}")
        for scenario, server in picked:
            value = rows[(scenario, server)].get(metric)
            if not value:
                return Outcome(name, floor, missing=f"no {metric} for {server} in {scenario}")
            sides.append(value)
        unit = metric
    else:
        return Outcome(name, floor, missing=f"unknown source {ratio['source']!r}")
    slow, fast = sides
    return Outcome(name, floor, value=slow / fast, slow=slow, fast=fast, unit=unit)


def check(floors: dict, micro: dict | None, load: dict | None) -> list[Outcome]:
    return [measure(r, floors, micro, load) for r in floors["ratio"]]


def closing_line(outcomes: list[Outcome]) -> str:
    armed = [o for o in outcomes if o.pending is None]
    failed = [o.name for o in armed if not o.ok]
    pending = [o.name for o in outcomes if o.pending is not None]
    head = f"benchmarks: {len(armed)} ratios, "
    head += "all above their floors" if not failed else f"{len(failed)} below their floors or not measured: {', '.join(failed)}"
    return head + (f"; {len(pending)} pending: {', '.join(pending)}" if pending else "")


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def summary_markdown(floors: dict, outcomes: list[Outcome], micro: dict | None, load: dict | None) -> str:
    """The run's table: provenance, the ratios against their floors, the medians, the load rows."""
    commit = (micro or {}).get("commit_info", {})
    m_info = (micro or {}).get("machine_info", {})
    l_machine = (load or {}).get("machine", {})
    when = (micro or {}).get("datetime") or (load or {}).get("started") or dt.datetime.now(dt.timezone.utc).isoformat()
    load_avg = l_machine.get("load_avg_at_start")
    timer = next((b.get("options", {}).get("timer") for b in (micro or {}).get("benchmarks", [])), None) or "?"
    lines = [
        "# Benchmarks in CI (`make bench-ci`)",
        "",
        f"- commit: `{commit.get('id', l_machine.get('commit', '?'))[:12]}`"
        + (" (uncommitted changes)" if commit.get("dirty") else "")
        + (f" on {commit['branch']}" if commit.get("branch") else ""),
        f"- machine: {m_info.get('cpu', {}).get('brand_raw') or l_machine.get('cpu', '?')}, "
        f"{l_machine.get('cores', m_info.get('cpu', {}).get('count', '?'))} cores, "
        f"Python {m_info.get('python_version') or l_machine.get('python', '?')}, {m_info.get('node', '')}".rstrip(", "),
        f"- date: {when}" + (f"; load average at the load run's start {', '.join(f'{x:.2f}' for x in load_avg)}" if load_avg else ""),
        f"- micro-benchmarks timed with `{timer}`",
        "",
        "## Ratios against their floors",
        "",
        "| ratio | slow side | fast side | ratio | floor | status |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for o in outcomes:
        if o.value is None:
            status = f"pending: {o.pending}" if o.pending is not None else f"**not measured**: {o.missing}"
            lines.append(f"| {o.name} | | | | {o.floor:g}x | {status} |")
            continue
        side = fmt_time if o.unit == "s" else (lambda v: f"{v:,.2f}")
        lines.append(
            f"| {o.name} | {side(o.slow)} | {side(o.fast)} | {o.value:.1f}x | {o.floor:g}x | {'ok' if o.ok else '**BELOW FLOOR**'} |"
        )
    closing = closing_line(outcomes).removeprefix("benchmarks: ")
    lines += ["", closing[0].upper() + closing[1:] + ".", ""]
    medians = micro_medians(micro)
    if medians:
        impls = sorted({i for _, i in medians}, key=lambda i: ({"rust": 0, "python": 1}.get(i, 2), i))
        lines += [
            "## Micro-benchmark medians",
            "",
            "| group | " + " | ".join(impls) + " | python/rust |",
            "| --- | " + " | ".join("---:" for _ in impls) + " | ---: |",
        ]
        for group in sorted({g for g, _ in medians}):
            cells = [fmt_time(medians[(group, i)]) if (group, i) in medians else "-" for i in impls]
            r, p = medians.get((group, "rust")), medians.get((group, "python"))
            ratio = f"{p / r:.1f}x" if r and p else "-"
            lines.append(f"| {group} | {' | '.join(cells)} | {ratio} |")
        lines.append("")
    rows = load_rows(load)
    if rows:
        lines += [
            "## Load run",
            "",
            "| scenario | server | clients | delivered ticks | delivered | gaps | frames | bytes/tick | server CPU µs/frame | server CPU µs/tick | p50 ms | p99 ms |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for (scenario, server), r in rows.items():
            if r.get("error"):
                lines.append(f"| {scenario} | {server} | {r['clients']} | error: {r['error'][:120]} | | | | | | | | |")
                continue

            def f(key: str, fmt: str, row: dict = r) -> str:
                v = row.get(key)
                return "-" if v is None else format(v, fmt)

            lines.append(
                f"| {scenario} | {server} | {r['clients']} | {f('delivered_ticks', ',')} | {f('delivered_pct', '.2f')}% "
                f"| {r['gaps']} | {f('frames', ',')} | {f('bytes_per_tick', '.1f')} | {f('server_cpu_us_per_frame', '.1f')} "
                f"| {f('server_cpu_us_per_tick', '.2f')} | {f('lat_p50_ms', '.2f')} | {f('lat_p99_ms', '.2f')} |"
            )
        lines.append("")
    lines += [
        "Produced by `make bench-ci` (benches/ci/run.py); floors and their reasons in `benches/floors.toml`;",
        "`make bench-compare` sets this run beside the last committed one.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", type=Path, default=RESULTS, help="the directory holding micro.json and load.json")
    p.add_argument("--floors", type=Path, default=FLOORS)
    p.add_argument("--write", action=argparse.BooleanOptionalAction, default=True, help="write summary.md in --results")
    args = p.parse_args(argv)
    floors = load_floors(args.floors)
    micro, load = read_json(args.results / "micro.json"), read_json(args.results / "load.json")
    outcomes = check(floors, micro, load)
    for o in outcomes:
        print(o.line())
    print(closing_line(outcomes), flush=True)
    if args.write:
        (args.results / "summary.md").write_text(summary_markdown(floors, outcomes, micro, load))
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
