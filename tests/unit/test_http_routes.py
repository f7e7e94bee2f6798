"""Route matching, conflicts and response shaping (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from engine.errors import TriggerRegistrationFailed
from engine.http_routes import (
    RouteTable,
    is_response_shaped,
    parse_route,
    shape_response,
)


def table(*specs: tuple[str, str]) -> RouteTable:
    t = RouteTable()
    for i, (method, path) in enumerate(specs):
        t.add(parse_route(f"t{i}", f"f{i}", {"api_path": path, "http_method": method}))
    return t


def test_match_params_static_and_methods() -> None:
    t = table(("GET", "orders/:id"), ("GET", "/orders/special"), ("POST", "orders"))
    route, exists, params = t.match("GET", "/orders/42")
    assert route is not None and route.function_id == "f0" and params == {"id": "42"}
    route, _, params = t.match("GET", "/orders/special")
    assert route is not None and route.function_id == "f1" and params == {}
    route, exists, _ = t.match("DELETE", "/orders")
    assert route is None and exists
    route, exists, _ = t.match("GET", "/nothing")
    assert route is None and not exists
    route, _, _ = t.match("HEAD", "/orders/1")
    assert route is not None and route.method == "GET"
    assert t.match("GET", "/orders/42/")[0] is None  # no trailing-slash folding


def test_methods_of_a_path() -> None:
    """What a 405 lists in ``Allow``: every route matching the path."""
    t = table(
        ("GET", "orders/:id"),
        ("DELETE", "/orders/special"),
        ("PUT", "orders/:id"),
        ("POST", "orders"),
    )
    assert t.methods("/orders/special") == {"GET", "HEAD", "PUT", "DELETE"}
    assert t.methods("/orders/7") == {"GET", "HEAD", "PUT"}
    assert t.methods("/orders") == {"POST"}
    assert t.methods("/nothing") == set()


def test_same_key_replaces_and_conflict_rejected() -> None:
    t = table(("GET", "a/:x/:y"))
    t.add(parse_route("t9", "f9", {"api_path": "/a/:x/:y"}))
    assert t.match("GET", "/a/1/2")[0].function_id == "f9"  # type: ignore[union-attr]
    with pytest.raises(
        TriggerRegistrationFailed, match="conflicts with already-registered route"
    ):
        t.add(parse_route("t8", "f8", {"api_path": "a/:y/:x"}))
    t.add(parse_route("t7", "f7", {"api_path": "a/:y/:x", "http_method": "post"}))


@pytest.mark.parametrize(
    "config",
    [
        None,
        {},
        {"api_path": ""},
        {"api_path": 3},
        {"api_path": "a", "http_method": 1},
        {"api_path": "a", "middleware_function_ids": "m"},
    ],
)
def test_bad_config(config: Any) -> None:
    with pytest.raises(TriggerRegistrationFailed):
        parse_route("t", "f", config)


@pytest.mark.parametrize(
    ("result", "shaped"),
    [
        ({"status_code": 201}, True),
        ({"statusCode": 201}, True),
        ({"body": 1}, True),
        ({"headers": {}, "body": 1}, True),
        ({"headers": {}}, False),
        ({"title": "x"}, False),
        ({}, False),
        ([1], False),
        (None, False),
        ("s", False),
    ],
)
def test_response_shaped(result: Any, shaped: bool) -> None:
    assert is_response_shaped(result) is shaped


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (
            {"status_code": 201, "body": {"a": 1}},
            (201, [("content-type", "application/json")], b'{"a":1}'),
        ),
        ({"status_code": 200}, (200, [("content-type", "application/json")], b"{}")),
        (
            {"status_code": 99, "body": "x"},
            (200, [("content-type", "application/json")], b'"x"'),
        ),
        (
            {"headers": {"Content-Type": "text/plain", "X": 1}, "body": "hi"},
            (200, [("Content-Type", "text/plain")], b"hi"),
        ),
        (
            {"headers": {"content-type": "text/plain"}, "body": None},
            (200, [("content-type", "text/plain")], b""),
        ),
        (
            {"headers": {"content-type": "text/csv"}, "body": [1]},
            (200, [("content-type", "text/csv")], b"[1]"),
        ),
        ({"a": 1}, (200, [("content-type", "application/json")], b'{"a":1}')),
        (None, (200, [("content-type", "application/json")], b"null")),
    ],
)
def test_shape_response(result: Any, expected: Any) -> None:
    assert shape_response(result) == expected


def test_iii_strict_mode_sends_empty_object() -> None:
    assert shape_response({"a": 1}, plain_results=False)[2] == b"{}"
