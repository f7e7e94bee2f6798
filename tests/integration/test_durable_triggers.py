"""Durable triggers: cursors that survive workers and the engine, catch-up
after a worker was away, retries then parking, history on request, and
effectively-once effects of redelivered records."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from iii import InvocationError

from tests.harness import (
    ROOT,
    EngineProcess,
    call,
    engine_with,
    sdk_worker,
    wait_until,
)
from tests.harness import (
    trigger_bound as bound,
)
from tests.storage import delivery_tags


def scope() -> str:
    return f"d-{uuid.uuid4().hex[:8]}"


def subscription(client: Any, function_id: str) -> dict[str, Any]:
    status = call(client, "iiilog::triggers::status", {})
    return next(s for s in status["subscriptions"] if s["function_id"] == function_id)


class Recorder:
    def __init__(self) -> None:
        self.events: list[Any] = []
        self.lock = threading.Lock()

    def __call__(self, event: Any) -> None:
        with self.lock:
            self.events.append(event)


class SlowRecorder(Recorder):
    """Takes 20 ms per event (the handler's own work) and notes the most
    deliveries it was handling at once."""

    def __init__(self) -> None:
        super().__init__()
        self.running = 0
        self.most = 0

    def __call__(self, event: Any) -> None:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        threading.Event().wait(0.02)
        with self.lock:
            self.running -= 1
            self.events.append(event)


def test_todo_metrics_catch_up_after_worker_kill_9(
    engine: EngineProcess, client: Any
) -> None:
    """The todo metrics catch up after the worker is killed (SIGKILL) in the
    middle of 500 writes."""
    env = {**os.environ, "III_URL": engine.worker_url, "OTEL_ENABLED": "false"}

    def start_worker() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "examples/todo/worker.py"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    worker = start_worker()
    wait_until(lambda: bound(client, "todos::update-metrics"), timeout=20)
    rng = random.Random(4)
    ids: list[str] = []
    for i in range(500):
        if i == 150:
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
            wait_until(lambda: not bound(client, "todos::update-metrics"))
        roll = rng.random()
        if roll < 0.5 or not ids:
            key = f"todo-{i}"
            ids.append(key)
            call(
                client,
                "state::set",
                {
                    "scope": "todos",
                    "key": key,
                    "value": {
                        "id": key,
                        "title": f"t{i}",
                        "completed": rng.random() < 0.3,
                    },
                },
            )
        elif roll < 0.8:
            key = rng.choice(ids)
            current = call(client, "state::get", {"scope": "todos", "key": key})
            call(
                client,
                "state::update",
                {
                    "scope": "todos",
                    "key": key,
                    "ops": [
                        {
                            "type": "set",
                            "path": "completed",
                            "value": not current["completed"],
                        }
                    ],
                },
            )
        else:
            key = ids.pop(rng.randrange(len(ids)))
            call(client, "state::delete", {"scope": "todos", "key": key})
    todos = call(client, "state::list", {"scope": "todos"})
    expected = {
        "total": len(todos),
        "completed": sum(1 for t in todos if t["completed"]),
    }
    assert subscription(client, "todos::update-metrics")["lag"] > 0
    worker = start_worker()
    try:

        def metrics() -> dict[str, int]:
            got = (
                call(client, "state::get", {"scope": "todo-metrics", "key": "global"})
                or {}
            )
            return {"total": got.get("total", 0), "completed": got.get("completed", 0)}

        wait_until(
            lambda: metrics() == expected,
            timeout=60,
            message=f"metrics to catch up to {expected}",
        )
        wait_until(lambda: subscription(client, "todos::update-metrics")["lag"] == 0)
        # ...and equal the projection folded from the same history.
        head = call(client, "iiilog::triggers::status", {})["head"]
        replayed = subprocess.run(
            [
                sys.executable,
                "scripts/replay.py",
                "--data-dir",
                str(engine.data_dir),
                "--quiet",
                "--to",
                str(head),
                "--only",
                "todo-metrics",
                "--json",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        assert json.loads(replayed.stdout)["targets"]["todo-metrics"]["state"] == (
            expected
        )
        wait_until(
            lambda: (
                call(client, "iiilog::projections::get", {"name": "todo-metrics"})[
                    "state"
                ]
                == expected
            )
        )
    finally:
        worker.terminate()
        worker.wait(10)


def test_failing_handler_is_retried_then_parked(tmp_path: Path) -> None:
    proc = engine_with(
        tmp_path,
        "  - name: iiilog-triggers\n"
        "    config: {max_attempts: 3, backoff_ms: 10, backoff_max_ms: 20}\n",
    )
    seen = Recorder()

    cured = threading.Event()

    def handler(event: dict[str, Any]) -> None:
        seen(event["new_value"])
        if event["new_value"] == "poison" and not cured.is_set():
            raise ValueError("cannot digest this")

    try:
        with sdk_worker(proc.worker_url, "fragile") as w:
            w.register_function("d::fragile", handler)
            w.register_trigger(
                {"type": "state", "function_id": "d::fragile", "config": {"scope": "s"}}
            )
            wait_until(lambda: bound(w, "d::fragile"))
            for value in ("a", "poison", "b"):
                call(w, "state::set", {"scope": "s", "key": value, "value": value})
            # Different keys run concurrently: "b" need not wait for the poison.
            wait_until(lambda: "b" in seen.events and seen.events.count("poison") == 3)
            # The third failure's answer is on its way: the record is parked
            # once the engine has it.
            wait_until(lambda: call(w, "iiilog::triggers::parked", {})["parked"])
            assert sorted(seen.events) == ["a", "b", "poison", "poison", "poison"]
            parked = call(w, "iiilog::triggers::parked", {})["parked"]
            assert len(parked) == 1 and parked[0]["attempts"] == 3
            assert "cannot digest this" in parked[0]["error"]
            status = subscription(w, "d::fragile")
            assert status["parked"] == 1 and status["failures"] == 3
            wait_until(lambda: subscription(w, "d::fragile")["lag"] == 0)
            # Fixed handler: the parked record can be delivered again on demand.
            cured.set()
            key = subscription(w, "d::fragile")["key"]
            assert call(w, "iiilog::triggers::redeliver", {"key": key}) == {
                "key": key,
                "redelivered": 1,
                "still_parked": 0,
            }
            assert seen.events[-1] == "poison"
            assert call(w, "iiilog::triggers::parked", {})["parked"] == []
            with pytest.raises(InvocationError) as err:
                call(w, "iiilog::triggers::redeliver", {"key": "nope"})
            assert err.value.code == "NOT_FOUND"
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "api",
                "status",
                "--data-dir",
                str(proc.data_dir),
                "--json",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        cursors = json.loads(out.stdout)["cursors"]
        assert [c["parked"] for c in cursors] == [0]  # redelivered above
    finally:
        proc.stop()


def test_history_on_request(engine: EngineProcess, client: Any) -> None:
    s = scope()
    for i in range(5):
        call(client, "state::set", {"scope": s, "key": str(i), "value": i})
    everything, later, fresh = Recorder(), Recorder(), Recorder()
    with sdk_worker(engine.worker_url, "historian") as w:
        w.register_function("d::earliest", everything)
        w.register_function("d::from", later)
        w.register_function("d::fresh", fresh)
        third = call(client, "state::set", {"scope": s, "key": "x", "value": "x"})
        del third
        status = call(client, "iiilog::triggers::status", {})
        head = status["head"]
        w.register_trigger(
            {
                "type": "state",
                "function_id": "d::earliest",
                "config": {"scope": s, "from": "earliest"},
            }
        )
        w.register_trigger(
            {
                "type": "state",
                "function_id": "d::from",
                "config": {"scope": s, "from": head - 1},
            }
        )
        w.register_trigger(
            {"type": "state", "function_id": "d::fresh", "config": {"scope": s}}
        )
        wait_until(lambda: bound(w, "d::fresh"))
        call(client, "state::set", {"scope": s, "key": "y", "value": "y"})
        wait_until(
            lambda: (
                len(everything.events) == 7
                and len(later.events) == 2
                and len(fresh.events) == 1
            )
        )
    assert [e["new_value"] for e in everything.events] == [0, 1, 2, 3, 4, "x", "y"]
    assert [e["new_value"] for e in later.events] == ["x", "y"]
    assert [e["new_value"] for e in fresh.events] == ["y"]


def test_bad_from_is_refused(
    engine: EngineProcess, client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with sdk_worker(engine.worker_url, "bad-from") as w:
        w.register_function("d::bad-from", Recorder())
        w.register_trigger(
            {
                "type": "state",
                "function_id": "d::bad-from",
                "config": {"from": "yesterday"},
            }
        )
        wait_until(lambda: "`from` must be" in caplog.text)
        assert not bound(client, "d::bad-from")


def test_redelivered_records_are_applied_once(
    engine: EngineProcess, client: Any
) -> None:
    """The handler counts, then fails on its first attempt at every record:
    each record is delivered twice, but its increment lands once."""
    s = scope()
    attempts: dict[str, int] = {}

    def count_then_fail(event: dict[str, Any]) -> None:
        key = event["key"]
        attempts[key] = attempts.get(key, 0) + 1
        call(
            w,
            "state::update",
            {
                "scope": f"{s}-counts",
                "key": "n",
                "ops": [{"type": "increment", "path": "seen", "by": 1}],
            },
        )
        if attempts[key] == 1:
            raise RuntimeError("crash after the write")

    with sdk_worker(engine.worker_url, "counter") as w:
        w.register_function("d::count", count_then_fail)
        w.register_trigger(
            {"type": "state", "function_id": "d::count", "config": {"scope": s}}
        )
        wait_until(lambda: bound(w, "d::count"))
        for i in range(10):
            call(client, "state::set", {"scope": s, "key": str(i), "value": i})
        wait_until(
            lambda: len(attempts) == 10 and all(n == 2 for n in attempts.values()),
            timeout=30,
        )
        wait_until(lambda: subscription(client, "d::count")["lag"] == 0)
    assert call(client, "state::get", {"scope": f"{s}-counts", "key": "n"}) == {
        "seen": 10
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def fixed_port_engine(tmp_path: Path) -> Iterator[EngineProcess]:
    proc = EngineProcess(
        tmp_path / "data", env={"IIILOG_WORKER_PORT": str(free_port())}
    ).start()
    try:
        yield proc
    finally:
        if proc.alive():
            proc.stop()


def test_cursor_survives_engine_kill_9(fixed_port_engine: EngineProcess) -> None:
    engine = fixed_port_engine
    s = scope()
    seen = Recorder()

    def handler(event: dict[str, Any]) -> None:
        seen(event["new_value"])
        call(
            w,
            "state::update",
            {
                "scope": f"{s}-n",
                "key": "n",
                "ops": [{"type": "increment", "path": "v", "by": 1}],
            },
        )

    with sdk_worker(engine.worker_url, "survivor") as w:
        w.register_function("d::survivor", handler)
        w.register_trigger(
            {"type": "state", "function_id": "d::survivor", "config": {"scope": s}}
        )
        wait_until(lambda: bound(w, "d::survivor"))
        for i in range(20):
            call(w, "state::set", {"scope": s, "key": str(i), "value": i})
        wait_until(lambda: len(seen.events) >= 20)
        engine.kill()
        engine.start()  # same data dir, same worker port: the SDK reconnects
        wait_until(
            lambda: bound(w, "d::survivor"),
            timeout=40,
            message="the worker reconnected and re-registered",
        )
        for i in range(20, 40):
            call(w, "state::set", {"scope": s, "key": str(i), "value": i})
        wait_until(lambda: set(seen.events) == set(range(40)), timeout=30)
        wait_until(
            lambda: call(w, "state::get", {"scope": f"{s}-n", "key": "n"}) == {"v": 40},
            message="each record counted once",
        )


def test_keyed_concurrency_keeps_per_key_order(tmp_path: Path) -> None:
    """``max_in_flight > 1``: keys run concurrently, each key in offset order."""
    proc = engine_with(
        tmp_path,
        "  - name: iiilog-triggers\n    config: {max_in_flight: 8}\n",
    )
    slow = SlowRecorder()
    try:
        with sdk_worker(proc.worker_url, "keyed") as w:
            w.register_function("d::keyed", slow)
            w.register_trigger(
                {"type": "state", "function_id": "d::keyed", "config": {"scope": "k"}}
            )
            wait_until(lambda: bound(w, "d::keyed"))
            for i in range(10):
                for key in ("a", "b", "c", "d"):
                    call(w, "state::set", {"scope": "k", "key": key, "value": i})
            wait_until(lambda: len(slow.events) == 40, timeout=30)
            wait_until(lambda: subscription(w, "d::keyed")["lag"] == 0)
    finally:
        proc.stop()
    for key in ("a", "b", "c", "d"):
        assert [e["new_value"] for e in slow.events if e["key"] == key] == list(
            range(10)
        )
    assert slow.most > 1


def test_trigger_sets_its_own_max_in_flight(
    engine: EngineProcess, client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """By default (64 in flight) different keys are delivered concurrently and
    each key in order; a trigger's ``max_in_flight: 1`` asks for strict total
    order for its subscription only. Bad values are refused."""
    ordered, keyed = Recorder(), SlowRecorder()
    with sdk_worker(engine.worker_url, "own-limit") as w:
        w.register_function("d::own-keyed", keyed)
        w.register_function("d::own-ordered", ordered)
        for fid, cfg in (
            ("d::own-keyed", {"scope": "own"}),
            ("d::own-ordered", {"scope": "own", "max_in_flight": 1}),
        ):
            w.register_trigger({"type": "state", "function_id": fid, "config": cfg})
        for bad in (0, "many", True, 10_001):
            w.register_function(f"d::bad-limit-{bad}", Recorder())
            w.register_trigger(
                {
                    "type": "state",
                    "function_id": f"d::bad-limit-{bad}",
                    "config": {"scope": "own", "max_in_flight": bad},
                }
            )
        wait_until(lambda: bound(w, "d::own-keyed") and bound(w, "d::own-ordered"))
        for i in range(8):
            for key in ("a", "b", "c", "d"):
                call(w, "state::set", {"scope": "own", "key": key, "value": i})
        wait_until(lambda: len(keyed.events) == 32 and len(ordered.events) == 32)
        wait_until(lambda: caplog.text.count("`max_in_flight` must be") >= 4)
        for bad in (0, "many", True, 10_001):
            assert not bound(client, f"d::bad-limit-{bad}")
    for key in ("a", "b", "c", "d"):
        assert [e["new_value"] for e in keyed.events if e["key"] == key] == list(
            range(8)
        )
    assert keyed.most > 1
    # The other subscription on the same records asked for one at a time:
    # strictly the write order.
    values = [(e["key"], e["new_value"]) for e in ordered.events]
    assert values == [(k, i) for i in range(8) for k in ("a", "b", "c", "d")]


def test_write_tags_expire(tmp_path: Path) -> None:
    proc = engine_with(
        tmp_path,
        "  - name: iiilog-triggers\n    config: {dedupe_retention_ms: 1000}\n",
    )

    def tags() -> int:
        return delivery_tags(proc.data_dir)

    try:
        with sdk_worker(proc.worker_url, "tagger") as w:
            w.register_function(
                "d::tag",
                lambda e: call(
                    w, "state::set", {"scope": "tagged", "key": e["key"], "value": 1}
                ),
            )
            w.register_trigger(
                {"type": "state", "function_id": "d::tag", "config": {"scope": "src"}}
            )
            wait_until(lambda: bound(w, "d::tag"))
            call(w, "state::set", {"scope": "src", "key": "a", "value": 1})
            wait_until(lambda: call(w, "state::get", {"scope": "tagged", "key": "a"}))
            assert tags() == 1  # the handler's write was tagged
        wait_until(lambda: tags() == 0, message="expired write tags pruned")
    finally:
        proc.stop()
