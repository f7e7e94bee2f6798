"""The README's browser/JS resume snippet (examples/stream-client/resume.js),
run for real in Node against a real engine."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid

import pytest

from tests.harness import ROOT, EngineProcess


def test_js_snippet_resumes_from_its_last_offset(engine: EngineProcess) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is required for this test (Node 20+ is on every machine)")
    stream = f"js-{uuid.uuid4().hex[:6]}"
    result = subprocess.run(
        [
            node,
            "--experimental-websocket",
            "check.mjs",
            engine.worker_url,
            engine.stream_url,
            stream,
        ],
        cwd=ROOT / "examples" / "stream-client",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    first, second = out["first"], out["second"]
    assert first[0]["event"]["type"] == "sync"
    ticks = [m["event"]["event"]["data"]["i"] for m in first[1:]]
    assert ticks == [0, 1, 2, 3, 4]
    assert all(m["event"]["type"] == "event" for m in second)
    assert [m["event"]["event"]["data"]["i"] for m in second] == [5, 6, 7, 8, 9]
    assert second[0]["offset"] > first[-1]["offset"]
    assert out["stored"] == [str(second[-1]["offset"])]
