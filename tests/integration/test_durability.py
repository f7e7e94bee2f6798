"""Durability: what was acknowledged survives a restart and ``kill -9``, offsets
stay gapless, and the live views always equal the views rebuilt from the log."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from iii import InvocationError

from tests.harness import (
    ROOT,
    EngineProcess,
    call,
    engine_with,
    replay,
    sdk_worker,
    wait_until,
)
from tests.storage import log_offsets, tamper_state


def offsets(data_dir: Path) -> list[int]:
    return log_offsets(data_dir)


def random_history(client: Any, seed: int, n: int) -> None:
    """A mixed history: sets, updates (some with failing ops), deletes, re-creates."""
    rng = random.Random(seed)
    scopes = ["alpha", "beta", "gamma"]
    for _ in range(n):
        scope, key = rng.choice(scopes), f"k{rng.randrange(12)}"
        roll = rng.random()
        if roll < 0.4:
            call(
                client,
                "state::set",
                {"scope": scope, "key": key, "value": {"v": rng.randrange(100)}},
            )
        elif roll < 0.8:
            call(
                client,
                "state::update",
                {
                    "scope": scope,
                    "key": key,
                    "ops": [
                        {"type": "increment", "path": "n", "by": rng.randrange(1, 5)},
                        {"type": "append", "path": "log", "value": rng.randrange(9)},
                        rng.choice(
                            [
                                {"type": "remove", "path": "v"},
                                {"type": "set", "path": "", "value": 5},
                                {"type": "merge", "value": {"m": 1}},
                            ]
                        ),
                    ],
                },
            )
        else:
            call(client, "state::delete", {"scope": scope, "key": key})


def snapshot(client: Any) -> dict[str, Any]:
    groups = call(client, "state::list_groups", {})["groups"]
    return {g: call(client, "state::list", {"scope": g}) for g in groups}


def test_restart_keeps_everything(fresh_engine: EngineProcess) -> None:
    with sdk_worker(fresh_engine.worker_url, "writer") as c:
        random_history(c, seed=1, n=300)
        before = snapshot(c)
    assert fresh_engine.stop() == 0
    fresh_engine.start()
    with sdk_worker(fresh_engine.worker_url, "reader") as c:
        assert snapshot(c) == before
        head = len(offsets(fresh_engine.data_dir))
        call(c, "state::set", {"scope": "after", "key": "k", "value": 1})
    assert offsets(fresh_engine.data_dir) == list(range(1, head + 2))


def test_kill_9_loses_no_acknowledged_write(fresh_engine: EngineProcess) -> None:
    """Every acknowledged write is there after ``kill -9``, exactly: each
    value names its writer and sequence number (and its key, since
    ``state::list`` returns values only), and every key is compared."""
    kill_9_under_writers(fresh_engine)


def test_synchronous_normal_also_survives_kill_9(tmp_path: Path) -> None:
    """``synchronous: normal`` skips the fsync of each commit, not the write:
    the WAL is in the OS page cache, so ``kill -9`` of the engine (not a power
    loss) loses no acknowledged write either (as the README says)."""
    proc = engine_with(
        tmp_path, "  - name: iiilog-eventlog\n    config: {synchronous: normal}\n"
    )
    try:
        kill_9_under_writers(proc)
    finally:
        proc.stop()


def kill_9_under_writers(engine: EngineProcess) -> None:
    """16 writers, ``kill -9`` after 1,500 acknowledgements, a restart: every
    acknowledged write is there exactly, and nothing else but the one write
    per writer in flight at the kill."""
    acked: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()
    stop = threading.Event()
    writers = 16

    def writer(client: Any, thread: int) -> None:
        for i in range(100_000):
            if stop.is_set():
                return
            key = f"t{thread}-{i}"
            value = {"key": key, "writer": thread, "seq": i}
            try:
                call(
                    client,
                    "state::set",
                    {"scope": "acked", "key": key, "value": value},
                    timeout_ms=3000,
                )
            except InvocationError:
                return  # the engine died under us: nothing more is acknowledged
            with lock:
                acked[key] = value

    with sdk_worker(engine.worker_url, "hammer") as c:
        threads = [threading.Thread(target=writer, args=(c, t)) for t in range(writers)]
        for t in threads:
            t.start()
        wait_until(lambda: len(acked) >= 1500, timeout=60, message="1500 acks")
        engine.kill()
        stop.set()
        for t in threads:
            t.join(10)
    with lock:
        survivors = dict(acked)
    engine.start()
    with sdk_worker(engine.worker_url, "checker") as c:
        stored = call(c, "state::list", {"scope": "acked"})
    by_key = {v["key"]: v for v in stored}
    assert len(by_key) == len(stored)  # one value per key
    missing = {k: v for k, v in survivors.items() if by_key.get(k) != v}
    assert not missing, f"{len(missing)} acknowledged writes lost or changed"
    # Beyond the acknowledged: at most the one write per writer in flight at
    # the kill (committed, its ack lost), and each the next of its writer.
    extra = [v for k, v in by_key.items() if k not in survivors]
    assert len(extra) <= writers
    for v in extra:
        assert v["seq"] == 0 or f"t{v['writer']}-{v['seq'] - 1}" in survivors, v
    assert offsets(engine.data_dir) == list(range(1, len(offsets(engine.data_dir)) + 1))


def test_live_views_equal_replay_and_drift_is_detected(
    fresh_engine: EngineProcess,
) -> None:
    with sdk_worker(fresh_engine.worker_url, "history") as c:
        random_history(c, seed=7, n=400)
        # Beside a running engine, read-only.
        result = replay(fresh_engine.data_dir, "--verify")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "views (at offset" in result.stdout and "OK" in result.stdout
        call(c, "state::set", {"scope": "alpha", "key": "victim", "value": "v"})
    fresh_engine.stop()
    result = replay(fresh_engine.data_dir, "--verify")
    assert result.returncode == 0, result.stdout
    tamper_state(fresh_engine.data_dir, "victim", "tampered")
    result = replay(fresh_engine.data_dir, "--verify")
    assert result.returncode == 1
    assert "differs" in result.stdout and "victim" in result.stdout
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "api",
            "replay",
            "--data-dir",
            str(fresh_engine.data_dir),
            "--quiet",
            "--verify",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 1


def test_second_engine_on_same_data_dir_is_refused(
    fresh_engine: EngineProcess,
) -> None:
    other = subprocess.run(
        [
            sys.executable,
            "-m",
            "api",
            "serve",
            "--data-dir",
            str(fresh_engine.data_dir),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env={"IIILOG_WORKER_PORT": "0", "IIILOG_HTTP_PORT": "0", "PATH": ""},
    )
    assert other.returncode == 2
    assert "in use by another engine" in other.stderr
    assert fresh_engine.alive()


def test_shutdown_is_not_held_up_by_a_silent_client(
    fresh_engine: EngineProcess,
) -> None:
    """A worker socket that never answers the close handshake cannot keep the
    engine from stopping (nor lose what was acknowledged)."""
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(fresh_engine.worker_url)
    with sdk_worker(fresh_engine.worker_url, "before-stop") as c:
        call(c, "state::set", {"scope": "stop", "key": "k", "value": 1})
    raw = socket.create_connection((url.hostname, url.port))
    try:
        raw.sendall(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        assert raw.recv(1024).startswith(b"HTTP/1.1 101")
        started = time.monotonic()
        assert fresh_engine.stop(timeout=12) == 0
        assert time.monotonic() - started < 10
    finally:
        raw.close()
    fresh_engine.start()
    with sdk_worker(fresh_engine.worker_url, "after-stop") as c:
        assert call(c, "state::get", {"scope": "stop", "key": "k"}) == 1
