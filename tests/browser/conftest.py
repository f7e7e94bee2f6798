"""Browser tests: Playwright driving Debian's Chromium (``make test`` installs
it with apt-get; Playwright's own browser download is not used) against the
real engine and the real todo worker.

A missing browser or Playwright fails these tests, it never skips them. With
``IIILOG_SCREENSHOTS=<dir>`` the tests write the README's screenshots there.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import ROOT, EngineProcess, Http, wait_until

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def screenshot(page: Any, name: str) -> None:
    """Save ``name`` for the docs when IIILOG_SCREENSHOTS names a directory."""
    target = os.environ.get("IIILOG_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(target) / name), full_page=True)


@pytest.fixture
def browser() -> Iterator[Any]:
    """One Chromium per test. Playwright's sync API marks an event loop as
    running in this thread while it is active, which asyncio tests cannot
    share: it is stopped before any other test runs."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: `make test` installs it (apt-get install -y"
            " chromium, as root)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:  # pragma: no cover - the dev extra installs it
        pytest.fail(f"playwright is not installed (pip install -e '.[dev]'): {e}")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class TodoStack:
    """The engine on fixed free ports (so a restart keeps them, as ``make run``
    does) and ``examples/todo/worker.py`` against it."""

    def __init__(self, root: Path) -> None:
        self.ports = {name: free_port() for name in ("worker", "http", "stream")}
        self.engine = EngineProcess(
            root / "data",
            env={
                "IIILOG_WORKER_PORT": str(self.ports["worker"]),
                "IIILOG_HTTP_PORT": str(self.ports["http"]),
                "IIILOG_STREAM_PORT": str(self.ports["stream"]),
            },
        )
        self.url = f"http://127.0.0.1:{self.ports['http']}"
        self.api = Http(self.url)
        self.worker: subprocess.Popen[bytes] | None = None
        self.worker_log = root / "worker.log"

    def start(self) -> TodoStack:
        self.engine.start()
        with self.worker_log.open("ab") as out:
            self.worker = subprocess.Popen(
                [sys.executable, "examples/todo/worker.py"],
                cwd=ROOT,
                env={
                    **os.environ,
                    "III_URL": self.engine.worker_url,
                    "TODO_STREAM_PORT": str(self.ports["stream"]),
                    "OTEL_ENABLED": "false",
                },
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.wait_for_worker()
        return self

    def wait_for_worker(self, timeout: float = 30) -> None:
        """Until the worker's routes and both its triggers are registered."""

        def ready() -> bool:
            try:
                if self.api.request("GET", "/app.js", timeout=2)[0] != 200:
                    return False
            except OSError:
                return False
            _, body = self.api.json("GET", "/_iiilog/api/overview", timeout=2)
            active = {s["function_id"] for s in body["subscriptions"] if s["active"]}
            return {"todos::on-change", "todos::update-metrics"} <= active

        wait_until(ready, timeout=timeout, message="the todo worker")

    def todos(self) -> list[dict[str, Any]]:
        status, body = self.api.json("GET", "/todos")
        assert status == 200
        return list(body)

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.terminate()
            try:
                self.worker.wait(10)
            except subprocess.TimeoutExpired:
                self.worker.kill()
                self.worker.wait(10)
        if self.engine.alive():
            self.engine.stop()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[TodoStack]:
    todo = TodoStack(tmp_path).start()
    try:
        yield todo
    finally:
        todo.stop()
