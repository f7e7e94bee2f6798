"""Update ops (iii's ``state::update`` ops): given a start value and ops, then a
result and error codes. Pure, sync, no fixtures."""

from __future__ import annotations

from typing import Any

import pytest

from engine.ops import DOC_URL, OpsDecodeError, apply_ops, parse_ops

MISSING = object()


def nest(depth: int) -> dict[str, Any]:
    """``{"a": {"a": ... 1}}`` with ``depth`` object levels."""
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value  # type: ignore[no-any-return]


CASES: list[tuple[str, Any, list[dict[str, Any]], Any, list[str]]] = [
    # id, start (MISSING = key absent), ops, expected new value, error codes
    ("set root on missing", MISSING, [{"type": "set", "path": "", "value": 5}], 5, []),
    (
        "set field on missing starts from {}",
        MISSING,
        [{"type": "set", "path": "a", "value": 1}],
        {"a": 1},
        [],
    ),
    (
        "set absent value is null",
        {"a": 1},
        [{"type": "set", "path": "a"}],
        {"a": None},
        [],
    ),
    (
        "dots are literal keys",
        {},
        [{"type": "set", "path": "a.b", "value": 1}],
        {"a.b": 1},
        [],
    ),
    (
        "set on non-object",
        3,
        [{"type": "set", "path": "a", "value": 1}],
        3,
        ["set.target_not_object"],
    ),
    (
        "merge root into object",
        {"a": 1, "b": 1},
        [{"type": "merge", "value": {"b": 2, "c": 3}}],
        {"a": 1, "b": 2, "c": 3},
        [],
    ),
    (
        "merge root is shallow",
        {"a": {"x": 1}},
        [{"type": "merge", "path": "", "value": {"a": {"y": 2}}}],
        {"a": {"y": 2}},
        [],
    ),
    (
        "merge root into non-object is silently ignored",
        [1],
        [{"type": "merge", "value": {"a": 1}}],
        [1],
        [],
    ),
    (
        "merge [] path means root",
        {"a": 1},
        [{"type": "merge", "path": [], "value": {"b": 2}}],
        {"a": 1, "b": 2},
        [],
    ),
    (
        "merge nested creates intermediates",
        {},
        [{"type": "merge", "path": ["a", "b"], "value": {"c": 1}}],
        {"a": {"b": {"c": 1}}},
        [],
    ),
    (
        "merge nested replaces non-object intermediates",
        {"a": 5},
        [{"type": "merge", "path": ["a", "b"], "value": {"c": 1}}],
        {"a": {"b": {"c": 1}}},
        [],
    ),
    (
        "merge nested on non-object root replaces it",
        7,
        [{"type": "merge", "path": "a", "value": {"c": 1}}],
        {"a": {"c": 1}},
        [],
    ),
    (
        "merge value must be object",
        {},
        [{"type": "merge", "value": 1}],
        {},
        ["merge.value.not_an_object"],
    ),
    (
        "merge proto key",
        {},
        [{"type": "merge", "value": {"__proto__": 1}}],
        {},
        ["merge.value.proto_polluted"],
    ),
    (
        "merge too many keys",
        {},
        [{"type": "merge", "value": {f"k{i}": i for i in range(1025)}}],
        {},
        ["merge.value.too_many_keys"],
    ),
    (
        "merge depth 16 is fine",
        {},
        [{"type": "merge", "value": nest(16)}],
        nest(16),
        [],
    ),
    (
        "merge depth 17 is too deep",
        {},
        [{"type": "merge", "value": nest(17)}],
        {},
        ["merge.value.too_deep"],
    ),
    (
        "increment missing field",
        {},
        [{"type": "increment", "path": "n", "by": 2}],
        {"n": 2},
        [],
    ),
    (
        "decrement missing field",
        {},
        [{"type": "decrement", "path": "n", "by": 2}],
        {"n": -2},
        [],
    ),
    (
        "increment existing int stays int",
        {"n": 1},
        [{"type": "increment", "path": "n", "by": 1}],
        {"n": 2},
        [],
    ),
    (
        "increment float stays float",
        {"n": 1.5},
        [{"type": "increment", "path": "n", "by": 1}],
        {"n": 2.5},
        [],
    ),
    (
        "increment root of missing key",
        MISSING,
        [{"type": "increment", "path": "", "by": 3}],
        3,
        [],
    ),
    (
        "decrement root of missing key",
        MISSING,
        [{"type": "decrement", "path": "", "by": 3}],
        -3,
        [],
    ),
    ("increment root number", 10, [{"type": "increment", "path": "", "by": 5}], 15, []),
    (
        "increment root of existing object fails",
        {},
        [{"type": "increment", "path": "", "by": 1}],
        {},
        ["increment.not_number"],
    ),
    (
        "increment null field fails",
        {"n": None},
        [{"type": "increment", "path": "n", "by": 1}],
        {"n": None},
        ["increment.not_number"],
    ),
    (
        "increment string field fails",
        {"n": "1"},
        [{"type": "increment", "path": "n", "by": 1}],
        {"n": "1"},
        ["increment.not_number"],
    ),
    (
        "increment bool field fails",
        {"n": True},
        [{"type": "increment", "path": "n", "by": 1}],
        {"n": True},
        ["increment.not_number"],
    ),
    (
        "increment overflow",
        {"n": 2**63 - 1},
        [{"type": "increment", "path": "n", "by": 1}],
        {"n": 2**63 - 1},
        ["increment.not_number"],
    ),
    (
        "increment on non-object",
        [1],
        [{"type": "increment", "path": "n", "by": 1}],
        [1],
        ["increment.target_not_object"],
    ),
    (
        "decrement on non-object",
        "s",
        [{"type": "decrement", "path": "n", "by": 1}],
        "s",
        ["decrement.target_not_object"],
    ),
    (
        "append root of missing: string",
        MISSING,
        [{"type": "append", "value": "ab"}],
        "ab",
        [],
    ),
    (
        "append root of missing: non-string",
        MISSING,
        [{"type": "append", "value": 1}],
        [1],
        [],
    ),
    ("append root to array", [1], [{"type": "append", "value": [2]}], [1, [2]], []),
    (
        "append root of existing object fails",
        {},
        [{"type": "append", "value": 1}],
        {},
        ["append.type_mismatch"],
    ),
    (
        "append field missing: string",
        {},
        [{"type": "append", "path": "s", "value": "x"}],
        {"s": "x"},
        [],
    ),
    (
        "append field missing: array for others",
        {},
        [{"type": "append", "path": ["e"], "value": 1}],
        {"e": [1]},
        [],
    ),
    (
        "append string concatenates",
        {"s": "ab"},
        [{"type": "append", "path": "s", "value": "cd"}],
        {"s": "abcd"},
        [],
    ),
    (
        "append non-string to string",
        {"s": "ab"},
        [{"type": "append", "path": "s", "value": 1}],
        {"s": "ab"},
        ["append.type_mismatch"],
    ),
    (
        "append to null field",
        {"s": None},
        [{"type": "append", "path": "s", "value": 1}],
        {"s": [1]},
        [],
    ),
    (
        "append to number field",
        {"s": 1},
        [{"type": "append", "path": "s", "value": 1}],
        {"s": 1},
        ["append.type_mismatch"],
    ),
    (
        "append nested leaf missing is always an array",
        {},
        [{"type": "append", "path": ["a", "b"], "value": "x"}],
        {"a": {"b": ["x"]}},
        [],
    ),
    (
        "append nested replaces intermediates",
        {"a": 3},
        [{"type": "append", "path": ["a", "b"], "value": 1}],
        {"a": {"b": [1]}},
        [],
    ),
    (
        "append on non-object",
        1,
        [{"type": "append", "path": "a", "value": 1}],
        1,
        ["append.target_not_object"],
    ),
    ("remove field", {"a": 1, "b": 2}, [{"type": "remove", "path": "a"}], {"b": 2}, []),
    (
        "remove missing field is fine",
        {"b": 2},
        [{"type": "remove", "path": "a"}],
        {"b": 2},
        [],
    ),
    ("remove root", {"a": 1}, [{"type": "remove", "path": ""}], None, []),
    (
        "remove on non-object",
        1,
        [{"type": "remove", "path": "a"}],
        1,
        ["remove.target_not_object"],
    ),
    ("empty ops on missing key writes {}", MISSING, [], {}, []),
    (
        "best effort: later ops run after a failure",
        {"n": "x"},
        [
            {"type": "increment", "path": "n", "by": 1},
            {"type": "set", "path": "m", "value": 1},
        ],
        {"n": "x", "m": 1},
        ["increment.not_number"],
    ),
    (
        "path too deep",
        {},
        [{"type": "merge", "path": ["a"] * 33, "value": {}}],
        {},
        ["merge.path.too_deep"],
    ),
    (
        "empty segment in array path",
        {},
        [{"type": "append", "path": ["a", ""], "value": 1}],
        {},
        ["append.path.empty_segment"],
    ),
    (
        "segment too long",
        {},
        [{"type": "set", "path": "x" * 257, "value": 1}],
        {},
        ["set.path.segment_too_long"],
    ),
    (
        "proto segment",
        {},
        [{"type": "set", "path": "constructor", "value": 1}],
        {},
        ["set.path.proto_polluted"],
    ),
    (
        "missing flag cleared after first success",
        MISSING,
        [
            {"type": "set", "path": "a", "value": 1},
            {"type": "increment", "path": "", "by": 1},
        ],
        {"a": 1},
        ["increment.not_number"],
    ),
]


@pytest.mark.parametrize(
    ("start", "ops", "expected", "codes"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_apply_ops(
    start: Any, ops: list[dict[str, Any]], expected: Any, codes: list[str]
) -> None:
    exists = start is not MISSING
    new, errors = apply_ops(start if exists else None, exists, parse_ops(ops))
    assert new == expected
    assert [e["code"] for e in errors] == codes
    for index, error in enumerate(errors):
        assert error["doc_url"] == DOC_URL
        assert isinstance(error["message"], str) and error["message"]
        assert isinstance(error["op_index"], int)
        assert index == 0 or error["op_index"] > errors[index - 1]["op_index"]


def test_input_is_never_mutated() -> None:
    start = {"a": {"b": [1]}, "n": 1}
    snapshot = {"a": {"b": [1]}, "n": 1}
    apply_ops(
        start,
        True,
        parse_ops(
            [
                {"type": "append", "path": ["a", "b"], "value": 2},
                {"type": "increment", "path": "n", "by": 1},
                {"type": "merge", "path": "a", "value": {"c": 1}},
            ]
        ),
    )
    assert start == snapshot


@pytest.mark.parametrize(
    ("template", "ops"),
    [
        (
            "Cannot append at path 'count': target is number, expected array, string, "
            "null, or missing field.",
            [{"type": "append", "path": "count", "value": 1}],
        ),
        (
            "Expected number at path 'tags', got string.",
            [{"type": "increment", "path": "tags", "by": 1}],
        ),
        (
            "Expected string append value at path 'tags', got number.",
            [{"type": "append", "path": "tags", "value": 5}],
        ),
        (
            "Cannot append at path '[a, b]': target is number, expected array, string, "
            "null, or missing field.",
            [{"type": "append", "path": ["a", "b"], "value": 1}],
        ),
    ],
)
def test_error_messages(template: str, ops: list[dict[str, Any]]) -> None:
    start = {"count": 1, "tags": "x", "a": {"b": 2}}
    _, errors = apply_ops(start, True, parse_ops(ops))
    assert errors[0]["message"] == template


def test_set_error_message_names_root() -> None:
    _, errors = apply_ops(
        5, True, parse_ops([{"type": "set", "path": "a", "value": 1}])
    )
    assert errors[0]["message"] == (
        "Cannot set at path 'a': target is number, expected object."
    )
    _, errors = apply_ops(
        {}, True, parse_ops([{"type": "increment", "path": "", "by": 1}])
    )
    assert errors[0]["message"] == "Expected number at path 'root', got object."


@pytest.mark.parametrize(
    "ops",
    [
        "not a list",
        [1],
        [{"type": "frobnicate", "path": "a"}],
        [{"type": "increment", "path": "n", "by": 1.5}],
        [{"type": "increment", "path": "n", "by": 1.0}],
        [{"type": "increment", "path": "n", "by": True}],
        [{"type": "increment", "path": "n"}],
        [{"type": "increment", "path": ["n"], "by": 1}],
        [{"type": "set", "value": 1}],
        [{"type": "set", "path": 3, "value": 1}],
        [{"type": "remove"}],
        [{"type": "merge", "path": ["a", 1], "value": {}}],
        [{"type": "append", "path": 5, "value": 1}],
        [{"path": "a"}],
    ],
)
def test_bad_shapes_reject_the_whole_call(ops: Any) -> None:
    with pytest.raises(OpsDecodeError):
        parse_ops(ops)
