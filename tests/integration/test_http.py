"""HTTP triggers end to end: a real SDK worker registers routes, a real HTTP
client calls them."""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import EngineProcess, Http, call, engine_with, sdk_worker, wait_until

CALLS: list[str] = []


def routes(worker: Any) -> None:
    def echo(req: dict[str, Any]) -> dict[str, Any]:
        CALLS.append("handler")
        # The SDK turns the two channel refs into live reader/writer objects.
        body = {k: v for k, v in req.items() if k not in ("request_body", "response")}
        body["channels"] = [
            type(req.get(k)).__name__ for k in ("request_body", "response")
        ]
        return {"status_code": 200, "body": body}

    def fail(req: dict[str, Any]) -> None:
        raise RuntimeError("boom")

    def mw(tag: str, respond: bool) -> Any:
        def handler(data: dict[str, Any]) -> dict[str, Any]:
            CALLS.append(tag)
            if respond:
                return {
                    "action": "respond",
                    "response": {
                        "status_code": 403,
                        "body": {"error": "nope"},
                        "headers": {"x-why": "policy"},
                    },
                }
            return {"action": "continue"}

        return handler

    table: list[tuple[str, Any, dict[str, Any] | None]] = [
        ("h::echo", echo, {"api_path": "items/:id", "http_method": "POST"}),
        ("h::echo-get", echo, {"api_path": "/items/:id"}),
        ("h::static", lambda r: {"body": "static"}, {"api_path": "items/special"}),
        (
            "h::xml",
            lambda r: {
                "status_code": 201,
                "headers": {"Content-Type": "text/xml"},
                "body": "<a/>",
            },
            {"api_path": "xml"},
        ),
        (
            "h::list-headers",
            lambda r: {"headers": ["X-One: 1"], "body": {"a": 1}},
            {"api_path": "hdrs"},
        ),
        ("h::plain", lambda r: {"hello": "world"}, {"api_path": "plain"}),
        ("h::null", lambda r: None, {"api_path": "null"}),
        ("h::number", lambda r: 42, {"api_path": "number"}),
        ("h::fail", fail, {"api_path": "fail"}),
        ("h::cond", lambda r: r["query_params"].get("ok") == "1", None),
        (
            "h::guarded",
            echo,
            {"api_path": "guarded", "condition_function_id": "h::cond"},
        ),
        ("h::mw1", mw("mw1", False), None),
        ("h::mw2", mw("mw2", False), None),
        ("h::deny", mw("deny", True), None),
        (
            "h::with-mw",
            echo,
            {"api_path": "mw/:id", "middleware_function_ids": ["h::mw1", "h::mw2"]},
        ),
        (
            "h::denied",
            echo,
            {"api_path": "denied", "middleware_function_ids": ["h::deny", "h::mw1"]},
        ),
        ("h::ghost", echo, {"api_path": "ghost"}),
    ]
    for function_id, handler, config in table:
        worker.register_function(function_id, handler)
        if config is not None:
            worker.register_trigger(
                {"type": "http", "function_id": function_id, "config": config}
            )


@pytest.fixture(scope="module")
def api(engine: EngineProcess) -> Iterator[Http]:
    with sdk_worker(engine.worker_url, "http-routes") as w:
        routes(w)
        client = Http(engine.http_url)
        wait_until(
            lambda: client.request("GET", "/ghost")[0] == 200, message="routes live"
        )
        yield client


def test_request_object(api: Http) -> None:
    status, headers, body = api.request(
        "POST",
        "/items/a%20b?q=hello+world&limit=10&limit=11",
        body={"qty": 3, "method": "spoof", "title": "milk"},
        headers={"X-Trace": "abc"},
    )
    assert status == 200
    assert headers["content-type"] == "application/json"
    req = json.loads(body)
    assert req["path_params"] == {"id": "a%20b"}
    assert req["query_params"] == {"q": "hello world", "limit": "11"}
    assert req["headers"]["x-trace"] == "abc"
    assert req["path"] == "items/:id"
    assert req["method"] == "POST"
    assert req["body"] == {"qty": 3, "method": "spoof", "title": "milk"}
    assert req["trigger"] == {"type": "http", "path": "items/:id", "method": "POST"}
    assert req["channels"] == ["ChannelReader", "ChannelWriter"]
    # iiilog extension: body fields at the top level; standard keys win.
    assert req["title"] == "milk" and req["qty"] == 3


def test_static_segment_wins_and_head(api: Http) -> None:
    assert api.json("GET", "/items/special") == (200, "static")
    assert api.json("GET", "/items/other")[1]["path_params"] == {"id": "other"}
    status, _, body = api.request("HEAD", "/items/special")
    assert status == 200 and body == b""


def test_response_shapes(api: Http) -> None:
    status, headers, body = api.request("GET", "/xml")
    assert (status, headers["content-type"], body) == (201, "text/xml", b"<a/>")
    status, headers, body = api.request("GET", "/hdrs")
    assert headers["x-one"] == "1" and json.loads(body) == {"a": 1}
    assert api.json("GET", "/plain") == (200, {"hello": "world"})
    assert api.json("GET", "/number") == (200, 42)
    status, headers, body = api.request("GET", "/null")
    assert (status, body) == (200, b"null")


def test_engine_errors(api: Http) -> None:
    assert api.json("GET", "/no/such/route") == (
        404,
        {"error": {"code": "NOT_FOUND", "message": "Not Found"}},
    )
    status, headers, body = api.request("DELETE", "/xml")
    assert status == 405
    assert headers["allow"] == "GET, HEAD"
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {
        "error": {
            "code": "METHOD_NOT_ALLOWED",
            "message": "DELETE is not allowed on this path",
        }
    }
    status, headers, _ = api.request("PUT", "/items/7")  # GET and POST routes
    assert (status, headers["allow"]) == (405, "GET, HEAD, POST")
    status, payload = api.json("GET", "/fail")
    assert status == 500
    assert payload["error"]["code"] == "invocation_failed"
    assert payload["error"]["message"] == "boom"
    assert 0 < len(payload["error"]["error_id"]) <= 12
    int(payload["error"]["error_id"], 16)
    status, _headers, body = api.request(
        "POST", "/items/1", raw=b"{oops", headers={"content-type": "application/json"}
    )
    assert status == 400
    assert json.loads(body)["error"]["code"] == "INVALID_JSON"


def test_condition(api: Http) -> None:
    assert api.json("GET", "/guarded?ok=1")[0] == 200
    assert api.json("GET", "/guarded?ok=0") == (
        422,
        {
            "error": {
                "code": "CONDITION_NOT_MET",
                "message": "Request condition not met",
            },
            "skipped": True,
        },
    )


def test_middleware_order_and_respond(api: Http) -> None:
    CALLS.clear()
    status, req = api.json("GET", "/mw/42?q=hello")
    assert status == 200 and req["path_params"] == {"id": "42"}
    assert CALLS == ["mw1", "mw2", "handler"]
    CALLS.clear()
    status, headers, body = api.request("GET", "/denied")
    assert (status, json.loads(body), headers["x-why"]) == (
        403,
        {"error": "nope"},
        "policy",
    )
    assert CALLS == ["deny"]


def test_cors(api: Http) -> None:
    status, headers, _ = api.request(
        "OPTIONS",
        "/anything/at/all",
        headers={
            "Origin": "http://app.example",
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "x-custom",
        },
    )
    assert status == 204
    assert headers["access-control-allow-origin"] == "http://app.example"
    assert "PUT" in headers["access-control-allow-methods"]
    assert headers["access-control-allow-headers"] == "x-custom"
    _, headers, _ = api.request("GET", "/plain", headers={"Origin": "http://x"})
    assert headers["access-control-allow-origin"] == "http://x"


def test_unregistered_function_leaves_route(engine: EngineProcess) -> None:
    api = Http(engine.http_url)
    with sdk_worker(engine.worker_url, "short-lived") as w:
        fn = w.register_function("h::temp", lambda r: {"body": "here"})
        w.register_trigger(
            {"type": "http", "function_id": "h::temp", "config": {"api_path": "temp"}}
        )
        wait_until(lambda: api.request("GET", "/temp")[0] == 200)
        fn.unregister()
        wait_until(lambda: api.request("GET", "/temp")[0] == 500)
        _status, payload = api.json("GET", "/temp")
        assert payload["error"]["code"] == "function_not_found"
    # The worker is gone: its trigger went with it.
    wait_until(lambda: api.request("GET", "/temp")[0] == 404)


def test_route_conflict_is_rejected(
    engine: EngineProcess, caplog: pytest.LogCaptureFixture
) -> None:
    api = Http(engine.http_url)
    with (
        caplog.at_level(logging.ERROR, logger="iii"),
        sdk_worker(engine.worker_url, "conflicts") as w,
    ):
        w.register_function("h::xy", lambda r: {"body": "first"})
        w.register_function("h::yx", lambda r: {"body": "second"})
        w.register_trigger(
            {"type": "http", "function_id": "h::xy", "config": {"api_path": "c/:x/:y"}}
        )
        bad = w.register_trigger(
            {"type": "http", "function_id": "h::yx", "config": {"api_path": "c/:y/:x"}}
        )
        wait_until(
            lambda: "conflicts with already-registered route" in caplog.text,
            message="rejection logged by the SDK",
        )
        assert api.json("GET", "/c/1/2") == (200, "first")
        bad.unregister()
        # Frames are applied in order per socket: once this call returns, the
        # engine has processed the unregister of the rejected trigger.
        call(w, "state::get", {"scope": "x", "key": "y"})
        assert api.json("GET", "/c/1/2") == (200, "first")


def test_admin_paths_are_never_a_workers(
    engine: EngineProcess, caplog: pytest.LogCaptureFixture
) -> None:
    """Paths under ``/_iiilog/`` are iiilog's own: a route there is refused at
    registration, and a route with a ``:param`` first segment does not
    capture them either."""
    api = Http(engine.http_url)
    with (
        caplog.at_level(logging.ERROR, logger="iii"),
        sdk_worker(engine.worker_url, "admin-squatter") as w,
    ):
        w.register_function("h::squat", lambda r: {"body": "hijacked"})
        for path in ("_iiilog/projections/todos", "/_iiilog/extra"):
            w.register_trigger(
                {
                    "type": "http",
                    "function_id": "h::squat",
                    "config": {"api_path": path},
                }
            )
        w.register_trigger(
            {
                "type": "http",
                "function_id": "h::squat",
                "config": {"api_path": ":anything/extra2"},
            }
        )
        wait_until(lambda: api.request("GET", "/elsewhere/extra2")[0] == 200)
        wait_until(
            lambda: caplog.text.count("is reserved: paths under /_iiilog/") == 2,
            message="both refusals logged by the SDK",
        )
        assert "'/_iiilog/extra'" in caplog.text
        not_found = {"error": {"code": "NOT_FOUND", "message": "Not Found"}}
        assert api.json("GET", "/_iiilog/extra") == (404, not_found)
        assert api.json("GET", "/_iiilog/extra2") == (404, not_found)
        status, payload = api.json("GET", "/_iiilog/projections/todos")
        assert status == 200 and payload["name"] == "todos"


def test_body_over_max_body_bytes_is_413(tmp_path: Path) -> None:
    """Bodies past ``max_body_bytes`` are refused with 413 and the error
    envelope: with a length, without one (chunked), JSON or streamed."""
    proc = engine_with(
        tmp_path,
        "  - name: iii-http\n    config: {port: 0, host: 127.0.0.1,"
        " max_body_bytes: 1024}\n",
    )
    try:
        api = Http(proc.http_url)
        with sdk_worker(proc.worker_url, "bodies") as w:
            w.register_function("h::len", lambda r: {"body": "ran"})
            w.register_trigger(
                {
                    "type": "http",
                    "function_id": "h::len",
                    "config": {"api_path": "up", "http_method": "POST"},
                }
            )
            wait_until(lambda: api.request("POST", "/up", {"a": 1})[0] == 200)
            too_big = {"title": "x" * 2000}
            status, headers, body = api.request("POST", "/up", too_big)
            assert status == 413
            assert headers["content-type"] == "application/json"
            assert json.loads(body) == {
                "error": {
                    "code": "PAYLOAD_TOO_LARGE",
                    "message": f"request body of {len(json.dumps(too_big))} bytes"
                    " exceeds the configured max_body_bytes limit of 1024",
                }
            }
            for content_type in ("application/json", "application/octet-stream"):
                conn = http.client.HTTPConnection(api.host, api.port, timeout=10)
                try:
                    conn.request(
                        "POST",
                        "/up",
                        body=iter([b'{"t":"', b"y" * 1500, b'"}']),
                        headers={"content-type": content_type},
                        encode_chunked=True,
                    )
                    resp = conn.getresponse()
                    assert resp.status == 413, content_type
                    assert json.loads(resp.read())["error"] == {
                        "code": "PAYLOAD_TOO_LARGE",
                        "message": "request body exceeds the configured"
                        " max_body_bytes limit of 1024",
                    }
                finally:
                    conn.close()
            assert api.request("POST", "/up", {"a": 1})[0] == 200
    finally:
        proc.stop()


def test_timeout_is_504(tmp_path: Path) -> None:
    proc = engine_with(
        tmp_path,
        "  - name: iii-http\n    config: {port: 0, host: 127.0.0.1,"
        " default_timeout: 300}\n",
    )
    try:
        api = Http(proc.http_url)
        with sdk_worker(proc.worker_url, "slow") as w:
            finished = threading.Event()

            def slow(req: Any) -> Any:
                time.sleep(2)  # the handler is slow on purpose
                finished.set()
                return {"body": 1}

            w.register_function("h::slow", slow)
            w.register_trigger(
                {
                    "type": "http",
                    "function_id": "h::slow",
                    "config": {"api_path": "slow"},
                }
            )
            wait_until(
                lambda: any(
                    t["function_id"] == "h::slow"
                    for t in call(w, "engine::registered-triggers::list", {})[
                        "registered_triggers"
                    ]
                )
            )
            started = time.monotonic()
            status, _, body = api.request("GET", "/slow")
            assert (status, body) == (504, b"")
            assert time.monotonic() - started < 1.5
            assert call(w, "state::get", {"scope": "a", "key": "b"}) is None
            # Let the slow handler end before the worker shuts down.
            assert finished.wait(10)
    finally:
        proc.stop()
