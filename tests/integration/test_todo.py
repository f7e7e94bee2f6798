"""The reactive todo example as a user runs it, written with the Python SDK
(examples/todo/worker.py) and with the Node SDK (examples/todo-node/worker.mjs,
run unchanged on iii-sdk 0.22.1 and 0.11.6): the real worker process against a
real engine, driven over HTTP and watched over the stream WebSocket."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scripts.todo_workers import node_worker_dir, start_todo_worker
from tests.harness import EngineProcess, Http, wait_until
from tests.wsclients import StreamWatcher

__all__ = ["node_worker_dir", "start_worker"]

NODE_SDKS = ("0.22.1", "0.11.6")
RUNTIMES = ["python", *(f"node-{v}" for v in NODE_SDKS)]


def start_worker(
    runtime: str, engine: EngineProcess, output: Path | None = None
) -> subprocess.Popen[bytes]:
    return start_todo_worker(runtime, engine.worker_url, output=output)


class TodoApp:
    """The engine's HTTP API, the live stream, and what the worker printed."""

    def __init__(self, api: Http, watcher: StreamWatcher, output: Path) -> None:
        self.api, self.watcher, self.output = api, watcher, output


@pytest.fixture(params=RUNTIMES)
def todo_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TodoApp]:
    engine = EngineProcess(tmp_path / "data").start()
    watcher = StreamWatcher(f"{engine.stream_url}/stream/todos-live/all")
    output = tmp_path / "worker.log"
    worker = start_worker(request.param, engine, output)
    api = Http(engine.http_url)
    try:
        wait_until(lambda: watcher.messages, message="initial sync")
        wait_until(
            lambda: api.request("GET", "/todos/metrics")[0] == 200,
            timeout=30,
            message="todo routes",
        )
        yield TodoApp(api, watcher, output)
    finally:
        worker.terminate()
        worker.wait(10)
        watcher.close()
        engine.stop()


def events(watcher: StreamWatcher) -> list[dict[str, Any]]:
    return [m for m in watcher.messages if m["event"]["type"] == "event"]


def test_todo_flow(todo_app: TodoApp) -> None:
    api, sent = todo_app.api, todo_app.watcher
    assert api.json("GET", "/todos/metrics") == (200, {"total": 0, "completed": 0})
    status, todo = api.json("POST", "/todos", {"title": "milk"})
    assert status == 201
    assert todo["title"] == "milk" and todo["completed"] is False
    assert todo["id"].startswith("todo-") and todo["_key"] == todo["id"]
    assert api.json("GET", "/todos") == (200, [todo])
    wait_until(
        lambda: api.json("GET", "/todos/metrics")[1] == {"total": 1}, message="total 1"
    )
    assert api.json("POST", "/todos/toggle", {"id": todo["id"]}) == (
        200,
        {"id": todo["id"], "completed": True},
    )
    wait_until(
        lambda: api.json("GET", "/todos/metrics")[1] == {"total": 1, "completed": 1},
        message="completed 1",
    )
    assert api.json("POST", "/todos/delete", {"id": todo["id"]}) == (
        200,
        {"deleted": todo["id"]},
    )
    wait_until(
        lambda: api.json("GET", "/todos/metrics")[1] == {"total": 0, "completed": 0},
        message="back to zero",
    )
    assert api.json("GET", "/todos") == (200, [])
    wait_until(lambda: len(events(sent)) >= 3, message="three pushes")
    sync = sent.messages[0]
    assert sync["event"] == {"type": "sync", "data": []}
    pushed = events(sent)
    assert [e["event"]["event"]["data"]["action"] for e in pushed] == [
        "created",
        "updated",
        "deleted",
    ]
    first = pushed[0]
    assert first["streamName"] == "todos-live" and first["groupId"] == "all"
    assert first["event"]["event"]["type"] == "todo_changed"
    assert first["event"]["event"]["data"]["key"] == todo["id"]
    assert first["event"]["event"]["data"]["todo"] == todo
    offsets = [m["offset"] for m in sent.messages]
    assert offsets == sorted(offsets) and offsets[1] > sync["offset"]
    # Each push names the offset of the state change it reports (iiilog's
    # trigger payloads carry it): in order, each before its own push.
    sources = [e["event"]["event"]["data"]["offset"] for e in pushed]
    assert sources == sorted(set(sources)) and sources[0] > sync["offset"]
    assert all(s < e["offset"] for s, e in zip(sources, pushed, strict=True))


def test_todo_bad_input(todo_app: TodoApp) -> None:
    """Bad requests get the error envelope with the right status, in both
    examples, and a handled error prints no traceback."""
    api = todo_app.api
    status, todo = api.json("POST", "/todos", {"title": "kept"})
    assert status == 201
    missing = (
        400,
        {"error": {"code": "BAD_REQUEST", "message": "`id` is required"}},
    )
    unknown = (
        404,
        {"error": {"code": "NOT_FOUND", "message": "Todo nope not found"}},
    )
    for path in ("/todos/toggle", "/todos/delete"):
        assert api.json("POST", path, {}) == missing, path
        assert api.json("POST", path, {"id": 5}) == missing, path
        assert api.json("POST", path, {"id": ""}) == missing, path
        assert api.json("POST", path, {"id": "nope"}) == unknown, path
    status, body = api.json("POST", "/todos", {"nothing": 1})
    assert status == 400 and body["error"]["code"] == "BAD_REQUEST"
    status, _, _ = api.request(
        "POST", "/todos", raw=b"{", headers={"content-type": "application/json"}
    )
    assert status == 400
    # Over the state's max_value_bytes (4 MiB): the worker answers 413.
    status, body = api.json("POST", "/todos", {"title": "x" * (5 * 1024 * 1024)})
    assert status == 413 and body["error"]["code"] == "VALUE_TOO_LARGE"
    # Over the HTTP body limit (16 MiB): the engine answers before any worker.
    status, body = api.json("POST", "/todos", {"title": "x" * (20 * 1024 * 1024)})
    assert status == 413 and body["error"]["code"] == "PAYLOAD_TOO_LARGE"
    # Nothing of the above was stored; the todo that was is intact.
    assert api.json("GET", "/todos") == (200, [todo])
    printed = todo_app.output.read_text(errors="replace")
    assert "Traceback" not in printed and "\n    at " not in printed, printed
