"""``/metrics``: the engine's numbers in the Prometheus text format.

Where things happen only integers move: the writer reports each commit
(``CommitStats.observe``, two bucket increments), ``Engine.invoke`` counts calls
by outcome, the HTTP module counts requests by route and status. Everything
else (the head, lag per subscription, connections) is read when a scrape comes.
``render`` is pure; ``scrape`` gathers its inputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .prometheus import Histogram, family, histogram

BATCH_BOUNDS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
SECONDS_BOUNDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


@dataclass
class CommitStats:
    """What the single writer committed, fed by ``LogWriter.on_batch``."""

    appended: int = 0
    batch: Histogram = field(default_factory=lambda: Histogram(BATCH_BOUNDS))
    seconds: Histogram = field(default_factory=lambda: Histogram(SECONDS_BOUNDS))

    def observe(self, operations: int, records: int, took: float) -> None:
        self.appended += records
        self.batch.observe(operations)
        self.seconds.observe(took)


@dataclass
class Snapshot:
    """Everything one scrape reports, gathered from the engine."""

    head: int
    commits: CommitStats
    subscriptions: list[dict[str, Any]]  # iiilog::triggers::status rows
    projections: Mapping[str, int]  # name -> position
    workers: int
    stream_clients: int
    stream_subscriptions: int
    calls: Mapping[tuple[str, str], int]  # (function id, outcome)
    requests: Mapping[tuple[str, int], int]  # (route, status)


def _subscription_labels(row: Mapping[str, Any]) -> dict[str, str]:
    return {
        "function_id": str(row["function_id"]),
        "trigger_type": str(row["trigger_type"]),
        "subscription": str(row["key"]),
    }


def render(s: Snapshot) -> str:
    """The exposition text of one scrape. Pure."""
    subs = [(_subscription_labels(r), r) for r in s.subscriptions]
    parts: Iterable[str] = (
        family(
            "iiilog_log_head",
            "gauge",
            "The last offset of the log.",
            [({}, s.head)],
        ),
        family(
            "iiilog_records_appended_total",
            "counter",
            "Records this engine appended to the log since it started.",
            [({}, s.commits.appended)],
        ),
        histogram(
            "iiilog_commit_batch_size",
            "Operations (records and bookkeeping) per group commit.",
            s.commits.batch,
        ),
        histogram(
            "iiilog_commit_seconds",
            "How long each group commit took, fsync included.",
            s.commits.seconds,
        ),
        family(
            "iiilog_subscription_lag",
            "gauge",
            "Records between the head and a durable subscription's cursor.",
            [(labels, row["lag"]) for labels, row in subs],
        ),
        family(
            "iiilog_subscription_position",
            "gauge",
            "The offset a durable subscription has handled through.",
            [(labels, row["position"]) for labels, row in subs],
        ),
        family(
            "iiilog_subscription_parked",
            "gauge",
            "Records a durable subscription parked after its retries ran out.",
            [(labels, row["parked"]) for labels, row in subs],
        ),
        family(
            "iiilog_projection_position",
            "gauge",
            "The offset a projection has folded through.",
            [({"projection": n}, p) for n, p in sorted(s.projections.items())],
        ),
        family(
            "iiilog_workers_connected",
            "gauge",
            "Worker connections open now.",
            [({}, s.workers)],
        ),
        family(
            "iiilog_stream_clients",
            "gauge",
            "Stream WebSocket clients connected now.",
            [({}, s.stream_clients)],
        ),
        family(
            "iiilog_stream_subscriptions",
            "gauge",
            "Stream subscriptions (joins) open now.",
            [({}, s.stream_subscriptions)],
        ),
        family(
            "iiilog_invocations_total",
            "counter",
            "Function invocations by function and outcome (ok, error,"
            " cancelled; not_found without a function).",
            [
                ({"function_id": fid, "outcome": outcome}, n)
                for (fid, outcome), n in sorted(s.calls.items())
            ],
        ),
        family(
            "iiilog_http_requests_total",
            "counter",
            "HTTP requests by route (as registered) and status.",
            [
                ({"route": route, "status": str(status)}, n)
                for (route, status), n in sorted(s.requests.items())
            ],
        ),
    )
    return "".join(parts)
