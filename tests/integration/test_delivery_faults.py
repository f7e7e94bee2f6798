"""Durable trigger subscriptions under faults, on one engine: bindings of one
subscription that arrive together, and a parked record the database refused
at first. Driven by raw worker sockets (the handler answers by hand)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.harness import EngineProcess, engine_with, never_within_async
from tests.storage import pg_schema, sqlite_refuse_parked
from tests.wsclients import RawWorker


async def until(probe: Callable[[], Awaitable[Any]], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


class Handler:
    """A worker socket serving functions: records what each one is given and
    fails the calls whose ``new_value`` is in ``failing``."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.raw = RawWorker(ws)
        self.seen: dict[str, list[Any]] = {}
        self.failing: set[Any] = set()
        self.task: asyncio.Task[None] | None = None

    async def serve(self, *function_ids: str) -> None:
        await self.raw.recv_type("workerregistered")
        for function_id in function_ids:
            await self.raw.send({"type": "registerfunction", "id": function_id})
            self.seen[function_id] = []
        await self.raw.alive()
        self.task = asyncio.get_running_loop().create_task(self._answer())

    async def _answer(self) -> None:
        while True:
            msg = await self.raw.ws.receive()
            if msg.type != aiohttp.WSMsgType.TEXT:
                return
            frame = json.loads(msg.data)
            if frame.get("type") != "invokefunction":
                continue
            value = (frame.get("data") or {}).get("new_value")
            self.seen[frame["function_id"]].append(value)
            reply: dict[str, Any] = {
                "type": "invocationresult",
                "invocation_id": frame["invocation_id"],
                "function_id": frame["function_id"],
            }
            if value in self.failing:
                reply["error"] = {"code": "boom", "message": "cannot digest this"}
            else:
                reply["result"] = None
            await self.raw.send(reply)


@pytest.fixture
async def handler(
    session: aiohttp.ClientSession, proc: EngineProcess
) -> AsyncIterator[Handler]:
    ws = await session.ws_connect(proc.worker_url)
    h = Handler(ws)
    yield h
    if h.task is not None:
        h.task.cancel()
    await ws.close()


@pytest.fixture
async def worker(
    session: aiohttp.ClientSession, proc: EngineProcess
) -> AsyncIterator[RawWorker]:
    """The calling side: a raw worker socket on this test's engine."""
    ws = await session.ws_connect(proc.worker_url)
    w = RawWorker(ws)
    await w.recv_type("workerregistered")
    yield w
    await ws.close()


@pytest.fixture
def proc(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[EngineProcess]:
    """An engine on SQLite, or (``postgres``) alone on a PostgreSQL log."""
    modules = (
        "  - name: iiilog-triggers\n"
        "    config: {max_attempts: 2, backoff_ms: 10, backoff_max_ms: 20}\n"
    )
    schema = None
    if getattr(request, "param", "sqlite") == "postgres":
        schema = f"iiilog_test_{uuid.uuid4().hex[:12]}"
        url = asyncio.run(pg_schema(schema))
        modules += f"  - name: iiilog-eventlog\n    config: {{database_url: '{url}'}}\n"
    engine = engine_with(tmp_path, modules)
    try:
        yield engine
    finally:
        engine.stop()
        if schema is not None:
            asyncio.run(pg_schema(schema, drop=True))


@pytest.mark.parametrize("proc", ["sqlite", "postgres"], indirect=True)
async def test_bindings_of_one_subscription_registered_together_share_it(
    proc: EngineProcess, handler: Handler, worker: RawWorker
) -> None:
    """Two bindings with the same function and config are one subscription:
    registered at the same moment (both attach while the first still reads
    its saved cursor, a real wait on PostgreSQL), each record is still
    delivered once, and once both are gone nothing is delivered any more (no
    second delivery loop left running without a binding)."""
    await handler.serve("race::seen")
    scope = f"race-{uuid.uuid4().hex[:8]}"
    trigger = {
        "trigger_type": "state",
        "function_id": "race::seen",
        "config": {"scope": scope},
    }
    replies = await worker.send_many([("engine::register_trigger", trigger)] * 2)
    ids = [r["result"]["id"] for r in replies]
    await worker.call("state::set", {"scope": scope, "key": "k", "value": "one"})
    await until(lambda: _async("one" in handler.seen["race::seen"]))
    await worker.call("state::set", {"scope": scope, "key": "k", "value": "two"})
    await until(lambda: _async("two" in handler.seen["race::seen"]))
    # Room for a second delivery loop to show itself.
    await never_within_async(
        lambda: handler.seen["race::seen"][2:], 0.5, message="a second delivery"
    )

    for tid in ids:
        reply = await worker.call("engine::unregister_trigger", {"id": tid})
        assert reply["result"] == {"removed": True}
    await worker.call("state::set", {"scope": scope, "key": "k", "value": "three"})
    # The positive control above took well under this window.
    await never_within_async(
        lambda: handler.seen["race::seen"][2:], 1.0, message="a delivery after removal"
    )


async def test_a_park_the_database_refused_is_tried_again(
    proc: EngineProcess, handler: Handler, worker: RawWorker
) -> None:
    """A record whose handler keeps failing is parked; when the database
    refuses the park, the subscription does not stop there for good (one at
    a time: its delivery loop ends; keyed: the record stays below the
    watermark): once the database accepts again, the record is parked and
    the records after it are delivered, for both kinds of subscription."""
    await handler.serve("fault::one", "fault::keyed")
    handler.failing.add("poison")
    scope = f"fault-{uuid.uuid4().hex[:8]}"
    for function_id, config in (
        ("fault::one", {"scope": scope, "max_in_flight": 1}),
        ("fault::keyed", {"scope": scope}),
    ):
        reply = await worker.call(
            "engine::register_trigger",
            {"trigger_type": "state", "function_id": function_id, "config": config},
        )
        assert "result" in reply, reply
    sqlite_refuse_parked(proc.data_dir, refuse=True)
    try:
        await worker.call("state::set", {"scope": scope, "key": "p", "value": "poison"})
        # Both handlers failed it twice (max_attempts), the park was refused,
        # and the record came back: a third try each.
        await until(
            lambda: _async(
                all(handler.seen[f].count("poison") >= 3 for f in handler.seen)
            )
        )
    finally:
        sqlite_refuse_parked(proc.data_dir, refuse=False)
    await worker.call("state::set", {"scope": scope, "key": "q", "value": "after"})

    async def settled() -> bool:
        reply = await worker.call("iiilog::triggers::status", {})
        subs = [
            s
            for s in reply["result"]["subscriptions"]
            if s["function_id"] in handler.seen
        ]
        return len(subs) == 2 and all(s["parked"] == 1 and s["lag"] == 0 for s in subs)

    await until(settled)
    for function_id, values in handler.seen.items():
        assert values[-1] == "after" or "after" in values, (function_id, values)


async def _async(value: Any) -> Any:
    return value
