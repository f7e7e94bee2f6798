"""Projections, snapshots, replay.py on a large log, time travel and cron,
through the real engine, the real SDK and real HTTP."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import re
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from iii import InvocationError

from tests.harness import (
    EngineProcess,
    Http,
    call,
    engine_with,
    replay,
    sdk_worker,
    todo_history,
    wait_until,
)
from tests.storage import (
    forget_snapshot,
    log_offsets,
    records,
    snapshot_positions,
    tamper_snapshot,
    tamper_state,
)
from tests.wsclients import RawWorker


def expected_metrics(client: Any) -> dict[str, int]:
    todos = call(client, "state::list", {"scope": "todos"})
    return {"total": len(todos), "completed": sum(bool(t["completed"]) for t in todos)}


def projection(client: Any, name: str) -> dict[str, Any]:
    return call(client, "iiilog::projections::get", {"name": name})  # type: ignore[no-any-return]


def caught_up(client: Any, name: str) -> bool:
    head = call(client, "iiilog::triggers::status", {})["head"]
    return bool(projection(client, name)["position"] >= head)


def test_projections_follow_the_log(engine: EngineProcess, client: Any) -> None:
    todo_history(client, 200, seed=1)
    wait_until(lambda: caught_up(client, "todo-metrics"))
    assert projection(client, "todo-metrics")["state"] == expected_metrics(client)
    todos = projection(client, "todos")["state"]
    assert list(todos.values()) == call(client, "state::list", {"scope": "todos"})
    status, body = Http(engine.http_url).json("GET", "/_iiilog/projections/todos")
    assert status == 200 and body["name"] == "todos"
    assert list(body["state"].values()) == list(todos.values())
    status, body = Http(engine.http_url).json("GET", "/_iiilog/projections/nope")
    assert status == 404 and body["error"]["code"] == "NOT_FOUND"
    listed = call(client, "iiilog::projections::list", {})["projections"]
    assert {p["name"] for p in listed} == {"todos", "todo-metrics"}
    with pytest.raises(InvocationError) as err:
        call(client, "iiilog::projections::get", {"name": "nope"})
    assert err.value.code == "NOT_FOUND"


def test_time_travel(engine: EngineProcess, client: Any) -> None:
    def head() -> int:
        return call(client, "iiilog::triggers::status", {})["head"]  # type: ignore[no-any-return]

    call(client, "state::set", {"scope": "tt", "key": "a", "value": 1})
    first = head()
    call(client, "state::set", {"scope": "tt", "key": "b", "value": 2})
    call(
        client,
        "state::update",
        {"scope": "tt", "key": "a", "ops": [{"type": "set", "path": "", "value": 10}]},
    )
    second = head()
    call(client, "state::delete", {"scope": "tt", "key": "b"})
    call(client, "state::set", {"scope": "tt", "key": "c", "value": 3})
    assert call(client, "state::get", {"scope": "tt", "key": "a", "offset": first}) == 1
    assert (
        call(client, "state::get", {"scope": "tt", "key": "a", "offset": second}) == 10
    )
    assert (
        call(client, "state::get", {"scope": "tt", "key": "b", "offset": second}) == 2
    )
    assert call(client, "state::get", {"scope": "tt", "key": "b"}) is None
    assert call(client, "state::get", {"scope": "tt", "key": "a", "offset": 0}) is None
    assert call(client, "state::list", {"scope": "tt", "offset": first}) == [1]
    assert call(client, "state::list", {"scope": "tt", "offset": second}) == [10, 2]
    assert call(client, "state::list", {"scope": "tt"}) == [10, 3]
    for bad in (-1, "3", True):
        with pytest.raises(InvocationError) as err:
            call(client, "state::get", {"scope": "tt", "key": "a", "offset": bad})
        assert err.value.code == "deserialization_error"


def test_new_projection_builds_from_history(fresh_engine: EngineProcess) -> None:
    with sdk_worker(fresh_engine.worker_url, "history") as c:
        todo_history(c, 150, seed=2)
        expected = expected_metrics(c)
    fresh_engine.stop()
    forget_snapshot(fresh_engine.data_dir, "todo-metrics")
    fresh_engine.start()
    with sdk_worker(fresh_engine.worker_url, "reader") as c:
        wait_until(lambda: caught_up(c, "todo-metrics"))
        assert projection(c, "todo-metrics")["state"] == expected


def starts(client: Any) -> dict[str, Any]:
    """What each projection did at the engine's start (``start`` of
    ``iiilog::projections::list``)."""
    listed = call(client, "iiilog::projections::list", {})["projections"]
    return {p["name"]: p["start"] for p in listed}


def test_snapshots_equal_a_full_refold(tmp_path: Path) -> None:
    """A restart from a periodic snapshot folds exactly the records after it
    and ends where a full refold does."""
    proc = engine_with(
        tmp_path,
        "  - name: iiilog-projections\n    config: {snapshot_interval_s: 0.2}\n",
    )

    def snapshot_position() -> int:
        return snapshot_positions(proc.data_dir).get("todo-metrics", 0)

    try:
        with sdk_worker(proc.worker_url, "snap") as c:
            todo_history(c, 200, seed=3)
            wait_until(lambda: snapshot_position() > 0, message="a snapshot")
        proc.kill()  # no shutdown snapshot: restart starts from the periodic one
        saved = snapshot_position()  # whichever periodic one committed last
        head = log_offsets(proc.data_dir)[-1]
        proc.start()
        with sdk_worker(proc.worker_url, "snap2") as c:
            assert starts(c)["todo-metrics"] == {
                "snapshot": saved,
                "head": head,
                "folded": head - saved,
            }
            todo_history(c, 100, seed=4)
            wait_until(lambda: caught_up(c, "todo-metrics"))
            live = projection(c, "todo-metrics")["state"]
            assert live == expected_metrics(c)
        proc.stop()
        full = json.loads(replay(proc.data_dir, "--json").stdout)["targets"]
        assert full["todo-metrics"]["state"] == live
        from_snapshot = replay(proc.data_dir, "--verify", "--from-snapshot")
        assert from_snapshot.returncode == 0, from_snapshot.stdout
    finally:
        if proc.alive():
            proc.stop()


def test_a_restart_folds_only_what_came_after_the_snapshot(tmp_path: Path) -> None:
    """README: "a restart folds only what came after the last snapshot".

    Snapshots are saved here only on a clean stop (the periodic one is an
    hour away), so the snapshot offset S is known: a clean stop saves at the
    head. 150 more changes, then ``kill -9`` (no snapshot of them). The next
    start must report that it began at S and read exactly the records in
    (S, head]: a start that ignored the snapshot and refolded the whole log
    would report ``snapshot: null`` and ``folded == head``, one that lost
    records would fold fewer or end in another state."""
    proc = engine_with(
        tmp_path,
        "  - name: iii-http\n    config: {port: 0, host: 127.0.0.1}\n"
        "  - name: iiilog-projections\n    config: {snapshot_interval_s: 3600}\n",
    )
    names = ("todos", "todo-metrics")
    try:
        with sdk_worker(proc.worker_url, "first") as c:
            # A new data dir: nothing saved, nothing to fold.
            nothing = {"snapshot": None, "head": 0, "folded": 0}
            assert starts(c) == {n: nothing for n in names}
            todo_history(c, 200, seed=6)
            wait_until(lambda: all(caught_up(c, n) for n in names))
        proc.stop()  # saves every projection at the head
        saved = log_offsets(proc.data_dir)[-1]
        assert snapshot_positions(proc.data_dir) == {n: saved for n in names}

        proc.start()
        with sdk_worker(proc.worker_url, "second") as c:
            from_snapshot = {"snapshot": saved, "head": saved, "folded": 0}
            assert starts(c) == {n: from_snapshot for n in names}
            todo_history(c, 150, seed=7)
            wait_until(lambda: all(caught_up(c, n) for n in names))
            followed = {n: projection(c, n) for n in names}
            assert followed["todo-metrics"]["state"] == expected_metrics(c)
        proc.kill()
        assert snapshot_positions(proc.data_dir) == {n: saved for n in names}
        head = log_offsets(proc.data_dir)[-1]
        after = records(proc.data_dir, after=saved)
        assert len(after) == head - saved >= 150  # gapless: the records after S

        proc.start()
        with sdk_worker(proc.worker_url, "third") as c:
            only_after = {"snapshot": saved, "head": head, "folded": len(after)}
            assert starts(c) == {n: only_after for n in names}
            assert len(after) < head  # not a full refold
            for name in names:  # where following the log record by record got
                assert projection(c, name)["state"] == followed[name]["state"]
        status, overview = Http(proc.http_url).json("GET", "/_iiilog/api/overview")
        assert status == 200
        assert {p["name"]: p["start"] for p in overview["projections"]} == {
            n: only_after for n in names
        }
    finally:
        if proc.alive():
            proc.stop()


async def _write_many(url: str, n: int) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        w = RawWorker(ws)
        await w.recv_type("workerregistered")
        rng = random.Random(5)
        for start in range(0, n, 5000):
            calls: list[tuple[str, Any]] = []
            for i in range(start, min(n, start + 5000)):
                key = f"todo-{rng.randrange(2000)}"
                roll = rng.random()
                if roll < 0.6:
                    calls.append(
                        (
                            "state::set",
                            {
                                "scope": "todos",
                                "key": key,
                                "value": {"completed": roll < 0.2, "i": i},
                            },
                        )
                    )
                elif roll < 0.9:
                    calls.append(
                        (
                            "state::update",
                            {
                                "scope": "todos",
                                "key": key,
                                "ops": [
                                    {
                                        "type": "set",
                                        "path": "completed",
                                        "value": roll < 0.8,
                                    }
                                ],
                            },
                        )
                    )
                else:
                    calls.append(("state::delete", {"scope": "todos", "key": key}))
            replies = await w.send_many(calls)
            assert all("error" not in r for r in replies)


def test_restart_without_snapshots_folds_history_in_bulk(tmp_path: Path) -> None:
    """With nothing saved, a start folds all 20,000 records on threads (the
    compacted log for ``todos``, every record for ``todo-metrics``): the same
    states, list order included, as following the tail record by record."""
    proc = engine_with(
        tmp_path, "  - name: iiilog-projections\n    config: {snapshots: false}\n"
    )
    names = ("todos", "todo-metrics")
    try:
        asyncio.run(_write_many(proc.worker_url, 20_000))
        with sdk_worker(proc.worker_url, "before") as c:
            wait_until(lambda: all(caught_up(c, n) for n in names), timeout=60)
            followed = {n: projection(c, n) for n in names}
            assert followed["todo-metrics"]["state"] == expected_metrics(c)
        proc.stop()
        assert not snapshot_positions(proc.data_dir)
        proc.start()
        with sdk_worker(proc.worker_url, "after") as c:
            rebuilt = {n: projection(c, n) for n in names}
    finally:
        proc.stop()
    for name in names:
        assert rebuilt[name]["position"] == followed[name]["position"] >= 20_000
        assert rebuilt[name]["state"] == followed[name]["state"]
    todos_rebuilt = list(rebuilt["todos"]["state"].items())
    assert todos_rebuilt == list(followed["todos"]["state"].items())  # order too


def test_replay_of_100k_records_verify_apply_and_to(
    fresh_engine: EngineProcess,
) -> None:
    asyncio.run(_write_many(fresh_engine.worker_url, 100_000))
    with sdk_worker(fresh_engine.worker_url, "checker") as c:
        wait_until(lambda: caught_up(c, "todo-metrics"), timeout=60)
    fresh_engine.stop()  # saves the projection snapshots
    result = replay(fresh_engine.data_dir, "--verify")
    assert result.returncode == 0, result.stdout
    # Every record of the log is folded, exactly: the 100,000 writes, one each,
    # and the configuration entries the engine registers at its first start.
    folded = re.search(r"^folded (\d+) records in ", result.stdout, re.MULTILINE)
    assert folded is not None, result.stdout
    logged = records(fresh_engine.data_dir)
    assert int(folded.group(1)) == len(log_offsets(fresh_engine.data_dir))
    assert int(folded.group(1)) == len(logged)
    assert sum(1 for r in logged if r.space == "state") == 100_000
    assert result.stdout.count(": OK") == 3
    # As of a past offset.
    past = json.loads(
        replay(
            fresh_engine.data_dir, "--to", "500", "--only", "todo-metrics", "--json"
        ).stdout
    )
    assert past["targets"]["todo-metrics"]["position"] == 500
    # Corrupt a view row and a projection, detect, repair with new records.
    head = log_offsets(fresh_engine.data_dir)[-1]
    tamper_state(fresh_engine.data_dir, None, "tampered")
    tamper_snapshot(
        fresh_engine.data_dir, "todo-metrics", {"total": -1, "completed": 0}
    )
    result = replay(fresh_engine.data_dir, "--verify")
    assert result.returncode == 1
    assert "tampered" in result.stdout and "total" in result.stdout
    fixed = replay(fresh_engine.data_dir, "--apply")
    assert fixed.returncode == 0 and "applied 2 corrections" in fixed.stdout
    assert replay(fresh_engine.data_dir, "--verify").returncode == 0
    added = records(fresh_engine.data_dir, after=head)
    assert len(added) == 1  # history kept: the correction is a new record
    assert added[0].origin is not None
    assert added[0].origin.function_id == "iiilog::replay"


def test_apply_refuses_beside_a_running_engine(engine: EngineProcess) -> None:
    result = replay(engine.data_dir, "--apply")
    assert result.returncode == 2
    assert "stop it" in result.stderr


def test_cron_fires_without_overlap(engine: EngineProcess, client: Any) -> None:
    fires: list[dict[str, Any]] = []
    running = {"now": 0, "max": 0}
    lock = threading.Lock()

    def tick(payload: dict[str, Any]) -> None:
        with lock:
            fires.append(payload)
            running["now"] += 1
            running["max"] = max(running["max"], running["now"])
        time.sleep(1.2)  # longer than the 1 s period: the next second is skipped
        with lock:
            running["now"] -= 1

    with sdk_worker(engine.worker_url, "cron") as w:
        w.register_function("c::tick", tick)
        trig = w.register_trigger(
            {
                "type": "cron",
                "function_id": "c::tick",
                "config": {"expression": "* * * * * *"},
            }
        )
        wait_until(lambda: len(fires) >= 3, timeout=15)
        trig.unregister()
        call(w, "state::get", {"scope": "x", "key": "y"})  # unregister applied
        count = len(fires)
        wait_until(lambda: running["now"] == 0)
    assert running["max"] == 1
    first = fires[0]
    assert first["trigger"] == "cron" and first["job_id"]
    assert first["scheduled_time"].endswith("+00:00")
    assert first["actual_time"] >= first["scheduled_time"]
    times = [datetime.fromisoformat(f["scheduled_time"]) for f in fires]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert all(g >= 2 for g in gaps), gaps  # fires inside a run were skipped
    assert len(fires) <= count + 1


def test_bad_cron_expression(
    engine: EngineProcess, client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with sdk_worker(engine.worker_url, "bad-cron") as w:
        w.register_function("c::never", lambda p: None)
        w.register_trigger(
            {
                "type": "cron",
                "function_id": "c::never",
                "config": {"expression": "* * * * *"},
            }
        )
        wait_until(lambda: "Invalid cron expression" in caplog.text)
