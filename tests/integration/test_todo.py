"""The reactive todo example (examples/todo/worker.py) as a user runs it: the
real example process against a real engine, driven over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.harness import ROOT, EngineProcess, Http, wait_until
from tests.wsclients import StreamWatcher


@pytest.fixture(scope="module")
def sent(engine: EngineProcess) -> Iterator[StreamWatcher]:
    watcher = StreamWatcher(f"{engine.stream_url}/stream/todos-live/all")
    try:
        wait_until(lambda: watcher.messages, message="initial sync")
        yield watcher
    finally:
        watcher.close()


@pytest.fixture(scope="module")
def todo_app(engine: EngineProcess, sent: StreamWatcher) -> Iterator[Http]:
    env = {**os.environ, "III_URL": engine.worker_url, "OTEL_ENABLED": "false"}
    proc = subprocess.Popen(
        [sys.executable, "examples/todo/worker.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    api = Http(engine.http_url)
    try:
        wait_until(
            lambda: api.request("GET", "/todos/metrics")[0] == 200,
            timeout=20,
            message="todo routes",
        )
        yield api
    finally:
        proc.terminate()
        proc.wait(10)


def test_todo_flow(todo_app: Http, sent: StreamWatcher) -> None:
    api = todo_app
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
    wait_until(lambda: len(sent.events()) >= 3, message="three pushes")
    sync = sent.messages[0]
    assert sync["event"] == {"type": "sync", "data": []}
    events = sent.events()
    assert [e["event"]["event"]["data"]["action"] for e in events] == [
        "created",
        "updated",
        "deleted",
    ]
    first = events[0]
    assert first["streamName"] == "todos-live" and first["groupId"] == "all"
    assert first["event"]["event"]["type"] == "todo_changed"
    assert first["event"]["event"]["data"]["key"] == todo["id"]
    assert first["event"]["event"]["data"]["todo"] == todo
    offsets = [m["offset"] for m in sent.messages]
    assert offsets == sorted(offsets) and offsets[1] > sync["offset"]


def test_todo_bad_input(todo_app: Http) -> None:
    status, body = todo_app.json("POST", "/todos/toggle", {"id": "nope"})
    assert status == 500
    assert body["error"]["message"] == "Todo nope not found"
    status, body = todo_app.json("POST", "/todos", {"nothing": 1})
    assert status == 400 and body["error"]["code"] == "BAD_REQUEST"
    status, _, _raw = todo_app.request(
        "POST", "/todos", raw=b"{", headers={"content-type": "application/json"}
    )
    assert status == 400
