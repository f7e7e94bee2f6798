"""Worker logs: the SDK's ``Logger`` inside a handler reaches the engine over
``/otel`` and becomes a structured engine log line with the function id, and
stays queryable through ``engine::logs::list``."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from iii import InvocationError

from tests.harness import ROOT, EngineProcess, call, wait_until

WORKER = """
import sys, threading
from iii import InitOptions, register_worker
from iii_helpers.observability import Logger

iii = register_worker(sys.argv[1], InitOptions(worker_name="logger-worker"))
logger = Logger()

def create(data):
    logger.info("creating todo", {"title": data["title"]})
    logger.warn("stock is low", {"left": 2})
    return {"ok": True}

iii.register_function("logs::create", create)
threading.Event().wait()
"""


def test_sdk_logger_lines_reach_the_engine(engine: EngineProcess, client: Any) -> None:
    env = {**os.environ, "OTEL_ENABLED": "true"}
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, engine.worker_url],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(
            lambda: (
                "logs::create"
                in [
                    f["function_id"]
                    for f in call(client, "engine::functions::list", {})["functions"]
                ]
            ),
            timeout=20,
        )
        assert call(client, "logs::create", {"title": "milk"}) == {"ok": True}

        def mine() -> list[dict[str, Any]]:
            found = call(client, "engine::logs::list", {"function_id": "logs::create"})
            return list(found["logs"])

        wait_until(lambda: len(mine()) >= 2, timeout=20, message="two log lines")
        info, warn = mine()[:2]
        assert info["body"] == "creating todo" and info["data"] == {"title": "milk"}
        assert info["severity_number"] == 9
        assert warn["body"] == "stock is low" and warn["severity_number"] == 13
        warnings = call(client, "engine::logs::list", {"level": "warn"})["logs"]
        assert any(e["body"] == "stock is low" for e in warnings)
        assert all(e["severity_number"] >= 13 for e in warnings)
        wait_until(lambda: "[logs::create] creating todo" in engine.log())
    finally:
        proc.terminate()
        proc.wait(10)


def test_engine_log_functions(client: Any) -> None:
    assert (
        call(
            client, "engine::log::error", {"message": "disk full", "data": {"free": 0}}
        )
        is None
    )
    entries = call(client, "engine::logs::list", {"level": "error"})["logs"]
    assert entries[-1]["body"] == "disk full" and entries[-1]["data"] == {"free": 0}
    with pytest.raises(InvocationError) as err:
        call(client, "engine::log::info", {"nope": 1})
    assert err.value.code == "INVALID_ARGUMENTS"
