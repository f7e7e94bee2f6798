"""The ``iiilog`` command and ``scripts/replay.py`` as a user runs them: real
processes, their exit status and what they print."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.harness import ROOT

ENV = {
    **os.environ,
    "IIILOG_WORKER_PORT": "0",
    "IIILOG_HTTP_PORT": "0",
    "IIILOG_STREAM_PORT": "0",
}


def iiilog(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api", *args],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_bad_config_is_refused_by_module_and_key(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "workers:\n  - name: iii-http\n    config: {cors: {allowed_origins: '*'}}\n"
    )
    out = iiilog("serve", "--config", str(config), "--data-dir", str(tmp_path / "d"))
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == (
        "config error: iii-http: cors.allowed_origins: Input should be a valid list"
    )
    assert "Traceback" not in out.stderr
    config.write_text("workers:\n  - name: iii-http\n    config: {prot: 1}\n")
    out = iiilog("serve", "--config", str(config), "--data-dir", str(tmp_path / "d"))
    assert out.returncode == 2
    assert "config error: iii-http: unknown key 'prot'" in out.stderr
    assert not (tmp_path / "d").exists()  # refused before anything was opened
