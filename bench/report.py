"""Write docs/benchmarks.md (and a PNG plot) from bench/results/*.json.

Every figure is shown with the baseline measured in the same run, as a ratio:
these machines are shared and noisy, absolute numbers drift between runs.

    python bench/report.py     # after the bench scripts (make bench runs all)
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "benchmarks.md"
PLOT = ROOT / "docs" / "benchmarks-todo-job.png"


def load(name: str) -> Any:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def machine() -> str:
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f", {int(line.split()[1]) // 1024 // 1024} GiB RAM"
    except OSError:
        pass
    return (
        f"{platform.machine()}, {os.cpu_count()} cores{mem}, "
        f"Python {platform.python_version()}, {platform.system()}"
    )


def plot(todo: dict[str, Any]) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    for name in ("iiilog", "pocketbase"):
        runs = todo[name]
        ax.plot(
            [r["subscribers"] for r in runs],
            [r["creates_per_s"] for r in runs],
            marker="o",
            label=name,
        )
    ax.set_xscale("log")
    ax.set_xlabel("subscribers watching the todo list")
    ax.set_ylabel("creates / s")
    ax.set_title("Reactive todo job: throughput vs subscribers")
    ax.legend()
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110)
    return True


def targets() -> list[str]:
    """The performance targets of the project, each against its same-run
    baseline: met or missed."""
    rows: list[tuple[str, str, str, bool]] = []
    state, replay, todo = load("state_set"), load("replay"), load("todo_job")
    if state and "64" in state["levels"]:
        ratio = state["levels"]["64"]["set_vs_echo"]
        rows.append(
            (
                "durable `state::set` at c=64 vs raw WS echo",
                ">= 0.50",
                f"{ratio:.2f}",
                ratio >= 0.5,
            )
        )
    if replay:
        r = replay["replay_vs_raw_scan"]
        rate = replay["replay"]["records_per_s"]
        rows.append(("replay vs raw scan-and-decode", ">= 0.50", f"{r:.2f}", r >= 0.5))
        rows.append(("replay records/s", ">= 300,000", f"{rate:,.0f}", rate >= 300_000))
    if todo:
        pairs = {
            o["subscribers"]: (o, t)
            for o, t in zip(todo["iiilog"], todo["pocketbase"], strict=True)
        }
        if 10 in pairs:
            o, t = pairs[10]
            c = o["creates_per_s"] / t["creates_per_s"]
            p = o["p99_ms"] / t["p99_ms"]
            rows.append(
                ("todo job S=10 creates/s vs PocketBase", ">= 1.00", f"{c:.2f}", c >= 1)
            )
            rows.append(
                ("todo job S=10 p99 vs PocketBase", "<= 1.00", f"{p:.2f}", p <= 1)
            )
        if 100 in pairs:
            o, t = pairs[100]
            c = o["creates_per_s"] / t["creates_per_s"]
            rows.append(
                (
                    "todo job S=100 creates/s vs PocketBase",
                    ">= 2.00",
                    f"{c:.2f}",
                    c >= 2,
                )
            )
    if not rows:
        return []
    out = ["## Targets", "", "| target | wanted | measured | |", "|---|---|---|---|"]
    for name, wanted, got, ok in rows:
        out.append(f"| {name} | {wanted} | {got} | {'met' if ok else 'missed'} |")
    return [*out, ""]


def main() -> int:
    out = [
        "# Benchmarks",
        "",
        f"Machine: {machine()}. Each table compares with a baseline measured in "
        "the same run. Regenerate with `make bench`.",
        "",
        *targets(),
    ]
    state = load("state_set")
    if state:
        out += [
            "## Durable writes (`bench/state_set.py`)",
            "",
            "| concurrency | op | calls/s | p50 ms | p99 ms | vs raw WS echo |",
            "|---|---|---|---|---|---|",
        ]
        for level, row in state["levels"].items():
            echo = row["echo"]["calls_per_s"]
            for op in ("echo", "get", "set", "update"):
                r = row[op]
                out.append(
                    f"| {level} | {op} | {r['calls_per_s']:,.0f} | "
                    f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                    f"{r['calls_per_s'] / echo:.2f} |"
                )
        for name in ("sqlite_full", "sqlite_normal"):
            raw = state[name]["rows_per_s"]
            out.append("")
            out.append(
                f"Raw aiosqlite batched inserts ({name.split('_')[1]}): "
                f"{raw:,.0f} rows/s; durable `state::set` at c=64 is "
                f"{state[f'set_c64_vs_{name}']:.3f} of it."
            )
        out.append("")
    streams = load("streams")
    if streams:
        out += [
            "## Stream delivery (`bench/streams.py`)",
            "",
            "| subscribers | p50 ms | p99 ms | call round trip ms | p50 / rtt |",
            "|---|---|---|---|---|",
        ]
        for r in streams["latency"]:
            out.append(
                f"| {r['subscribers']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f}"
                f" | {r['baseline_rtt_p50_ms']:.2f} | {r['p50_vs_rtt']:.2f} |"
            )
        f, fb = streams["fanout"], streams["fanout_baseline"]
        out += [
            "",
            f"Fan-out, one writer and {f['subscribers']:,} subscribers (8 calls in "
            "flight, no pacing): "
            f"{f['delivered_per_s']:,.0f} deliveries/s, p50 {f['p50_ms']:.1f} ms, "
            f"p99 {f['p99_ms']:.1f} ms ({f['deliveries']:,}/"
            f"{f['expected_deliveries']:,} delivered); a bare aiohttp relay with the "
            f"same clients: {fb['delivered_per_s']:,.0f} deliveries/s, p99 "
            f"{fb['p99_ms']:.1f} ms (ratio {streams['fanout_vs_baseline']:.2f}). "
            "Both are bound by the one client process that parses every copy.",
        ]
        c, b = streams["catchup"], streams["catchup_baseline"]
        out += [
            "",
            f"Catch-up of a subscriber {c['records']:,} records behind: "
            f"{c['records_per_s']:,.0f} records/s; a bare aiohttp server pushing "
            f"the same frames: {b['records_per_s']:,.0f}/s "
            f"(ratio {streams['catchup_vs_baseline']:.2f}).",
            "",
        ]
    replay = load("replay")
    if replay:
        out += [
            "## Replay and restart (`bench/replay.py`)",
            "",
            f"Log of {replay['records']:,} records. Replay of all views and "
            f"projections: {replay['replay']['records_per_s']:,.0f} records/s; "
            f"raw scan-and-decode of the same table: "
            f"{replay['raw_scan_baseline']['records_per_s']:,.0f} records/s "
            f"(ratio {replay['replay_vs_raw_scan']:.2f}). Restart: "
            f"{replay['restart_s_with_snapshots']:.2f} s with snapshots, "
            f"{replay['restart_s_without_snapshots']:.2f} s without "
            f"({replay['restart_speedup']:.1f}x).",
            "",
        ]
    http = load("http")
    if http:
        out += [
            "## HTTP through the todo worker (`bench/http_load.py`)",
            "",
            "| route @ concurrency | iiilog req/s | p50 ms | p99 ms | bare aiohttp "
            "req/s | ratio |",
            "|---|---|---|---|---|---|",
        ]
        for key, r in http["iiilog"].items():
            b = http["bare"][key]
            out.append(
                f"| {key} | {r['requests_per_s']:,.0f} | {r['p50_ms']:.2f} | "
                f"{r['p99_ms']:.2f} | {b['requests_per_s']:,.0f} | "
                f"{http['ratios'][key]:.2f} |"
            )
        out += [
            "",
            "`create`: HTTP -> engine -> worker (Python SDK) -> durable "
            "`state::set` -> response, while the todo's two state triggers run; "
            "`metrics`: HTTP -> worker -> `state::get`. The bare server answers "
            "the same routes itself.",
            "",
        ]
    todo = load("todo_job")
    if todo:
        out += [
            "## The reactive todo job, iiilog vs PocketBase (`bench/todo_job.py`)",
            "",
            "| subscribers | iiilog creates/s | PocketBase creates/s | ratio | "
            "iiilog p50 / p99 ms | PocketBase p50 / p99 ms | p99 ratio | "
            "server CPU ms per create (engine + worker / PocketBase) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for ours, theirs in zip(todo["iiilog"], todo["pocketbase"], strict=True):
            split = " + ".join(
                f"{c:.2f}" for c in ours.get("cpu_ms_per_create_by_process", [])
            )
            out.append(
                f"| {ours['subscribers']} | {ours['creates_per_s']:,.0f} | "
                f"{theirs['creates_per_s']:,.0f} | "
                f"{ours['creates_per_s'] / theirs['creates_per_s']:.2f} | "
                f"{ours['p50_ms']:.1f} / {ours['p99_ms']:.1f} | "
                f"{theirs['p50_ms']:.1f} / {theirs['p99_ms']:.1f} | "
                f"{ours['p99_ms'] / theirs['p99_ms']:.2f} | "
                f"{split} / {theirs.get('server_cpu_ms_per_create', 0):.2f} |"
            )
        out += [
            "",
            "Latency is from the start of each `POST` to each subscriber "
            "receiving the change. The todo worker (`examples/todo/worker.py`, "
            "Python `iii-sdk`) asks for `max_in_flight: 32` on its two state "
            "triggers: each todo's changes in order, different todos "
            "concurrently. Each create costs the worker three invocations and "
            "three calls back (create -> `state::set`, on-change -> "
            "`stream::send`, update-metrics -> `state::update`); the CPU column "
            "shows where the two shared cores go.",
        ]
        if plot(todo):
            out += ["", f"![throughput vs subscribers]({PLOT.name})"]
        out.append("")
    DOC.write_text("\n".join(out))
    print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
