"""Streams on the log: the stream functions, the stream WebSocket server with
real clients, resume and replay from an offset (also across ``kill -9``), slow
consumers, many subscribers, retention resets."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.harness import EngineProcess, engine_with
from tests.wsclients import RawWorker, StalledSocket


def tcp_wmem_max() -> int:
    """The largest send buffer the kernel may give a socket."""
    return int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])


def name() -> str:
    return f"st-{uuid.uuid4().hex[:8]}"


class Sub:
    """A raw stream client socket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def join(
        self,
        stream: str,
        group: str,
        item: str | None = None,
        sub_id: str = "s-1",
        position: Any = None,
    ) -> None:
        data: dict[str, Any] = {
            "subscriptionId": sub_id,
            "streamName": stream,
            "groupId": group,
        }
        if position is not None:
            data["from"] = position
        if item is not None:
            data["id"] = item
        await self.ws.send_str(json.dumps({"type": "join", "data": data}))

    async def next(self, timeout: float = 10) -> dict[str, Any]:
        msg = await self.ws.receive(timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, f"socket not open: {msg}"
        return json.loads(msg.data)  # type: ignore[no-any-return]

    async def take(self, n: int, timeout: float = 30) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout):
            return [await self.next(timeout) for _ in range(n)]

    async def quiet(self, timeout: float = 0.3) -> bool:
        """True when nothing arrives within ``timeout``."""
        try:
            msg = await self.ws.receive(timeout)
        except TimeoutError:
            return True
        raise AssertionError(f"unexpected message: {msg.data!r}")


async def open_sub(session: aiohttp.ClientSession, url: str) -> Sub:
    return Sub(await session.ws_connect(url))


async def ok(worker: RawWorker, function_id: str, data: Any) -> Any:
    reply = await worker.call(function_id, data)
    assert "error" not in reply, reply
    return reply.get("result")  # absent when the function returned nothing


def send(
    stream: str, group: str, i: int, item: str | None = None
) -> tuple[str, dict[str, Any]]:
    data: dict[str, Any] = {
        "stream_name": stream,
        "group_id": group,
        "type": "tick",
        "data": {"i": i},
    }
    if item is not None:
        data["id"] = item
    return "stream::send", data


# -- functions ------------------------------------------------------------------


async def test_stream_functions(worker: RawWorker) -> None:
    s = name()
    addr = {"stream_name": s, "group_id": "g", "item_id": "a"}
    assert await ok(worker, "stream::set", {**addr, "data": {"v": 1}}) == {
        "old_value": None,
        "new_value": {"v": 1},
    }
    assert await ok(worker, "stream::set", {**addr, "data": {"v": 2}}) == {
        "old_value": {"v": 1},
        "new_value": {"v": 2},
    }
    assert await ok(worker, "stream::get", addr) == {"v": 2}
    result = await ok(
        worker,
        "stream::update",
        {
            **addr,
            "ops": [
                {"type": "increment", "path": "v", "by": 3},
                {"type": "append", "path": "v", "value": 1},
            ],
        },
    )
    assert result["new_value"] == {"v": 5}
    assert [e["code"] for e in result["errors"]] == ["append.type_mismatch"]
    await ok(worker, "stream::set", {**addr, "item_id": "b", "data": 2})
    await ok(worker, "stream::set", {**addr, "group_id": "h", "data": 3})
    assert await ok(worker, "stream::list", {"stream_name": s, "group_id": "g"}) == [
        {"v": 5},
        2,
    ]
    assert sorted(await ok(worker, "stream::list_groups", {"stream_name": s})) == [
        "g",
        "h",
    ]
    everything = await ok(worker, "stream::list_all", {})
    assert {"id": s, "groups": ["g", "h"]} in everything["stream"]
    assert everything["count"] == len(everything["stream"])
    assert await ok(worker, "stream::delete", addr) == {"old_value": {"v": 5}}
    assert await ok(worker, "stream::delete", addr) == {"old_value": None}
    assert (
        await ok(
            worker,
            "stream::send",
            {"stream_name": s, "group_id": "g", "type": "t", "data": 1},
        )
        is None
    )
    assert (
        await ok(
            worker,
            "stream::send",
            {"stream_name": s, "group_id": "g", "event_type": "t", "data": 1},
        )
        is None
    )
    for bad in (
        {"stream_name": s, "group_id": "g", "data": 1},
        {"group_id": "g", "type": "t"},
        {"stream_name": s, "group_id": "g", "type": 5},
    ):
        reply = await worker.call("stream::send", bad)
        assert reply["error"]["code"] == "deserialization_error"
    reply = await worker.call("stream::set", {"stream_name": s, "group_id": "g"})
    assert reply["error"]["code"] == "deserialization_error"


# -- subscribing ---------------------------------------------------------------


async def test_join_sync_and_envelopes(
    engine: EngineProcess, worker: RawWorker, session: aiohttp.ClientSession
) -> None:
    s = name()
    await ok(
        worker,
        "stream::set",
        {"stream_name": s, "group_id": "g", "item_id": "old", "data": {"id": "old"}},
    )
    sub = await open_sub(session, engine.stream_url)
    await sub.join(s, "g")
    sync = await sub.next()
    assert sync["type"] == "stream" and sync["streamName"] == s
    assert sync["groupId"] == "g" and sync["id"] is None
    assert sync["event"] == {"type": "sync", "data": [{"id": "old"}]}
    assert isinstance(sync["timestamp"], int) and sync["offset"] > 0
    addr = {"stream_name": s, "group_id": "g", "item_id": "x"}
    await ok(worker, "stream::set", {**addr, "data": {"id": "x", "n": 1}})
    await ok(
        worker,
        "stream::update",
        {**addr, "ops": [{"type": "set", "path": "n", "value": 2}]},
    )
    await ok(worker, "stream::delete", addr)
    await ok(worker, "stream::delete", addr)  # nothing to delete: no event
    await ok(
        worker,
        "stream::send",
        {"stream_name": s, "group_id": "g", "type": "ping", "data": {"p": 1}},
    )
    await ok(worker, "stream::set", {**addr, "group_id": "other", "data": 0})
    msgs = await sub.take(4)
    assert [m["event"] for m in msgs] == [
        {"type": "create", "data": {"id": "x", "n": 1}},
        {"type": "update", "data": {"id": "x", "n": 2}},
        {"type": "delete", "data": {"id": "x", "n": 2}},
        {"type": "event", "event": {"type": "ping", "data": {"p": 1}}},
    ]
    assert [m["id"] for m in msgs] == ["x", "x", "x", None]
    offsets = [m["offset"] for m in msgs]
    assert offsets == sorted(set(offsets)) and offsets[0] > sync["offset"]
    assert await sub.quiet()


async def test_item_subscription_and_copies(
    engine: EngineProcess, worker: RawWorker, session: aiohttp.ClientSession
) -> None:
    s = name()
    sub = await open_sub(session, engine.stream_url)
    await sub.join(s, "g", sub_id="group")
    await sub.join(s, "g", item="a", sub_id="item-a")
    first = await sub.take(2)
    assert sorted(m["event"]["type"] for m in first) == ["sync", "sync"]
    item_sync = next(m for m in first if m["id"] == "a")
    assert item_sync["event"]["data"] is None
    await ok(
        worker,
        "stream::set",
        {"stream_name": s, "group_id": "g", "item_id": "a", "data": 1},
    )
    await ok(
        worker,
        "stream::set",
        {"stream_name": s, "group_id": "g", "item_id": "b", "data": 2},
    )
    await ok(worker, *send(s, "g", 3))
    msgs = await sub.take(4)
    assert sorted((m["id"] or "", m["event"]["type"]) for m in msgs) == [
        ("", "event"),
        ("a", "create"),
        ("a", "create"),
        ("b", "create"),
    ]
    assert await sub.quiet()


async def test_url_form_leave_and_rejoin(
    engine: EngineProcess, worker: RawWorker, session: aiohttp.ClientSession
) -> None:
    s = name()
    sub = await open_sub(session, f"{engine.stream_url}/stream/{s}/g")
    assert (await sub.next())["event"] == {"type": "sync", "data": []}
    await ok(worker, *send(s, "g", 1))
    assert (await sub.next())["event"]["event"]["data"] == {"i": 1}
    await sub.ws.send_str(
        json.dumps(
            {
                "type": "leave",
                "data": {"subscriptionId": "url", "streamName": s, "groupId": "g"},
            }
        )
    )
    await ok(worker, *send(s, "g", 2))
    assert await sub.quiet()
    item = await open_sub(session, f"{engine.stream_url}/stream/{s}/g/it")
    assert (await item.next())["id"] == "it"


DEEP = "[" * 10_000 + "]" * 10_000


@pytest.mark.parametrize(
    ("frame", "answered"),
    [
        ("{oops", False),
        ("[]", False),
        ("42", False),
        ('{"type":"dance"}', False),
        ('{"type":"join"}', True),  # a join with missing fields is answered
        ('{"type":"join","data":{"streamName":"s"}}', True),
        ('{"type":"leave","data":5}', False),
        (" ", False),
        (DEEP, False),  # nested 10,000 levels: dropped like malformed JSON
        ('{"type":"join","data":' + DEEP + "}", False),
    ],
)
async def test_bad_frames_keep_socket_open(
    engine: EngineProcess,
    worker: RawWorker,
    session: aiohttp.ClientSession,
    frame: str,
    answered: bool,
) -> None:
    s = name()
    sub = await open_sub(session, engine.stream_url)
    await sub.ws.send_str(frame)
    await sub.join(s, "g")
    msg = await sub.next()
    if answered:
        assert msg["type"] == "error", msg
        assert msg["error"]["code"] == "INVALID_JOIN"
        assert msg["subscriptionId"] is None
        msg = await sub.next()
    assert msg["event"]["type"] == "sync", msg
    assert msg["subscriptionId"] == "s-1"


@pytest.mark.parametrize(
    "position", [-3, "²", " ³ ", "9" * 5000, "1e3", "0x10", 2**64, True, 1.5]
)
async def test_invalid_from_is_refused(
    engine: EngineProcess, session: aiohttp.ClientSession, position: Any
) -> None:
    """A bad ``from`` is an ``INVALID_JOIN`` for that subscription; the socket
    stays and its next join works."""
    sub = await open_sub(session, engine.stream_url)
    await sub.join(name(), "g", position=position)
    msg = await sub.next()
    assert msg == {
        "type": "error",
        "subscriptionId": "s-1",
        "error": {
            "code": "INVALID_JOIN",
            "message": "`from` must be a non-negative integer offset",
        },
    }
    await sub.join(name(), "g", sub_id="s-2")
    msg = await sub.next()
    assert msg["event"]["type"] == "sync" and msg["subscriptionId"] == "s-2"


@pytest.mark.parametrize("query", ["%C2%B2", "9" * 5000, "-1"])
async def test_invalid_from_in_the_url_is_refused(
    engine: EngineProcess, session: aiohttp.ClientSession, query: str
) -> None:
    s = name()
    sub = await open_sub(
        session, f"{engine.stream_url}/stream/{s}/g?from={query}&subscriptionId=u"
    )
    msg = await sub.next()
    assert msg["type"] == "error" and msg["subscriptionId"] == "u"
    assert msg["error"]["code"] == "INVALID_JOIN"
    await sub.join(s, "g")
    msg = await sub.next()
    assert msg["event"]["type"] == "sync" and msg["subscriptionId"] == "s-1"


# -- resume ---------------------------------------------------------------------


async def test_resume_after_missing_hundreds(
    engine: EngineProcess, worker: RawWorker, session: aiohttp.ClientSession
) -> None:
    s = name()
    sub = await open_sub(session, engine.stream_url)
    await sub.join(s, "g")
    await sub.next()
    await worker.send_many([send(s, "g", i) for i in range(5)])
    seen = await sub.take(5)
    last = seen[-1]["offset"]
    await sub.ws.close()
    calls = []
    for i in range(5, 405):
        calls.append(send(s, "g", i))
        if i % 3 == 0:
            calls.append(send(s, "elsewhere", i))
    await worker.send_many(calls)
    again = await open_sub(session, engine.stream_url)
    await again.join(s, "g", position=last)
    replayed = await again.take(400)
    assert [m["event"]["event"]["data"]["i"] for m in replayed] == list(range(5, 405))
    offsets = [m["offset"] for m in replayed]
    assert offsets == sorted(set(offsets)) and offsets[0] > last
    await worker.send_many([send(s, "g", 405)])
    live = await again.next()
    assert live["event"]["event"]["data"] == {"i": 405}
    assert live["offset"] > offsets[-1]
    url_form = await open_sub(
        session, f"{engine.stream_url}/stream/{s}/g?from={offsets[-2]}"
    )
    tail = await url_form.take(2)
    assert [m["offset"] for m in tail] == [offsets[-1], live["offset"]]


async def test_resume_across_kill_9(
    fresh_engine: EngineProcess, session: aiohttp.ClientSession
) -> None:
    s = name()
    async with session.ws_connect(fresh_engine.worker_url) as ws:
        w = RawWorker(ws)
        await w.recv_type("workerregistered")
        sub = await open_sub(session, fresh_engine.stream_url)
        await sub.join(s, "g")
        await sub.next()
        await w.send_many([send(s, "g", i) for i in range(100)])
        got = await sub.take(40)
        position = got[-1]["offset"]
    fresh_engine.kill()
    fresh_engine.start()
    async with session.ws_connect(fresh_engine.worker_url) as ws:
        w = RawWorker(ws)
        await w.recv_type("workerregistered")
        await w.send_many([send(s, "g", i) for i in range(100, 150)])
        again = await open_sub(session, fresh_engine.stream_url)
        await again.join(s, "g", position=position)
        rest = await again.take(110)
        assert [m["event"]["event"]["data"]["i"] for m in rest] == list(range(40, 150))
        assert await again.quiet()


async def test_from_ahead_of_the_log_resets(
    engine: EngineProcess, session: aiohttp.ClientSession
) -> None:
    sub = await open_sub(session, engine.stream_url)
    await sub.join(name(), "g", position=10**12)
    msg = await sub.next()
    assert msg["event"]["type"] == "sync" and msg["reset"] is True


async def test_slow_consumer_blocks_nobody_and_catches_up(
    engine: EngineProcess, worker: RawWorker, session: aiohttp.ClientSession
) -> None:
    """A subscriber that reads nothing, on a socket with an 8 KiB receive
    buffer, while more is written than every buffer on the way holds (the
    kernel's, the engine's outbound bound) and more records than the in-memory
    tail keeps: the writers run at the pace they have without it, a reading
    subscriber gets everything live, and the stalled one, once it reads, gets
    every record in order (from the store)."""
    s = name()
    payload = "x" * 400
    frame_bytes = 550  # a record's frame is at least this (checked below)

    def sends(start: int, count: int) -> list[tuple[str, dict[str, Any]]]:
        return [
            (
                "stream::send",
                {
                    "stream_name": s,
                    "group_id": "g",
                    "type": "t",
                    "data": {"i": i, "pad": payload},
                },
            )
            for i in range(start, start + count)
        ]

    async def timed_writes(start: int, count: int) -> float:
        began = time.monotonic()
        for chunk in range(start, start + count, 1000):
            replies = await worker.send_many(sends(chunk, 1000))
            assert all("error" not in r for r in replies)
        return (time.monotonic() - began) / count

    live = await open_sub(session, engine.stream_url)
    await live.join(s, "g")
    await live.next()
    baseline_n, n = 3000, 30_000
    reader = asyncio.create_task(live.take(baseline_n + n, timeout=300))
    baseline = await timed_writes(0, baseline_n)  # per record, nobody stalled
    stalled = StalledSocket(f"{engine.stream_url}/stream/{s}/g", rcvbuf=8192)
    # Its sync, before the writes: from here on it reads nothing.
    sync = json.loads((await asyncio.to_thread(stalled.read_frames, 1, 10))[0])
    assert sync["event"] == {"type": "sync", "data": []}
    wmem_max = tcp_wmem_max()
    # More than the kernel buffers and the engine's bound (4 MiB) could hold:
    # the engine had to stop writing to the stalled socket.
    assert n * frame_bytes > 8192 + wmem_max + 4 * 1024 * 1024
    with_stalled = await timed_writes(baseline_n, n)
    # The writers are not held back by the subscriber that does not read.
    assert with_stalled < 4 * baseline + 0.002, (baseline, with_stalled)
    got = await reader
    assert [m["event"]["event"]["data"]["i"] for m in got] == list(
        range(baseline_n + n)
    )
    # The stalled client has read nothing so far; now it reads everything.
    frames = await asyncio.to_thread(stalled.read_frames, n, 100)
    stalled.close()
    assert min(len(f) for f in frames) >= frame_bytes
    caught_up = [json.loads(f) for f in frames]
    assert [m["event"]["event"]["data"]["i"] for m in caught_up] == list(
        range(baseline_n, baseline_n + n)
    )
    offsets = [m["offset"] for m in caught_up]
    assert offsets == sorted(set(offsets))


async def test_thousand_subscribers(
    engine: EngineProcess, worker: RawWorker, session: aiohttp.ClientSession
) -> None:
    s = name()
    subs = await asyncio.gather(
        *[open_sub(session, f"{engine.stream_url}/stream/{s}/g") for _ in range(1000)]
    )
    await asyncio.gather(*[sub.next() for sub in subs])  # every sync
    await ok(worker, *send(s, "g", 1))
    got = await asyncio.gather(*[sub.next(30) for sub in subs])
    assert all(m["event"]["event"]["data"] == {"i": 1} for m in got)
    assert len({m["offset"] for m in got}) == 1
    await asyncio.gather(*[sub.ws.close() for sub in subs])


async def test_retention_gives_an_explicit_reset(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    proc = engine_with(
        tmp_path,
        "  - name: iii-stream\n    config: {port: 0, host: 127.0.0.1,"
        " send_retention_ms: 1, prune_interval_ms: 50}\n",
    )
    try:
        async with session.ws_connect(proc.worker_url) as ws:
            w = RawWorker(ws)
            await w.recv_type("workerregistered")
            await w.send_many([send("r", "g", i) for i in range(20)])
            await ok(
                w,
                "stream::set",
                {"stream_name": "r", "group_id": "g", "item_id": "kept", "data": 1},
            )
            async with asyncio.timeout(10):
                while True:  # poll until retention has removed the sends
                    sub = await open_sub(session, proc.stream_url)
                    await sub.join("r", "g", position=0)
                    first = await sub.next()
                    await sub.ws.close()
                    if first["event"]["type"] == "sync":
                        break
            assert first["reset"] is True
            assert first["event"]["data"] == [1]
    finally:
        proc.stop()


async def test_a_subscriber_that_falls_past_retention_mid_stream_gets_a_reset(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """A client that stops reading while its group's ``stream.send`` records
    are written and then removed by retention: once it reads again it gets
    what was sent before it stalled, in order, then a ``sync`` marked
    ``reset`` (never a silent jump past the removed records), then live
    messages."""
    proc = engine_with(
        tmp_path,
        "  - name: iii-stream\n    config: {port: 0, host: 127.0.0.1,"
        " send_retention_ms: 1, prune_interval_ms: 50}\n",
    )
    stalled: StalledSocket | None = None
    try:
        stalled = StalledSocket(f"{proc.stream_url}/stream/mid/g")
        blob = "x" * 4096
        async with session.ws_connect(proc.worker_url) as ws:
            w = RawWorker(ws)
            await w.recv_type("workerregistered")
            sends = [
                (
                    "stream::send",
                    {
                        "stream_name": "mid",
                        "group_id": "g",
                        "type": "t",
                        "data": {"i": i, "pad": blob},
                    },
                )
                for i in range(5000)
            ]
            replies = await w.send_many(sends)
            assert all("error" not in r for r in replies)
            # Retention has removed them all: a join from before them resets.
            async with asyncio.timeout(20):
                while True:
                    probe = await open_sub(session, proc.stream_url)
                    await probe.join("mid", "g", position=1)
                    first = await probe.next()
                    await probe.ws.close()
                    if first["event"]["type"] == "sync":
                        break
            # The stalled client reads again.
            assert stalled is not None
            seen: list[dict[str, Any]] = []
            deadline = time.monotonic() + 60
            while not (seen[1:] and seen[-1]["event"]["type"] == "sync"):
                assert time.monotonic() < deadline, "no reset sync"
                seen.append(json.loads(stalled.read_frames(1, timeout=30)[0]))
            assert seen[0]["event"]["type"] == "sync" and not seen[0].get("reset")
            events, reset = seen[1:-1], seen[-1]
            assert reset["reset"] is True and reset["event"]["data"] == []
            assert events, "it stalled after some messages, not before all"
            offsets = [m["offset"] for m in events]
            assert all(b == a + 1 for a, b in itertools.pairwise(offsets))
            assert [m["event"]["event"]["data"]["i"] for m in events] == list(
                range(len(events))
            )
            assert len(events) < 5000 and reset["offset"] > offsets[-1]
            # Live messages follow the reset.
            await ok(
                w,
                "stream::send",
                {"stream_name": "mid", "group_id": "g", "type": "t", "data": "live"},
            )
            after = json.loads(stalled.read_frames(1, timeout=30)[0])
            assert after["event"]["event"]["data"] == "live"
            assert after["offset"] > reset["offset"]
    finally:
        if stalled is not None:
            stalled.close()
        proc.stop()


async def test_a_client_holds_a_bounded_number_of_subscriptions(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """Each subscription is a pump: past ``max_subscriptions`` a join is
    refused with an error and the client's other subscriptions go on."""
    proc = engine_with(
        tmp_path,
        "  - name: iii-stream\n    config: {port: 0, host: 127.0.0.1,"
        " max_subscriptions: 3}\n",
    )
    try:
        sub = await open_sub(session, proc.stream_url)
        for i in range(3):
            await sub.join(f"cap{i}", "g", sub_id=f"s-{i}")
            msg = await sub.next()
            assert msg["event"]["type"] == "sync" and msg["subscriptionId"] == f"s-{i}"
        await sub.join("cap3", "g", sub_id="s-3")
        msg = await sub.next()
        assert msg["type"] == "error" and msg["subscriptionId"] == "s-3"
        assert msg["error"]["code"] == "TOO_MANY_SUBSCRIPTIONS"
        await sub.join("cap0", "g", sub_id="s-0")  # a rejoin is no new one
        msg = await sub.next()
        assert msg["event"]["type"] == "sync" and msg["subscriptionId"] == "s-0"
    finally:
        proc.stop()
