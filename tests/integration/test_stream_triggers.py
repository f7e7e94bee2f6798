"""Stream triggers through the real Python iii-sdk: ``stream`` triggers with
the change envelope, ``stream:join`` refusal, ``stream:leave``, the stream auth
function's context, and custom streams delegated to ``stream::<op>(<name>)``."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from iii import InvocationError

from tests.harness import (
    EngineProcess,
    call,
    engine_with,
    sdk_worker,
    wait_until,
)
from tests.harness import (
    trigger_bound as bound,
)
from tests.wsclients import StreamWatcher


def name() -> str:
    return f"sx-{uuid.uuid4().hex[:8]}"


class Recorder:
    def __init__(self, answer: Any = None) -> None:
        self.calls: list[Any] = []
        self.answer = answer
        self._lock = threading.Lock()

    def __call__(self, data: Any) -> Any:
        with self._lock:
            self.calls.append(data)
        return self.answer


def test_stream_trigger_gets_the_envelope(engine: EngineProcess, client: Any) -> None:
    s = name()
    rec, item_only = Recorder(), Recorder()
    with sdk_worker(engine.worker_url, "stream-trigger") as w:
        w.register_function("sx::all", rec)
        w.register_function("sx::item", item_only)
        w.register_trigger(
            {"type": "stream", "function_id": "sx::all", "config": {"stream_name": s}}
        )
        w.register_trigger(
            {
                "type": "stream",
                "function_id": "sx::item",
                "config": {"stream_name": s, "group_id": "g", "item_id": "b"},
            }
        )
        wait_until(lambda: bound(client, "sx::all") and bound(client, "sx::item"))
        call(
            client,
            "stream::set",
            {"stream_name": s, "group_id": "g", "item_id": "a", "data": {"v": 1}},
        )
        call(
            client,
            "stream::set",
            {"stream_name": s, "group_id": "g", "item_id": "b", "data": {"v": 2}},
        )
        call(
            client,
            "stream::send",
            {"stream_name": s, "group_id": "h", "type": "hello", "data": 3},
        )
        call(
            client,
            "stream::set",
            {"stream_name": name(), "group_id": "g", "item_id": "a", "data": 0},
        )
        wait_until(lambda: len(rec.calls) >= 3 and len(item_only.calls) >= 1)
    first = rec.calls[0]
    assert set(first) == {
        "type",
        "timestamp",
        "streamName",
        "groupId",
        "id",
        "event",
        "offset",
    }
    assert (first["streamName"], first["groupId"], first["id"]) == (s, "g", "a")
    assert first["event"] == {"type": "create", "data": {"v": 1}}
    assert rec.calls[2]["event"] == {
        "type": "event",
        "event": {"type": "hello", "data": 3},
    }
    assert [c["id"] for c in item_only.calls] == ["b"]


def test_stream_trigger_needs_a_stream_name(
    engine: EngineProcess, client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with sdk_worker(engine.worker_url, "no-name") as w:
        w.register_function("sx::nameless", Recorder())
        w.register_trigger(
            {
                "type": "stream",
                "function_id": "sx::nameless",
                "config": {"group_id": "g"},
            }
        )
        wait_until(lambda: "stream_name is required" in caplog.text)
        assert not bound(client, "sx::nameless")


def test_join_refusal_and_leave(engine: EngineProcess, client: Any) -> None:
    s = name()
    joins = Recorder()
    leaves = Recorder()

    def gate(data: dict[str, Any]) -> dict[str, Any]:
        joins(data)
        return {"unauthorized": data["group_id"] == "secret"}

    with sdk_worker(engine.worker_url, "gatekeeper") as w:
        w.register_function("sx::gate", gate)
        w.register_function("sx::leave", leaves)
        w.register_trigger(
            {
                "type": "stream:join",
                "function_id": "sx::gate",
                "config": {"stream_name": s},
            }
        )
        w.register_trigger(
            {
                "type": "stream:leave",
                "function_id": "sx::leave",
                "config": {"stream_name": s},
            }
        )
        wait_until(lambda: bound(client, "sx::gate") and bound(client, "sx::leave"))
        refused = StreamWatcher(f"{engine.stream_url}/stream/{s}/secret")
        wait_until(lambda: refused.messages)
        assert refused.messages[0]["event"] == {"type": "unauthorized"}
        refused.close()
        allowed = StreamWatcher(f"{engine.stream_url}/stream/{s}/open")
        wait_until(lambda: allowed.messages)
        assert allowed.messages[0]["event"]["type"] == "sync"
        call(
            client,
            "stream::send",
            {"stream_name": s, "group_id": "open", "type": "t", "data": 1},
        )
        call(
            client,
            "stream::send",
            {"stream_name": s, "group_id": "secret", "type": "t", "data": 2},
        )
        wait_until(lambda: len(allowed.messages) == 2)
        allowed.close()
        wait_until(lambda: len(leaves.calls) == 1, message="synthetic leave")
    assert [j["group_id"] for j in joins.calls] == ["secret", "open"]
    assert joins.calls[1] == {
        "subscription_id": "url",
        "stream_name": s,
        "group_id": "open",
        "id": None,
        "context": None,
    }
    assert leaves.calls[0]["group_id"] == "open"


@pytest.fixture
def auth_engine(tmp_path: Path) -> Iterator[EngineProcess]:
    proc = engine_with(
        tmp_path,
        "  - name: iii-stream\n    config: {port: 0, host: 127.0.0.1,"
        " auth_function: 'sx::auth'}\n",
    )
    try:
        yield proc
    finally:
        proc.stop()


def test_auth_context_reaches_join(auth_engine: EngineProcess) -> None:
    seen = Recorder()
    auth_calls = Recorder()

    def auth(data: dict[str, Any]) -> dict[str, Any]:
        auth_calls(data)
        return {"context": {"user": data["query_params"].get("user", ["?"])[0]}}

    with sdk_worker(auth_engine.worker_url, "auth") as w:
        w.register_function("sx::auth", auth)
        w.register_function("sx::seen", seen)
        w.register_trigger({"type": "stream:join", "function_id": "sx::seen"})
        wait_until(lambda: bound(w, "sx::seen"))
        watcher = StreamWatcher(f"{auth_engine.stream_url}/stream/s/g?user=ada")
        wait_until(lambda: watcher.messages)
        watcher.close()
    assert seen.calls[0]["context"] == {"user": "ada"}
    assert auth_calls.calls[0]["query_params"]["user"] == ["ada"]
    assert auth_calls.calls[0]["path"] == "/stream/s/g"


def test_custom_stream_delegation(engine: EngineProcess, client: Any) -> None:
    s = name()
    store: dict[str, Any] = {}

    def custom_set(data: dict[str, Any]) -> dict[str, Any]:
        old = store.get(data["item_id"])
        store[data["item_id"]] = data["data"]
        return {"old_value": old, "new_value": data["data"]}

    def custom_delete(data: dict[str, Any]) -> dict[str, Any]:
        return {"old_value": store.pop(data["item_id"], None)}

    with sdk_worker(engine.worker_url, "custom") as w:
        w.register_function(f"stream::set({s})", custom_set)
        w.register_function(f"stream::get({s})", lambda d: store.get(d["item_id"]))
        w.register_function(f"stream::list({s})", lambda d: list(store.values()))
        w.register_function(f"stream::delete({s})", custom_delete)
        w.register_function(f"stream::list_groups({s})", lambda d: ["custom"])
        w.register_function(f"stream::update({s})", lambda d: None)
        wait_until(
            lambda: (
                f"stream::list({s})"
                in [
                    f["function_id"]
                    for f in call(client, "engine::functions::list", {})["functions"]
                ]
            )
        )
        watcher = StreamWatcher(f"{engine.stream_url}/stream/{s}/g")
        wait_until(lambda: watcher.messages)
        assert watcher.messages[0]["event"] == {"type": "sync", "data": []}
        addr = {"stream_name": s, "group_id": "g", "item_id": "x"}
        assert call(client, "stream::set", {**addr, "data": 1}) == {
            "old_value": None,
            "new_value": 1,
        }
        assert call(client, "stream::get", addr) == 1
        assert call(client, "stream::list", {"stream_name": s, "group_id": "g"}) == [1]
        assert call(client, "stream::list_groups", {"stream_name": s}) == ["custom"]
        assert call(client, "stream::delete", addr) == {"old_value": 1}
        with pytest.raises(InvocationError) as err:
            call(client, "stream::update", {**addr, "ops": []})
        assert err.value.code == "STREAM_UPDATE_ERROR"
        wait_until(lambda: len(watcher.messages) >= 3)
        watcher.close()
    assert [m["event"]["type"] for m in watcher.messages] == [
        "sync",
        "create",
        "delete",
    ]
    # Delegated items never land in the built-in view.
    assert call(client, "stream::list_all", {})["stream"] == [
        x for x in call(client, "stream::list_all", {})["stream"] if x["id"] != s
    ]
