"""What the engine's log says when clients misbehave or go away: one line at
the right level, never a traceback (read from the engine's own log file)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

from tests.harness import (
    ROOT,
    EngineProcess,
    Http,
    call,
    engine_with,
    sdk_worker,
    wait_until,
)

# A worker that pipelines 300 calls (in batches) for a 100 KB value over a socket with a
# small receive buffer, and exits without reading the replies: the engine's
# writes are backed up when the peer resets the connection.
VANISHING_WORKER = r"""
import json, os, sys, time
sys.path.insert(0, os.getcwd())
from tests.wsclients import StalledSocket, client_frame

peer = StalledSocket(sys.argv[1], rcvbuf=8192)
peer.send_json({"type": "invokefunction", "invocation_id": "set",
    "function_id": "state::set",
    "data": {"scope": "noise", "key": "k", "value": "x" * 100_000}})
time.sleep(0.2)
for batch in range(30):  # in batches: later calls find the engine's writes paused
    peer.sock.sendall(b"".join(
        client_frame(json.dumps({"type": "invokefunction",
            "invocation_id": f"{batch}-{i}", "function_id": "state::get",
            "data": {"scope": "noise", "key": "k"}}).encode())
        for i in range(10)))
    time.sleep(0.01)
time.sleep(0.3)
os._exit(0)
"""


def problems(text: str) -> list[str]:
    """Lines that should not be there for a client's doing."""
    return [
        line
        for line in text.splitlines()
        if "Traceback" in line
        or " ERROR " in line
        or "Task was destroyed" in line
        or line.startswith(("  File ", "ConnectionResetError"))
    ]


def test_workers_going_away_leave_no_tracebacks(tmp_path: Path) -> None:
    """Before: ~80 ``ConnectionResetError`` tracebacks per such disconnect."""
    proc = EngineProcess(tmp_path / "data").start()
    try:
        for _ in range(3):
            subprocess.run(
                [sys.executable, "-c", VANISHING_WORKER, proc.worker_url],
                cwd=ROOT,
                timeout=60,
                check=True,
            )
        with sdk_worker(proc.worker_url, "after") as c:
            assert len(call(c, "state::get", {"scope": "noise", "key": "k"})) == 100_000
    finally:
        proc.stop()
    text = proc.log_path.read_text()
    assert not problems(text), "\n".join(problems(text)[:20])


def test_handler_answering_before_the_body_is_read(tmp_path: Path) -> None:
    """A handler that answers without reading a streamed body: the body pump
    is settled with the request (no "Task was destroyed but it is pending")."""
    proc = engine_with(
        tmp_path, "  - name: iii-http\n    config: {port: 0, host: 127.0.0.1}\n"
    )
    try:
        api = Http(proc.http_url)
        with sdk_worker(proc.worker_url, "early") as w:
            w.register_function("noise::early", lambda req: {"body": "early"})
            w.register_trigger(
                {
                    "type": "http",
                    "function_id": "noise::early",
                    "config": {"api_path": "upload", "http_method": "POST"},
                }
            )
            wait_until(lambda: api.request("POST", "/upload", raw=b"x")[0] == 200)
            for _ in range(5):
                status, _, body = api.request(
                    "POST",
                    "/upload",
                    raw=b"y" * (2 * 1024 * 1024),
                    headers={"content-type": "application/octet-stream"},
                )
                assert (status, body) == (200, b'"early"')
    finally:
        proc.stop()
    text = proc.log_path.read_text()
    assert not problems(text), "\n".join(problems(text)[:20])


def test_malformed_http_is_one_info_line(tmp_path: Path) -> None:
    """A request with a malformed header line (on any port) is answered 400
    by aiohttp and logged as one INFO line, not an ERROR traceback."""
    proc = engine_with(
        tmp_path,
        "  - name: iii-http\n    config: {port: 0, host: 127.0.0.1}\n"
        "  - name: iii-stream\n    config: {port: 0, host: 127.0.0.1}\n",
    )
    try:
        for url in (proc.http_url, proc.worker_url, proc.stream_url):
            parts = urlsplit(url)
            with socket.create_connection(
                (parts.hostname, parts.port), timeout=10
            ) as raw:
                raw.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\nbad header line\r\n\r\n")
                assert raw.recv(100).startswith(b"HTTP/1.0 400"), url
        wait_until(
            lambda: proc.log().count("bad HTTP request: 400 Invalid header token") == 3,
            message="three lines",
        )
    finally:
        proc.stop()
    text = proc.log_path.read_text()
    assert not problems(text), "\n".join(problems(text)[:20])
    lines = [line for line in text.splitlines() if "bad HTTP request" in line]
    assert len(lines) == 3
    assert all(" INFO aiohttp.server: " in line for line in lines), lines
    assert all("b'bad header line'" in line for line in lines), lines
