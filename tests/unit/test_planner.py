"""The batch planner, without a database: given the current view rows, the tags
already applied and the head, what one group commit writes."""

from __future__ import annotations

from typing import Any

import pytest

from eventlog import Mutation, Origin, Outcome, Record
from eventlog.codec import dumps
from eventlog.planner import plan_batch

TS = 1_700_000_000_000


def put(key: str, value: Any, scope: str = "s", **kw: Any) -> Mutation:
    return Mutation(
        "state.set", scope, None, key, lambda _e, _o: Outcome(True, value), **kw
    )


def remove(key: str) -> Mutation:
    return Mutation(
        "state.delete", "s", None, key, lambda e, _o: Outcome(False, record=e)
    )


def add_one(key: str) -> Mutation:
    return Mutation(
        "state.update",
        "s",
        None,
        key,
        lambda e, old: Outcome(True, (old if e else 0) + 1, ops=[{"type": "inc"}]),
    )


def row(
    key: str, value: Any, pos: int
) -> tuple[tuple[str, str, str, str], tuple[str, int]]:
    return ("state", "s", "", key), (dumps(value), pos)


@pytest.mark.parametrize(
    ("current", "batch", "head", "records", "deletes", "upserts"),
    [
        pytest.param(
            {},
            [put("a", 1), put("b", 2)],
            0,
            [(1, "a", False, None, 1), (2, "b", False, None, 2)],
            [],
            [("a", 1, 1), ("b", 2, 2)],
            id="two creates take head+1 and head+2",
        ),
        pytest.param(
            dict([row("a", 1, 3)]),
            [put("a", 5)],
            10,
            [(11, "a", True, 1, 5)],
            [],
            [("a", 5, 3)],
            id="an overwrite keeps its list position",
        ),
        pytest.param(
            dict([row("a", 1, 3)]),
            [add_one("a"), add_one("a"), add_one("a")],
            7,
            [(8, "a", True, 1, 2), (9, "a", True, 2, 3), (10, "a", True, 3, 4)],
            [],
            [("a", 4, 3)],
            id="later updates of a key see the earlier ones",
        ),
        pytest.param(
            dict([row("a", 1, 3)]),
            [remove("a")],
            4,
            [(5, "a", True, 1, None)],
            ["a"],
            [],
            id="a delete removes the view row",
        ),
        pytest.param(
            {},
            [remove("nothing")],
            4,
            [],
            [],
            [],
            id="deleting nothing writes nothing",
        ),
        pytest.param(
            dict([row("a", 1, 3)]),
            [remove("a"), put("a", 2)],
            4,
            [(5, "a", True, 1, None), (6, "a", False, None, 2)],
            [],
            [("a", 2, 6)],
            id="deleted and created again: inserted anew at the end",
        ),
    ],
)
def test_plans(
    current: dict[Any, Any],
    batch: list[Mutation],
    head: int,
    records: list[tuple[Any, ...]],
    deletes: list[str],
    upserts: list[tuple[str, Any, int]],
) -> None:
    plan = plan_batch(batch, current, {}, head, TS)
    got = [
        (r.offset, r.key, r.existed, r.old_value, r.new_value) for r in plan.result.new
    ]
    assert got == records
    assert [r[0] for r in plan.rows] == [r[0] for r in records]
    assert [a[3] for a in plan.view_deletes] == deletes
    assert [(u[3], u[4], u[5]) for u in plan.view_upserts] == [
        (k, dumps(v), p) for k, v, p in upserts
    ]
    assert plan.head == (records[-1][0] if records else None)
    assert len(plan.result.results) == len(batch)


def test_rows_carry_what_records_lack_in_extra() -> None:
    origin = Origin(worker_id="w", function_id="f")
    send = Mutation(
        "stream.send",
        "live",
        "all",
        None,
        lambda _e, _o: Outcome(True, {"x": 1}, event_type="ping", touches_view=False),
        origin,
    )
    plan = plan_batch([put("a", 1), send], {}, {}, 0, TS)
    plain, sent = plan.rows
    assert plain == (1, TS, "state.set", "s", None, "a", None, "1", None)
    assert sent[:8] == (2, TS, "stream.send", "live", "all", None, None, '{"x":1}')
    assert sent[8] == dumps(
        {"event_type": "ping", "in_view": False, "origin": origin.to_dict()}
    )
    assert plan.view_upserts == [("state", "s", "", "a", "1", 1)]  # not the send


def test_a_compute_that_raises_fails_only_its_mutation() -> None:
    def broken(_e: bool, _o: Any) -> Outcome:
        raise KeyError("bug")

    plan = plan_batch(
        [put("a", 1), Mutation("state.set", "s", None, "b", broken), put("c", 3)],
        {},
        {},
        0,
        TS,
    )
    assert isinstance(plan.result.results[1], KeyError)
    assert [r.offset for r in plan.result.new] == [1, 2]
    assert [r[5] for r in plan.rows] == ["a", "c"]


def test_a_tag_applied_before_returns_its_first_record() -> None:
    first = Record(4, TS, "state.set", "s", None, "a", new_value=1)
    plan = plan_batch(
        [
            put("a", 2, dedupe=("t", 0)),
            put("b", 3, dedupe=("t", 1)),
            put("b", 4, dedupe=("t", 1)),
        ],
        {},
        {("t", 0): first},
        9,
        TS,
    )
    assert plan.result.results[0] is first
    assert [r.offset for r in plan.result.new] == [10]  # the second (t, 1) is a repeat
    assert plan.result.results[2] is plan.result.results[1]
    assert plan.tags == [("t", 1, 10, TS)]
