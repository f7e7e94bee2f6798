"""todos and todo-metrics folds: given records, then state (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from eventlog import Kind, Record
from projections.todo_metrics import TodoMetrics
from projections.todos import Todos


def rec(
    offset: int,
    kind: Kind,
    key: str,
    old: Any = None,
    new: Any = None,
    scope: str = "todos",
) -> Record:
    return Record(
        offset=offset,
        ts=0,
        kind=kind,
        scope=scope,
        key=key,
        existed=old is not None,
        old_value=old,
        exists=not kind.endswith("delete"),
        new_value=new,
    )


T = {"completed": True}
F = {"completed": False}

METRICS: list[tuple[str, list[Record], dict[str, int]]] = [
    ("nothing", [], {"total": 0, "completed": 0}),
    ("created open", [rec(1, "state.set", "a", None, F)], {"total": 1, "completed": 0}),
    ("created done", [rec(1, "state.set", "a", None, T)], {"total": 1, "completed": 1}),
    (
        "toggled on and off",
        [
            rec(1, "state.set", "a", None, F),
            rec(2, "state.update", "a", F, T),
            rec(3, "state.update", "a", T, F),
            rec(4, "state.update", "a", F, T),
        ],
        {"total": 1, "completed": 1},
    ),
    (
        "deleted done",
        [rec(1, "state.set", "a", None, T), rec(2, "state.delete", "a", T, None)],
        {"total": 0, "completed": 0},
    ),
    (
        "delete of nothing",
        [rec(1, "state.delete", "x", None, None)],
        {"total": 0, "completed": 0},
    ),
    (
        "other scopes ignored",
        [rec(1, "state.set", "a", None, T, scope="other")],
        {"total": 0, "completed": 0},
    ),
    (
        "overwrite keeps count",
        [rec(1, "state.set", "a", None, F), rec(2, "state.set", "a", F, T)],
        {"total": 1, "completed": 1},
    ),
]


@pytest.mark.parametrize(
    ("records", "expected"), [c[1:] for c in METRICS], ids=[c[0] for c in METRICS]
)
def test_todo_metrics(records: list[Record], expected: dict[str, int]) -> None:
    p = TodoMetrics()
    state = p.initial()
    for r in records:
        if p.accepts(r):
            state = p.apply(state, r)
    assert state == expected


def test_todos_keep_list_order() -> None:
    p = Todos()
    state = p.initial()
    for r in [
        rec(1, "state.set", "b", None, 1),
        rec(2, "state.set", "a", None, 2),
        rec(3, "state.set", "b", 1, 3),
        rec(4, "state.delete", "a", 2),
        rec(5, "state.set", "a", None, 4),
    ]:
        state = p.apply(state, r)
    assert list(state.items()) == [("b", 3), ("a", 4)]
