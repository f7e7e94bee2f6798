"""Test harness: a real engine process, real SDK clients, real HTTP.

The engine process itself (``EngineProcess``, ``wait_until``) lives in
``scripts/engine_process.py`` so benchmarks and the SDK suite runner share it.
Tests touch the engine's database only through ``tests/storage.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from scripts.engine_process import ROOT, EngineProcess, wait_until

__all__ = ["ROOT", "EngineProcess", "Http", "wait_until"]


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


def never_within(
    probe: Any, window: float, interval: float = 0.02, message: str = "it"
) -> None:
    """Poll ``probe`` for ``window`` seconds and fail as soon as it returns
    something truthy: "nothing happens" checked over a real window (pair it
    with a positive control that shows the window is long enough)."""
    deadline = time.monotonic() + window
    while time.monotonic() < deadline:
        seen = probe()
        if seen:
            raise AssertionError(f"{message} happened within {window}s: {seen!r}")
        time.sleep(interval)


async def never_within_async(
    probe: Any, window: float, interval: float = 0.02, message: str = "it"
) -> None:
    """``never_within`` for async tests: polls without blocking the loop."""
    deadline = time.monotonic() + window
    while time.monotonic() < deadline:
        seen = probe()
        if seen:
            raise AssertionError(f"{message} happened within {window}s: {seen!r}")
        await asyncio.sleep(interval)


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
