"""The state module through the real Python iii-sdk: return shapes, order,
errors, and ``state`` triggers with their exact payloads, filters and
conditions."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
from iii import InvocationError

from tests.harness import (
    EngineProcess,
    call,
    never_within,
    sdk_worker,
    trigger_bound,
    wait_until,
)


def scope() -> str:
    return f"s-{uuid.uuid4().hex[:8]}"


def test_set_get_shapes(client: Any) -> None:
    s = scope()
    assert call(
        client, "state::set", {"scope": s, "key": "u-9", "value": {"items": 2}}
    ) == {"old_value": None, "new_value": {"items": 2}}
    assert call(
        client, "state::set", {"scope": s, "key": "u-9", "data": {"items": 3}}
    ) == {"old_value": {"items": 2}, "new_value": {"items": 3}}
    assert call(client, "state::get", {"scope": s, "key": "u-9"}) == {"items": 3}
    assert call(client, "state::get", {"scope": s, "key": "nope"}) is None
    call(client, "state::set", {"scope": s, "key": "n", "value": None})
    assert call(client, "state::get", {"scope": s, "key": "n"}) is None


def test_delete_returns_raw_previous_value(client: Any) -> None:
    s = scope()
    call(client, "state::set", {"scope": s, "key": "k", "value": [1, 2]})
    assert call(client, "state::delete", {"scope": s, "key": "k"}) == [1, 2]
    assert call(client, "state::delete", {"scope": s, "key": "k"}) is None
    assert call(client, "state::get", {"scope": s, "key": "k"}) is None


def test_update_shapes(client: Any) -> None:
    s = scope()
    result = call(
        client,
        "state::update",
        {
            "scope": s,
            "key": "c",
            "ops": [{"type": "increment", "path": "count", "by": 1}],
        },
    )
    assert result == {"old_value": None, "new_value": {"count": 1}}
    result = call(
        client,
        "state::update",
        {
            "scope": s,
            "key": "c",
            "ops": [
                {"type": "append", "path": "count", "value": 1},
                {"type": "set", "path": "tags", "value": "x"},
            ],
        },
    )
    assert result["old_value"] == {"count": 1}
    assert result["new_value"] == {"count": 1, "tags": "x"}
    assert [e["code"] for e in result["errors"]] == ["append.type_mismatch"]
    assert result["errors"][0]["op_index"] == 0
    empty = call(client, "state::update", {"scope": s, "key": "fresh", "ops": []})
    assert empty == {"old_value": None, "new_value": {}}
    assert call(client, "state::get", {"scope": s, "key": "fresh"}) == {}


def test_concurrent_increments_are_atomic(engine: EngineProcess) -> None:
    s = scope()
    with sdk_worker(engine.worker_url, "incrementer") as c:
        threads = [
            threading.Thread(
                target=lambda: [
                    call(
                        c,
                        "state::update",
                        {
                            "scope": s,
                            "key": "n",
                            "ops": [{"type": "increment", "path": "v", "by": 1}],
                        },
                    )
                    for _ in range(25)
                ]
            )
            for _ in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert call(c, "state::get", {"scope": s, "key": "n"}) == {"v": 200}


def test_list_order_and_groups(client: Any) -> None:
    s = scope()
    for key in ("b", "a", "c"):
        call(client, "state::set", {"scope": s, "key": key, "value": key})
    call(client, "state::set", {"scope": s, "key": "b", "value": "B"})
    call(client, "state::delete", {"scope": s, "key": "a"})
    call(client, "state::set", {"scope": s, "key": "a", "value": "A"})
    assert call(client, "state::list", {"scope": s}) == ["B", "c", "A"]
    assert call(client, "state::list", {"scope": scope()}) == []
    groups = call(client, "state::list_groups", {})["groups"]
    assert s in groups and groups == sorted(groups)


@pytest.mark.parametrize(
    ("function_id", "payload"),
    [
        ("state::set", {"key": "k", "value": 1}),
        ("state::set", {"scope": 1, "key": "k", "value": 1}),
        ("state::get", {"scope": "s"}),
        ("state::update", {"scope": "s", "key": "k"}),
        (
            "state::update",
            {
                "scope": "s",
                "key": "k",
                "ops": [{"type": "increment", "path": "n", "by": 1.5}],
            },
        ),
        ("state::list", {}),
        ("state::delete", "not an object"),
    ],
)
def test_bad_input_is_deserialization_error(
    client: Any, function_id: str, payload: Any
) -> None:
    with pytest.raises(InvocationError) as err:
        call(client, function_id, payload)
    assert err.value.code == "deserialization_error"
    assert f"Failed to deserialize input for {function_id}" in str(err.value)


def test_unknown_function(client: Any) -> None:
    with pytest.raises(InvocationError) as err:
        call(client, "nobody::home", {})
    assert err.value.code == "function_not_found"


class Recorder:
    def __init__(self) -> None:
        self.events: list[Any] = []
        self.metadata: list[Any] = []
        self._lock = threading.Lock()

    def __call__(self, data: Any, metadata: Any = None) -> None:
        with self._lock:
            self.events.append(data)
            self.metadata.append(metadata)


def test_state_trigger_payloads_in_order(engine: EngineProcess, client: Any) -> None:
    s = scope()
    rec = Recorder()
    with sdk_worker(engine.worker_url, "trigger-worker") as w:
        w.register_function("t::on-state", rec)
        w.register_trigger(
            {
                "type": "state",
                "function_id": "t::on-state",
                "config": {"scope": s},
                "metadata": {"tag": 7},
            }
        )
        wait_until(
            lambda: any(
                t["function_id"] == "t::on-state"
                for t in call(client, "engine::registered-triggers::list", {})[
                    "registered_triggers"
                ]
            ),
            message="trigger registered",
        )
        call(client, "state::set", {"scope": s, "key": "k", "value": {"a": 1}})
        call(
            client,
            "state::update",
            {"scope": s, "key": "k", "ops": [{"type": "set", "path": "a", "value": 2}]},
        )
        call(client, "state::set", {"scope": scope(), "key": "k", "value": 0})
        call(client, "state::delete", {"scope": s, "key": "k"})
        call(client, "state::delete", {"scope": s, "key": "never"})
        wait_until(lambda: len(rec.events) >= 4, message="4 events")
        # iiilog extension: each event names the offset of its record, so a
        # handler can tie what it derives to that point of the log.
        offsets = [event.pop("offset") for event in rec.events]
        assert offsets == sorted(set(offsets))
        for offset, value in zip(offsets, [{"a": 1}, {"a": 2}, None], strict=False):
            at = {"scope": s, "key": "k", "offset": offset}
            assert call(client, "state::get", at) == value
            assert call(client, "state::get", {**at, "offset": offset - 1}) != value
    assert rec.events == [
        {
            "type": "state",
            "event_type": "state:created",
            "scope": s,
            "key": "k",
            "old_value": None,
            "new_value": {"a": 1},
        },
        {
            "type": "state",
            "event_type": "state:updated",
            "scope": s,
            "key": "k",
            "old_value": {"a": 1},
            "new_value": {"a": 2},
        },
        {
            "type": "state",
            "event_type": "state:deleted",
            "scope": s,
            "key": "k",
            "old_value": {"a": 2},
            "new_value": None,
        },
        {
            "type": "state",
            "event_type": "state:deleted",
            "scope": s,
            "key": "never",
            "old_value": None,
            "new_value": None,
        },
    ]
    assert rec.metadata == [{"tag": 7}] * 4


def test_key_filter_and_catch_all(engine: EngineProcess, client: Any) -> None:
    s = scope()
    only_k, everything = Recorder(), Recorder()
    with sdk_worker(engine.worker_url, "filter-worker") as w:
        w.register_function("t::only-k", only_k)
        w.register_function("t::all", everything)
        w.register_trigger(
            {
                "type": "state",
                "function_id": "t::only-k",
                "config": {"scope": s, "key": "k"},
            }
        )
        w.register_trigger({"type": "state", "function_id": "t::all"})
        wait_until(
            lambda: (
                len(
                    [
                        t
                        for t in call(client, "engine::registered-triggers::list", {})[
                            "registered_triggers"
                        ]
                        if t["function_id"] in ("t::only-k", "t::all")
                    ]
                )
                == 2
            )
        )
        other = scope()
        call(client, "state::set", {"scope": s, "key": "j", "value": 1})
        call(client, "state::set", {"scope": s, "key": "k", "value": 2})
        call(client, "state::set", {"scope": other, "key": "k", "value": 3})
        wait_until(lambda: len(everything.events) >= 3 and len(only_k.events) >= 1)
    assert [(e["scope"], e["key"]) for e in only_k.events] == [(s, "k")]
    seen = [(e["scope"], e["key"]) for e in everything.events]
    assert (s, "j") in seen and (s, "k") in seen and (other, "k") in seen


def test_condition_function(engine: EngineProcess, client: Any) -> None:
    s = scope()
    rec = Recorder()
    with sdk_worker(engine.worker_url, "cond-worker") as w:
        w.register_function("t::cond", lambda e: e["new_value"] != "skip")
        refused: list[Any] = []  # the failing condition's calls

        def cond_fails(e: Any) -> Any:
            refused.append(e["key"])
            return 1 / 0

        w.register_function("t::cond-fails", cond_fails)
        w.register_function("t::handler", rec)
        w.register_trigger(
            {
                "type": "state",
                "function_id": "t::handler",
                "config": {"scope": s, "condition_function_id": "t::cond"},
            }
        )
        never = Recorder()
        w.register_function("t::never", never)
        w.register_trigger(
            {
                "type": "state",
                "function_id": "t::never",
                "config": {"scope": s, "condition_function_id": "t::cond-fails"},
            }
        )
        wait_until(
            lambda: (
                len(
                    [
                        t
                        for t in call(client, "engine::registered-triggers::list", {})[
                            "registered_triggers"
                        ]
                        if t["function_id"] in ("t::handler", "t::never")
                    ]
                )
                == 2
            )
        )
        for value in ("a", "skip", "b"):
            call(client, "state::set", {"scope": s, "key": value, "value": value})
        wait_until(lambda: len(rec.events) >= 2)
        started = time.monotonic()
        call(client, "state::set", {"scope": s, "key": "z", "value": "z"})
        wait_until(lambda: len(rec.events) >= 3)
        latency = time.monotonic() - started  # one delivery, condition included
        # Positive control: the never-trigger evaluated its (failing)
        # condition for every record, so its deliveries would be due now.
        wait_until(lambda: sorted(refused) == ["a", "b", "skip", "z"])
        never_within(lambda: never.events, max(1.0, 5 * latency), message="a delivery")
    assert [e["new_value"] for e in rec.events] == ["a", "b", "z"]


def test_unregister_and_disconnect_stop_deliveries(
    engine: EngineProcess, client: Any
) -> None:
    s = scope()
    rec = Recorder()
    # Positive control: a trigger on the same scope that stays, and so shows
    # when the records written after the unregister and the disconnect have
    # been delivered.
    control = Recorder()
    control_fn = client.register_function(f"t::control-{s}", control)
    control_trigger = client.register_trigger(
        {"type": "state", "function_id": f"t::control-{s}", "config": {"scope": s}}
    )
    wait_until(lambda: trigger_bound(client, f"t::control-{s}"))
    with sdk_worker(engine.worker_url, "leaving-worker") as w:
        w.register_function("t::leaving", rec)
        trig = w.register_trigger(
            {"type": "state", "function_id": "t::leaving", "config": {"scope": s}}
        )
        wait_until(
            lambda: any(
                t["function_id"] == "t::leaving"
                for t in call(client, "engine::registered-triggers::list", {})[
                    "registered_triggers"
                ]
            )
        )
        call(client, "state::set", {"scope": s, "key": "1", "value": 1})
        wait_until(lambda: len(rec.events) == 1 and len(control.events) == 1)
        trig.unregister()
        wait_until(
            lambda: (
                not any(
                    t["function_id"] == "t::leaving"
                    for t in call(client, "engine::registered-triggers::list", {})[
                        "registered_triggers"
                    ]
                )
            )
        )
        call(client, "state::set", {"scope": s, "key": "2", "value": 2})
    # After the worker left, its functions are gone too.
    wait_until(
        lambda: (
            "t::leaving"
            not in [
                f["function_id"]
                for f in call(client, "engine::functions::list", {})["functions"]
            ]
        )
    )
    started = time.monotonic()
    call(client, "state::set", {"scope": s, "key": "3", "value": 3})
    wait_until(lambda: [e["key"] for e in control.events] == ["1", "2", "3"])
    latency = time.monotonic() - started
    never_within(
        lambda: [e for e in rec.events if e["key"] != "1"],
        max(1.0, 5 * latency),
        message="a delivery to the worker that left",
    )
    assert [e["key"] for e in rec.events] == ["1"]
    control_trigger.unregister()
    control_fn.unregister()
