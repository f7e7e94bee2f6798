"""Several engine nodes on one PostgreSQL log, driven as users would: the todo
worker on one node, HTTP through another, stream clients on a third.

Every node's clients see every change, in offset order, with the same offsets;
a function registered on one node is callable through any; when a node dies,
its functions and routes go with it promptly and its subscriptions move.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from iii import InvocationError, TriggerAction
from websockets.sync.client import connect

from eventlog import Record
from eventlog.postgres import PostgresStore
from tests.cluster import Cluster, cluster, live_nodes
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
        head = c.status()["head"]
        out = json.loads(c.replay("--json", "--to", str(head)).stdout)
        assert out["targets"]["todo-metrics"]["state"] == {"total": 9, "completed": 4}


def _writers(
    targets: list[Http], stop: threading.Event, count: int = 16
) -> tuple[list[threading.Thread], list[str], list[str]]:
    """``count`` threads creating todos through ``targets`` (each writer sticks
    to one, moves to the next when it fails) until ``stop``; returns the
    threads, the acknowledged todo ids and the errors seen."""
    acked: list[str] = []
    errors: list[str] = []

    def write(n: int) -> None:
        target = n % len(targets)
        i = 0
        while not stop.is_set():
            try:
                status, body = targets[target].json(
                    "POST", "/todos", {"title": f"w{n}-{i}"}, timeout=10
                )
            except OSError as e:
                errors.append(f"{n}: {e}")
                target = (target + 1) % len(targets)
                continue
            if status == 201:
                acked.append(body["id"])
                i += 1
            else:
                errors.append(f"{n}: {status} {body}")
                target = (target + 1) % len(targets)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    return threads, acked, errors


def _log(url: str) -> list[Record]:
    async def read() -> list[Record]:
        store = await PostgresStore.open(url, create=False, pool_size=1)
        try:
            return await store.read(0, 1_000_000)
        finally:
            await store.close()

    return asyncio.run(read())


def _settled(c: Cluster, api: Http) -> bool:
    """The counters equal the todos, and every subscription has caught up."""
    status_code, todos = api.json("GET", "/todos", timeout=15)
    if status_code != 200:  # a node died under this call: ask again
        _settled.last = (status_code, todos)  # type: ignore[attr-defined]
        return False
    counted = {"total": 0, "completed": 0, **metrics(api)}  # never moved: 0
    status = c.status()
    lag = [s for s in status["cursors"] if s["position"] < status["head"]]
    expected = {
        "total": len(todos),
        "completed": sum(1 for t in todos if t.get("completed")),
    }
    _settled.last = (counted, expected, lag, status["head"])  # type: ignore[attr-defined]
    return not lag and counted == expected


def test_kill_9_of_a_node_under_16_writers(tmp_path: Path) -> None:
    """Writers go through nodes B and C; B is killed mid-writes. Every
    acknowledged write is in the log, C's stream client sees each offset once
    in order, the counters equal the todos, and the rebuilt views verify."""
    with cluster(tmp_path) as c:
        a, b, n3 = c.node(), c.node(), c.node()
        live_nodes(c, 3)
        c.todo_worker(a, "todo-a")
        via_b, via_c = Http(b.http_url), Http(n3.http_url)
        wait_until(lambda: todos_served(via_b) and todos_served(via_c), 20, 0.1)
        watcher = StreamWatcher(f"{n3.stream_url}/stream/todos-live/all")
        stop = threading.Event()
        threads, acked, _ = _writers([via_b, via_c], stop)
        wait_until(lambda: len(acked) >= 150, 30, 0.05, "writes before the kill")
        b.kill()
        wait_until(lambda: len(acked) >= 350, 60, 0.05, "writes after the kill")
        stop.set()
        for t in threads:
            t.join(30)
        try:
            wait_until(lambda: _settled(c, via_c), 60, 0.3, "counters caught up")
        except AssertionError:
            print("LAST", _settled.last)  # type: ignore[attr-defined]
            for node in c.nodes:
                print(node.log()[-3000:])
            raise
        records = _log(c.url)
        assert [r.offset for r in records] == list(range(1, len(records) + 1))
        stored = {
            r.key for r in records if r.kind == "state.set" and r.scope == "todos"
        }
        assert set(acked) <= stored
        pushes = [
            r.offset
            for r in records
            if r.kind == "stream.send" and r.scope == "todos-live"
        ]
        wait_until(
            lambda: [m["offset"] for m in events(watcher)] == pushes,
            20,
            0.1,
            "every push on C, once, in offset order",
        )
        watcher.close()
        verify = c.replay("--verify")
        assert verify.returncode == 0, verify.stdout + verify.stderr


def test_trigger_subscriptions_fail_over_with_their_node(tmp_path: Path) -> None:
    """Replicas of the todo worker on nodes A and B; the node that delivers the
    todo triggers is killed mid-writes: the other takes over from the shared
    cursor within 10 s and the counters still match the todos exactly."""
    with cluster(tmp_path) as c:
        nodes = [c.node(), c.node(), c.node()]
        live_nodes(c, 3)
        c.todo_worker(nodes[0], "todo-a")
        c.todo_worker(nodes[1], "todo-b")
        via = Http(nodes[2].http_url)
        wait_until(lambda: todos_served(via), 20, 0.1)

        def leaders() -> set[str]:
            return {
                s["node_id"]
                for s in c.status()["cursors"]
                if s["function_id"].startswith("todos::") and s.get("node_id")
            }

        # Both subscriptions exist once (replicas share them) and are led.
        wait_until(lambda: len(c.status()["cursors"]) == 2 and leaders(), 20, 0.2)
        stop = threading.Event()
        threads, acked, _ = _writers([via], stop, count=8)
        wait_until(lambda: len(acked) >= 100, 30, 0.05)
        leader = leaders().pop()
        ids = {n.info.get("node_id") for n in nodes}
        assert leader in ids, (leader, ids)
        victim = next(n for n in nodes if n.info.get("node_id") == leader)
        assert victim is not nodes[2]  # only nodes with a worker lead
        killed_at = time.monotonic()
        victim.kill()
        wait_until(lambda: leaders() - {leader}, 15, 0.2, "a new leader")
        assert time.monotonic() - killed_at < 10
        wait_until(lambda: len(acked) >= 250, 60, 0.05)
        stop.set()
        for t in threads:
            t.join(30)
        wait_until(lambda: _settled(c, via), 60, 0.3, "counters caught up")
        verify = c.replay("--verify")
        assert verify.returncode == 0, verify.stdout + verify.stderr


def test_cron_fires_once_and_a_queued_message_runs_once(tmp_path: Path) -> None:
    """Replicas of one worker on two nodes: a cron job fires once per scheduled
    time across the cluster, and each queued message is handled once."""
    with cluster(tmp_path) as c:
        a, b = c.node(), c.node()
        live_nodes(c, 2)

        def replica(w: Any) -> None:
            def tick(event: dict[str, Any]) -> None:
                call(
                    w,
                    "state::update",
                    {
                        "scope": "ticks",
                        "key": event["scheduled_time"],
                        "ops": [{"type": "increment", "path": "n", "by": 1}],
                    },
                )

            def job(data: dict[str, Any]) -> None:
                call(
                    w,
                    "state::update",
                    {
                        "scope": "jobs",
                        "key": data["id"],
                        "ops": [{"type": "increment", "path": "n", "by": 1}],
                    },
                )

            w.register_function("tick::fire", tick)
            w.register_function("job::run", job)
            w.register_trigger(
                {
                    "type": "cron",
                    "function_id": "tick::fire",
                    "config": {"expression": "* * * * * *"},
                }
            )

        with (
            sdk_worker(a.worker_url, "replica-a") as wa,
            sdk_worker(b.worker_url, "replica-b") as wb,
        ):
            replica(wa)
            replica(wb)
            for i in range(40):
                (wa if i % 2 else wb).trigger(
                    {
                        "function_id": "job::run",
                        "payload": {"id": f"m{i}"},
                        "action": TriggerAction.Enqueue(queue="jobs"),
                    }
                )

            def jobs_done() -> bool:
                done = call(wa, "state::list", {"scope": "jobs"})
                return len(done) == 40

            wait_until(jobs_done, 30, 0.2, "every queued message handled")
            wait_until(
                lambda: len(call(wa, "state::list", {"scope": "ticks"})) >= 4,
                15,
                0.2,
                "a few cron fires",
            )
            assert all(
                j == {"n": 1} for j in call(wb, "state::list", {"scope": "jobs"})
            )
            assert all(
                t == {"n": 1} for t in call(wb, "state::list", {"scope": "ticks"})
            )


def _bind(path: str) -> str:
    return json.dumps(
        {
            "type": "registertrigger",
            "id": "route-1",
            "trigger_type": "http",
            "function_id": "probe::hello",
            "config": {"api_path": path, "http_method": "GET"},
        }
    )


def test_a_route_bound_again_with_another_path_moves_on_every_node(
    tmp_path: Path,
) -> None:
    """A trigger id unbound and bound again with another path between two
    directory syncs (a worker restarting with a changed route) is published
    again: the other nodes serve the new path, not the old one."""
    with cluster(tmp_path) as c:
        a, b = c.node(), c.node()
        live_nodes(c, 2)
        via_b = Http(b.http_url)

        def served(path: str) -> int:
            return via_b.request("GET", f"/{path}", timeout=10)[0]

        with (
            sdk_worker(a.worker_url, "probe") as w,
            connect(a.worker_url) as ws,
        ):
            w.register_function(
                "probe::hello", lambda _: {"status_code": 200, "body": "hi"}
            )
            ws.recv(timeout=10)  # workerregistered
            ws.send(_bind("v1"))
            wait_until(lambda: served("v1") == 200, 20, 0.1, "v1 served by B")
            # Unbound and bound again in one breath: A's next sync sees the
            # same trigger id with another path.
            ws.send(json.dumps({"type": "unregistertrigger", "id": "route-1"}))
            ws.send(_bind("v2"))
            wait_until(lambda: served("v2") == 200, 20, 0.1, "v2 served by B")
            assert served("v1") == 404


def test_a_call_to_a_frozen_node_ends_promptly(tmp_path: Path) -> None:
    """Node A is stopped (SIGSTOP: its kernel still accepts connections, it
    never answers) just after its worker registered a function; a call of
    that function through node B, which has no link to A yet, ends within the
    connect timeout with ``function_not_found`` instead of waiting for the
    WebSocket handshake for ever."""
    with cluster(tmp_path) as c:
        a, b = c.node(), c.node()
        live_nodes(c, 2)
        with (
            sdk_worker(a.worker_url, "frozen") as on_a,
            sdk_worker(b.worker_url, "caller") as on_b,
        ):
            on_a.register_function("frozen::fn", lambda data: {"ok": True})
            wait_until(
                lambda: any(
                    "frozen::fn" in n["functions"]
                    for n in c.status()["cluster"]["nodes"]
                ),
                15,
                0.1,
                "frozen::fn in the directory",
            )
            assert a.proc is not None
            os.kill(a.proc.pid, signal.SIGSTOP)
            try:
                started = time.monotonic()
                with pytest.raises(InvocationError) as err:
                    call(on_b, "frozen::fn", {}, timeout_ms=20_000)
                assert err.value.code == "function_not_found", err.value
                assert time.monotonic() - started < 8
            finally:
                os.kill(a.proc.pid, signal.SIGCONT)
