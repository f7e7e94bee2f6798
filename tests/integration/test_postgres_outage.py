"""A node on a PostgreSQL log when the database goes away: its connections
killed (``pg_terminate_backend``), then an outage of a few seconds without a
server restart (the node's role may not log in). Writers get errors, not hangs,
while it is down; the node reconnects by itself and goes on; nothing
acknowledged is lost, and its stream clients keep receiving."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import NODE_CONFIG
from tests.harness import EngineProcess, call, sdk_worker, wait_until
from tests.storage import pg_allow_login, pg_kill_connections, pg_own_role
from tests.wsclients import StreamWatcher


@pytest.fixture
def own_role(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A login role owning a schema of its own: (role, database URL)."""
    role = f"iiilog_role_{uuid.uuid4().hex[:8]}"
    url = asyncio.run(pg_own_role(role))
    try:
        yield role, url
    finally:
        asyncio.run(pg_own_role(role, drop=True))


def kill_connections(role: str) -> None:
    asyncio.run(pg_kill_connections(role))


def test_the_database_away_and_back(tmp_path: Path, own_role: tuple[str, str]) -> None:
    role, url = own_role
    config = tmp_path / "node.yaml"
    config.write_text(NODE_CONFIG.format(url=url))
    node = EngineProcess(tmp_path / "node", config=config).start()
    try:
        watcher = StreamWatcher(f"{node.stream_url}/stream/s/g")
        with sdk_worker(node.worker_url, "writer") as w:
            acked: list[int] = []
            failures: list[tuple[float, str]] = []
            stop = threading.Event()

            def write() -> None:
                n = 0
                while not stop.is_set():
                    started = time.monotonic()
                    try:
                        call(
                            w,
                            "stream::set",
                            {
                                "stream_name": "s",
                                "group_id": "g",
                                "item_id": f"i{n}",
                                "data": n,
                            },
                            timeout_ms=30_000,
                        )
                        acked.append(n)
                    except Exception as e:  # the SDK raises the engine's error
                        failures.append((time.monotonic() - started, str(e)))
                        time.sleep(0.05)
                    n += 1

            writer = threading.Thread(target=write)
            writer.start()
            try:
                wait_until(lambda: len(acked) >= 20, 15, 0.05, "writes")
                # 1. Every connection of the node killed at once.
                kill_connections(role)
                before = len(acked)
                wait_until(lambda: len(acked) >= before + 20, 15, 0.05, "reconnect")
                # 2. An outage: the role may not log in for a few seconds.
                asyncio.run(pg_allow_login(role, False))
                kill_connections(role)
                failed = len(failures)
                wait_until(lambda: len(failures) >= failed + 3, 20, 0.05, "errors")
                during = len(acked)
                outage_ends = time.monotonic() + 3
                while time.monotonic() < outage_ends:  # nothing commits meanwhile
                    assert len(acked) == during
                    time.sleep(0.1)
                asyncio.run(pg_allow_login(role, True))
                wait_until(lambda: len(acked) >= during + 20, 30, 0.05, "recovery")
            finally:
                stop.set()
                writer.join(60)
            # Errors, not hangs: every failed call came back well within its
            # 30 s timeout (the log's own limit is 15 s per commit).
            assert failures
            assert max(seconds for seconds, _ in failures) < 16, failures[-3:]
            # Nothing acknowledged was lost.
            items: list[Any] = call(
                w, "stream::list", {"stream_name": "s", "group_id": "g"}
            )
            assert set(acked) <= set(items)
        # The node's stream client kept receiving (the listener came back).
        wait_until(
            lambda: (
                {
                    m["event"]["data"]
                    for m in watcher.messages
                    if m["event"]["type"] in ("create", "update")
                }
                >= set(acked)
            ),
            20,
            0.1,
            "every acknowledged write pushed",
        )
        watcher.close()
    finally:
        node.kill()
