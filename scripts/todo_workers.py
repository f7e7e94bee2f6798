"""The todo example's workers as processes, for tests and benchmarks: the
Python one (``examples/todo/worker.py``) and the Node one
(``examples/todo-node/worker.mjs``) on a given npm ``iii-sdk`` version,
installed once next to a copy of it under ``.venv/node-sdks/<version>``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from scripts.engine_process import ROOT


def node_worker_dir(version: str) -> Path:
    """examples/todo-node with iii-sdk@version installed next to it (cached)."""
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is required for the Node todo worker")
    target = ROOT / ".venv" / "node-sdks" / version
    if not (target / "node_modules" / "iii-sdk" / "package.json").exists():
        target.mkdir(parents=True, exist_ok=True)
        (target / "package.json").write_text(
            json.dumps(
                {"name": f"todo-node-{version}", "private": True, "type": "module"}
            )
        )
        subprocess.run(
            [
                npm,
                "install",
                "--no-audit",
                "--no-fund",
                "--silent",
                f"iii-sdk@{version}",
            ],
            cwd=target,
            check=True,
            timeout=300,
        )
    shutil.copy(ROOT / "examples" / "todo-node" / "worker.mjs", target)
    return target


def start_todo_worker(
    runtime: str,
    worker_url: str,
    *,
    telemetry: bool = False,
    output: Path | None = None,
    root: Path = ROOT,
) -> subprocess.Popen[bytes]:
    """``runtime``: ``python`` or ``node-<iii-sdk version>``. ``telemetry``
    False sets ``OTEL_ENABLED=false`` (the SDKs export to the engine by
    default). ``output``: a file for what the worker prints (else dropped).
    ``root``: the checkout whose Python todo worker runs."""
    env = {**os.environ, "III_URL": worker_url}
    if not telemetry:
        env["OTEL_ENABLED"] = "false"
    if runtime == "python":
        cmd, cwd = [sys.executable, "examples/todo/worker.py"], root
    else:
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node is required for the Node todo worker")
        cwd = node_worker_dir(runtime.removeprefix("node-"))
        cmd = [node, "worker.mjs"]
    if output is None:
        return subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    with output.open("wb") as out:
        return subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT
        )
