"""Replay of compactable targets from the compacted log (``LogScanner.compacted``)
gives exactly what folding every record gives: values, deletions, list order.

The log is written by the real store and writer into a temp dir: state and
stream sets, updates and deletes, re-creations after deletes, sends and records
that change no view, over a few hundred addresses in several scopes and groups.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest

from eventlog import LogWriter, Mutation, Outcome, SqliteStore
from eventlog.records import Kind
from eventlog.sqlite import SqliteScanner
from projections.todos import Todos
from projections.views import InlineViews, rows


def _outcome(verb: str, rng: random.Random, n: int) -> Any:
    if verb == "delete":
        return lambda existed, old: Outcome(False, record=existed)
    if verb == "update":
        return lambda existed, old: Outcome(True, {"n": n, "was": old})
    if verb == "hidden":  # a custom-stream write: recorded, changes no view
        return lambda existed, old: Outcome(True, {"n": n}, touches_view=False)
    return lambda existed, old: Outcome(True, {"n": n, "r": rng.random()})


async def _build(data_dir: Path, n: int) -> int:
    store = await SqliteStore.open(data_dir, synchronous="off")
    writer = LogWriter(store)
    task = asyncio.get_running_loop().create_task(writer.run())
    rng = random.Random(7)
    pending = []
    for i in range(n):
        space = rng.choice(["state", "state", "stream"])
        scope = rng.choice(["todos", "other"])
        group = rng.choice(["g1", "g2"]) if space == "stream" else None
        key = f"k{rng.randrange(60)}"
        verb = rng.choice(["set", "set", "update", "delete", "hidden", "send"])
        if verb == "send":
            if space != "stream":
                continue
            kind: Kind = "stream.send"
            compute = lambda existed, old, i=i: Outcome(  # noqa: E731
                True, {"sent": i}, touches_view=False
            )
        else:
            kind = f"{space}.{'set' if verb == 'hidden' else verb}"  # type: ignore[assignment]
            compute = _outcome(verb, rng, i)
        pending.append(writer.submit(Mutation(kind, scope, group, key, compute)))
        if len(pending) >= 200:
            await asyncio.gather(*pending)
            pending = []
    await asyncio.gather(*pending)
    await writer.close()
    await task
    head = store.head
    await store.close()
    return head


def _fold(fold: Any, records: Any, state: Any) -> Any:
    for record in records:
        if isinstance(fold, InlineViews) or fold.accepts(record):
            state = fold.apply(state, record)
    return state


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    data_dir = tmp_path_factory.mktemp("compaction")
    head = asyncio.run(_build(data_dir, 4000))
    return data_dir / "log.sqlite3", head


@pytest.mark.parametrize("window", [(0, None), (0, 1500), (700, None), (700, 2600)])
def test_compacted_fold_equals_full_fold(
    log: tuple[Path, int], window: tuple[int, int | None]
) -> None:
    path, head = log
    after, until = window[0], window[1] or head
    # Start from the full fold up to ``after``, as a snapshot would.
    for fold in (InlineViews(), Todos()):
        base = _fold(
            fold, (r for c in SqliteScanner(path).scan(0, after) for r in c), {}
        )
        full = _fold(
            fold,
            (r for c in SqliteScanner(path).scan(after, until) for r in c),
            dict(base),
        )
        compacted_records = SqliteScanner(path).compacted(after, until)
        compacted = _fold(fold, compacted_records, dict(base))
        assert list(compacted.items()) == list(full.items())  # order included
        if isinstance(fold, InlineViews):
            for space in ("state", "stream"):
                assert rows(compacted, space) == rows(full, space)
        assert len(compacted_records) < until - after  # it did compact
        assert full  # the window is not trivially empty


def test_compacted_log_leaves_out_records_that_change_no_view(
    log: tuple[Path, int],
) -> None:
    path, head = log
    records = SqliteScanner(path).compacted(0, head)
    assert records
    assert all(r.in_view and r.kind != "stream.send" for r in records)
    assert [r.offset for r in records] == sorted({r.offset for r in records})
