"""Several engine nodes on one PostgreSQL log, driven as users would: the todo
worker on one node, HTTP through another, stream clients on a third.

Every node's clients see every change, in offset order, with the same offsets;
a function registered on one node is callable through any; when a node dies,
its functions and routes go with it promptly and its subscriptions move.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.cluster import cluster, live_nodes
from tests.harness import Http, call, sdk_worker, wait_until
from tests.wsclients import StreamWatcher


def todos_served(api: Http) -> bool:
    status, _, _ = api.request("GET", "/todos", timeout=5)
    return status == 200


def create(api: Http, title: str) -> dict[str, Any]:
    status, body = api.json("POST", "/todos", {"title": title}, timeout=15)
    assert status == 201, body
    return body  # type: ignore[no-any-return]


def metrics(api: Http) -> dict[str, Any]:
    status, body = api.json("GET", "/todos/metrics", timeout=15)
    assert status == 200, body
    return body  # type: ignore[no-any-return]


def events(watcher: StreamWatcher) -> list[dict[str, Any]]:
    return [m for m in watcher.messages if m["event"]["type"] == "event"]


def test_three_nodes_one_log(tmp_path: Path) -> None:
    with cluster(tmp_path) as c:
        a, b, n3 = c.node(), c.node(), c.node()
        live_nodes(c, 3)
        watcher = StreamWatcher(f"{n3.stream_url}/stream/todos-live/all")
        c.todo_worker(a, "todo-a")
        via_b, via_c = Http(b.http_url), Http(n3.http_url)
        wait_until(lambda: todos_served(via_b), 20, 0.1, "routes of A served by B")
        wait_until(lambda: todos_served(via_c), 20, 0.1, "routes of A served by C")
        made = [create(via_b if i % 2 else via_c, f"t{i}") for i in range(10)]
        for todo in made[:4]:
            status, _ = via_c.json("POST", "/todos/toggle", {"id": todo["id"]})
            assert status == 200
        status, _ = via_b.json("POST", "/todos/delete", {"id": made[9]["id"]})
        assert status == 200
        wait_until(
            lambda: metrics(via_c) == {"total": 9, "completed": 4},
            20,
            0.1,
            "counters kept by A's triggers, read through C",
        )
        # Every change reached C's stream client, once, in offset order.
        wait_until(lambda: len(events(watcher)) == 15, 20, 0.1, "15 pushes on C")
        offsets = [m["offset"] for m in events(watcher)]
        assert offsets == sorted(set(offsets))
        # A worker on C calls a function A's worker serves.
        with sdk_worker(n3.worker_url, "caller-on-c") as w:
            listed = call(w, "todos::list", {"body": None})
            assert {t["id"] for t in listed["body"]} == {t["id"] for t in made[:9]}
            # A stream client can resume from an offset on any node.
            resume = StreamWatcher(
                f"{b.stream_url}/stream/todos-live/all?from={offsets[4]}"
            )
            wait_until(lambda: len(events(resume)) == 10, 10, 0.05, "resumed on B")
            assert [m["offset"] for m in events(resume)] == offsets[5:]
            resume.close()
            # Node A dies: its functions and routes go promptly, calls fail fast.
            a.kill()
            started = time.monotonic()

            def gone() -> bool:
                try:
                    call(w, "todos::list", {"body": None}, timeout_ms=5000)
                except Exception as e:  # the SDK raises the engine's error
                    return "not found" in str(e) or "stopped" in str(e)
                return False

            wait_until(gone, 10, 0.2, "todos::list to be gone with A")
            assert time.monotonic() - started < 8
            wait_until(
                lambda: via_b.request("GET", "/todos", timeout=10)[0] == 404,
                10,
                0.2,
                "A's routes gone from B",
            )
        watcher.close()
        verify = c.replay("--verify")
        assert verify.returncode == 0, verify.stdout + verify.stderr
        out = json.loads(c.replay("--json").stdout)
        assert out["targets"]["todo-metrics"]["state"] == {"total": 9, "completed": 4}
