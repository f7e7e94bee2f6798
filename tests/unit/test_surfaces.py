"""Pure pieces behind iii's documented surfaces: a subscriber's queue_config as
a delivery policy, span trees, the JSON Schema subset, configuration folds and
placeholder expansion, and merging a per-worker file over a config block."""

from __future__ import annotations

from typing import Any

import pytest

from api.config import merge
from engine.config_schema import violations
from engine.configuration import expand
from engine.errors import TriggerRegistrationFailed
from engine.topics import subscriber_policy, topic_of
from engine.traces import build_tree, decode_frame


def test_subscriber_policy_defaults_and_queue_config() -> None:
    default = subscriber_policy(None)
    assert (default.max_attempts, default.backoff_ms, default.max_in_flight) == (
        3,
        1000,
        10,
    )
    assert default.await_function
    tuned = subscriber_policy({"maxRetries": 0, "backoffDelayMs": 5, "concurrency": 0})
    assert (tuned.max_attempts, tuned.backoff_ms, tuned.max_in_flight) == (1, 5, 0)
    assert subscriber_policy({"type": "fifo", "concurrency": 50}).max_in_flight == 1
    for bad in ({"type": "lifo"}, {"concurrency": -1}, {"maxRetries": "3"}, [1]):
        with pytest.raises(TriggerRegistrationFailed):
            subscriber_policy(bad)
    assert topic_of({"queue": "q"}) == "q"
    with pytest.raises(TriggerRegistrationFailed):
        topic_of({"topic": ""})


def span(span_id: str, parent: str | None, start: int) -> dict[str, Any]:
    return {"span_id": span_id, "parent_span_id": parent, "start_time_unix_nano": start}


def test_build_tree_nests_children_and_roots_orphans() -> None:
    roots = build_tree(
        [span("c", "a", 3), span("a", None, 1), span("b", "a", 2), span("o", "x", 0)]
    )
    assert [r["span_id"] for r in roots] == ["o", "a"]
    assert [c["span_id"] for c in roots[1]["children"]] == ["b", "c"]


def test_decode_frame_reads_otlp_json() -> None:
    body = (
        b'{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name",'
        b'"value":{"stringValue":"w"}}]},"scopeSpans":[{"scope":{"name":"sdk"},'
        b'"spans":[{"traceId":"t","spanId":"s","parentSpanId":"","name":"call f",'
        b'"startTimeUnixNano":"10","endTimeUnixNano":"30","status":{"code":2,'
        b'"message":"boom"},"attributes":[{"key":"n","value":{"intValue":"3"}}]}]}]}]}'
    )
    (s,) = decode_frame(body)
    assert s["service_name"] == "w" and s["parent_span_id"] is None
    assert s["status"] == "error" and s["status_description"] == "boom"
    assert s["attributes"] == [["n", "3"]] and s["end_time_unix_nano"] == 30
    assert s["instrumentation_scope_name"] == "sdk"


def test_schema_subset_lists_every_violation() -> None:
    schema = {
        "type": "object",
        "required": ["port"],
        "properties": {
            "port": {"type": "integer", "minimum": 1, "maximum": 65535},
            "mode": {"enum": ["a", "b"]},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "additionalProperties": False,
    }
    assert violations(schema, {"port": 80, "tags": ["x"]}) == []
    found = violations(schema, {"port": 0, "mode": "c", "tags": [1], "x": 1})
    assert len(found) == 4 and any("$.tags[0]" in f for f in found)
    assert violations(schema, {}) == ["$: missing required property 'port'"]
    assert violations({"type": "integer"}, True) == ["$: expected integer"]


def test_expand_placeholders_and_merge() -> None:
    env = {"PORT": "8080", "HOST": "h"}
    assert expand({"port": "${PORT:1}", "url": "http://${HOST}:${PORT}"}, env) == {
        "port": 8080,
        "url": "http://h:8080",
    }
    assert expand(["${NOPE:x}"], env) == ["x"]
    base = {"queue_configs": {"default": {"max_retries": 2}}, "adapter": {"a": 1}}
    over = {"queue_configs": {"clicks": {}}, "adapter": "b"}
    assert merge(base, over) == {
        "queue_configs": {"default": {"max_retries": 2}, "clicks": {}},
        "adapter": "b",
    }
