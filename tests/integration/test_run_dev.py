"""``make run`` (``scripts/run_dev.py``): the engine plus the Python todo
worker, as a user runs and stops it. Ctrl-C reaches the whole foreground
process group, so the tests send SIGINT to the group and watch every process
in it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import ROOT, Http, wait_until

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="reads process groups from /proc"
)
STOP_BUDGET_S = 2.0


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry))
    return members


class RunDev:
    """One ``scripts/run_dev.py`` in its own process group (like a terminal's
    foreground job), on ephemeral ports."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        env = {
            **os.environ,
            "IIILOG_DATA_DIR": str(data_dir),
            "IIILOG_WORKER_PORT": "0",
            "IIILOG_HTTP_PORT": "0",
            "IIILOG_STREAM_PORT": "0",
            "PYTHONUNBUFFERED": "1",
        }
        self.data_dir = data_dir
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "scripts/run_dev.py"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def engine_info(self) -> dict[str, Any] | None:
        """engine.json, if the engine that wrote it is this run's child."""
        try:
            info: dict[str, Any] = json.loads(
                (self.data_dir / "engine.json").read_text()
            )
            stat = Path(f"/proc/{info['pid']}/stat").read_text()
        except (OSError, ValueError, KeyError):
            return None
        return info if int(stat.rsplit(")", 1)[1].split()[1]) == self.proc.pid else None

    def wait_ready(self) -> Http:
        """Until the todo worker's routes answer through the engine."""

        def ready() -> Http | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"run_dev exited:\n{self.output()}")
            info = self.engine_info()
            if info is None:
                return None
            http = Http(info["http_url"])
            try:
                status, _ = http.json("GET", "/todos", timeout=2)
            except OSError:
                return None
            return http if status == 200 else None

        return wait_until(ready, 60, 0.1, "the todo routes")

    def interrupt(self) -> float:
        """Ctrl-C: SIGINT to the group (the engine, in a session of its own, is
        stopped by run_dev); seconds until no process of the group is left."""
        started = time.monotonic()
        os.killpg(self.proc.pid, signal.SIGINT)
        while group_members(self.proc.pid) and time.monotonic() - started < 30:
            time.sleep(0.01)
        elapsed = time.monotonic() - started
        self.proc.wait(5)
        return elapsed

    def kill(self) -> None:
        info = self.engine_info()  # the engine runs in a session of its own
        pids = group_members(self.proc.pid)
        if info is not None and Path(f"/proc/{info['pid']}").exists():
            pids.append(info["pid"])
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(5)


@pytest.fixture
def runs(tmp_path: Path) -> Iterator[list[RunDev]]:
    started: list[RunDev] = []
    yield started
    for run in started:
        run.kill()  # never leave a process group behind


def test_ctrl_c_stops_everything_quickly_and_keeps_the_data(
    tmp_path: Path, runs: list[RunDev]
) -> None:
    data = tmp_path / "data"
    first = RunDev(data, tmp_path / "run1.log")
    runs.append(first)
    http = first.wait_ready()
    status, todo = http.json("POST", "/todos", {"title": "milk"})
    assert status == 201
    elapsed = first.interrupt()
    assert elapsed <= STOP_BUDGET_S, f"{elapsed:.2f}s to stop:\n{first.output()}"
    assert first.proc.returncode == 0
    second = RunDev(data, tmp_path / "run2.log")
    runs.append(second)
    status, todos = second.wait_ready().json("GET", "/todos")
    assert status == 200 and [t["id"] for t in todos] == [todo["id"]]
    elapsed = second.interrupt()
    assert elapsed <= STOP_BUDGET_S, f"{elapsed:.2f}s to stop:\n{second.output()}"


def test_second_run_on_the_same_data_dir_leaves_the_first_alone(
    tmp_path: Path, runs: list[RunDev]
) -> None:
    data = tmp_path / "data"
    first = RunDev(data, tmp_path / "run1.log")
    runs.append(first)
    http = first.wait_ready()
    info = first.engine_info()
    second = RunDev(data, tmp_path / "run2.log")
    runs.append(second)
    assert second.proc.wait(60) != 0
    assert "in use by another engine" in second.output(), second.output()
    assert str(data) in second.output()
    assert group_members(second.proc.pid) == []  # nothing of it left running
    assert first.engine_info() == info  # engine.json still the first's
    assert http.json("GET", "/todos")[0] == 200


def test_help_prints_help_and_starts_nothing(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "scripts/run_dev.py", "--help"],
        cwd=ROOT,
        env={**os.environ, "IIILOG_DATA_DIR": str(tmp_path / "data")},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0
    assert out.stdout.startswith("usage: ")
    assert "IIILOG_DATA_DIR" in out.stdout
    assert not (tmp_path / "data").exists()
