"""Replicas of a worker on one engine, as the README's Node section has users
run them: the Python todo worker beside the Node one. A function id served by
both is served while either lives and calls go to them in turn; their triggers
are one subscription (configs that differ only in delivery tuning), so every
change is counted once; and replay --verify checks the counters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.harness import EngineProcess, Http, call, replay, sdk_worker, wait_until
from tests.integration.test_todo import start_worker


def metrics(api: Http) -> dict[str, Any]:
    return {"total": 0, "completed": 0, **api.json("GET", "/todos/metrics")[1]}


def test_calls_go_to_replicas_in_turn(engine: EngineProcess) -> None:
    with (
        sdk_worker(engine.worker_url, "replica-1") as one,
        sdk_worker(engine.worker_url, "caller") as caller,
    ):
        one.register_function("who::am-i", lambda _data: "one")
        with sdk_worker(engine.worker_url, "replica-2") as two:
            two.register_function("who::am-i", lambda _data: "two")

            def both_registered() -> bool:
                answers = {call(caller, "who::am-i", {}) for _ in range(4)}
                return answers == {"one", "two"}

            wait_until(both_registered, 10, 0.1, "both replicas answering")
            answers = [call(caller, "who::am-i", {}) for _ in range(10)]
            assert answers.count("one") == answers.count("two") == 5
        wait_until(
            lambda: {call(caller, "who::am-i", {}) for _ in range(4)} == {"one"},
            10,
            0.1,
            "the one left serves every call",
        )


def test_python_and_node_todo_workers_side_by_side(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path / "data").start()
    python = start_worker("python", engine)
    node = start_worker("node-0.22.1", engine)
    api = Http(engine.http_url)
    try:
        with sdk_worker(engine.worker_url, "observer") as w:

            def two_workers() -> bool:
                listed = call(w, "engine::workers::list", {})["workers"]
                return len([x for x in listed if x.get("runtime")]) >= 2

            wait_until(two_workers, 60, 0.2, "both todo workers")
            status = call(w, "iiilog::triggers::status", {})
            todo_subs = [
                s
                for s in status["subscriptions"]
                if s["function_id"].startswith("todos::") and s["active"]
            ]
            assert len(todo_subs) == 2  # one per handler, shared by the replicas
        wait_until(lambda: api.request("GET", "/todos")[0] == 200, 30, 0.1)
        made = [api.json("POST", "/todos", {"title": f"t{i}"})[1] for i in range(6)]
        assert api.json("POST", "/todos/toggle", {"id": made[0]["id"]})[0] == 200
        wait_until(
            lambda: metrics(api) == {"total": 6, "completed": 1},
            20,
            0.1,
            "each change counted once",
        )
        node.terminate()
        node.wait(10)
        # The Python worker still serves every route and keeps counting.
        assert api.request("GET", "/todos")[0] == 200
        assert api.json("POST", "/todos", {"title": "after"})[0] == 201
        wait_until(lambda: metrics(api) == {"total": 7, "completed": 1}, 20, 0.1)
    finally:
        for worker in (python, node):
            if worker.poll() is None:
                worker.terminate()
                worker.wait(10)
        engine.stop()
    verify = replay(engine.data_dir, "--verify")
    assert verify.returncode == 0, verify.stdout
    assert "todo-metrics = state todo-metrics/global (at offset" in verify.stdout


def test_replay_catches_counters_that_drifted(tmp_path: Path) -> None:
    """Counters counted twice (as two subscriptions used to) are drift."""
    engine = EngineProcess(tmp_path / "data").start()
    try:
        with sdk_worker(engine.worker_url, "writer") as w:
            for i in range(3):
                call(w, "state::set", {"scope": "todos", "key": f"k{i}", "value": {}})
            call(
                w,
                "state::set",
                {"scope": "todo-metrics", "key": "global", "value": {"total": 6}},
            )
    finally:
        engine.stop()
    verify = replay(engine.data_dir, "--verify")
    assert verify.returncode == 1, verify.stdout
    assert "todo-metrics = state todo-metrics/global" in verify.stdout
    assert "'total': live 6 != rebuilt 3" in verify.stdout
    fixed = replay(engine.data_dir, "--apply")
    assert fixed.returncode == 0, fixed.stdout
    assert replay(engine.data_dir, "--verify").returncode == 0
