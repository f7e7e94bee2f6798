"""The cluster directory on PostgreSQL: liveness by heartbeat, functions and
routes of live nodes only, worker names, leases with one holder, cron fires
claimed once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from eventlog.directory import NodeInfo, RemoteFunction, RemoteRoute
from eventlog.postgres import PostgresDirectory, PostgresStore
from tests.storage import pg_schema


@pytest.fixture
async def stores() -> AsyncIterator[list[PostgresStore]]:
    """Three "nodes": three stores on one schema."""
    schema = f"iiilog_test_{uuid.uuid4().hex[:12]}"
    url = await pg_schema(schema)
    opened = [await PostgresStore.open(url) for _ in range(3)]
    try:
        yield opened
    finally:
        for s in opened:
            await s.close()
        await pg_schema(schema, drop=True)


def node(name: str) -> NodeInfo:
    return NodeInfo(name, f"ws://{name}:1", f"http://{name}:2", None, 1)


async def until(probe: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)


async def test_nodes_live_by_heartbeat(stores: list[PostgresStore]) -> None:
    a, b, _ = (s.directory() for s in stores)
    await a.join(node("a"))
    await b.join(node("b"))
    assert [n.node_id for n in await a.nodes(60_000)] == ["a", "b"]
    assert await a.heartbeat("a")
    assert not await a.heartbeat("nobody")

    # b stops beating: with a short TTL it drops out, a stays by beating.
    async def only_a() -> bool:
        await a.heartbeat("a")
        return [n.node_id for n in await b.nodes(300)] == ["a"]

    assert await until(only_a)
    await a.leave("a")
    assert [n.node_id for n in await b.nodes(60_000)] == ["b"]


async def test_nodes_dead_long_ago_are_forgotten(stores: list[PostgresStore]) -> None:
    """Node ids are new at every start, so a killed node's rows would pile up:
    ``forget`` removes nodes silent for longer than it is given, with their
    functions, routes and worker names; a beating node keeps everything."""
    a, b, _ = (s.directory() for s in stores)
    for name, d in (("a", a), ("b", b)):
        await d.join(node(name))
        await d.set_functions(name, [RemoteFunction(name, "default", "f::x", {})], [])
        await d.set_routes(
            name, [RemoteRoute(name, f"t-{name}", "f::x", None, {"api_path": "x"})], []
        )
        claimed = await d.claim_worker_name(name, f"w-{name}", "default", name, 60_000)
        assert claimed is None
    assert await a.forget(60_000) == 0  # nobody silent that long

    async def a_forgotten() -> bool:
        await b.heartbeat("b")  # b beats; a (killed) does not
        return await b.forget(200) == 1

    assert await until(a_forgotten)
    assert [n.node_id for n in await b.nodes(10**9)] == ["b"]
    assert [f.node_id for f in await b.functions(10**9)] == ["b"]
    assert [r.node_id for r in await b.routes(10**9)] == ["b"]
    assert not await a.heartbeat("a")  # it would join again if it were alive
    # Its worker name is free even to a claim that counts any node ever seen
    # as live: the rows are gone, not just stale.
    assert await b.claim_worker_name("b", "w-2", "default", "a", 10**9) is None


async def test_functions_and_routes_of_live_nodes(stores: list[PostgresStore]) -> None:
    a, b, _ = (s.directory() for s in stores)
    await a.join(node("a"))
    await b.join(node("b"))
    await a.set_functions(
        "a",
        [RemoteFunction("a", "default", "todos::create", {"worker_name": "w"})],
        [],
    )
    await b.set_functions(
        "b",
        [
            RemoteFunction("b", "default", "todos::create", {}),
            RemoteFunction("b", "ns2", "x::y", {}),
        ],
        [],
    )
    served = [
        (f.node_id, f.namespace, f.function_id) for f in await a.functions(60_000)
    ]
    assert served == [
        ("a", "default", "todos::create"),
        ("b", "default", "todos::create"),
        ("b", "ns2", "x::y"),
    ]
    await b.set_functions("b", [], [("default", "todos::create")])
    route = RemoteRoute("a", "t1", "todos::create", None, {"api_path": "/todos"})
    await a.set_routes("a", [route], [])
    assert await b.routes(60_000) == [route]
    await a.set_routes("a", [], ["t1"])
    assert await b.routes(60_000) == []

    async def a_is_gone() -> bool:  # a stops beating: its functions go with it
        await b.heartbeat("b")
        return [f.node_id for f in await b.functions(300)] == ["b"]

    assert await until(a_is_gone)
    await b.leave("b")
    assert await a.functions(60_000) == [
        RemoteFunction("a", "default", "todos::create", {"worker_name": "w"})
    ]


async def test_worker_names_are_unique_across_nodes(
    stores: list[PostgresStore],
) -> None:
    a, b, _ = (s.directory() for s in stores)
    await a.join(node("a"))
    await b.join(node("b"))
    assert await a.claim_worker_name("a", "w1", "default", "todo", 60_000) is None
    assert await a.claim_worker_name("a", "w1", "default", "todo", 60_000) is None
    assert await b.claim_worker_name("b", "w2", "default", "todo", 60_000) == "w1"
    assert await b.claim_worker_name("b", "w2", "other", "todo", 60_000) is None
    assert (
        await b.claim_worker_name("b", "w3", "default", "todo", 60_000, force=True)
        is None
    )
    assert await a.claim_worker_name("a", "w4", "default", "todo", 60_000) == "w3"
    await b.release_worker_name("b", "w3")
    assert await a.claim_worker_name("a", "w4", "default", "todo", 60_000) is None

    async def b_takes_it_from_dead_a() -> bool:
        await b.heartbeat("b")
        return await b.claim_worker_name("b", "w5", "default", "todo", 300) is None

    assert await until(b_takes_it_from_dead_a)


async def test_a_lease_has_one_holder(stores: list[PostgresStore]) -> None:
    dirs: list[PostgresDirectory] = [s.directory() for s in stores]
    won = await asyncio.gather(
        *(d.acquire("sub:k", f"n{i}", 60_000) for i, d in enumerate(dirs))
    )
    assert sorted(won) == [False, False, True]
    holder = f"n{won.index(True)}"
    assert await dirs[0].acquire("sub:k", holder, 60_000)  # renewal
    other = "n0" if holder != "n0" else "n1"
    assert not await dirs[1].acquire("sub:k", other, 60_000)
    assert [(le.name, le.node_id) for le in await dirs[2].leases()] == [
        ("sub:k", holder)
    ]
    await dirs[0].release("sub:k", other)  # not the holder: nothing happens
    assert not await dirs[1].acquire("sub:k", other, 60_000)
    await dirs[0].acquire("sub:k", holder, 200)  # a short one, then no renewal

    async def taken_over() -> bool:
        return await dirs[1].acquire("sub:k", other, 60_000)

    assert await until(taken_over)
    await dirs[2].release("sub:k", other)
    assert await dirs[2].leases() == []


async def test_a_cron_fire_is_claimed_once(stores: list[PostgresStore]) -> None:
    dirs = [s.directory() for s in stores]
    for scheduled in (1_000, 1_764_000_000_000):  # ms since the epoch
        won = await asyncio.gather(
            *(d.claim_fire("job", scheduled, f"n{i}") for i, d in enumerate(dirs))
        )
        assert sorted(won) == [False, False, True]
    assert await dirs[0].claim_fire("other-job", 1_000, "n0")
