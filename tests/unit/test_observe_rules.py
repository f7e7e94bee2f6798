"""``engine.observe_rules``: an ``observe`` request's defaults and checks, and
what an activation carries."""

from __future__ import annotations

from typing import Any

import pytest

from engine.observe_rules import (
    DEFAULT_MAX_IN_FLIGHT,
    PLAIN,
    Descriptor,
    Event,
    ObserveError,
    activation_caller,
    check_source,
    clean_caller,
    legacy_spec,
    observed_item,
    parse_observe,
    payload,
    stamp_caller,
)


def spec_of(source: dict[str, Any], target: Any = None, **options: Any) -> Any:
    return parse_observe(
        "obs-1",
        {"function_id": "orders::create", **source},
        target or {"function_id": "audit::record"},
        home="shop",
        **options,
    )


def test_defaults() -> None:
    spec = spec_of({})
    assert spec.source == ("shop", "orders::create")  # the worker's namespace
    assert spec.target == ("shop", "audit::record")
    assert spec.capture == ("input", "output", "caller")
    assert (spec.on, spec.deliver, spec.args) == ("success", "envelope", {})
    assert spec.max_in_flight == DEFAULT_MAX_IN_FLIGHT
    assert spec.max_fires is None and spec.expires_in_ms is None
    assert spec.filter.match_all


def test_namespaces() -> None:
    spec = spec_of({"function_id": "engine::functions::list"})
    assert spec.source == ("default", "engine::functions::list")
    spec = spec_of({"namespace": "billing"}, {"function_id": "a::b", "namespace": "x"})
    assert spec.source == ("billing", "orders::create") and spec.target == ("x", "a::b")


def test_deliver_input_travels_even_when_not_captured() -> None:
    spec = spec_of({"capture": ["error"], "deliver": "input", "on": "complete"})
    assert spec.capture == ("input", "error")


@pytest.mark.parametrize(
    ("source", "target", "options", "code"),
    [
        ({"function_id": ""}, None, {}, "INVALID_ARGUMENTS"),
        ({}, {"function_id": 3}, {}, "INVALID_ARGUMENTS"),
        ({}, {"function_id": "orders::create"}, {}, "SELF_TARGET"),
        ({"filters": {"input.op": "insert"}}, None, {}, "INVALID_FILTER"),
        ({"filters": []}, None, {}, "INVALID_FILTER"),
        ({"args": [1]}, None, {}, "INVALID_ARGS"),
        ({"capture": ["input", "body"]}, None, {}, "INVALID_ARGUMENTS"),
        ({"on": "always"}, None, {}, "INVALID_ARGUMENTS"),
        ({"deliver": "both"}, None, {}, "INVALID_ARGUMENTS"),
        ({}, None, {"max_fires": 0}, "INVALID_ARGUMENTS"),
        ({}, None, {"max_fires": True}, "INVALID_ARGUMENTS"),
        ({}, None, {"expires_in_ms": -5}, "INVALID_ARGUMENTS"),
        ({}, None, {"max_in_flight": 10_001}, "INVALID_ARGUMENTS"),
    ],
)
def test_refused_requests(
    source: dict[str, Any], target: Any, options: dict[str, Any], code: str
) -> None:
    with pytest.raises(ObserveError) as e:
        spec_of(source, target, **options)
    assert e.value.code == code
    assert e.value.body()["code"] == code


def test_descriptor_is_read_leniently() -> None:
    assert Descriptor.parse(None) is PLAIN
    assert Descriptor.parse({"delivery": "sideways", "allow": "no"}) == PLAIN
    d = Descriptor.parse(
        {"delivery": "owner", "allow": False, "legacy_trigger_type": "cron"}
    )
    assert (d.delivery, d.allow, d.legacy_trigger_type) == ("owner", False, "cron")


CRON = Descriptor(
    delivery="owner",
    args_format={
        "type": "object",
        "additionalProperties": False,
        "required": ["expression"],
        "properties": {"expression": {"type": "string"}},
    },
)


def test_check_source() -> None:
    check_source(spec_of({}), PLAIN)
    check_source(spec_of({"args": {}}), PLAIN)  # empty args are no args
    check_source(spec_of({"args": {"expression": "*/5"}}), CRON)
    cases = [
        (spec_of({"args": {"expression": "*/5"}}), PLAIN, "INVALID_ARGS"),
        (spec_of({"args": {}}), CRON, "INVALID_ARGS"),
        (spec_of({"args": {"expression": 5}}), CRON, "INVALID_ARGS"),
        (spec_of({"args": {"expression": "x", "y": 1}}), CRON, "INVALID_ARGS"),
        (spec_of({}), Descriptor(allow=False), "NOT_OBSERVABLE"),
        (
            spec_of({}),
            Descriptor(delivery="owner", args_format={"type": 7}),
            "INVALID_ARGS",
        ),
    ]
    for spec, descriptor, code in cases:
        with pytest.raises(ObserveError) as e:
            check_source(spec, descriptor)
        assert e.value.code == code, (spec.args, descriptor)


def event(status: str = "success", **parts: Any) -> Event:
    return Event("orders::create", "shop", "inv-1", status, parts, 1000, 2.5, 0)


def test_envelope_carries_what_is_captured() -> None:
    spec = spec_of({"capture": ["input", "error", "metadata"]})
    ev = event(
        "error", input={"n": 1}, error={"code": "boom"}, caller={"worker_id": "w"}
    )
    assert payload(spec, ev, "act-1") == {
        "observer_id": "obs-1",
        "activation_id": "act-1",
        "function_id": "orders::create",
        "namespace": "shop",
        "invocation_id": "inv-1",
        "status": "error",
        "input": {"n": 1},
        "error": {"code": "boom"},  # metadata absent: not part of the event
        "started_at_ms": 1000,
        "duration_ms": 2.5,
    }
    assert payload(spec_of({"deliver": "input"}), ev, "a") == {"n": 1}
    assert payload(spec_of({"deliver": "output"}), ev, "a") is None  # failed: none
    assert payload(spec_of({}), event(output=None), "a")["output"] is None


def test_on_and_filters() -> None:
    ok, failed = event(input={"n": 5}, output=1), event("error", input={"n": 5})
    assert ok.accepted_by(spec_of({})) and not failed.accepted_by(spec_of({}))
    assert failed.accepted_by(spec_of({"on": "error"}))
    assert not ok.accepted_by(spec_of({"on": "error"}))
    both = spec_of({"on": "complete", "filters": {"input.n": {"$gt": 4}}})
    assert ok.accepted_by(both) and failed.accepted_by(both)
    assert not event(input={"n": 1}).accepted_by(both)


def test_callers() -> None:
    asserted = clean_caller(
        {
            "function_id": "shop::checkout",
            "invocation_id": "i-1",
            "worker_id": 5,  # not a string: dropped
            "parent": {"worker_name": "web", "parent": {"worker_name": "deeper"}},
        }
    )
    assert asserted == {
        "function_id": "shop::checkout",
        "invocation_id": "i-1",
        "parent": {"worker_name": "web"},  # one level only
    }
    assert clean_caller("x") is None
    stamped = stamp_caller("w-1", "web", {**asserted, "worker_id": "forged"})
    assert stamped == {
        "worker_id": "w-1",
        "worker_name": "web",
        "function_id": "shop::checkout",
        "invocation_id": "i-1",
        "parent": {"worker_name": "web"},
    }
    assert stamp_caller(None, None, None) is None
    assert stamp_caller("w-1", None, None) == {"worker_id": "w-1"}
    ev = event(caller={"worker_id": "w-1", "function_id": "f", "parent": {"x": 1}})
    assert activation_caller(ev) == {
        "worker_name": "iii-engine",
        "function_id": "orders::create",
        "invocation_id": "inv-1",
        "parent": {"worker_id": "w-1", "function_id": "f"},
    }


def test_legacy_spec_and_observed_items() -> None:
    spec = legacy_spec(
        "t-1",
        "webhook",
        ("default", "hooks::in"),
        ("default", "a::b"),
        {"path": "/x"},
        {"m": 1},
    )
    assert spec.args == {"path": "/x"} and spec.deliver == "input"
    assert spec.info()["legacy"] == {
        "trigger_type": "webhook",
        "config": {"path": "/x"},
    }
    assert "metadata" not in spec.info()  # never shown to the owner
    item = observed_item(
        "f", None, "i", "weird", {"input": 1, "caller": "x"}, 10.7, 1, -3
    )
    assert (item.namespace, item.status, item.started_at_ms, item.observe_depth) == (
        "default",
        "success",
        10,
        0,
    )
    assert item.parts == {"input": 1}
