"""``make run``: the engine plus the reactive todo example, in one terminal.

Starts ``iiilog serve`` on the data dir, waits until *that* engine has written
its ``engine.json`` (never an older file, nor another engine's), starts
``examples/todo/worker.py`` against it, prints the URLs, and stops both on
Ctrl-C, SIGTERM or SIGHUP: the worker first, then the engine, each killed if
it has not exited within its grace period. The engine runs in a session of its
own, so a terminal's Ctrl-C (sent to the whole foreground group) reaches the
worker and this script but not the engine: the worker closes its sockets while
the engine is still there, instead of retrying a connection to an engine that
is going away. An engine already running on the data dir is left alone: the
new one refuses the dir (its lock) and this script exits.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 30.0
WORKER_GRACE_S = 2.0  # the SDK closes its sockets, then the process exits
ENGINE_GRACE_S = 10.0  # the log writer drains before the database closes

ENVIRONMENT = """\
environment:
  IIILOG_DATA_DIR     where the log lives (default: ./data in the checkout)
  IIILOG_WORKER_PORT  worker WebSocket port (default 49134; 0: any free port)
  IIILOG_HTTP_PORT    HTTP port of the todo app and routes (default 3111)
  IIILOG_STREAM_PORT  stream WebSocket port (default 3112)
"""


def _engine_info(ready: Path, pid: int) -> dict[str, Any] | None:
    """engine.json if the engine ``pid`` wrote it, else None."""
    try:
        info: dict[str, Any] = json.loads(ready.read_text())
    except (OSError, ValueError):
        return None
    return info if info.get("pid") == pid else None


def _stop(proc: subprocess.Popen[bytes], name: str, grace: float) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        print(f"run_dev: the {name} did not stop in {grace}s; killed", file=sys.stderr)
        proc.kill()
        proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="run_dev.py",
        description="Run the engine and the Python todo worker until Ctrl-C"
        " (what make run does).",
        epilog=ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args(argv)
    # No lock in a signal handler (``Event.set`` deadlocks if the signal lands
    # while this thread holds the event's lock): a flag, polled.
    signals: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _: signals.append(signum))
    data_dir = Path(os.environ.get("IIILOG_DATA_DIR", ROOT / "data"))
    engine = subprocess.Popen(
        [sys.executable, "-m", "api", "serve", "--data-dir", str(data_dir)],
        cwd=ROOT,
        start_new_session=True,  # stopped by this script, after the worker
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    info = None
    while info is None and engine.poll() is None and not signals:
        if time.monotonic() > deadline:
            break
        info = _engine_info(data_dir / "engine.json", engine.pid)
        time.sleep(0.1)
    if info is None:
        _stop(engine, "engine", ENGINE_GRACE_S)
        if signals:
            return 0
        print("run_dev: the engine did not start (see above)", file=sys.stderr)
        return 1
    env = {**os.environ, "III_URL": info["worker_url"]}
    stream = urlsplit(info.get("stream_url", ""))
    if stream.port is not None:  # the page learns where the stream server is
        env["TODO_STREAM_PORT"] = str(stream.port)
    worker = subprocess.Popen(
        [sys.executable, "examples/todo/worker.py"], cwd=ROOT, env=env
    )
    http = info.get("http_url", "http://127.0.0.1:3111")
    print(
        f"\n  todo app ready:  open {http}/ in a browser"
        f"   (console: {http}/_iiilog/console)\n"
        f"                   curl -X POST {http}/todos "
        "-H 'content-type: application/json' -d '{\"title\":\"milk\"}'\n"
        f"                   curl {http}/todos   curl {http}/todos/metrics\n"
        "  Ctrl-C stops both.\n",
        flush=True,
    )
    while not signals:
        time.sleep(0.1)
        if engine.poll() is not None or worker.poll() is not None:
            break
    _stop(worker, "worker", WORKER_GRACE_S)
    _stop(engine, "engine", ENGINE_GRACE_S)
    return 0 if signals else 1


if __name__ == "__main__":
    sys.exit(main())
