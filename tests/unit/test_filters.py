"""``engine.filters``: the observer filter language.

Hand-written cases pin the rules; a seeded random corpus then checks that the
engine and the 0.25 Python SDK (which evaluates the same filters on an owner's
side) accept the same filters and answer the same on the same documents.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from iii.filter import FilterError as SdkFilterError
from iii.filter import compile_filter

from engine.filters import MATCH_ALL, FilterError, parse_filter

DOC = {
    "input": {"amount": 750, "sku": "A-17", "tags": ["red", "big"], "n": None},
    "output": {"charged": 750, "items": [{"qty": 2}, {"qty": 5}]},
    "caller": {"function_id": "shop::checkout", "worker_name": "web"},
    "metadata": {"a.b": 1},
}


@pytest.mark.parametrize(
    ("src", "expected"),
    [
        ({}, True),
        ({"input.amount": {"$gte": 500}}, True),
        ({"input.amount": {"$gt": 750}}, False),
        ({"input.amount": {"$eq": 750.0}}, True),  # numbers compare as doubles
        ({"input.amount": {"$eq": "750"}}, False),  # no coercion
        ({"input.sku": {"$prefix": "A-"}}, True),
        ({"input.sku": {"$lt": "B"}}, True),  # strings order by code point
        ({"input.sku": {"$lt": 5}}, False),  # a string is not a number
        ({"input.n": {"$exists": True}}, True),  # null is a value
        ({"input.n": {"$eq": None}}, True),
        ({"input.missing": {"$exists": False}}, True),
        ({"input.missing": {"$ne": 1}}, True),  # absent is not equal
        ({"input.missing": {"$nin": [1]}}, True),
        ({"input.missing": {"$in": [None]}}, False),  # absent is not null
        ({"error": {"$exists": True}}, False),
        ({"output.items.1.qty": {"$eq": 5}}, True),  # array index
        ({"output.items.01.qty": {"$eq": 5}}, False),  # not a canonical index
        ({"output.items": {"$any": {"@.qty": {"$gt": 4}}}}, True),
        ({"output.items": {"$any": {"@.qty": {"$gt": 5}}}}, False),
        ({"input.tags": {"$any": {"$eq": "big"}}}, True),
        ({"input.tags": {"$any": {}}}, True),  # any non-empty array
        ({"input.sku": {"$any": {}}}, False),  # not an array
        ({"metadata.a\\.b": {"$eq": 1}}, True),  # escaped dot
        (
            {
                "$or": [
                    {"input.amount": {"$lt": 0}},
                    {"caller.worker_name": {"$eq": "web"}},
                ]
            },
            True,
        ),
        ({"$not": {"input.amount": {"$gte": 500}}}, False),
        (
            {"$and": [{"input.amount": {"$gte": 500}}, {"output.charged": {"$eq": 1}}]},
            False,
        ),
        ({"input.amount": {"$in": [1, 750]}, "input.sku": {"$eq": "A-17"}}, True),
        ({"input.tags": {"$eq": ["red", "big"]}}, True),
        ({"input.tags": {"$eq": ["big", "red"]}}, False),  # array order counts
        ({"output.items.0": {"$eq": {"qty": 2}}}, True),
        ({"output.items.0": {"$eq": {"qty": 2, "x": 1}}}, False),
    ],
)
def test_matches(src: dict[str, Any], expected: bool) -> None:
    assert parse_filter(src).matches(DOC) is expected
    assert compile_filter(src).matches(DOC) is expected  # the SDK agrees


@pytest.mark.parametrize(
    "src",
    [
        {"input.op": "insert"},  # a literal instead of an operator object
        {"input.op": {}},
        {"input.op": {"$eq": 1, "plain": 2}},
        {"input.op": {"$regex": "x"}},
        {"$eq": 1},  # an operator needs a path
        {"$nor": []},
        {"$or": []},
        {"$and": {}},
        {"$not": []},
        {"body.x": {"$eq": 1}},  # unknown root
        {"@.x": {"$eq": 1}},  # @ outside $any
        {"input.tags": {"$any": {"input.x": {"$eq": 1}}}},  # only @ inside $any
        {"input..x": {"$eq": 1}},
        {"input.x\\y": {"$eq": 1}},
        {"input.x": {"$gt": True}},
        {"input.x": {"$in": "a"}},
        {"input.x": {"$exists": 1}},
        {"input.x": {"$prefix": 1}},
        {"input.x": {"$eq": 2**53 + 1}},
        {"input.x": {"$in": list(range(257))}},
        {"input." + ".".join("a" * 17): {"$eq": 1}},
        {"input.x": {"$eq": "x" * 9000}},
        {"input.x": {"$and": []}},
        [],
        "input.x",
    ],
)
def test_refused(src: Any) -> None:
    with pytest.raises(FilterError):
        parse_filter(src)
    with pytest.raises(SdkFilterError):
        compile_filter(src)


def test_depth_and_node_limits() -> None:
    nested: dict[str, Any] = {"input.x": {"$eq": 1}}
    for _ in range(7):
        nested = {"$not": nested}
    parse_filter(nested)  # 8 levels
    with pytest.raises(FilterError):
        parse_filter({"$not": nested})  # 9
    many = {f"input.k{i}": {"$eq": i} for i in range(64)}
    parse_filter(many)
    with pytest.raises(FilterError):
        parse_filter({**many, "input.k64": {"$eq": 0}})


def test_normal_form_is_a_flat_conjunction() -> None:
    f = parse_filter({"input.n": {"$gte": 2}})
    assert f.normal == {"$and": [{"input.n": {"$gte": 2}}]}
    f = parse_filter({"input.a": {"$eq": 1}, "$and": [{"input.b": {"$eq": 2}}]})
    assert f.normal == {"$and": [{"input.a": {"$eq": 1}}, {"input.b": {"$eq": 2}}]}
    assert parse_filter({}).normal == {} and parse_filter(None) is MATCH_ALL
    # the normal form means the same, for the SDK too
    sdk = compile_filter(f.normal, trusted=True)
    for doc in ({"input": {"a": 1, "b": 2}}, {"input": {"a": 1}}):
        assert (
            sdk.matches(doc) is f.matches(doc) is compile_filter(f.normal).matches(doc)
        )


# -- the random corpus ---------------------------------------------------------

PATHS = [
    "input",
    "input.a",
    "input.b.c",
    "input.list",
    "input.list.0",
    "output.x",
    "caller.worker_name",
    "metadata.m",
    "error.code",
]
LITERALS: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    1.5,
    -2,
    "a",
    "ab",
    "b",
    "",
    [1, 2],
    {"k": 1},
    [],
    {},
]


def _ops(rng: random.Random, depth: int) -> dict[str, Any]:
    ops: dict[str, Any] = {}
    for _ in range(rng.randint(1, 2)):
        name = rng.choice(
            [
                "$eq",
                "$ne",
                "$in",
                "$nin",
                "$gt",
                "$gte",
                "$lt",
                "$lte",
                "$exists",
                "$prefix",
                "$any",
            ]
        )
        if name in ("$eq", "$ne"):
            ops[name] = rng.choice(LITERALS)
        elif name in ("$in", "$nin"):
            ops[name] = rng.sample(LITERALS, 3)
        elif name in ("$gt", "$gte", "$lt", "$lte"):
            ops[name] = rng.choice([0, 1, 1.5, "a", "b"])
        elif name == "$exists":
            ops[name] = rng.choice([True, False])
        elif name == "$prefix":
            ops[name] = rng.choice(["", "a"])
        elif depth < 3:
            ops[name] = rng.choice(
                [{"$gt": 0}, {"@": {"$eq": 1}}, {}, {"@.k": {"$exists": True}}]
            )
    return ops or {"$exists": True}


def _filter(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for _ in range(rng.randint(0 if depth else 1, 3)):
        kind = rng.random()
        if kind < 0.6 or depth >= 3:
            out[rng.choice(PATHS)] = _ops(rng, depth)
        elif kind < 0.75:
            out["$or"] = [_filter(rng, depth + 1) for _ in range(rng.randint(1, 2))]
        elif kind < 0.9:
            out["$not"] = _filter(rng, depth + 1)
        else:
            out["$and"] = [_filter(rng, depth + 1)]
    return out


def _value(rng: random.Random, depth: int = 0) -> Any:
    if depth < 2 and rng.random() < 0.4:
        if rng.random() < 0.5:
            return [_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
        return {
            k: _value(rng, depth + 1) for k in rng.sample(["a", "b", "c", "k", "0"], 2)
        }
    return rng.choice(LITERALS[:11])


def _doc(rng: random.Random) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for root in ("input", "output", "error", "caller", "metadata"):
        if rng.random() < 0.7:
            doc[root] = {
                "a": _value(rng),
                "b": {"c": _value(rng)},
                "list": [_value(rng), {"k": _value(rng)}],
                "x": _value(rng),
                "m": _value(rng),
                "code": _value(rng),
                "worker_name": rng.choice(["a", "b"]),
            }
    return doc


def test_agrees_with_the_sdk_on_a_random_corpus() -> None:
    rng = random.Random(2025)
    compared = 0
    for _ in range(400):
        src = _filter(rng)
        try:
            sdk = compile_filter(src)
        except SdkFilterError:
            with pytest.raises(FilterError):
                parse_filter(src)
            continue
        ours = parse_filter(src)
        trusted = compile_filter(ours.normal, trusted=True)
        for _ in range(10):
            doc = _doc(rng)
            assert ours.matches(doc) is sdk.matches(doc) is trusted.matches(doc), (
                src,
                doc,
            )
            compared += 1
    assert compared > 2000
