"""Test harness: a real engine process, real SDK clients, real HTTP.

``EngineProcess`` runs ``python -m engine serve`` on ephemeral ports with a
temp data dir and learns its URLs from ``engine.json``; it can be stopped
cleanly (SIGTERM) or killed (SIGKILL) and started again on the same data dir.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def wait_until(
    probe: Callable[[], T | None],
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str = "condition",
) -> T:
    """Poll ``probe`` until it returns something truthy, or fail at the deadline."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {message}; last value: {last!r}"
    )


class EngineProcess:
    def __init__(
        self,
        data_dir: Path,
        config: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.config = config
        self.extra_env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.worker_url = ""
        self.http_url = ""
        self.stream_url = ""
        self.info: dict[str, Any] = {}
        self.log_path = data_dir.parent / f"{data_dir.name}-engine.log"

    def start(self, timeout: float = 20.0) -> EngineProcess:
        ready = self.data_dir / "engine.json"
        ready.unlink(missing_ok=True)
        env = {
            **os.environ,
            "IIILOG_WORKER_PORT": "0",
            "IIILOG_HTTP_PORT": "0",
            "IIILOG_STREAM_PORT": "0",
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        cmd = [
            sys.executable,
            "-m",
            "api",
            "serve",
            "--data-dir",
            str(self.data_dir),
        ]
        if self.config is not None:
            cmd += ["--config", str(self.config)]
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()

        def read_ready() -> dict[str, Any] | None:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"engine exited with {self.proc.returncode}:\n{self.log()}"
                )
            try:
                info = json.loads(ready.read_text())
            except (OSError, ValueError):
                return None
            return info if info.get("pid") == self.proc.pid else None

        info: dict[str, Any] = wait_until(read_ready, timeout, message="engine start")
        self.info = info
        self.worker_url = info["worker_url"]
        self.http_url = info.get("http_url", "")
        self.stream_url = info.get("stream_url", "")
        return self

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-8000:]
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait: a clean shutdown."""
        assert self.proc is not None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()  # never leave an engine running behind a test
            proc.wait(10)
            raise AssertionError(
                f"engine did not stop within {timeout}s of SIGTERM:\n{self.log()}"
            ) from None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Http:
    """A small real HTTP/1.1 client (stdlib) against the engine's HTTP port."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        timeout: float = 35.0,
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        hdrs = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("content-type", "application/json")
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            payload = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, payload
        finally:
            conn.close()

    def json(
        self, method: str, path: str, body: Any = None, **kw: Any
    ) -> tuple[int, Any]:
        status, _, payload = self.request(method, path, body, **kw)
        return status, json.loads(payload) if payload else None


@contextlib.contextmanager
def sdk_worker(url: str, name: str) -> Iterator[Any]:
    """A real iii-sdk client, shut down at the end."""
    from iii import InitOptions, register_worker

    client = register_worker(
        url,
        InitOptions(
            worker_name=name, otel={"enabled": False}, enable_metrics_reporting=False
        ),
    )
    try:
        yield client
    finally:
        client.shutdown()


def call(client: Any, function_id: str, payload: Any, timeout_ms: int = 10_000) -> Any:
    return client.trigger(
        {"function_id": function_id, "payload": payload, "timeout_ms": timeout_ms}
    )


def trigger_bound(client: Any, function_id: str) -> bool:
    """Has the engine applied a trigger registration for ``function_id``?"""
    listed = call(client, "engine::registered-triggers::list", {})
    return any(t["function_id"] == function_id for t in listed["registered_triggers"])


def replay(data_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """``scripts/replay.py`` as a user runs it."""
    return subprocess.run(
        [
            sys.executable,
            "scripts/replay.py",
            "--data-dir",
            str(data_dir),
            "--quiet",
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def todo_history(client: Any, n: int, seed: int) -> None:
    """A random todo history on state scope ``todos``: creates, toggles, deletes."""
    rng = random.Random(seed)
    ids: list[str] = []
    for i in range(n):
        roll = rng.random()
        if roll < 0.5 or not ids:
            key = f"todo-{seed}-{i}"
            ids.append(key)
            call(
                client,
                "state::set",
                {
                    "scope": "todos",
                    "key": key,
                    "value": {"id": key, "completed": rng.random() < 0.3},
                },
            )
        elif roll < 0.8:
            key = rng.choice(ids)
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
                            "value": rng.random() < 0.5,
                        }
                    ],
                },
            )
        else:
            call(
                client,
                "state::delete",
                {"scope": "todos", "key": ids.pop(rng.randrange(len(ids)))},
            )


MAIN_LISTENER = "  - name: iii-worker-manager\n    config: {port: 0, host: 127.0.0.1}\n"


def engine_with(
    root: Path, modules: str, env: dict[str, str] | None = None
) -> EngineProcess:
    """A started engine whose config is the worker port (0) plus ``modules``
    (YAML list entries), with its data dir under ``root``."""
    config = root / "config.yaml"
    config.write_text("workers:\n" + MAIN_LISTENER + modules)
    return EngineProcess(root / "data", config=config, env=env).start()


def query_log(
    data_dir: Path, sql: str, params: tuple[Any, ...] = ()
) -> list[tuple[Any, ...]]:
    """Read the engine's SQLite file directly, read-only (beside a live engine)."""
    db = sqlite3.connect(f"file:{data_dir / 'log.sqlite3'}?mode=ro", uri=True)
    try:
        return list(db.execute(sql, params))
    finally:
        db.close()
