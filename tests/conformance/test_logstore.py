"""The ``LogStore`` contract, run against every backend (``conftest.backend``).

Offsets 1, 2, 3 … gapless in commit order; a failed batch leaves no record, no
hole, no view change and no bookkeeping; views, tags, cursors and snapshots
change with the records they follow; reads after an offset, time travel,
retention and bulk scans. Only the public interface is used, plus the backend's
fault injection.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest

from eventlog import (
    Bookkeeping,
    Kind,
    LogStore,
    LogWriter,
    Mutation,
    Origin,
    Outcome,
    Park,
    PruneSends,
    PruneTags,
    Record,
    SaveCursor,
    SaveSnapshot,
    StoreError,
    Unpark,
)
from projections.todos import Todos
from projections.views import InlineViews, rows
from tests.conformance.conftest import Backend


def put(scope: str, key: str, value: Any, **kw: Any) -> Mutation:
    return Mutation(
        "state.set", scope, None, key, lambda _e, _o: Outcome(True, value), **kw
    )


def remove(scope: str, key: str) -> Mutation:
    return Mutation(
        "state.delete", scope, None, key, lambda e, _o: Outcome(False, record=e)
    )


def bump(scope: str, key: str) -> Mutation:
    """Read-modify-write: n + 1 of whatever is there."""

    def compute(existed: bool, old: Any) -> Outcome:
        n = old["n"] if existed else 0
        return Outcome(True, {"n": n + 1})

    return Mutation("state.update", scope, None, key, compute)


def send(stream: str, group: str, data: Any) -> Mutation:
    return Mutation(
        "stream.send",
        stream,
        group,
        None,
        lambda _e, _o: Outcome(True, data, event_type="ping", touches_view=False),
    )


def now_ms() -> int:
    return int(time.time() * 1000)


async def offsets(store: LogStore) -> list[int]:
    return [r.offset for r in await store.read(0, 100_000)]


async def test_offsets_are_gapless_and_in_commit_order(store: LogStore) -> None:
    first = await store.commit([put("s", "a", 1), put("s", "b", 2)])
    assert [r.offset for r in first.new] == [1, 2]
    noop_and_error = [
        remove("s", "missing"),  # deletes nothing: no record
        Mutation("state.set", "s", None, "x", lambda _e, _o: 1 / 0),  # type: ignore
        put("s", "c", 3),
    ]
    second = await store.commit(noop_and_error)
    assert isinstance(second.results[0], Record) and second.results[0].offset == 0
    assert isinstance(second.results[1], ZeroDivisionError)
    assert [r.offset for r in second.new] == [3]
    third = await store.commit([put("s", "d", 4)])
    assert [r.offset for r in third.new] == [4]
    assert await offsets(store) == [1, 2, 3, 4]
    assert store.head == await store.read_head() == 4


async def test_records_come_back_as_committed(store: LogStore) -> None:
    origin = Origin("w1", "todos::create", "inv-1", "a" * 32)
    ops = [{"type": "set", "path": "n", "value": 2}]
    batch = [
        put("todos", "k", {"title": "milk", "ü": "ß"}, origin=origin),
        Mutation(
            "state.update",
            "todos",
            None,
            "k",
            lambda _e, old: Outcome(
                True,
                {**old, "n": 2},
                ops=ops,
                errors=[{"code": "x", "message": "y"}],
            ),
        ),
        send("live", "all", [1, 2]),
    ]
    committed = (await store.commit(batch)).new
    read = await store.read(0)
    assert read == committed
    update = read[1]
    assert update.existed and update.old_value == {"title": "milk", "ü": "ß"}
    assert update.new_value == {"title": "milk", "ü": "ß", "n": 2}
    assert update.ops == ops and update.errors == [{"code": "x", "message": "y"}]
    assert read[0].origin == origin
    sent = read[2]
    assert (sent.kind, sent.group, sent.event_type, sent.in_view) == (
        "stream.send",
        "all",
        "ping",
        False,
    )
    assert all(abs(r.ts - now_ms()) < 60_000 for r in read)


async def test_read_modify_write_sees_earlier_writes(store: LogStore) -> None:
    result = await store.commit([bump("c", "n"), bump("c", "n"), bump("c", "n")])
    assert [r.new_value for r in result.new] == [{"n": 1}, {"n": 2}, {"n": 3}]
    result = await store.commit([bump("c", "n")])
    assert result.new[0].old_value == {"n": 3}
    assert await store.view_get("state", "c", "", "n") == (True, {"n": 4})


async def test_a_writer_keeps_submission_order_under_concurrency(
    store: LogStore,
) -> None:
    writer = LogWriter(store, max_batch=16)
    task = asyncio.get_running_loop().create_task(writer.run())
    try:
        records = await asyncio.gather(
            *(writer.submit(put("w", f"k{i}", i)) for i in range(300))
        )
    finally:
        await writer.close()
        await task
    assert [r.offset for r in records] == list(range(1, 301))
    assert [r.new_value for r in records] == list(range(300))
    assert await offsets(store) == list(range(1, 301))


async def test_a_failed_batch_leaves_no_record_no_hole_no_change(
    backend: Backend, store: LogStore
) -> None:
    await store.commit([put("s", "a", "before"), put("t", "tagged", 0)])
    await store.commit([], [SaveCursor("c1", "f", "state", {}, 1, now_ms())])
    await backend.refuse("poison")
    batch = [
        put("s", "a", "after"),
        put("s", "new", 1),
        Mutation(
            "state.set",
            "t",
            None,
            "x",
            lambda _e, _o: Outcome(True, 1),
            dedupe=("tr", 0),
        ),
        put("poison", "p", 1),
    ]
    books: list[Bookkeeping] = [
        SaveCursor("c1", "f", "state", {}, 2, now_ms()),
        SaveSnapshot.capture("proj", 2, {"x": 1}, now_ms()),
    ]
    with pytest.raises(StoreError):
        await store.commit(batch, books)
    assert store.head == await store.read_head() == 2
    assert await offsets(store) == [1, 2]
    assert await store.view_get("state", "s", "", "a") == (True, "before")
    assert await store.view_get("state", "s", "", "new") == (False, None)
    assert await store.cursor("c1") == 1
    assert await store.snapshot("proj") is None
    await backend.refuse(None)
    # The tag was not kept either: the same tagged write applies now.
    again = await store.commit(
        [
            Mutation(
                "state.set",
                "t",
                None,
                "x",
                lambda _e, _o: Outcome(True, 2),
                dedupe=("tr", 0),
            ),
            put("s", "a", "later"),
        ]
    )
    assert [r.offset for r in again.new] == [3, 4]
    assert await offsets(store) == [1, 2, 3, 4]


async def test_failing_bookkeeping_sinks_its_batch(
    backend: Backend, store: LogStore
) -> None:
    await store.commit([put("s", "a", "before")])
    await backend.refuse("poison")
    with pytest.raises(StoreError):
        await store.commit(
            [put("s", "a", "after"), put("s", "b", 1)],
            [
                SaveSnapshot.capture("proj", 1, {}, now_ms()),
                SaveCursor("poison", "f", "state", {}, 1, now_ms()),
            ],
        )
    assert store.head == await store.read_head() == 1
    assert await offsets(store) == [1]
    assert await store.view_list("state", "s", "") == ["before"]
    assert await store.snapshot("proj") is None
    await backend.refuse(None)
    assert (await store.commit([put("s", "b", 2)])).new[0].offset == 2


async def test_views_change_with_their_records(store: LogStore) -> None:
    await store.commit([put("v", "a", 1), put("v", "b", 2), put("v", "c", 3)])
    await store.commit([put("v", "a", 10)])  # an overwrite keeps its place
    await store.commit([remove("v", "b")])
    assert await store.view_list("state", "v", "") == [10, 3]
    await store.commit([put("v", "b", 20)])  # created again: moves to the end
    assert await store.view_list("state", "v", "") == [10, 3, 20]
    # Deleted and created again within one batch: also moves to the end.
    await store.commit([remove("v", "a"), put("v", "a", 100)])
    assert await store.view_list("state", "v", "") == [3, 20, 100]
    await store.commit(
        [
            Mutation(
                "stream.set", "chat", "room1", "m1", lambda _e, _o: Outcome(True, "hi")
            ),
            Mutation(
                "stream.set", "chat", "room2", "m1", lambda _e, _o: Outcome(True, "yo")
            ),
        ]
    )
    assert await store.view_scopes("state") == ["v"]
    assert await store.view_groups("stream", "chat") == ["room1", "room2"]
    assert await store.view_scope_groups("stream") == [
        ("chat", "room1"),
        ("chat", "room2"),
    ]
    position, value = await store.view_read_at("stream", "chat", "room1", None)
    assert (position, value) == (store.head, ["hi"])
    position, snap = await store.view_snapshot(["state", "stream"])
    assert position == store.head
    assert snap["state"] == [("v", "", "c", 3), ("v", "", "b", 20), ("v", "", "a", 100)]
    assert snap["stream"] == [
        ("chat", "room1", "m1", "hi"),
        ("chat", "room2", "m1", "yo"),
    ]


async def test_records_that_change_no_view(store: LogStore) -> None:
    hidden = Mutation(
        "stream.set",
        "custom",
        "g",
        "i",
        lambda _e, _o: Outcome(True, 5, touches_view=False, old=(True, 4)),
    )
    result = await store.commit([hidden, send("custom", "g", "x")])
    assert [r.in_view for r in result.new] == [False, False]
    assert result.new[0].existed and result.new[0].old_value == 4
    assert await store.view_get("stream", "custom", "g", "i") == (False, None)
    assert await store.view_scope_groups("stream") == []


async def test_reads_after_an_offset_and_as_of_an_offset(store: LogStore) -> None:
    await store.commit([put("r", "a", 1), put("r", "b", 1)])
    await store.commit([put("r", "a", 2), send("x", "g", 0)])
    await store.commit([remove("r", "a"), put("other", "a", 9)])
    assert [r.offset for r in await store.read(2)] == [3, 4, 5, 6]
    assert [r.offset for r in await store.read(2, limit=2)] == [3, 4]
    assert await store.read(6) == []
    one = await store.read_one(3)
    assert one is not None and one.new_value == 2
    assert await store.read_one(99) is None
    sends = await store.read_kinds(["stream.send"])
    assert [r.offset for r in sends] == [4]
    assert [r.offset for r in await store.history("state", "r", 5)] == [1, 2, 3, 5]
    assert await store.value_at("state", "r", "a", 1) == 1
    assert await store.value_at("state", "r", "a", 4) == 2
    assert await store.value_at("state", "r", "a", 5) is None
    assert await store.value_at("state", "r", "a", 0) is None


async def test_cursors_and_parked_records(store: LogStore) -> None:
    ts = now_ms()
    await store.commit(
        [],
        [
            SaveCursor("k1", "fn::a", "state", {"scope": "todos"}, 5, ts),
            SaveCursor("k2", "fn::b", "stream", {"stream_name": "s"}, 7, ts),
            Park("k1", 3, 5, "boom", ts),
            Park("k1", 4, 5, "boom", ts),
        ],
    )
    assert await store.cursor("k1") == 5
    assert await store.cursor("nope") is None
    await store.commit(
        [],
        [
            SaveCursor("k1", "fn::a", "state", {"scope": "todos"}, 9, ts + 1),
            Park("k1", 4, 6, "still", ts + 1),  # upsert by (key, offset)
        ],
    )
    # A late save of a lower position (a node that led before) never moves it back.
    await store.commit([], [SaveCursor("k1", "fn::a", "state", {}, 6, ts + 1)])
    infos = {c.key: c for c in await store.cursors()}
    assert (infos["k1"].position, infos["k1"].parked) == (9, 2)
    assert (infos["k2"].position, infos["k2"].parked) == (7, 0)
    assert infos["k1"].config == {"scope": "todos"}
    assert infos["k1"].updated_ms == ts + 1
    parked = await store.parked("k1")
    assert [(p.offset, p.attempts, p.error) for p in parked] == [
        (3, 5, "boom"),
        (4, 6, "still"),
    ]
    await store.commit([], [Unpark("k1", 3)])
    assert [p.offset for p in await store.parked()] == [4]


async def test_delivery_tags_apply_a_write_once(store: LogStore) -> None:
    def tagged(n: int, value: Any) -> Mutation:
        return Mutation(
            "state.set",
            "d",
            None,
            f"k{n}",
            lambda _e, _o: Outcome(True, value),
            dedupe=("trace-1", n),
        )

    first = await store.commit([tagged(0, "a"), tagged(1, "b")])
    again = await store.commit([tagged(0, "changed"), tagged(1, "changed")])
    assert again.new == []
    assert again.results == first.results  # the first records, not new ones
    assert await store.view_get("state", "d", "", "k0") == (True, "a")
    # Within one batch the second copy of a tag is a duplicate too.
    both = await store.commit([tagged(2, "x"), tagged(2, "y")])
    assert len(both.new) == 1 and both.results[0] == both.results[1]
    await store.commit([], [PruneTags(now_ms() + 1000)])  # forget them all
    after = await store.commit([tagged(0, "new")])
    assert [r.new_value for r in after.new] == ["new"]


async def test_snapshots(store: LogStore) -> None:
    state = {"total": 1, "items": ["ä", {"n": None}]}
    await store.commit([], [SaveSnapshot.capture("metrics", 10, state, 123)])
    state["total"] = 99  # a later change of the live state is not in the snapshot
    snap = await store.snapshot("metrics")
    assert snap is not None
    assert (snap.position, snap.state, snap.ts) == (
        10,
        {"total": 1, "items": ["ä", {"n": None}]},
        123,
    )
    await store.commit([], [SaveSnapshot.capture("metrics", 12, {"total": 2}, 124)])
    await store.commit([], [SaveSnapshot.capture("a-list", 3, [], 125)])
    listed = [(s.name, s.position) for s in await store.snapshots()]
    assert listed == [("a-list", 3), ("metrics", 12)]
    assert await store.snapshot("none") is None


async def test_retention_prunes_sends_only_and_the_head_stays(store: LogStore) -> None:
    await store.commit([put("r", "a", 1), send("s", "g", 1), send("s", "g", 2)])
    await store.commit([put("r", "b", 2), send("s", "g", 3)])
    result = await store.commit([], [PruneSends(now_ms() + 1000)])
    assert result.kept == [3]
    assert await offsets(store) == [1, 4]
    assert store.head == await store.read_head() == 5
    assert await store.sends_pruned_through() == 5
    assert await store.view_list("state", "r", "") == [1, 2]
    nothing = await store.commit([], [PruneSends(now_ms() + 1000)])
    assert nothing.kept == [0]
    later = await store.commit([put("r", "c", 3)])
    assert later.new[0].offset == 6


async def test_retention_counts_what_it_prunes(store: LogStore) -> None:
    """Only sends older than the cutoff go, and the count is of what went."""
    old = (await store.commit([send("s", "g", 1), send("s", "g", 2)])).new
    # The next commit must get a later timestamp (milliseconds): let one pass.
    await asyncio.sleep(max(0.0, (old[-1].ts + 2 - now_ms()) / 1000))
    new = (await store.commit([send("s", "g", 3), put("r", "a", 1)])).new
    assert new[0].ts > old[-1].ts
    result = await store.commit([], [PruneSends(new[0].ts)])
    assert result.kept == [2]
    assert await offsets(store) == [3, 4]
    assert await store.sends_pruned_through() == 2


async def test_everything_survives_a_reopen(backend: Backend) -> None:
    store = await backend.open()
    try:
        await store.commit(
            [put("p", "a", 1), send("s", "g", 0)],
            [
                SaveCursor("k", "f", "state", {}, 2, 1),
                SaveSnapshot.capture("x", 2, [1], 1),
            ],
        )
        await store.commit([], [PruneSends(now_ms() + 1000)])
    finally:
        await store.close()
    store = await backend.open()
    try:
        assert store.head == 2
        assert await offsets(store) == [1]
        assert await store.view_get("state", "p", "", "a") == (True, 1)
        assert await store.cursor("k") == 2
        snap = await store.snapshot("x")
        assert snap is not None and snap.state == [1]
        assert (await store.commit([put("p", "b", 2)])).new[0].offset == 3
    finally:
        await store.close()


async def _random_log(store: LogStore, n: int, seed: int) -> None:
    rng = random.Random(seed)
    batch: list[Mutation] = []
    for i in range(n):
        space = rng.choice(["state", "state", "stream"])
        scope = rng.choice(["todos", "other"])
        group = rng.choice(["g1", "g2"]) if space == "stream" else None
        key = f"k{rng.randrange(40)}"
        verb = rng.choice(["set", "set", "update", "delete", "hidden", "send"])
        compute: Any
        if verb == "send":
            if space != "stream":
                continue
            batch.append(send(scope, group or "g1", i))
            continue
        if verb == "delete":
            compute = lambda e, _o: Outcome(False, record=e)  # noqa: E731
        elif verb == "hidden":
            compute = lambda _e, _o, i=i: Outcome(True, i, touches_view=False)  # noqa: E731
        else:
            compute = lambda _e, old, i=i: Outcome(True, {"i": i, "was": old})  # noqa: E731
        kind: Kind = f"{space}.{'set' if verb == 'hidden' else verb}"  # type: ignore[assignment]
        batch.append(Mutation(kind, scope, group, key, compute))
        if len(batch) >= 50:
            await store.commit(batch)
            batch = []
    await store.commit(batch)


def _fold(fold: Any, records: Any, state: Any) -> Any:
    for record in records:
        if fold.accepts(record):
            state = fold.apply(state, record)
    return state


@pytest.mark.parametrize("window", [(0, None), (0, 700), (300, None), (300, 1200)])
async def test_scans_and_the_compacted_log(
    store: LogStore, window: tuple[int, int | None]
) -> None:
    await _random_log(store, 1800, seed=11)
    head = store.head
    after, until = window[0], window[1] or head
    scanner = store.scanner()
    scanned = await asyncio.to_thread(
        lambda: [r for chunk in scanner.scan(0, head, batch=97) for r in chunk]
    )
    assert scanned == await store.read(0, 100_000)
    compacted = await asyncio.to_thread(scanner.compacted, after, until)
    assert all(r.in_view and r.kind != "stream.send" for r in compacted)
    assert [r.offset for r in compacted] == sorted({r.offset for r in compacted})
    assert len(compacted) < until - after  # it did compact
    for fold in (InlineViews(), Todos()):
        base = _fold(fold, (r for r in scanned if r.offset <= after), {})
        full = _fold(
            fold, (r for r in scanned if after < r.offset <= until), dict(base)
        )
        folded = _fold(fold, compacted, dict(base))
        assert list(folded.items()) == list(full.items())  # list order included
        assert full
        if isinstance(fold, InlineViews):
            for space in ("state", "stream"):
                assert rows(folded, space) == rows(full, space)
    if until == head:  # the fold of the whole log is what the store's views hold
        views = _fold(InlineViews(), scanned, {})
        _, live = await store.view_snapshot(["state", "stream"])
        for space in ("state", "stream"):
            assert rows(views, space) == live[space]
