"""``make run``: the engine plus the reactive todo example, in one terminal.

Starts ``iiilog serve`` (embedded SQLite in ./data unless IIILOG_DATA_DIR says
otherwise), waits until it is listening, starts ``examples/todo/worker.py``
against it, prints the URLs, and stops both on Ctrl-C.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    data_dir = Path(os.environ.get("IIILOG_DATA_DIR", ROOT / "data"))
    ready = data_dir / "engine.json"
    ready.unlink(missing_ok=True)
    engine = subprocess.Popen(
        [sys.executable, "-m", "api", "serve", "--data-dir", str(data_dir)],
        cwd=ROOT,
    )
    deadline = time.monotonic() + 30
    info: dict[str, str] = {}
    while time.monotonic() < deadline and engine.poll() is None:
        try:
            info = json.loads(ready.read_text())
            break
        except (OSError, ValueError):
            time.sleep(0.1)
    if not info:
        print("the engine did not start; see the log above", file=sys.stderr)
        engine.terminate()
        return 1
    worker = subprocess.Popen(
        [sys.executable, "examples/todo/worker.py"],
        cwd=ROOT,
        env={**os.environ, "III_URL": info["worker_url"]},
    )
    http = info.get("http_url", "http://127.0.0.1:3111")
    print(
        f"\n  todo app ready:  curl -X POST {http}/todos "
        "-H 'content-type: application/json' -d '{\"title\":\"milk\"}'\n"
        f"                   curl {http}/todos   curl {http}/todos/metrics\n"
        "  Ctrl-C stops both.\n",
        flush=True,
    )
    try:
        while engine.poll() is None and worker.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    for proc in (worker, engine):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in (worker, engine):
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
