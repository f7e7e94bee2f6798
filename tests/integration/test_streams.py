"""Streams on the log: the stream functions, the stream WebSocket server with
real clients, resume and replay from an offset (also across ``kill -9``), slow
consumers, many subscribers, retention resets."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from tests.harness import EngineProcess
from tests.streamclient import name, ok, open_sub, send
from tests.wsclients import RawWorker

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
