"""The worker protocol at its limits, with a raw aiohttp WebSocket client: large
messages and values, pipelining, deep nesting, results that cannot be encoded,
huge names in the log; the engine and the connection keep working."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.harness import EngineProcess, engine_with, wait_until
from tests.wsclients import RawWorker


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
