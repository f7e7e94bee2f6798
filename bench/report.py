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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report_targets import (
    RESULTS,
    ROOT,
    delivered,
    load,
    row_at,
    targets,
)

DOC = ROOT / "docs" / "benchmarks.md"
PLOT = ROOT / "docs" / "benchmarks-todo-job.png"


def load_before(name: str) -> Any:
    """A result of the older checkout (``make bench`` runs it with
    ``--out bench/results/before``), labelled with its commit."""
    path = RESULTS / "before" / f"{name}.json"
    if not path.exists():
        return None
    result = json.loads(path.read_text())
    label = (
        (RESULTS / "before" / "LABEL").read_text().strip()
        if (RESULTS / "before" / "LABEL").exists()
        else "older commit"
    )
    result["label"] = label
    return result


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


SYSTEM_NAMES = {
    "iiilog": "iiilog, Python worker",
    "iiilog-otel-off": "iiilog, Python worker, telemetry off",
    "iiilog-node": "iiilog, Node worker",
    "pocketbase-counters": "PocketBase with counters",
    "pocketbase": "PocketBase, creates and push only",
}


def plot(todo: dict[str, Any]) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for system, rows in todo["runs"].items():
        ax.plot(
            [r["subscribers"] for r in rows],
            [r["creates_per_s"] for r in rows],
            marker="o",
            label=SYSTEM_NAMES.get(system, system),
        )
    ax.set_xscale("log")
    ax.set_xlabel("subscribers watching the todo list")
    ax.set_ylabel("creates / s")
    ax.set_title("Reactive todo job: throughput vs subscribers")
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110)
    return True


def todo_section(todo: dict[str, Any], before: dict[str, Any] | None) -> list[str]:
    out = [
        "## The reactive todo job, iiilog vs PocketBase (`bench/todo_job.py`)",
        "",
        f"{todo['creators']} concurrent creators for {todo['seconds']:.0f} s per row,"
        " S stream subscribers each expecting every change. Latency is from the"
        " start of each `POST` to each subscriber receiving the change;"
        " *delivered* counts the changes every subscriber got, and says so when"
        " any was lost or arrived more than a second after the run. CPU is"
        " per create, per server process (engine + worker for iiilog).",
        "",
        "| S | system | creates/s | vs PocketBase with counters | p50 / p99 ms"
        " | delivered | CPU ms per create |",
        "|---|---|---|---|---|---|---|",
    ]
    levels = sorted({r["subscribers"] for rows in todo["runs"].values() for r in rows})
    for s in levels:
        base = row_at(todo, "pocketbase-counters", s)
        for system in todo["runs"]:
            r = row_at(todo, system, s)
            if r is None:
                continue
            ratio = f"{r['creates_per_s'] / base['creates_per_s']:.2f}" if base else ""
            cpu = " + ".join(f"{c:.2f}" for c in r["cpu_ms_per_create_by_process"])
            out.append(
                f"| {s} | {SYSTEM_NAMES.get(system, system)} |"
                f" {r['creates_per_s']:,.0f} | {ratio} |"
                f" {r['p50_ms']:.1f} / {r['p99_ms']:.1f} | {delivered(r)} | {cpu} |"
            )
    if "counters" in todo:
        c = todo["counters"]
        out += [
            "",
            f"PocketBase's counters after its runs: total {c['total']:,} for"
            f" {c['creates']:,} creates ({'equal' if c['equal'] else 'NOT equal'}).",
        ]
    if before:
        out += [
            "",
            f"The same job on the engine before this round of work ({before['label']}),"
            " measured in the same `make bench`:",
            "",
            "| S | system | creates/s before | now | p99 ms before | now |",
            "|---|---|---|---|---|---|",
        ]
        for system, rows in before["runs"].items():
            for r in rows:
                now = row_at(todo, system, r["subscribers"])
                if now:
                    out.append(
                        f"| {r['subscribers']} | {SYSTEM_NAMES.get(system, system)} |"
                        f" {r['creates_per_s']:,.0f} | {now['creates_per_s']:,.0f} |"
                        f" {r['p99_ms']:.1f} | {now['p99_ms']:.1f} |"
                    )
    out += [
        "",
        "The todo worker (`examples/todo`, Python `iii-sdk`; `examples/todo-node`"
        " for Node) handles each create with three invocations and three calls"
        " back (create -> `state::set`, on-change -> `stream::send`,"
        " update-metrics -> `state::update`); its triggers use the engine's"
        " default delivery (each todo's changes in order, up to 64 in flight)."
        " PocketBase with counters runs the same app: a JS hook keeps a"
        " `metrics` record with an atomic `UPDATE` in the create's request.",
    ]
    if plot(todo):
        out += ["", f"![throughput vs subscribers]({PLOT.name})"]
    return [*out, ""]


def profile_section(profile: dict[str, Any]) -> list[str]:
    labels: list[str] = [x for x in ("before", "after") if x in profile]
    labels = labels or list(profile)
    out = [
        "## Where the engine's CPU goes, per create (`bench/profile_todo.py`)",
        "",
        "`py-spy` samples the engine during the todo job (Python worker with its"
        " default telemetry, S=10); each sample of the main thread is put in the"
        " stage of the innermost frame of ours on its stack. *loop* is uvloop's"
        " own C code (socket reads and writes, callbacks), which the sampler"
        " cannot see into. `before` is the engine of the commit given to"
        " `make bench` as `BEFORE` (the start of this round of work).",
        "",
        "| stage | " + " | ".join(f"{label} ms (share)" for label in labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    stages = list(profile[labels[0]]["stages"])
    for stage in stages:
        cells = []
        for label in labels:
            st = profile[label]["stages"].get(
                stage, {"cpu_ms_per_create": 0, "share": 0}
            )
            cells.append(f"{st['cpu_ms_per_create']:.3f} ({st['share'] * 100:.0f}%)")
        out.append(f"| {stage} | " + " | ".join(cells) + " |")
    out.append(
        "| **engine, all threads** | "
        + " | ".join(
            f"**{profile[label]['engine_cpu_ms_per_create']:.3f}**" for label in labels
        )
        + " |"
    )
    out.append(
        "| worker (Python SDK) | "
        + " | ".join(
            f"{profile[label]['worker_cpu_ms_per_create']:.3f}" for label in labels
        )
        + " |"
    )
    out.append(
        "| creates/s while sampled | "
        + " | ".join(f"{profile[label]['creates_per_s']:,.0f}" for label in labels)
        + " |"
    )
    return [*out, ""]


def cluster_section(c: dict[str, Any]) -> list[str]:
    out = [
        "## Several nodes on one PostgreSQL log (`bench/cluster.py`)",
        "",
        "Durable `state::set` at c=64 (4 sockets x 16 in flight, spread over the"
        " nodes), every node and PostgreSQL on the same machine. CPU per call is"
        " summed over the engines, over PostgreSQL's processes, and for the load"
        " generator; *cores busy* is the whole machine's.",
        "",
        "| setup | calls/s | vs one SQLite node | p99 ms | CPU ms per call:"
        " engines / PostgreSQL / load | cores busy |",
        "|---|---|---|---|---|---|",
    ]
    base = c["sqlite_1"]["calls_per_s"]
    for name, label in (
        ("sqlite_1", "one node, SQLite"),
        ("postgres_1", "one node, PostgreSQL"),
        ("postgres_2", "two nodes, PostgreSQL"),
        ("postgres_3", "three nodes, PostgreSQL"),
    ):
        r = c[name]
        cpu = r.get("cpu_ms_per_call")
        cpu_text = (
            f"{cpu['engines']:.3f} / {cpu['postgres']:.3f}"
            f" / {cpu['load_generator']:.3f}"
            if cpu
            else ""
        )
        busy = f"{r['cores_busy']:.2f}" if "cores_busy" in r else ""
        out.append(
            f"| {label} | {r['calls_per_s']:,.0f} | {r['calls_per_s'] / base:.2f} |"
            f" {r['p99_ms']:.1f} | {cpu_text} | {busy} |"
        )
    out += [
        "",
        "| write -> stream subscriber | p50 ms | p99 ms | received |",
        "|---|---|---|---|",
    ]
    for name, label in (
        ("latency_same_node_sqlite", "same node, SQLite"),
        ("latency_same_node_postgres", "same node, PostgreSQL"),
        ("latency_across_nodes", "another node, PostgreSQL"),
    ):
        r = c[name]
        out.append(
            f"| {label} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['received']}/300 |"
        )
    out += [
        "",
        "Serialized appends alone (32-record commits through the store, each"
        " taking the head row's lock): "
        f"{c['raw_appends_1_stores']['records_per_s']:,.0f} records/s from one"
        f" store, {c['raw_appends_3_stores']['records_per_s']:,.0f} from three"
        " at once.",
        "",
    ]
    return out


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
        before = load_before("todo_job")
        out += todo_section(todo, before)
    profile = load("profile")
    if profile:
        out += profile_section(profile)
    cluster = load("cluster")
    if cluster:
        out += cluster_section(cluster)
    DOC.write_text("\n".join(out))
    print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
