"""The PostgreSQL log under concurrent writers from several "nodes" (stores
on one database): offsets gapless and in commit order, and no reader ever
skips a record that commits after a later one was taken.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from eventlog import LogTail, LogWriter, Mutation, Outcome, Record
from eventlog.postgres import PostgresStore
from tests.storage import pg_key_lookup_plan, pg_schema


@pytest.fixture
async def url() -> AsyncIterator[str]:
    schema = f"iiilog_test_{uuid.uuid4().hex[:12]}"
    address = await pg_schema(schema)
    try:
        yield address
    finally:
        await pg_schema(schema, drop=True)


def put(key: str, value: Any) -> Mutation:
    return Mutation("state.set", "s", None, key, lambda _e, _o: Outcome(True, value))


async def test_a_held_append_is_not_overtaken(url: str) -> None:
    """Node A's transaction holds its offsets open; node B commits after it; a
    reader polls in between. A's records must come first, B's after, no gap,
    and the reader must never see B's before A's."""
    setup = await PostgresStore.open(url)
    await setup.commit([put("before", 0)])
    await setup.close()
    planning = threading.Event()  # A is inside its transaction, planning
    release = threading.Event()
    a_result: dict[str, Any] = {}

    def node_a() -> None:
        async def run() -> None:
            store = await PostgresStore.open(url)
            try:

                def hold(_e: bool, _o: Any) -> Outcome:
                    planning.set()
                    assert release.wait(30)
                    return Outcome(True, "a1")

                batch = [Mutation("state.set", "s", None, "a1", hold), put("a2", "a2")]
                a_result["offsets"] = [
                    r.offset for r in (await store.commit(batch)).new
                ]
            finally:
                await store.close()

        asyncio.run(run())

    thread = threading.Thread(target=node_a)
    thread.start()
    b = await PostgresStore.open(url)
    reader = await PostgresStore.open(url)
    try:
        assert await asyncio.to_thread(planning.wait, 10)
        b_commit = asyncio.ensure_future(b.commit([put("b1", "b1")]))
        seen: list[int] = []
        for _ in range(20):  # B must wait for A's lock; the reader sees nothing new
            seen += [r.offset for r in await reader.read(1)]
            await asyncio.sleep(0.01)
        assert not b_commit.done()
        assert seen == []
        release.set()
        b_offsets = [r.offset for r in (await asyncio.wait_for(b_commit, 10)).new]
        await asyncio.to_thread(thread.join, 10)
        assert a_result["offsets"] == [2, 3]
        assert b_offsets == [4]
        records = await reader.read(1)
        assert [(r.offset, r.key) for r in records] == [(2, "a1"), (3, "a2"), (4, "b1")]
        assert await reader.read_head() == 4
    finally:
        release.set()
        await b.close()
        await reader.close()


async def test_nodes_appending_at_once_share_one_gapless_order(url: str) -> None:
    stores = [await PostgresStore.open(url) for _ in range(3)]
    try:

        async def writer(n: int, store: PostgresStore) -> list[tuple[int, str]]:
            out = []
            for i in range(40):
                batch = [put(f"n{n}-{i}-{j}", j) for j in range(n + 1)]
                for r in (await store.commit(batch)).new:
                    out.append((r.offset, r.key or ""))
            return out

        results = await asyncio.gather(*(writer(n, s) for n, s in enumerate(stores)))
        committed = sorted(pair for result in results for pair in result)
        assert [o for o, _ in committed] == list(range(1, len(committed) + 1))
        logged = [(r.offset, r.key) for r in await stores[0].read(0, 10_000)]
        assert logged == committed
        for result in results:  # each node's own commits in increasing order
            assert [o for o, _ in result] == sorted(o for o, _ in result)
    finally:
        for s in stores:
            await s.close()


async def test_several_nodes_may_create_the_schema_at_once(url: str) -> None:
    stores = await asyncio.gather(*(PostgresStore.open(url) for _ in range(4)))
    try:
        assert [s.head for s in stores] == [0, 0, 0, 0]
        await stores[0].commit([put("k", 1)])
        assert await stores[3].view_get("state", "s", "", "k") == (True, 1)
    finally:
        for s in stores:
            await s.close()


@pytest.mark.parametrize("notify", [True, False], ids=["notified", "polled-only"])
async def test_a_follower_publishes_every_commit_once_in_order(
    url: str, notify: bool
) -> None:
    """Node A's tail gets its own commits (offered by its writer) and node B's
    (through the follower: notified, or only polled as if every notification
    was lost), each once, in offset order, with no gap."""
    a, b = await PostgresStore.open(url), await PostgresStore.open(url)
    tail = LogTail(a)
    writer = LogWriter(a)
    writer.on_commit(tail.offer)
    published: list[int] = []
    original = tail.publish

    def publish(records: list[Record]) -> None:
        published.extend(r.offset for r in records)
        original(records)

    tail.publish = publish  # type: ignore[method-assign]
    tasks = [
        asyncio.ensure_future(writer.run()),
        asyncio.ensure_future(tail.follow(0.3 if notify else 0.1)),
    ]
    if notify:
        tasks.append(asyncio.ensure_future(a.watch(tail.poke)))
    try:
        for i in range(30):
            if i % 3 == 0:
                await writer.submit(put(f"a{i}", i))
            else:
                await b.commit([put(f"b{i}", i), put(f"b{i}x", i)])
        head = await b.read_head()
        async with asyncio.timeout(10):
            while tail.head < head:
                await tail.wait_beyond(tail.head, 0.5)
        assert published == list(range(1, head + 1))
        assert [r.offset for r in await tail.read_after(0, 1000)] == published
    finally:
        await writer.close()
        for t in tasks[1:]:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await a.close()
        await b.close()


async def test_a_commit_finds_its_keys_by_primary_key_in_a_big_group(url: str) -> None:
    # A young table has no statistics; the planner once took a narrower index
    # and filtered the whole group row by row for every key of a commit.
    store = await PostgresStore.open(url)
    try:
        for n in range(10):
            await store.commit([put(f"k{n}-{j}", j) for j in range(500)])
    finally:
        await store.close()
    plan = await pg_key_lookup_plan(
        url, [("state", "s", "", f"new-{j}") for j in range(32)]
    )
    assert "iiilog_view_pkey" in plan, plan
    assert "Rows Removed by Filter" not in plan, plan
