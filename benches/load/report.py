"""Markdown table and PNG plot of one load run (the JSON that run.py writes).

    python benches/load/report.py benches/results/load-<stamp>.json   # re-render an old run
"""

from __future__ import annotations

import json
import os
import sys

TARGETS = """\
| scenario | target (tickfan, Rust core) |
| --- | --- |
| S1 | >= 990,000 ticks/s delivered, 0 gaps, p99 <= 80 ms, server CPU <= 0.5 us per delivered tick, >= 3x the ticks/s of the fastest per-frame peer |
| S2 | >= 99% of offered ticks delivered, p99 <= 50 ms; Rust >= 2x the Python twin's ticks/s or <= half its CPU per tick |
| S3 | all 10,000 subscribed in <= 5 s, no failures; <= 20 KiB server RSS per idle connection |
| S4 | p50 <= 1 ms, p99 <= 3 ms |

The fast lane (issue 10; `tickfan-fast`, against the Rust reference peer `rust-ref` in the same run):

| scenario | target (tickfan fast lane) |
| --- | --- |
| S1 | >= 990,000 ticks/s delivered, 0 gaps, p99 <= 80 ms |
| S2 | >= 99% delivered, p99 <= 50 ms; server CPU per frame <= 1.3x the reference's and <= 0.5x the Granian transport's (Rust core) |
| S3 | 10,000 connected, authenticated and subscribed in <= 1.2x the time the fastest peer needs just to connect them (S3c) |
| S4 | p50 and p99 <= 1.5x the reference's |
| idle | <= 24 KiB server RSS per connection at 10,000 connections (S3) |
| burst | where frames of one connection queue up (S5: 20 frames per connection per POST; S1: batches), CPU per frame falls toward the reference's burst figure |
"""

PEERS = ("naive", "picows", "rust-ref", "rust-ref-fws")


def _f(v, fmt: str = ",.0f", none: str = "-") -> str:
    return none if v is None else format(v, fmt)


def rows_by(run: dict) -> dict[tuple[str, str], dict]:
    return {(r["scenario"], r["server"]): r for r in run["results"]}


def target_checks(run: dict) -> list[str]:
    """One line per target that this run measured: met, missed, or not measured."""
    by = rows_by(run)
    out: list[str] = []

    def mark(ok: bool | None) -> str:
        return "n/a" if ok is None else ("met" if ok else "MISSED")

    for core in ("tickfan-rust", "tickfan-python"):
        s1 = by.get(("S1", core))
        if s1 and "ticks_per_s" in s1:
            peers = [by[("S1", p)]["ticks_per_s"] for p in ("naive", "picows") if "ticks_per_s" in by.get(("S1", p), {})]
            best = max(peers) if peers else None
            out.append(
                f"- S1 {core}: {_f(s1['ticks_per_s'])} ticks/s ({mark(s1['ticks_per_s'] >= 990_000)}), "
                f"gaps {s1['gaps']} ({mark(s1['gaps'] == 0)}), p99 {s1['lat_p99_ms']} ms "
                f"({mark(s1['lat_p99_ms'] is not None and s1['lat_p99_ms'] <= 80)}), "
                f"{_f(s1['server_cpu_us_per_tick'], '.3f')} us/tick "
                f"({mark(s1['server_cpu_us_per_tick'] is not None and s1['server_cpu_us_per_tick'] <= 0.5)}), "
                f"{_f(s1['ticks_per_s'] / best if best else None, '.1f')}x the fastest per-frame peer "
                f"({mark(s1['ticks_per_s'] >= 3 * best if best else None)})"
            )
        s2 = by.get(("S2", core))
        if s2 and "ticks_per_s" in s2:
            pct = s2.get("delivered_of_asked_pct", s2["delivered_pct"])
            out.append(
                f"- S2 {core}: {_f(pct, '.2f')}% of the asked ticks delivered ({_f(s2['delivered_pct'], '.2f')}% of "
                f"those it ingested) ({mark(pct is not None and pct >= 99)}), p99 {s2['lat_p99_ms']} ms "
                f"({mark(s2['lat_p99_ms'] is not None and s2['lat_p99_ms'] <= 50)})"
            )
        s3 = by.get(("S3", core))
        if s3 and "subscribed" in s3:
            per = s3.get("rss_per_conn_bytes")
            t = s3.get("all_subscribed_s")
            out.append(
                f"- S3 {core}: {s3['subscribed']}/{s3['clients']} subscribed in {_f(t, '.2f')} s "
                f"({mark(t is not None and t <= 5 and s3['failed'] == 0)}), failures {s3['failed']}; "
                f"idle RSS {_f(per / 1024 if per is not None else None, '.1f')} KiB/conn "
                f"({mark(per is not None and per <= 20 * 1024)})"
            )
        s4 = by.get(("S4", core))
        if s4 and "ticks_per_s" in s4:
            out.append(
                f"- S4 {core}: p50 {s4['lat_p50_ms']} ms ({mark(s4['lat_p50_ms'] is not None and s4['lat_p50_ms'] <= 1)}), "
                f"p99 {s4['lat_p99_ms']} ms ({mark(s4['lat_p99_ms'] is not None and s4['lat_p99_ms'] <= 3)})"
            )
    out += fast_lane_checks(by, mark)
    r2, p2 = by.get(("S2", "tickfan-rust")), by.get(("S2", "tickfan-python"))
    if r2 and p2 and "ticks_per_s" in r2 and "ticks_per_s" in p2:
        ratio = r2["ticks_per_s"] / p2["ticks_per_s"] if p2["ticks_per_s"] else None
        cpu = (
            p2["server_cpu_us_per_tick"] / r2["server_cpu_us_per_tick"]
            if r2.get("server_cpu_us_per_tick") and p2.get("server_cpu_us_per_tick")
            else None
        )
        ok = None if ratio is None and cpu is None else ((ratio or 0) >= 2 or (cpu or 0) >= 2)
        out.append(
            f"- S2 Rust vs Python twin: {_f(ratio, '.2f')}x the ticks/s, {_f(cpu, '.2f')}x less CPU per tick ({mark(ok)}); "
            "at S2's offer both should deliver everything, so the CPU ratio is the meaningful one"
        )
    return out


def _ok(r: dict | None, key: str = "ticks_per_s") -> bool:
    return bool(r) and not r.get("error") and r.get(key) is not None


def fast_lane_checks(by: dict, mark) -> list[str]:
    """Issue 10's targets: the fast lane against the Rust reference peer and the Granian transport."""
    out: list[str] = []
    fast = "tickfan-fast"

    def ratio(a, b):
        return a / b if a is not None and b else None

    s1 = by.get(("S1", fast))
    if _ok(s1):
        out.append(
            f"- S1 fast lane: {_f(s1['ticks_per_s'])} ticks/s ({mark(s1['ticks_per_s'] >= 990_000)}), gaps {s1['gaps']} "
            f"({mark(s1['gaps'] == 0)}), p99 {s1['lat_p99_ms']} ms ({mark(s1['lat_p99_ms'] is not None and s1['lat_p99_ms'] <= 80)})"
        )
    s2, ref2, gr2 = by.get(("S2", fast)), by.get(("S2", "rust-ref")), by.get(("S2", "tickfan-rust"))
    if _ok(s2):
        pct = s2.get("delivered_of_asked_pct", s2["delivered_pct"])
        us = s2.get("server_cpu_us_per_frame")
        vs_ref = ratio(us, ref2.get("server_cpu_us_per_frame")) if _ok(ref2) else None
        vs_gr = ratio(us, gr2.get("server_cpu_us_per_frame")) if _ok(gr2) else None
        out.append(
            f"- S2 fast lane: {_f(pct, '.2f')}% delivered ({mark(pct is not None and pct >= 99)}), p99 {s2['lat_p99_ms']} ms "
            f"({mark(s2['lat_p99_ms'] is not None and s2['lat_p99_ms'] <= 50)}); {_f(us, '.2f')} us/frame = "
            f"{_f(vs_ref, '.2f')}x the reference's ({mark(None if vs_ref is None else vs_ref <= 1.3)}) and "
            f"{_f(vs_gr, '.2f')}x the Granian transport's ({mark(None if vs_gr is None else vs_gr <= 0.5)})"
        )
    s4, ref4 = by.get(("S4", fast)), by.get(("S4", "rust-ref"))
    if _ok(s4) and _ok(ref4):
        p50, p99 = ratio(s4["lat_p50_ms"], ref4["lat_p50_ms"]), ratio(s4["lat_p99_ms"], ref4["lat_p99_ms"])
        out.append(
            f"- S4 fast lane: p50 {s4['lat_p50_ms']} ms = {_f(p50, '.2f')}x the reference's {ref4['lat_p50_ms']} ms "
            f"({mark(None if p50 is None else p50 <= 1.5)}), p99 {s4['lat_p99_ms']} ms = {_f(p99, '.2f')}x its "
            f"{ref4['lat_p99_ms']} ms ({mark(None if p99 is None else p99 <= 1.5)})"
        )
    s3 = by.get(("S3", fast))
    if _ok(s3, "all_subscribed_s"):
        conn = [(by[("S3c", p)]["all_subscribed_s"], p) for p in PEERS if _ok(by.get(("S3c", p)), "all_subscribed_s")]
        best = min(conn) if conn else None
        r = ratio(s3["all_subscribed_s"], best[0]) if best else None
        out.append(
            f"- S3 fast lane: {s3['subscribed']:,}/{s3['clients']:,} subscribed in {_f(s3['all_subscribed_s'], '.2f')} s, "
            f"failures {s3['failed']}; the fastest peer connects them (upgrade only, S3c) in "
            f"{_f(best[0] if best else None, '.2f')} s ({best[1] if best else '-'}): {_f(r, '.2f')}x "
            f"({mark(None if r is None else r <= 1.2 and s3['failed'] == 0)})"
        )
        per = s3.get("rss_per_conn_bytes")
        out.append(
            f"- idle fast lane: {_f(per / 1024 if per is not None else None, '.1f')} KiB server RSS per connection at "
            f"{s3['subscribed']:,} connections ({mark(None if per is None else per <= 24 * 1024 and s3['subscribed'] >= 10_000)}"
            f"{'' if s3['subscribed'] >= 10_000 else '; fewer than 10,000 connections: not the target load'})"
        )
    s5, ref5 = by.get(("S5", fast)), by.get(("S5", "rust-ref"))
    if _ok(s5) and _ok(ref2) and _ok(s2):
        bits = [f"S2 (one frame per write) {_f(s2.get('server_cpu_us_per_frame'), '.2f')} us/frame"]
        bits.append(f"S5 (20-frame bursts) {_f(s5.get('server_cpu_us_per_frame'), '.2f')} us/frame")
        if _ok(ref5):
            bits.append(f"the reference's S5 {_f(ref5.get('server_cpu_us_per_frame'), '.2f')} us/frame "
                        f"({_f(ratio(s5.get('server_cpu_us_per_frame'), ref5.get('server_cpu_us_per_frame')), '.2f')}x)")
        if _ok(s1):
            bits.append(f"S1 (batches) {_f(s1.get('server_cpu_us_per_tick'), '.3f')} us/tick")
        out.append("- burst fast lane: " + ", ".join(bits))
    return out


def cost_table(run: dict) -> list[str]:
    """Server CPU per frame by how frames of one connection queue up: the burst figure."""
    by = rows_by(run)
    servers = list(dict.fromkeys(r["server"] for r in run["results"]))
    cols = [("S2", "every frame its own write"), ("S4", "2 frames per POST"), ("S5", "20-frame bursts"),
            ("S1", "batches (us/tick)")]  # fmt: skip
    if not any(_ok(by.get((c, s))) for c, _ in cols for s in servers):
        return []
    lines = ["", "## Server CPU per frame, by how frames of one connection queue up", "",
             "| server | " + " | ".join(f"{c}: {t}" for c, t in cols) + " |",
             "| --- |" + " ---: |" * len(cols)]  # fmt: skip
    for srv in servers:
        cells = []
        for c, _ in cols:
            r = by.get((c, srv))
            key = "server_cpu_us_per_tick" if c == "S1" else "server_cpu_us_per_frame"
            cells.append(_f(r.get(key), ".2f") if _ok(r) else "-")
        label = next(r["server_label"] for r in run["results"] if r["server"] == srv)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def thread_table(run: dict) -> list[str]:
    """Where the server's CPU went, per thread name (busiest first), for the publishing runs."""
    rows = [r for r in run["results"] if r.get("server_threads_cpu_s") and r.get("server_cpu_s")]
    if not rows:
        return []
    lines = ["", "## Server CPU by thread (share of the server's CPU in the window)", "",
             "| scen. | server | threads |", "| --- | --- | --- |"]  # fmt: skip
    for r in rows:
        total = sum(r["server_threads_cpu_s"].values()) or 1.0
        top = sorted(r["server_threads_cpu_s"].items(), key=lambda kv: -kv[1])[:5]
        lines.append(f"| {r['scenario']} | {r['server_label']} | "
                     + ", ".join(f"`{k}` {100 * v / total:.0f}%" for k, v in top) + " |")  # fmt: skip
    return lines


def markdown(run: dict) -> str:
    m = run["machine"]
    lines = [
        f"# Load benchmark, {run['started']}",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['mem_gib']} GiB, Linux {m['kernel']}, Python {m['python']}, "
        f"commit {m['commit']}; load average at start {', '.join(f'{x:.2f}' for x in m['load_avg_at_start'])}.",
        f"Command: `{run['command']}`",
        f"Publishing {run['settings']['duration_s']:g} s per run, drain {run['settings']['drain_s']:g} s, "
        f"client processes per run: {run['settings']['client_procs']}, scale {run['settings']['scale']:g}.",
        "Server, client and publisher share the same cores: see README.md for what each number means.",
        "",
    ]
    if run.get("note"):
        lines[-1:-1] = [f"Note: {run['note']}"]
    ceiling = run.get("ceiling")
    if ceiling:
        lines += ["## Client ceiling (one client.py process vs a firehose)", "",
                  "| frames | frames/s | ticks/s | client CPU | frames per CPU-s | ticks per CPU-s |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
        for c in ceiling.values():
            lines.append(
                f"| {c['frame_kind']} | {_f(c['frames_per_s'])} | {_f(c['ticks_per_s'])} | {_f(c['client_cpu_pct'])}% "
                f"| {_f(c.get('frames_per_cpu_s'))} | {_f(c.get('ticks_per_cpu_s'))} |"
            )
        lines.append("")
    lines += [
        "## Throughput and latency",
        "",
        "| scen. | server | clients | ingest ticks/s (asked) | offered deliv./s | delivered ticks/s | delivered (of asked) | gaps "
        "| p50 ms | p99 ms | max ms | server's own p99 ms | frames/s | MB/s | server CPU | server us/tick | server us/frame | client CPU |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in run["results"]:
        if r.get("error"):
            lines.append(f"| {r['scenario']} | {r['server_label']} | {r['clients']} | error: {r['error'][:120]} "
                         "| | | | | | | | | | | | | | |")  # fmt: skip
            continue
        if "ticks_per_s" not in r:
            continue
        cb = " (client-bound)" if r["client_bound"] else ""
        if r.get("machine_saturated"):
            cb += f" (machine {r['machine_cpu_pct']:.0f}% busy)"
        lines.append(
            f"| {r['scenario']} | {r['server_label']} | {r['clients']:,} | {_f(r['rate_accepted'])} ({_f(r['rate_offered'])}) "
            f"| {_f(r['offered_deliveries_per_s'])} "
            f"| {_f(r['ticks_per_s'])} | {_f(r['delivered_pct'], '.2f')}% ({_f(r.get('delivered_of_asked_pct'), '.1f')}%) "
            f"| {r['gaps']} "
            f"| {_f(r['lat_p50_ms'], '.2f')} | {_f(r['lat_p99_ms'], '.2f')} | {_f(r['lat_max_ms'], '.1f')} "
            f"| {_f((r.get('server_metrics') or {}).get('fanout_p99_ms_le'), 'g', '-')} "
            f"| {_f(r['frames_per_s'])} | {_f(r['bytes_per_s'] / 1e6, '.1f')} | {_f(r['server_cpu_pct'])}% "
            f"| {_f(r['server_cpu_us_per_tick'], '.3f')} | {_f(r.get('server_cpu_us_per_frame'), '.2f')} "
            f"| {_f(max(r['client_cpu_pct_per_proc']))}%{cb} |"
        )
    storm = [r for r in run["results"] if "rss_per_conn_bytes" in r or (r["scenario"] in ("S3", "S3c") and r.get("error"))]
    if storm:
        lines += ["", "## Connect storm and idle memory (S3; S3c: upgrade only, no auth, no subscribe)", "",
                  "| scen. | server | clients | subscribed | failed | all subscribed after | server CPU for the storm | client CPU | RSS before | RSS idle | RSS per idle conn |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
        for r in storm:
            if r.get("error"):
                lines.append(f"| {r['scenario']} | {r['server_label']} | {r['clients']:,} | error: {r['error'][:120]} | | | | | | | |")
                continue
            lines.append(
                f"| {r['scenario']} | {r['server_label']} | {r['clients']:,} | {r['subscribed']:,} | {r['failed']} "
                f"| {_f(r['all_subscribed_s'], '.2f')} s | {_f(r['connect_server_cpu_s'], '.2f')} s "
                f"| {_f(max((c or 0) for c in r['connect_client_cpu_pct']) if r.get('connect_client_cpu_pct') else None)}% "
                f"| {_f(r['rss_before_bytes'] / 2**20, '.1f')} MiB | {_f(r['rss_idle_bytes'] / 2**20, '.1f')} MiB "
                f"| {_f(r['rss_per_conn_bytes'] / 1024 if r['rss_per_conn_bytes'] is not None else None, '.1f')} KiB |"
            )
    lines += cost_table(run)
    lines += thread_table(run)
    notes = sorted({(r["server_label"], r["server_notes"]) for r in run["results"]})
    lines += ["", "## Servers", ""] + [f"- {label}: {note}" for label, note in notes]
    checks = target_checks(run)
    if checks:
        lines += ["", "## Against the targets", "", *checks]
    if run.get("findings"):  # written after the run, by hand, into the JSON: what limits each target
        lines += ["", "## Findings", "", run["findings"].rstrip()]
    lines += ["", "Targets:", "", TARGETS]
    extra = []
    for r in run["results"]:
        bits = []
        if r.get("failures"):
            bits.append(f"connect failures {r['failures']}")
        if r.get("errors"):
            bits.append(f"error messages {r['errors']}")
        if r.get("close_codes"):
            bits.append(f"close codes {r['close_codes']}")
        if r.get("dropped_connections"):
            bits.append(f"{r['dropped_connections']} connections dropped while live")
        if r.get("degraded") or r.get("gap_notices"):
            bits.append(f"{r.get('degraded')} `degraded` and {r.get('gap_notices')} `gap` notices (slow sockets conflated)")
        if r.get("dups") or r.get("malformed"):
            bits.append(f"dups {r.get('dups')}, malformed {r.get('malformed')}")
        pub = r.get("publisher") or {}
        if pub.get("failed_posts"):
            bits.append(f"publisher: {pub['failed_posts']} failed POSTs {pub.get('errors')}")
        if bits:
            extra.append(f"- {r['scenario']} {r['server_label']}: " + "; ".join(bits))
    if extra:
        lines += ["## Anomalies", "", *extra, ""]
    return "\n".join(lines) + "\n"


def plot(run: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in run["results"] if "ticks_per_s" in r]
    scenarios = sorted({r["scenario"] for r in rows})
    servers = list(dict.fromkeys(r["server"] for r in rows))
    labels = {r["server"]: r["server_label"] for r in rows}
    storm = [r for r in run["results"] if r.get("rss_per_conn_bytes") is not None and r["scenario"] == "S3"]
    fig, axes = plt.subplots(1, 3 if storm else 2, figsize=(17 if storm else 12, 4.5))
    width = 0.8 / max(len(servers), 1)
    for ax, key, title in (
        (axes[0], "ticks_per_s", "delivered ticks/s (log)"),
        (axes[1], "lat_p99_ms", "p99 publish-to-receive latency, ms (log)"),
    ):
        for i, srv in enumerate(servers):
            vals = []
            for sc in scenarios:
                r = next((x for x in rows if x["scenario"] == sc and x["server"] == srv), None)
                vals.append((r or {}).get(key) or 0)
            xs = [j + (i - (len(servers) - 1) / 2) * width for j in range(len(scenarios))]
            ax.bar(xs, vals, width, label=labels[srv])
        ax.set_xticks(range(len(scenarios)), scenarios)
        ax.set_yscale("log")
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    if storm:
        ax = axes[2]
        names = [r["server_label"] for r in storm]
        secs = [r["all_subscribed_s"] or 0 for r in storm]
        bars = ax.bar(range(len(storm)), secs, color=[f"C{servers.index(r['server']) if r['server'] in servers else i}"
                                                       for i, r in enumerate(storm)])  # fmt: skip
        for b, r in zip(bars, storm):
            ax.annotate(f"{r['rss_per_conn_bytes'] / 1024:.0f} KiB/conn\n{r['failed']} failed",
                        (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom", fontsize=7)  # fmt: skip
        ax.set_xticks(range(len(storm)), names, fontsize=7, rotation=15)
        ax.margins(y=0.2)
        ax.set_title(f"S3: s until {storm[0]['clients']:,} subscribed; idle RSS")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"tickfan load benchmark {run['started']} ({run['machine']['cores']} cores shared by server and clients)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(run: dict, out_dir: str, name: str, plot_png: bool = True) -> list[str]:
    """Writes <name>.md (and <name>.png) in out_dir; returns the paths written."""
    md_path = os.path.join(out_dir, f"{name}.md")
    with open(md_path, "w") as f:
        f.write(markdown(run))
    if not plot_png:
        return [md_path]
    png_path = os.path.join(out_dir, f"{name}.png")
    plot(run, png_path)
    return [md_path, png_path]


if __name__ == "__main__":
    src = sys.argv[1]
    with open(src) as f:
        data = json.load(f)
    print(*write_report(data, os.path.dirname(os.path.abspath(src)), os.path.basename(src).removesuffix(".json")), sep="\n")
