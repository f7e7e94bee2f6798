"""Triggers registered from an RBAC session (protocol Appendix C): a trigger
may only deliver to a function the session may call, and only through a
trigger type its auth result allows. Driven by real SDK workers on the RBAC
port and a raw socket for the exact refusal frame."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from iii import InitOptions, register_worker

from tests.harness import EngineProcess, Http, call, engine_with, sdk_worker, wait_until
from tests.wsclients import RawWorker

SESSIONS: dict[str, dict[str, Any]] = {
    # May read state, bind http triggers only; may not write state.
    "reader": {"allowed_functions": ["state::get"], "allowed_trigger_types": ["http"]},
    # No allowed_trigger_types: every type.
    "any-type": {"allowed_functions": ["state::get"]},
    # May bind triggers through the engine function too.
    "binder": {
        "allowed_functions": ["state::get", "engine::register_trigger"],
        "allowed_trigger_types": ["state"],
    },
}


@pytest.fixture(scope="module")
def rbac_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    root = tmp_path_factory.mktemp("rbac-triggers")
    proc = engine_with(
        root,
        "  - name: iii-worker-manager\n    config: {host: 127.0.0.1, port: 0,"
        " rbac: {auth_function_id: 'rbac::auth'}}\n"
        "  - name: iii-http\n    config: {host: 127.0.0.1, port: 0}\n"
        "  - name: iii-state\n",
    )
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def admin(rbac_engine: EngineProcess) -> Iterator[Any]:
    """The main-port worker that owns the auth function."""
    with sdk_worker(rbac_engine.worker_url, "rbac-admin") as c:

        def auth(data: dict[str, Any]) -> dict[str, Any]:
            token = data["headers"].get("x-token", "")
            if token not in SESSIONS:
                raise ValueError("bad token")
            return {**SESSIONS[token], "context": {"token": token}}

        c.register_function("rbac::auth", auth)
        wait_until(
            lambda: any(
                f["function_id"] == "rbac::auth"
                for f in call(c, "engine::functions::list", {})["functions"]
            ),
            message="the auth function",
        )
        call(c, "state::set", {"scope": "rbac", "key": "k", "value": "original"})
        yield c


@pytest.fixture
def sdk_session(rbac_engine: EngineProcess, admin: Any) -> Iterator[Any]:
    worker = register_worker(
        rbac_engine.info["rbac_url"],
        InitOptions(
            worker_name="rbac-trigger-session",
            headers={"x-token": "reader"},
            otel={"enabled": False},
            enable_metrics_reporting=False,
        ),
    )
    try:
        yield worker
    finally:
        worker.shutdown()


def post(proc: EngineProcess, path: str, body: Any) -> tuple[int, bytes]:
    status, _, payload = Http(proc.http_url).request("POST", path, body)
    return status, payload


def test_trigger_to_an_allowed_function_works(
    rbac_engine: EngineProcess, admin: Any, sdk_session: Any
) -> None:
    sdk_session.register_trigger(
        {
            "type": "http",
            "function_id": "state::get",
            "config": {"api_path": "rbac/read", "http_method": "POST"},
        }
    )
    _, body = wait_until(
        lambda: (
            r
            if (r := post(rbac_engine, "/rbac/read", {"scope": "rbac", "key": "k"}))[0]
            == 200
            else None
        ),
        message="the allowed route",
    )
    assert json.loads(body) == "original"


def test_trigger_to_a_forbidden_function_is_refused(
    rbac_engine: EngineProcess,
    admin: Any,
    sdk_session: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The escape of issue 12: a session that may only read state binds an
    http route to ``state::set``; a POST to it must not write."""
    caplog.set_level(logging.ERROR, logger="iii")
    sdk_session.register_trigger(
        {
            "type": "http",
            "function_id": "state::set",
            "config": {"api_path": "rbac/write", "http_method": "POST"},
        }
    )
    wait_until(
        lambda: any(
            "function 'state::set' not allowed" in r.getMessage()
            for r in caplog.records
        ),
        message="the SDK told of the refusal",
    )
    status, _ = post(
        rbac_engine, "/rbac/write", {"scope": "rbac", "key": "k", "value": "pwned"}
    )
    assert status == 404
    assert call(admin, "state::get", {"scope": "rbac", "key": "k"}) == "original"


def test_trigger_of_a_type_not_allowed_is_refused(
    rbac_engine: EngineProcess,
    admin: Any,
    sdk_session: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="iii")
    sdk_session.register_trigger(
        {"type": "state", "function_id": "state::get", "config": {"scope": "rbac"}}
    )
    wait_until(
        lambda: any(
            "trigger type 'state' not allowed" in r.getMessage() for r in caplog.records
        ),
        message="the SDK told of the refusal",
    )
    listed = call(admin, "engine::registered-triggers::list", {})
    assert not any(
        t["trigger_type"] == "state" for t in listed["registered_triggers"]
    ), listed


async def test_refusal_frame_is_iii_shaped(
    rbac_engine: EngineProcess, admin: Any
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(
            rbac_engine.info["rbac_url"], headers={"x-token": "any-type"}
        ) as ws,
    ):
        w = RawWorker(ws)
        await w.recv_type("workerregistered")
        await w.send(
            {
                "type": "registertrigger",
                "id": "t-write",
                "trigger_type": "http",
                "function_id": "state::set",
                "config": {"api_path": "rbac/raw-write", "http_method": "POST"},
            }
        )
        assert await w.recv_type("triggerregistrationresult") == {
            "type": "triggerregistrationresult",
            "id": "t-write",
            "trigger_type": "http",
            "function_id": "state::set",
            "error": {
                "code": "FORBIDDEN",
                "message": "function 'state::set' not allowed in namespace 'default'",
            },
        }
        # No allowed_trigger_types in its auth result: every type may be bound.
        await w.send(
            {
                "type": "registertrigger",
                "id": "t-read",
                "trigger_type": "state",
                "function_id": "state::get",
                "config": {"scope": "rbac-raw"},
            }
        )
        await w.alive()
        listed = call(admin, "engine::registered-triggers::list", {})
        assert any(t["id"] == "t-read" for t in listed["registered_triggers"])


async def test_engine_register_trigger_follows_the_same_rules(
    rbac_engine: EngineProcess, admin: Any
) -> None:
    """A session allowed to call ``engine::register_trigger`` may not use it
    to reach a function, or bind a type, its own registrations may not."""
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(
            rbac_engine.info["rbac_url"], headers={"x-token": "binder"}
        ) as ws,
    ):
        w = RawWorker(ws)
        await w.recv_type("workerregistered")
        reply = await w.call(
            "engine::register_trigger",
            {
                "trigger_type": "state",
                "function_id": "state::set",
                "config": {"scope": "rbac-binder"},
            },
        )
        assert reply["error"] == {
            "code": "FORBIDDEN",
            "message": "function 'state::set' not allowed in namespace 'default'",
        }
        reply = await w.call(
            "engine::register_trigger",
            {
                "trigger_type": "http",
                "function_id": "state::get",
                "config": {"api_path": "rbac/binder", "http_method": "POST"},
            },
        )
        assert reply["error"]["code"] == "FORBIDDEN"
        assert "trigger type 'http' not allowed" in reply["error"]["message"]
        reply = await w.call(
            "engine::register_trigger",
            {
                "trigger_type": "state",
                "function_id": "state::get",
                "config": {"scope": "rbac-binder"},
            },
        )
        assert "error" not in reply, reply
        removed = call(admin, "engine::unregister_trigger", reply["result"])
        assert removed == {"removed": True}
