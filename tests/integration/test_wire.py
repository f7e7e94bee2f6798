"""The worker protocol on the wire, with a raw aiohttp WebSocket client:
handshake, calls between workers, cleanup, and bad input that must leave the
engine and the connection working."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.harness import EngineProcess, engine_with, wait_until
from tests.wsclients import RawWorker


async def test_workerregistered_comes_first(worker: RawWorker) -> None:
    """The fixture reads the socket's first frame as is: it is this one."""
    assert worker.registered["type"] == "workerregistered"
    assert uuid.UUID(worker.registered["worker_id"])
    assert uuid.UUID(worker.registered["reattach_token"])
    await worker.only_pong()  # and nothing else came with it


async def test_unknown_function_reply_shape(worker: RawWorker) -> None:
    reply = await worker.call("missing::fn", {"a": 1})
    assert reply["function_id"] == "missing::fn"
    assert reply["error"] == {
        "code": "function_not_found",
        "message": "Function missing::fn not found in namespace default.",
    }
    assert "result" not in reply


async def test_round_trip_and_absent_data(worker: RawWorker) -> None:
    scope = f"wire-{uuid.uuid4().hex[:6]}"
    reply = await worker.call(
        "state::set", {"scope": scope, "key": "k", "value": "héllo 🌍"}
    )
    assert reply["result"] == {"old_value": None, "new_value": "héllo 🌍"}
    reply = await worker.call("state::list_groups")  # no `data` key at all
    assert scope in reply["result"]["groups"]
    reply = await worker.call("state::get")
    assert reply["error"]["code"] == "deserialization_error"
    assert reply["error"]["message"].startswith(
        "Failed to deserialize input for state::get:"
    )


async def test_non_ascii_goes_out_as_raw_utf8(worker: RawWorker) -> None:
    await worker.call("state::set", {"scope": "wire-utf8", "key": "k", "value": "🌍"})
    await worker.send(
        {
            "type": "invokefunction",
            "invocation_id": "x-1",
            "function_id": "state::get",
            "data": {"scope": "wire-utf8", "key": "k"},
        }
    )
    msg = await worker.ws.receive(5)
    assert "🌍" in msg.data and "\\u" not in msg.data


@pytest.mark.parametrize(
    "frame",
    [
        "{not json",
        "[1, 2, 3]",
        '"just a string"',
        '{"no_type": 1}',
        '{"type": 42}',
        '{"type": "frobnicate", "x": 1}',
        '{"type": "invokefunction"}',
        '{"type": "registerfunction", "id": 7}',
        '{"type": "registertrigger", "id": "t"}',
        "   ",
        '{"type": "invocationresult", "invocation_id": "nobody-waits", "result": 1}',
    ],
)
async def test_bad_frames_are_dropped_socket_stays(
    worker: RawWorker, frame: str
) -> None:
    await worker.ws.send_str(frame)
    await worker.only_pong()  # no answer to the bad frame, and the socket works
    reply = await worker.call("state::get", {"scope": "x", "key": "y"})
    assert "result" not in reply and "error" not in reply


async def test_binary_json_frame_is_accepted(worker: RawWorker) -> None:
    await worker.ws.send_bytes(
        json.dumps(
            {
                "type": "invokefunction",
                "invocation_id": "bin-1",
                "function_id": "state::get",
                "data": {"scope": "x", "key": "y"},
            }
        ).encode()
    )
    reply = await worker.recv_type("invocationresult")
    assert reply["invocation_id"] == "bin-1"


async def test_invalid_ops_are_a_deserialization_error(worker: RawWorker) -> None:
    for ops in (
        [{"type": "increment", "path": "n", "by": 1.5}],
        [{"type": "nope"}],
        "ops",
        [{"type": "set"}],
    ):
        reply = await worker.call(
            "state::update", {"scope": "wire", "key": "k", "ops": ops}
        )
        assert reply["error"]["code"] == "deserialization_error", reply
    reply = await worker.call("state::get", {"scope": "wire", "key": "k"})
    assert "result" not in reply and "error" not in reply  # nothing was written


async def test_void_call_gets_no_reply(worker: RawWorker) -> None:
    """Void calls, one that works and one that fails, are answered with
    nothing: every frame up to the point where the write is visible (and one
    more round trip) is read, and all of them answer our own sync calls."""
    await worker.send(
        {
            "type": "invokefunction",
            "function_id": "state::set",
            "data": {"scope": "wire-void", "key": "k", "value": 1},
            "action": {"type": "void"},
        }
    )
    await worker.send(
        {
            "type": "invokefunction",
            "function_id": "missing::fn",
            "action": {"type": "void"},
        }
    )
    others: list[dict[str, Any]] = []

    async def strict_get() -> Any:
        invocation_id = str(uuid.uuid4())
        await worker.send(
            {
                "type": "invokefunction",
                "invocation_id": invocation_id,
                "function_id": "state::get",
                "data": {"scope": "wire-void", "key": "k"},
            }
        )
        while True:
            frame = await worker.recv()
            if frame.get("invocation_id") == invocation_id:
                return frame.get("result")
            others.append(frame)  # anything else is an answer nobody asked for

    async with asyncio.timeout(5):
        while await strict_get() != 1:  # the void write ran (positive control)
            pass
    await strict_get()  # one more round trip: whatever the void calls sent is in
    assert others == []


async def test_bad_trigger_config_is_reported(worker: RawWorker) -> None:
    await worker.send(
        {
            "type": "registertrigger",
            "id": "bad-1",
            "trigger_type": "state",
            "function_id": "f",
            "config": {"scope": 5},
        }
    )
    reply = await worker.recv_type("triggerregistrationresult")
    assert reply["id"] == "bad-1"
    assert reply["error"]["code"] == "trigger_registration_failed"
    assert "Failed to parse trigger config" in reply["error"]["message"]
    await worker.send(
        {
            "type": "registertrigger",
            "id": "bad-2",
            "trigger_type": "http",
            "function_id": "f",
            "config": {},
        }
    )
    reply = await worker.recv_type("triggerregistrationresult")
    assert reply["error"]["message"] == "api_path is required for http triggers"
    for n, (trigger_type, config, complaint) in enumerate(
        (
            ("configuration", {"condition_function_id": 5}, "condition_function_id"),
            ("http", {"api_path": "c", "condition_function_id": []}, "condition"),
            ("cron", {"expression": "* * * * * *", "condition_function_id": 1}, "cond"),
            ("configuration", {"event_types": ["nope"]}, "event_types"),
            ("durable:subscriber", {"topic": "t", "queue_config": 3}, "queue_config"),
            (
                "durable:subscriber",
                {"topic": "t", "queue_config": {"type": "lifo"}},
                "concurrent, standard or fifo",
            ),
        )
    ):
        await worker.send(
            {
                "type": "registertrigger",
                "id": f"bad-more-{n}",
                "trigger_type": trigger_type,
                "function_id": "f",
                "config": config,
            }
        )
        reply = await worker.recv_type("triggerregistrationresult")
        assert reply["id"] == f"bad-more-{n}"
        assert reply["error"]["code"] == "trigger_registration_failed"
        assert complaint in reply["error"]["message"]


async def test_call_between_workers_with_caller_stamp(
    engine: EngineProcess, session: aiohttp.ClientSession, worker: RawWorker
) -> None:
    async with session.ws_connect(engine.worker_url) as ws:
        server = RawWorker(ws)
        await server.recv_type("workerregistered")
        await server.send({"type": "registerfunction", "id": "wire::echo"})
        await server.alive()  # registration applied before the pong
        call = asyncio.create_task(
            worker.call("wire::echo", {"x": 1}, metadata={"m": 2})
        )
        delivered = await server.recv_type("invokefunction")
        assert delivered["function_id"] == "wire::echo"
        assert delivered["data"] == {
            "x": 1,
            "_caller_worker_id": worker.registered["worker_id"],
        }
        assert delivered["metadata"] == {"m": 2}
        await server.send(
            {
                "type": "invocationresult",
                "invocation_id": delivered["invocation_id"],
                "function_id": "wire::echo",
                "result": {"ok": True},
            }
        )
        reply = await call
        assert reply["result"] == {"ok": True}


async def test_worker_disconnect_stops_invocations_and_removes_functions(
    engine: EngineProcess, session: aiohttp.ClientSession, worker: RawWorker
) -> None:
    ws = await session.ws_connect(engine.worker_url)
    server = RawWorker(ws)
    await server.recv_type("workerregistered")
    await server.send({"type": "registerfunction", "id": "wire::hang"})
    await server.alive()
    call = asyncio.create_task(worker.call("wire::hang", {}))
    await server.recv_type("invokefunction")
    await ws.close()
    reply = await call
    assert reply["error"] == {
        "code": "invocation_stopped",
        "message": "Invocation stopped",
    }
    reply = await worker.call("wire::hang", {})
    assert reply["error"]["code"] == "function_not_found"


async def test_reattach_retires_the_old_connection(
    engine: EngineProcess, session: aiohttp.ClientSession, worker: RawWorker
) -> None:
    old_ws = await session.ws_connect(engine.worker_url)
    old = RawWorker(old_ws)
    hello = await old.recv_type("workerregistered")
    await old.send({"type": "registerfunction", "id": "wire::old-only"})
    await old.alive()
    async with session.ws_connect(engine.worker_url) as ws:
        new = RawWorker(ws)
        await new.recv_type("workerregistered")
        await new.send(
            {
                "type": "reattach",
                "previous_worker_id": hello["worker_id"],
                "reattach_token": "wrong",
            }
        )
        await new.alive()
        await old.only_pong()  # a wrong token leaves the old socket working
        await new.send(
            {
                "type": "reattach",
                "previous_worker_id": hello["worker_id"],
                "reattach_token": hello["reattach_token"],
            }
        )
        await new.alive()
        msg = await old_ws.receive(5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        reply = await worker.call("wire::old-only", {})
        assert reply["error"]["code"] == "function_not_found"


async def test_engine_introspection(worker: RawWorker) -> None:
    await worker.send(
        {
            "type": "registerfunction",
            "id": "wire::listed",
            "description": "d",
            "metadata": {"team": "t"},
        }
    )
    await worker.send(
        {
            "type": "invokefunction",
            "function_id": "engine::workers::register",
            "action": {"type": "void"},
            "data": {
                "runtime": "python",
                "version": "0",
                "name": "raw",
                "pid": 1,
                "namespace": None,
                "isolation": None,
            },
        }
    )
    await worker.alive()
    functions = (await worker.call("engine::functions::list", {}))["result"]
    ids = [f["function_id"] for f in functions["functions"]]
    assert ids == sorted(ids)
    assert "state::set" in ids and not any(
        i.startswith("engine::") and not i.startswith("engine::queue::") for i in ids
    )
    listed = next(
        f for f in functions["functions"] if f["function_id"] == "wire::listed"
    )
    assert listed["worker_name"] == "raw"
    assert listed["metadata"] == {"team": "t"}
    workers = (await worker.call("engine::workers::list", {}))["result"]["workers"]
    me = next(w for w in workers if w["id"] == worker.registered["worker_id"])
    assert me["name"] == "raw" and "wire::listed" in me["functions"]
    types = (await worker.call("engine::triggers::list", {}))["result"]["triggers"]
    assert {"http", "state"} <= {t["id"] for t in types}


async def test_large_message_round_trip(
    engine: EngineProcess, session: aiohttp.ClientSession, worker: RawWorker
) -> None:
    """A 20 MiB message each way between two workers (over aiohttp's 4 MiB
    default; iii's limit is 64 MiB)."""
    big = "x" * (20 * 1024 * 1024)
    async with session.ws_connect(
        engine.worker_url, max_msg_size=64 * 1024 * 1024
    ) as ws:
        server = RawWorker(ws)
        await server.recv_type("workerregistered")
        await server.send({"type": "registerfunction", "id": "wire::big-echo"})
        await server.alive()
        call = asyncio.create_task(worker.call("wire::big-echo", {"v": big}))
        delivered = await server.recv_type("invokefunction")
        assert delivered["data"]["v"] == big
        await server.send(
            {
                "type": "invocationresult",
                "invocation_id": delivered["invocation_id"],
                "function_id": "wire::big-echo",
                "result": delivered["data"]["v"],
            }
        )
        reply = await call
        assert reply["result"] == big


async def test_state_values_are_limited_by_default(worker: RawWorker) -> None:
    """``max_value_bytes`` defaults to 4 MiB of compact JSON: a string of
    4 MiB - 2 characters (quotes included: exactly 4 MiB) is stored, one more
    character is refused and stores nothing."""
    limit = 4 * 1024 * 1024
    fits = "x" * (limit - 2)
    reply = await worker.call(
        "state::set", {"scope": "wire-limit", "key": "k", "value": fits}
    )
    assert "error" not in reply
    reply = await worker.call(
        "state::set", {"scope": "wire-limit", "key": "k", "value": fits + "y"}
    )
    assert reply["error"] == {
        "code": "VALUE_TOO_LARGE",
        "message": f"value of {limit + 1} bytes exceeds the configured"
        f" max_value_bytes limit of {limit}",
    }
    reply = await worker.call("state::get", {"scope": "wire-limit", "key": "k"})
    assert reply["result"] == fits


async def test_message_over_max_message_bytes_closes_with_1009(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """A worker message over ``max_message_bytes`` ends that socket with 1009
    (message too big, as iii) and a log line saying so; others stay."""
    config = tmp_path / "config.yaml"
    config.write_text(
        "workers:\n  - name: iii-worker-manager\n    config: {port: 0,"
        " host: 127.0.0.1, max_message_bytes: 1048576}\n"
    )
    proc = EngineProcess(tmp_path / "data", config=config).start()
    try:
        async with (
            session.ws_connect(proc.worker_url) as big_ws,
            session.ws_connect(proc.worker_url) as other_ws,
        ):
            big, other = RawWorker(big_ws), RawWorker(other_ws)
            await big.recv_type("workerregistered")
            await other.recv_type("workerregistered")
            under = await big.call("state::get", {"scope": "s", "key": "x" * 1000})
            assert "error" not in under
            await big.send(
                {
                    "type": "invokefunction",
                    "invocation_id": "too-big",
                    "function_id": "state::get",
                    "data": {"scope": "s", "key": "x" * (1024 * 1024)},
                }
            )
            msg = await big_ws.receive(5)
            assert msg.type == aiohttp.WSMsgType.CLOSE
            assert msg.data == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
            await other.alive()
        wait_until(
            lambda: (
                "closed (1009): a message over max_message_bytes (1048576 bytes)"
                in proc.log()
            ),
            message="the reason in the log",
        )
    finally:
        proc.stop()


async def test_value_too_large(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    proc = engine_with(
        tmp_path,
        "  - name: iii-state\n    config: {max_value_bytes: 64}\n"
        "  - name: iii-made-up-module\n",
    )
    try:
        async with session.ws_connect(proc.worker_url) as ws:
            w = RawWorker(ws)
            await w.recv_type("workerregistered")
            reply = await w.call(
                "state::set", {"scope": "s", "key": "k", "value": "y" * 100}
            )
            assert reply["error"] == {
                "code": "VALUE_TOO_LARGE",
                "message": "value of 102 bytes exceeds the configured "
                "max_value_bytes limit of 64",
            }
            reply = await w.call("state::get", {"scope": "s", "key": "k"})
            assert "result" not in reply and "error" not in reply
            reply = await w.call(
                "state::set", {"scope": "s", "key": "k", "value": "small"}
            )
            assert reply["result"]["new_value"] == "small"
        assert "iii-made-up-module" in proc.log()
    finally:
        proc.stop()


async def test_many_pipelined_calls_to_itself_do_not_deadlock(
    worker: RawWorker,
) -> None:
    await worker.send({"type": "registerfunction", "id": "wire::self-echo"})
    n = 2000
    for i in range(n):
        await worker.send(
            {
                "type": "invokefunction",
                "invocation_id": f"self-{i}",
                "function_id": "wire::self-echo",
                "data": {"i": i},
            }
        )
    results: dict[str, Any] = {}
    async with asyncio.timeout(60):
        while len(results) < n:
            frame = await worker.recv(30)
            if frame["type"] == "invokefunction":
                await worker.send(
                    {
                        "type": "invocationresult",
                        "invocation_id": frame["invocation_id"],
                        "function_id": frame["function_id"],
                        "result": frame["data"]["i"],
                    }
                )
            elif frame["type"] == "invocationresult":
                results[frame["invocation_id"]] = frame["result"]
    assert results == {f"self-{i}": i for i in range(n)}


async def _register(w: RawWorker, name: str, runtime: str = "python") -> None:
    await w.send(
        {
            "type": "invokefunction",
            "function_id": "engine::workers::register",
            "action": {"type": "void"},
            "data": {
                "runtime": runtime,
                "version": "0",
                "name": name,
                "pid": 1,
                "namespace": None,
            },
        }
    )


async def test_worker_name_conflict(
    engine: EngineProcess, session: aiohttp.ClientSession
) -> None:
    async with (
        session.ws_connect(engine.worker_url) as a_ws,
        session.ws_connect(engine.worker_url) as b_ws,
        session.ws_connect(engine.worker_url) as c_ws,
    ):
        a, b, c = RawWorker(a_ws), RawWorker(b_ws), RawWorker(c_ws)
        hello_a = await a.recv_type("workerregistered")
        for w in (b, c):
            await w.recv_type("workerregistered")
        await _register(a, "dup-name")
        await a.alive()
        await _register(b, "dup-name")
        rejected = await b.recv_type("registrationrejected")
        assert rejected == {
            "type": "registrationrejected",
            "code": "WORKER_NAMESPACE_CONFLICT",
            "namespace": "default",
            "worker_name": "dup-name",
            "owner_worker_id": hello_a["worker_id"],
        }
        msg = await b_ws.receive(5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        await _register(c, "dup-name", runtime="node")  # Node: newcomer wins
        await c.alive()
        await a.alive()


async def test_function_trigger_and_worker_info(worker: RawWorker) -> None:
    await worker.send(
        {
            "type": "registerfunction",
            "id": "wire::info",
            "description": "about",
            "request_format": {"type": "object"},
        }
    )
    await worker.send(
        {
            "type": "registertrigger",
            "id": "info-t",
            "trigger_type": "state",
            "function_id": "wire::info",
            "config": {"scope": "info"},
        }
    )
    await _register(worker, "info-worker")
    await worker.alive()
    detail = (
        await worker.call("engine::functions::info", {"function_id": "wire::info"})
    )["result"]
    assert detail["description"] == "about"
    assert detail["request_schema"] == {"type": "object"}
    assert detail["registered_triggers"] == [
        {"id": "info-t", "trigger_type": "state", "config": {"scope": "info"}}
    ]
    many = (
        await worker.call(
            "engine::functions::info", {"function_ids": ["wire::info", "nope"]}
        )
    )["result"]
    assert many["functions"][1] == {"function_id": "nope", "error": "not_found"}
    bad = await worker.call("engine::functions::info", {})
    assert bad["error"]["code"] == "INVALID_ARGUMENTS"
    info = (await worker.call("engine::registered-triggers::info", {"id": "info-t"}))[
        "result"
    ]
    assert info["function"]["function_id"] == "wire::info"
    assert info["trigger"]["id"] == "state"
    me = await worker.call("engine::workers::info", {"name": "info-worker"})
    assert [f["function_id"] for f in me["result"]["functions"]] == ["wire::info"]
    missing = await worker.call("engine::workers::info", {"name": "nobody"})
    assert missing["error"]["code"] == "NOT_FOUND"
    durable = (
        await worker.call(
            "engine::register_trigger",
            {
                "trigger_type": "state",
                "function_id": "wire::info",
                "config": {"scope": "info-2"},
            },
        )
    )["result"]
    removed = await worker.call("engine::unregister_trigger", {"id": durable["id"]})
    assert removed["result"] == {"removed": True}


async def test_blank_namespace_is_refused(worker: RawWorker) -> None:
    reply = await worker.call("state::get", {"scope": "s", "key": "k"}, namespace="  ")
    assert reply["error"]["code"] == "INVALID_NAMESPACE"
    reply = await worker.call(
        "state::get", {"scope": "s", "key": "k"}, namespace="elsewhere"
    )
    # built-ins answer from every namespace
    assert "result" not in reply and "error" not in reply


async def test_rbac_listener_refuses_failed_auth(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    proc = engine_with(
        tmp_path,
        "  - name: iii-worker-manager\n    config:\n      host: 127.0.0.1\n"
        "      port: 0\n      rbac: {auth_function_id: 'auth::missing',"
        " expose_functions: ['match(\"pub::*\")']}\n",
    )
    try:
        async with session.ws_connect(proc.info["rbac_url"]) as ws:
            msg = await ws.receive(5)
            assert json.loads(msg.data) == {
                "type": "error",
                "error": {"code": "AUTH_ERROR", "message": "authentication failed"},
            }
            closing = await ws.receive(5)
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    finally:
        proc.stop()


async def test_deeply_nested_frame_keeps_the_worker(worker: RawWorker) -> None:
    """A frame nested 10,000 levels deep is dropped like any bad frame: the
    socket stays open and the worker's functions stay registered."""
    function_id = f"wire::deep-{uuid.uuid4().hex[:6]}"
    await worker.send({"type": "registerfunction", "id": function_id})
    await worker.alive()
    depth = 10_000
    await worker.ws.send_str(
        '{"type":"invokefunction","function_id":"state::get","data":'
        + "[" * depth
        + "]" * depth
        + "}"
    )
    await worker.alive()
    listed = await worker.call("engine::functions::list", {"prefix": function_id})
    assert [f["function_id"] for f in listed["result"]["functions"]] == [function_id]


@pytest.mark.parametrize("value", [0, "", False, {}, [], 0.0])
async def test_falsy_results_keep_the_result_key(worker: RawWorker, value: Any) -> None:
    """Only a None result leaves ``result`` out; a falsy value is sent."""
    key = f"falsy-{uuid.uuid4().hex[:6]}"
    await worker.call("state::set", {"scope": "wire-falsy", "key": key, "value": value})
    reply = await worker.call("state::get", {"scope": "wire-falsy", "key": key})
    assert "result" in reply and reply["result"] == value
    assert type(reply["result"]) is type(value)


async def test_none_result_leaves_the_key_out(
    engine: EngineProcess, session: aiohttp.ClientSession, worker: RawWorker
) -> None:
    """A call that returns nothing gets an ``invocationresult`` without a
    ``result`` key, from a built-in and from a worker that sent ``null``."""
    reply = await worker.call("state::get", {"scope": "wire-none", "key": "missing"})
    assert set(reply) == {"type", "invocation_id", "function_id"}
    async with session.ws_connect(engine.worker_url) as ws:
        server = RawWorker(ws)
        await server.recv_type("workerregistered")
        results: dict[str, Any] = {
            "wire::nothing": None,
            "wire::zero": 0,
            "wire::empty": {},
        }
        for function_id in results:
            await server.send({"type": "registerfunction", "id": function_id})
        await server.alive()
        for function_id, result in results.items():
            call = asyncio.create_task(worker.call(function_id, {}))
            delivered = await server.recv_type("invokefunction")
            await server.send(
                {
                    "type": "invocationresult",
                    "invocation_id": delivered["invocation_id"],
                    "function_id": function_id,
                    "result": result,  # the Python SDK sends null explicitly
                }
            )
            reply = await call
            assert "error" not in reply
            if result is None:
                assert "result" not in reply
            else:
                assert reply["result"] == result


async def test_huge_unknown_type_is_logged_cut(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """A 4 MiB ``type`` (or function id of a failing void call) is dropped and
    logged in a line of a few hundred characters, not whole."""
    proc = EngineProcess(tmp_path / "data").start()
    try:
        async with session.ws_connect(
            proc.worker_url, max_msg_size=64 * 1024 * 1024
        ) as ws:
            w = RawWorker(ws)
            await w.recv_type("workerregistered")
            huge = "x" * (4 * 1024 * 1024)
            await w.send({"type": huge})
            await w.send(
                {
                    "type": "invokefunction",
                    "function_id": huge,
                    "action": {"type": "void"},
                }
            )
            await w.alive()
        proc.stop()
        text = proc.log_path.read_text()
        assert "unknown message type" in text and "void call" in text
        assert max(len(line) for line in text.splitlines()) < 1000
    finally:
        if proc.alive():
            proc.stop()


async def test_result_too_deep_to_encode_still_gets_an_answer(
    engine: EngineProcess, session: aiohttp.ClientSession, worker: RawWorker
) -> None:
    """A worker's result nested ~1000 levels deep decodes (orjson allows 1024)
    but cannot be encoded again: the caller gets ``serialization_error``
    instead of waiting for its timeout."""
    async with session.ws_connect(engine.worker_url) as ws:
        server = RawWorker(ws)
        await server.recv_type("workerregistered")
        await server.send({"type": "registerfunction", "id": "wire::deep"})
        await server.alive()
        call = asyncio.create_task(worker.call("wire::deep", {}))
        delivered = await server.recv_type("invokefunction")
        depth = 1000
        await ws.send_str(
            '{"type":"invocationresult","invocation_id":"'
            + delivered["invocation_id"]
            + '","function_id":"wire::deep","result":'
            + "[" * depth
            + "]" * depth
            + "}"
        )
        reply = await call
        assert reply["error"]["code"] == "serialization_error"
        await server.alive()
    await worker.alive()


async def test_a_node_link_only_calls_functions(
    engine: EngineProcess, session: aiohttp.ClientSession, worker: RawWorker
) -> None:
    """A connection that says it is another engine node (``?iiilog_node=``)
    may call functions, nothing else: a function it registers is not
    registered (a node link's close is no worker's disconnect, so it would
    stay behind, its calls waiting on a socket that is gone); its calls and
    pings still work."""
    url = f"{engine.worker_url.rstrip('/')}/?iiilog_node=node-{uuid.uuid4().hex[:6]}"
    async with session.ws_connect(url) as ws:
        link = RawWorker(ws)
        await link.recv_type("workerregistered")
        await link.send({"type": "registerfunction", "id": "wire::ghost"})
        await link.alive()
        reply = await link.call("state::list_groups", {})
        assert "result" in reply, reply
    reply = await worker.call("wire::ghost", {})
    assert reply["error"]["code"] == "function_not_found", reply
