"""Markdown tables of a pytest-benchmark JSON run: one table per group, rust as the yardstick.

Usage: ``python benches/micro/table.py benches/results/micro.json`` prints the tables and writes
them beside the JSON (``micro.md``).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ORDER = ["rust", "python", "naive"]


def implementation(bench: dict) -> str:
    params = bench.get("params") or {}
    if "make_core" in params:
        return str(params["make_core"])
    match = re.search(r"\[(\w+)\]", bench["name"])
    return match.group(1) if match else bench["name"]


def fmt_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


def tables(data: dict) -> str:
    groups: dict[str, dict[str, float]] = {}
    rounds: dict[str, dict[str, int]] = {}
    for bench in data["benchmarks"]:
        group = bench.get("group") or bench["name"]
        impl = implementation(bench)
        groups.setdefault(group, {})[impl] = bench["stats"]["median"]
        rounds.setdefault(group, {})[impl] = bench["stats"]["rounds"]
    machine = data.get("machine_info", {})
    lines = [
        "# Micro-benchmarks: median per operation",
        "",
        f"Python {machine.get('python_version', '?')} on {machine.get('cpu', {}).get('brand_raw', '?')}"
        f" ({data.get('datetime', '?')}). Produced by `make bench` "
        "(`benches/micro/table.py benches/results/micro.json`).",
        "",
    ]
    for group in sorted(groups):
        medians = groups[group]
        rust = medians.get("rust")
        lines += [f"## {group}", "", "| implementation | median | rounds | x rust |", "|---|---:|---:|---:|"]
        for impl in sorted(medians, key=lambda i: (ORDER.index(i) if i in ORDER else 9, i)):
            ratio = f"{medians[impl] / rust:.1f}" if rust else "-"
            lines.append(f"| {impl} | {fmt_time(medians[impl])} | {rounds[group][impl]} | {ratio} |")
        if rust:
            parts = [
                f"{impl}/rust = {medians[impl] / rust:.1f}x"
                for impl in ("python", "naive")
                if impl in medians
            ]
            lines += ["", "Ratios: " + ", ".join(parts) + "."]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    path = Path(argv[1] if len(argv) > 1 else "benches/results/micro.json")
    text = tables(json.loads(path.read_text()))
    print(text)
    path.with_suffix(".md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
