"""Observability as iii's docs walk through it, through the real Python SDK:
``engine::traces::list/tree/clear`` over the spans the SDK sends to ``/otel``
and the engine's own HTTP span (one request through the todo worker),
``engine::logs::list/clear`` with Logger records in iii's shape, the ``log``
and ``trace`` trigger types, and ``engine::health::check``."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import ROOT, EngineProcess, Http, call, sdk_worker, wait_until

LOGGER = """
import sys, threading
from iii import InitOptions, register_worker
from iii_helpers.observability import Logger

iii = register_worker(sys.argv[1], InitOptions(worker_name="linkly"))
logger = Logger()

def resolve(data):
    logger.info("link resolved", {"code": data["code"]})
    return {"url": "https://example.com"}

iii.register_function("link::resolve", resolve)
threading.Event().wait()
"""


@pytest.fixture
def todo(tmp_path: Path) -> Iterator[tuple[EngineProcess, Http]]:
    engine = EngineProcess(tmp_path / "data").start()
    env = {**os.environ, "III_URL": engine.worker_url, "OTEL_ENABLED": "true"}
    worker = subprocess.Popen(
        [sys.executable, "examples/todo/worker.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    api = Http(engine.http_url)
    try:
        wait_until(
            lambda: api.request("GET", "/todos/metrics")[0] == 200,
            timeout=30,
            message="todo routes",
        )
        yield engine, api
    finally:
        worker.terminate()
        worker.wait(10)
        engine.stop()


def walk(node: dict[str, Any], depth: int = 0) -> list[tuple[int, str, str]]:
    out = [(depth, node["name"], node["service_name"])]
    for child in node["children"]:
        out += walk(child, depth + 1)
    return out


def test_a_trace_tree_for_one_http_request(
    todo: tuple[EngineProcess, Http],
) -> None:
    engine, api = todo
    with sdk_worker(engine.worker_url, "trace-reader") as client:
        call(client, "engine::traces::clear", {})
        status, created = api.json("POST", "/todos", {"title": "milk"})
        assert status == 201

        def roots() -> list[dict[str, Any]]:
            found = call(
                client, "engine::traces::list", {"name": "POST /todos", "limit": 1}
            )
            return list(found["spans"])

        wait_until(lambda: roots(), message="the request's span")
        root = roots()[0]
        assert root["service_name"] == "iiilog" and root["status"] == "ok"
        assert root["parent_span_id"] is None
        assert ["http.response.status_code", "201"] in root["attributes"]
        assert root["end_time_unix_nano"] >= root["start_time_unix_nano"] > 0

        def tree() -> list[tuple[int, str, str]]:
            answer = call(
                client, "engine::traces::tree", {"trace_id": root["trace_id"]}
            )
            assert len(answer["roots"]) == 1
            return walk(answer["roots"][0])

        # The worker's handler span arrives over /otel, under the engine's span.
        wait_until(
            lambda: any(depth >= 1 for depth, _, _ in tree()),
            timeout=20,
            message="the worker's spans under the request",
        )
        lines = tree()
        assert lines[0] == (0, "POST /todos", "iiilog")
        worker_spans = [line for line in lines if line[0] >= 1]
        assert any("todos::create" in name for _, name, _ in worker_spans), lines
        assert all(service != "iiilog" for _, _, service in worker_spans)

        listed = call(
            client,
            "engine::traces::list",
            {"sort_by": "duration_ms", "sort_order": "desc", "search_all_spans": True},
        )
        assert listed["total"] >= len(lines)
        durations = [
            s["end_time_unix_nano"] - s["start_time_unix_nano"] for s in listed["spans"]
        ]
        assert durations == sorted(durations, reverse=True)
        assert call(client, "engine::traces::clear", {}) == {"success": True}
        assert (
            call(client, "engine::traces::tree", {"trace_id": root["trace_id"]})[
                "roots"
            ]
            == []
        )
        health = call(client, "engine::health::check", {})
        assert health["status"] == "healthy" and health["version"]
        assert set(health["components"]) >= {"otel", "metrics", "logs", "spans"}
        assert health["components"]["spans"]["status"] == "healthy"
        assert created["title"] == "milk"


def test_logger_records_the_log_trigger_and_clear(
    engine: EngineProcess, client: Any
) -> None:
    seen: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    lock = threading.Lock()

    def on_log(entry: dict[str, Any]) -> None:
        with lock:
            seen.append(entry)

    def on_error(entry: dict[str, Any]) -> None:
        with lock:
            errors.append(entry)

    proc = subprocess.Popen(
        [sys.executable, "-c", LOGGER, engine.worker_url],
        cwd=ROOT,
        env={**os.environ, "OTEL_ENABLED": "true"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with sdk_worker(engine.worker_url, "log-watch") as w:
            w.register_function("watch::all", on_log)
            w.register_function("watch::errors", on_error)
            w.register_trigger({"type": "log", "function_id": "watch::all"})
            w.register_trigger(
                {
                    "type": "log",
                    "function_id": "watch::errors",
                    "config": {"level": "error"},
                }
            )
            wait_until(
                lambda: (
                    "link::resolve"
                    in [
                        f["function_id"]
                        for f in call(client, "engine::functions::list", {})[
                            "functions"
                        ]
                    ]
                ),
                timeout=20,
            )
            assert call(client, "link::resolve", {"code": "abc"}) == {
                "url": "https://example.com"
            }

            def resolved() -> list[dict[str, Any]]:
                found = call(client, "engine::logs::list", {"limit": 100})
                return [e for e in found["logs"] if e["body"] == "link resolved"]

            wait_until(lambda: resolved(), timeout=20, message="the Logger record")
            entry = resolved()[0]
            # the shape iii's observability chapter reads
            assert entry["attributes"]["log.data"] == {"code": "abc"}
            assert entry["data"] == {"code": "abc"}
            assert entry["trace_id"] and entry["service_name"]
            assert entry["function_id"] == "link::resolve"
            assert entry["severity_text"].upper() == "INFO"
            wait_until(lambda: any(e["body"] == "link resolved" for e in seen))
            assert errors == []
            call(client, "engine::log::error", {"message": "disk full"})
            wait_until(lambda: [e["body"] for e in errors] == ["disk full"])
            listed = call(client, "engine::logs::list", {"severity_min": 17})
            assert [e["body"] for e in listed["logs"]] == ["disk full"]
            assert listed["total"] == 1
            assert call(client, "engine::logs::clear", {}) == {"success": True}
            assert call(client, "engine::logs::list", {})["logs"] == []
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_trace_trigger_ticks_with_trace_ids(
    engine: EngineProcess, client: Any
) -> None:
    ticks: list[dict[str, Any]] = []
    http = Http(engine.http_url)
    with sdk_worker(engine.worker_url, "trace-watch") as w:
        w.register_function("watch::traces", ticks.append)
        w.register_function("hello::get", lambda req: {"status_code": 200, "body": 1})
        w.register_trigger({"type": "trace", "function_id": "watch::traces"})
        w.register_trigger(
            {
                "type": "http",
                "function_id": "hello::get",
                "config": {"api_path": "hello", "http_method": "GET"},
            }
        )
        wait_until(lambda: http.request("GET", "/hello")[0] == 200, timeout=20)
        wait_until(lambda: ticks, timeout=10, message="a trace tick")
        ids = {t for tick in ticks for t in tick["trace_ids"]}
        spans = call(client, "engine::traces::list", {"name": "GET /hello"})["spans"]
        assert spans and {s["trace_id"] for s in spans} <= ids
