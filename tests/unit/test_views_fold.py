"""The inline-view fold: given records, then rows (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from eventlog import Kind, Record
from projections.views import fold, rows


def rec(
    offset: int,
    kind: Kind,
    key: str,
    new: Any = None,
    exists: bool = True,
    scope: str = "s",
    group: str | None = None,
) -> Record:
    return Record(
        offset=offset,
        ts=0,
        kind=kind,
        scope=scope,
        group=group,
        key=key,
        new_value=new,
        exists=exists,
    )


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        ([], []),
        (
            [rec(1, "state.set", "a", 1), rec(2, "state.set", "b", 2)],
            [("s", "", "a", 1), ("s", "", "b", 2)],
        ),
        (
            [
                rec(1, "state.set", "a", 1),
                rec(2, "state.set", "b", 2),
                rec(3, "state.update", "a", {"x": 1}),
            ],
            [("s", "", "a", {"x": 1}), ("s", "", "b", 2)],
        ),
        (
            [
                rec(1, "state.set", "a", 1),
                rec(2, "state.set", "b", 2),
                rec(3, "state.delete", "a", exists=False),
                rec(4, "state.set", "a", 3),
            ],
            [("s", "", "b", 2), ("s", "", "a", 3)],
        ),
        ([rec(1, "state.delete", "ghost", exists=False)], []),
    ],
)
def test_state_fold(records: list[Record], expected: list[Any]) -> None:
    assert rows(fold(records), "state") == expected


def test_spaces_are_separate_and_sends_do_not_count() -> None:
    state = fold(
        [
            rec(1, "stream.set", "i", {"v": 1}, group="g"),
            rec(2, "stream.send", "", {"e": 1}, group="g"),
            rec(3, "state.set", "i", 5),
        ]
    )
    assert rows(state, "stream") == [("s", "g", "i", {"v": 1})]
    assert rows(state, "state") == [("s", "", "i", 5)]
