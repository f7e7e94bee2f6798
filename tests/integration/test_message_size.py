"""Worker messages up to ``max_message_bytes`` (64 MiB by default, as iii),
whole or in fragments: a message of exactly the limit is read, one byte more
closes the socket with 1009 however it is cut, and a fragmented message (a
ping between its fragments, a UTF-8 character cut in two) is one message on
the worker port and on the stream port."""

from __future__ import annotations

import base64
import json
import os
import threading
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.harness import EngineProcess, call, engine_with, wait_until
from tests.wsclients import RawSocket, RawWorker, client_frame

MIB = 1024 * 1024


def invocation(invocation_id: str, function_id: str, data: Any) -> bytes:
    """An ``invokefunction`` as compact UTF-8 JSON."""
    msg = {
        "type": "invokefunction",
        "invocation_id": invocation_id,
        "function_id": function_id,
        "data": data,
    }
    return json.dumps(msg, ensure_ascii=False, separators=(",", ":")).encode()


def sized_set(invocation_id: str, size: int, scope: str) -> tuple[bytes, str]:
    """A ``state::set`` of key ``k`` in ``scope`` that is exactly ``size``
    bytes on the wire, and the value it carries: random ASCII ending in a
    3-byte UTF-8 character, so a cut or reordered copy would not compare
    equal."""
    empty = invocation(invocation_id, "state::set", {"scope": scope, "key": "k"})
    pad = size - len(empty) - len(',"value":""') - 3
    text = base64.b64encode(os.urandom(pad)).decode()[:pad] + "✓"
    data = {"scope": scope, "key": "k", "value": text}
    msg = invocation(invocation_id, "state::set", data)
    assert len(msg) == size
    return msg, text


def send(peer: RawSocket, msg: bytes, fragments: int) -> None:
    """``msg`` as one frame (``fragments`` 0) or as that many fragments."""
    if fragments:
        peer.send_fragmented(msg, [len(msg) // fragments] * (fragments - 1))
    else:
        peer.sock.sendall(client_frame(msg))


async def test_a_message_of_exactly_64_mib_round_trips(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """At the default ``max_message_bytes`` a worker message of exactly 64 MiB
    is read: the ``state::set`` it carries stores its ~64 MiB value and
    ``state::get`` returns it intact (``max_value_bytes: null`` lifts the
    state module's own limit)."""
    proc = engine_with(
        tmp_path, "  - name: iii-state\n    config: {max_value_bytes: null}\n"
    )
    try:
        msg, value = sized_set("set-64", 64 * MIB, "big")
        # the answers carry the value too, with a few bytes more around it
        async with session.ws_connect(proc.worker_url, max_msg_size=65 * MIB) as ws:
            worker = RawWorker(ws)
            await worker.recv_type("workerregistered")
            await ws.send_str(msg.decode())
            del msg
            reply = await worker.recv_type("invocationresult", timeout=120)
            assert reply["invocation_id"] == "set-64"
            assert reply["result"]["new_value"] == value
            del reply
            await ws.send_bytes(
                invocation("get-64", "state::get", {"scope": "big", "key": "k"})
            )
            reply = await worker.recv_type("invocationresult", timeout=120)
            assert reply["invocation_id"] == "get-64"
            assert reply["result"] == value
    finally:
        proc.stop()


@pytest.mark.parametrize("fragments", [0, 16], ids=["whole", "fragmented"])
def test_the_limit_is_exact_whole_or_in_fragments(
    tmp_path: Path, fragments: int
) -> None:
    """With ``max_message_bytes: 1048576`` a message of exactly 1048576 bytes
    is read and answered; one of 1048577 bytes closes the socket with 1009
    (message too big) and stores nothing, sent whole or in 16 fragments
    (fragments add up)."""
    config = tmp_path / "config.yaml"
    config.write_text(
        "workers:\n  - name: iii-worker-manager\n    config: {port: 0,"
        " host: 127.0.0.1, max_message_bytes: 1048576}\n"
    )
    proc = EngineProcess(tmp_path / "data", config=config).start()
    try:
        peer = RawSocket(proc.worker_url)
        try:
            assert peer.read_json()["type"] == "workerregistered"
            fits, value = sized_set("fits", MIB, "edge")
            send(peer, fits, fragments)
            reply = peer.read_json()
            assert reply["invocation_id"] == "fits", reply
            assert reply["result"]["new_value"] == value
            over, _ = sized_set("over", MIB + 1, "edge")
            # The engine stops reading at the limit: send from a thread, so
            # this one reads the close frame while the rest may be refused.
            sender = threading.Thread(
                target=_send_quietly, args=(peer, over, fragments)
            )
            sender.start()
            assert peer.read_close() == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
            sender.join(10)
        finally:
            peer.close()
        wait_until(
            lambda: "closed (1009): a message over max_message_bytes" in proc.log(),
            message="the reason in the log",
        )
        again = RawSocket(proc.worker_url)
        try:
            again.read_json()  # workerregistered
            again.sock.sendall(
                client_frame(
                    invocation("get", "state::get", {"scope": "edge", "key": "k"})
                )
            )
            assert again.read_json()["result"] == value  # "over" stored nothing
        finally:
            again.close()
    finally:
        proc.stop()


def _send_quietly(peer: RawSocket, msg: bytes, fragments: int) -> None:
    try:
        send(peer, msg, fragments)
    except OSError:
        pass  # the engine closed the socket before taking all of it


def test_fragmented_message_is_one_message_on_the_worker_port(
    engine: EngineProcess,
) -> None:
    """A message cut into fragments (lengths in the 7-bit, 16-bit and 64-bit
    forms, a ping between the first two, a UTF-8 character cut in two) is read
    as one message: its call is answered and stores the whole value, and the
    socket goes on reading whole messages."""
    scope = f"frag-{uuid.uuid4().hex[:8]}"
    value = "é" + "x" * 140_000 + "✓ end"
    msg = invocation(
        "frag-1", "state::set", {"scope": scope, "key": "k", "value": value}
    )
    inside = msg.index("é".encode()) + 1  # between the character's two bytes
    peer = RawSocket(engine.worker_url)
    try:
        assert peer.read_json()["type"] == "workerregistered"
        peer.send_fragmented(msg, [inside, 1, 125, 200, 70_000])
        reply = peer.read_json()
        assert reply["invocation_id"] == "frag-1", reply
        assert reply["result"] == {"old_value": None, "new_value": value}
        get = invocation("get-1", "state::get", {"scope": scope, "key": "k"})
        peer.sock.sendall(client_frame(get))
        reply = peer.read_json()
        assert (reply["invocation_id"], reply["result"]) == ("get-1", value)
    finally:
        peer.close()


def test_fragmented_message_is_one_message_on_the_stream_port(
    engine: EngineProcess, client: Any
) -> None:
    """A ``join`` sent in fragments (a ping between the first two) on the
    stream port is one join: its sync arrives, then the group's changes."""
    stream = f"frag-{uuid.uuid4().hex[:8]}"
    item = {"stream_name": stream, "group_id": "g", "item_id": "a"}
    call(client, "stream::set", {**item, "data": {"n": 1}})
    join = {
        "type": "join",
        "data": {"subscriptionId": "frag", "streamName": stream, "groupId": "g"},
    }
    peer = RawSocket(engine.stream_url)
    try:
        peer.send_fragmented(json.dumps(join).encode(), [1, 10, 20])
        sync = peer.read_json()
        assert sync["streamName"] == stream
        assert sync["event"] == {"type": "sync", "data": [{"n": 1}]}
        call(client, "stream::set", {**item, "data": {"n": 2}})
        update = peer.read_json()
        assert update["event"] == {"type": "update", "data": {"n": 2}}
    finally:
        peer.close()
