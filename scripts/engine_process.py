"""A real engine process for tests, benchmarks and the SDK suite runner.

``EngineProcess`` runs ``python -m api serve`` on ephemeral ports with a
temp data dir and learns its URLs from ``engine.json``; it can be stopped
cleanly (SIGTERM) or killed (SIGKILL) and started again on the same data dir.
``wait_until`` polls with a deadline (never a bare sleep).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]  # the project
T = TypeVar("T")
# Runs the engine of the checkout given first, not this one: the
# editable install's import hook would otherwise take precedence over cwd.
OTHER_TREE = """\
import os, runpy, sys
root = sys.argv.pop(1)
# older checkouts started as `python -m engine`
main = "api" if os.path.exists(os.path.join(root, "api", "__main__.py")) else "engine"
sys.meta_path[:] = [
    f for f in sys.meta_path
    if not str(getattr(f, "__module__", "")).startswith("__editable__")
]
sys.path.insert(0, root)
runpy.run_module(main, run_name="__main__", alter_sys=True)
"""


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
        root: Path = ROOT,
    ) -> None:
        """``root``: the checkout whose engine runs (another one: e.g. the
        commit before a change, for a benchmark's before/after)."""
        self.data_dir = data_dir
        self.root = root
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
        if self.root == ROOT:
            launch = [sys.executable, "-m", "api"]
        else:
            launch = [sys.executable, "-c", OTHER_TREE, str(self.root)]
        cmd = [
            *launch,
            "serve",
            "--data-dir",
            str(self.data_dir),
        ]
        if self.config is not None:
            cmd += ["--config", str(self.config)]
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            cmd, cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT
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
