"""The Prometheus text format (api/prometheus.py) and the scrape's families
(api/metrics.py): written by hand, read back with ``prometheus_client``'s
parser, the reference implementation of the format."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.metrics import CommitStats, Snapshot, render
from api.prometheus import Histogram, family, histogram


def parsed(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_counters_and_gauges_with_awkward_labels() -> None:
    text = family(
        "iiilog_x_total",
        "counter",
        "Help with a \\ backslash\nand a newline.",
        [({"fn": 'a"b\\c\nd'}, 3), ({"fn": "plain"}, 0.5)],
    )
    assert text.splitlines()[:2] == [
        "# HELP iiilog_x_total Help with a \\\\ backslash\\nand a newline.",
        "# TYPE iiilog_x_total counter",
    ]
    (fam,) = text_string_to_metric_families(text)
    assert fam.type == "counter" and fam.name == "iiilog_x"
    assert fam.documentation == "Help with a \\ backslash\nand a newline."
    assert [(s.labels["fn"], s.value) for s in fam.samples] == [
        ('a"b\\c\nd', 3.0),
        ("plain", 0.5),
    ]
    gauge = family("iiilog_g", "gauge", "g", [({}, float("nan")), ({"a": "1"}, 2)])
    samples = parsed(gauge)["iiilog_g"].samples
    assert samples[0].value != samples[0].value and samples[1].value == 2
    with pytest.raises(ValueError, match="simple metric type"):
        family("x", "histogram", "h", [])


def test_histograms_are_cumulative() -> None:
    hist = Histogram((1, 5, 10))
    for value in (0, 1, 2, 5, 7, 100, 100):
        hist.observe(value)
    assert hist.counts == [2, 2, 1, 2]  # <=1, <=5, <=10, above
    fam = parsed(histogram("iiilog_h", "sizes", hist))["iiilog_h"]
    assert fam.type == "histogram"
    values = {(s.name, s.labels.get("le")): s.value for s in fam.samples}
    assert values == {
        ("iiilog_h_bucket", "1"): 2,
        ("iiilog_h_bucket", "5"): 4,
        ("iiilog_h_bucket", "10"): 5,
        ("iiilog_h_bucket", "+Inf"): 7,
        ("iiilog_h_sum", None): 215,
        ("iiilog_h_count", None): 7,
    }
    with pytest.raises(ValueError, match="increasing"):
        Histogram((5, 1))


def test_a_scrape_names_everything_iiilog_() -> None:
    commits = CommitStats()
    commits.observe(3, 2, 0.002)
    commits.observe(1, 1, 0.0001)
    text = render(
        Snapshot(
            head=42,
            commits=commits,
            subscriptions=[
                {
                    "key": "k1",
                    "function_id": "todos::on-change",
                    "trigger_type": "state",
                    "position": 40,
                    "lag": 2,
                    "parked": 1,
                }
            ],
            projections={"todos": 42},
            workers=2,
            stream_clients=3,
            stream_subscriptions=4,
            calls={("state::set", "ok"): 5, ("", "not_found"): 1},
            requests={("POST /todos", 201): 7, ("unmatched", 404): 1},
        )
    )
    families = parsed(text)
    assert all(name.startswith("iiilog_") for name in families)

    def one(name: str, **labels: str) -> float:
        for fam in families.values():
            for s in fam.samples:
                if s.name == name and s.labels == labels:
                    return float(s.value)
        raise AssertionError(f"no sample {name} {labels}")

    assert one("iiilog_log_head") == 42
    assert one("iiilog_records_appended_total") == 3
    assert one("iiilog_commit_batch_size_count") == 2
    assert one("iiilog_commit_batch_size_sum") == 4
    assert one("iiilog_commit_seconds_bucket", le="0.0025") == 2
    assert one("iiilog_commit_seconds_bucket", le="0.0005") == 1
    sub = {"function_id": "todos::on-change", "trigger_type": "state"}
    assert one("iiilog_subscription_lag", subscription="k1", **sub) == 2
    assert one("iiilog_subscription_parked", subscription="k1", **sub) == 1
    assert one("iiilog_projection_position", projection="todos") == 42
    assert one("iiilog_workers_connected") == 2
    assert one("iiilog_stream_clients") == 3
    assert one("iiilog_stream_subscriptions") == 4
    assert one("iiilog_invocations_total", function_id="state::set", outcome="ok") == 5
    assert one("iiilog_invocations_total", function_id="", outcome="not_found") == 1
    assert one("iiilog_http_requests_total", route="POST /todos", status="201") == 7
