"""The performance targets of docs/benchmarks.md, each measured against its
baseline of the same run (``bench/report.py`` writes them as a table).

Targets from two issues: the todo job against PocketBase (engine CPU per
create, creates/s and p99 against PocketBase doing the same app, every change
delivered in time), and the cluster (one PostgreSQL node against one SQLite
node, three nodes against one); plus durable writes against a WebSocket echo
and replay speed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def load(name: str) -> Any:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def row_at(todo: dict[str, Any] | None, system: str, s: int) -> dict[str, Any] | None:
    """The todo job's row of ``system`` at ``s`` subscribers, if it ran."""
    if not todo:
        return None
    return next(
        (r for r in todo["runs"].get(system, []) if r["subscribers"] == s), None
    )


def delivered(r: dict[str, Any]) -> str:
    lost = r["expected_deliveries"] - r["deliveries"]
    if lost:
        return f"{r['deliveries']:,}/{r['expected_deliveries']:,}, LOST {lost:,}"
    if r["late_deliveries"]:
        return f"all, {r['late_deliveries']:,} more than 1 s late"
    return "all"


def on_time(r: dict[str, Any]) -> bool:
    return r["deliveries"] == r["expected_deliveries"] and not r["late_deliveries"]


Target = tuple[str, str, str, bool]


def todo_targets(todo: dict[str, Any] | None, profile: Any) -> list[Target]:
    rows: list[Target] = []
    after = (profile or {}).get("after")
    if after:
        ms = after["engine_cpu_ms_per_create"]
        rows.append(
            ("engine CPU per create, S=10 (ms)", "<= 0.45", f"{ms:.2f}", ms <= 0.45)
        )
    py, pbc = row_at(todo, "iiilog", 10), row_at(todo, "pocketbase-counters", 10)
    if py and pbc:
        c = py["creates_per_s"] / pbc["creates_per_s"]
        p = py["p99_ms"] / pbc["p99_ms"]
        rows.append(
            (
                "Python worker S=10, creates/s vs PocketBase with counters",
                ">= 1.00",
                f"{c:.2f}",
                c >= 1,
            )
        )
        rows.append(
            (
                "Python worker S=10, p99 vs PocketBase with counters",
                "<= 1.00",
                f"{p:.2f}",
                p <= 1,
            )
        )
        rows.append(
            (
                "Python worker S=10, every change delivered in time",
                "all",
                delivered(py),
                on_time(py),
            )
        )
    node, pb = row_at(todo, "iiilog-node", 10), row_at(todo, "pocketbase", 10)
    if node and pb:
        c = node["creates_per_s"] / pb["creates_per_s"]
        p = node["p99_ms"] / pb["p99_ms"]
        rows.append(
            (
                "Node worker S=10, creates/s vs bare PocketBase",
                ">= 1.00",
                f"{c:.2f}",
                c >= 1,
            )
        )
        rows.append(
            ("Node worker S=10, p99 vs bare PocketBase", "<= 1.00", f"{p:.2f}", p <= 1)
        )
        rows.append(
            (
                "Node worker S=10, every change delivered in time",
                "all",
                delivered(node),
                on_time(node),
            )
        )
    py100, pbc100 = (
        row_at(todo, "iiilog", 100),
        row_at(todo, "pocketbase-counters", 100),
    )
    if py100 and pbc100:
        c = py100["creates_per_s"] / pbc100["creates_per_s"]
        rows.append(
            (
                "S=100, creates/s vs PocketBase with counters",
                ">= 2.00",
                f"{c:.2f}",
                c >= 2,
            )
        )
    return rows


def targets() -> list[str]:
    """The performance targets, each against its same-run baseline: met or
    missed."""
    state, replay = load("state_set"), load("replay")
    todo, profile, cluster = load("todo_job"), load("profile"), load("cluster")
    rows = todo_targets(todo, profile)
    if state and "64" in state["levels"]:
        ratio = state["levels"]["64"]["set_vs_echo"]
        rows.append(
            (
                "durable `state::set` at c=64 vs raw WebSocket echo",
                ">= 0.35",
                f"{ratio:.2f}",
                ratio >= 0.35,
            )
        )
    if replay:
        rate = replay["replay"]["records_per_s"]
        rows.append(
            (
                "replay of 1,000,000 records, records/s",
                ">= 350,000",
                f"{rate:,.0f}",
                rate >= 350_000,
            )
        )
    if cluster:
        one = cluster["postgres_1_vs_sqlite_1"]
        three = cluster["postgres_3_vs_postgres_1"]
        rows.append(
            (
                "one PostgreSQL node vs one SQLite node (`state::set` c=64)",
                ">= 0.50",
                f"{one:.2f}",
                one >= 0.5,
            )
        )
        rows.append(
            ("three PostgreSQL nodes vs one", ">= 1.00", f"{three:.2f}", three >= 1)
        )
    if not rows:
        return []
    out = ["## Targets", "", "| target | wanted | measured | |", "|---|---|---|---|"]
    for name, wanted, got, ok in rows:
        out.append(f"| {name} | {wanted} | {got} | {'met' if ok else 'missed'} |")
    return [*out, ""]
