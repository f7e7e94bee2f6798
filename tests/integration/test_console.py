"""The console's JSON API, ``/metrics`` and who may reach them, over real HTTP
against a real engine.

Remote clients are exercised two ways: a request through a proxy (a
``Forwarded``/``X-Forwarded-For`` header, or a Host that is not loopback) from
this machine, and, where the machine has a non-loopback address, a request
that really arrives from it (the listener binds 0.0.0.0). The decision itself
is unit-tested in tests/unit/test_console_access.py.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import EngineProcess, Http, call, engine_with, sdk_worker, wait_until

GUARDED = ["/_iiilog/console", "/_iiilog/api/overview", "/metrics"]
TOKEN = "a-long-enough-console-token"
HTTP_0 = "  - name: iii-http\n    config: {port: 0}\n"


def non_loopback_address() -> str | None:
    """This machine's address on its default route, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # no packet is sent
        except OSError:
            return None
        address = str(sock.getsockname()[0])
    return None if address.startswith("127.") else address


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    """An engine whose console takes a token from remote clients."""
    root = tmp_path_factory.mktemp("console-token")
    proc = engine_with(
        root,
        HTTP_0 + f"  - name: iiilog-console\n    config: {{token: {TOKEN}}}\n",
    )
    try:
        yield proc
    finally:
        proc.stop()


@pytest.mark.parametrize("path", GUARDED)
def test_loopback_only_by_default(http: Http, path: str) -> None:
    assert http.request("GET", path)[0] == 200
    for headers in (
        {"X-Forwarded-For": "203.0.113.9"},
        {"Forwarded": "for=203.0.113.9"},
        {"X-Real-IP": "203.0.113.9"},
        {"Host": "attacker.example"},  # a DNS name rebound to 127.0.0.1
    ):
        status, head, body = http.request("GET", path, headers=headers)
        assert status == 403, headers
        assert b'"code":"FORBIDDEN"' in body and b"loopback" in body
        assert "access-control-allow-origin" not in head
    # A token is no use when none is configured.
    proxied = {"X-Forwarded-For": "203.0.113.9", "Authorization": "Bearer " + "x" * 20}
    assert http.request("GET", path, headers=proxied)[0] == 403


def test_a_real_remote_address_is_refused(engine: EngineProcess) -> None:
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address to connect from")
    port = Http(engine.http_url).port
    remote = Http(f"http://{address}:{port}")
    for path in GUARDED:
        assert remote.request("GET", path)[0] == 403
    # Routes of workers are not the console's business: still served.
    assert remote.request("GET", "/no-such-route")[0] == 404


@pytest.mark.parametrize("path", GUARDED)
def test_elsewhere_with_the_token(guarded: EngineProcess, path: str) -> None:
    http = Http(guarded.http_url)
    proxied = {"X-Forwarded-For": "203.0.113.9"}
    status, head, body = http.request("GET", path, headers=proxied)
    assert status == 401 and b'"code":"UNAUTHORIZED"' in body
    assert head["www-authenticate"].startswith("Bearer")
    wrong = {**proxied, "Authorization": "Bearer not-the-token-at-all"}
    assert http.request("GET", path, headers=wrong)[0] == 401
    bearer = {**proxied, "Authorization": f"Bearer {TOKEN}"}
    assert http.request("GET", path, headers=bearer)[0] == 200
    cookie = {**proxied, "Cookie": f"iiilog_console={TOKEN}"}
    assert http.request("GET", path, headers=cookie)[0] == 200
    status, head, _ = http.request("GET", f"{path}?token={TOKEN}", headers=proxied)
    assert status == 200
    assert head["set-cookie"].startswith(f"iiilog_console={TOKEN};")
    assert "HttpOnly" in head["set-cookie"] and "SameSite=Strict" in head["set-cookie"]
    assert http.request("GET", path)[0] == 200  # loopback needs none


def test_paths_under_iiilog_never_reach_workers(http: Http, client: Any) -> None:
    client.register_function("c::squatter", lambda req: {"body": "mine"})
    for path in ("_iiilog/api/other", "_iiilog/api/overview", "c/squat"):
        client.register_trigger(
            {
                "type": "http",
                "function_id": "c::squatter",
                "config": {"api_path": path, "http_method": "GET"},
            }
        )

    def paths() -> list[str]:
        listed = call(client, "engine::registered-triggers::list", {})
        return [
            t["config"]["api_path"]
            for t in listed["registered_triggers"]
            if t["function_id"] == "c::squatter"
        ]

    # The last registration is applied (a positive control), the reserved
    # ones were refused before it.
    wait_until(lambda: "c/squat" in paths(), message="the ordinary route")
    assert paths() == ["c/squat"]
    status, body = http.json("GET", "/_iiilog/api/other")
    assert status == 404 and body["error"]["code"] == "NOT_FOUND"
    status, body = http.json("GET", "/_iiilog/api/overview")
    assert status == 200 and "subscriptions" in body


def test_changes_come_from_the_console_origin_only(http: Http) -> None:
    body = {"key": "no-such-subscription"}
    status, _ = http.json(
        "POST",
        "/_iiilog/api/redeliver",
        body,
        headers={"Origin": "http://attacker.example"},
    )
    assert status == 403
    status, answer = http.json(
        "POST",
        "/_iiilog/api/redeliver",
        body,
        headers={"Origin": f"http://{http.host}:{http.port}"},
    )
    assert status == 404 and answer["error"]["code"] == "NOT_FOUND"
    status, answer = http.json("POST", "/_iiilog/api/redeliver", {"key": 5})
    assert status == 400 and answer["error"]["code"] == "INVALID_ARGUMENTS"
    status, _, raw = http.request(
        "POST", "/_iiilog/api/redeliver", raw=b"{", headers={"content-type": "x"}
    )
    assert status == 400 and b"INVALID_ARGUMENTS" in raw


def test_log_view_and_time_travel(http: Http, client: Any) -> None:
    scope = "console-log"
    for value in (1, 2, 3):
        call(client, "state::set", {"scope": scope, "key": "k", "value": value})
    call(client, "state::set", {"scope": scope, "key": "other", "value": 9})
    status, page = http.json("GET", f"/_iiilog/api/log?scope={scope}&key=k")
    assert status == 200
    records = page["records"]
    assert [r["new_value"] for r in records] == [3, 2, 1]  # the newest first
    assert all(r["kind"] == "state.set" and r["scope"] == scope for r in records)
    first, second = records[2]["offset"], records[1]["offset"]
    status, older = http.json(
        "GET", f"/_iiilog/api/log?scope={scope}&until={second - 1}&limit=1"
    )
    assert [r["offset"] for r in older["records"]] == [first]
    status, oldest = http.json(
        "GET", f"/_iiilog/api/log?scope={scope}&after={first}&order=oldest&limit=2"
    )
    assert [r["new_value"] for r in oldest["records"]] == [2, 3]
    status, at = http.json("GET", f"/_iiilog/api/state?scope={scope}&offset={second}")
    assert status == 200 and at["value"] == [2] and scope in at["scopes"]
    status, now = http.json("GET", f"/_iiilog/api/state?scope={scope}")
    assert now["value"] == [3, 9] and now["offset"] is None
    status, one = http.json(
        "GET", f"/_iiilog/api/state?scope={scope}&key=k&offset={first}"
    )
    assert one["value"] == 1
    for bad, word in (
        ("/_iiilog/api/log?space=view", "space"),
        ("/_iiilog/api/log?after=-1", "after"),
        ("/_iiilog/api/log?limit=5000", "limit"),
        ("/_iiilog/api/log?order=sideways", "order"),
        ("/_iiilog/api/state", "scope"),
        ("/_iiilog/api/state?scope=x&offset=soon", "offset"),
        ("/_iiilog/api/logs?level=loud", "level"),
    ):
        status, answer = http.json("GET", bad)
        assert status == 400, bad
        assert answer["error"]["code"] == "INVALID_ARGUMENTS"
        assert word in answer["error"]["message"], bad


def test_log_lines_hold_the_engines_own(http: Http) -> None:
    status, lines = http.json("GET", "/_iiilog/api/logs?level=info")
    assert status == 200
    assert any("log head at offset" in line["message"] for line in lines["engine"])
    assert all(line["level"] != "debug" for line in lines["engine"])


def test_redeliver_a_parked_record(tmp_path: Path) -> None:
    engine = engine_with(
        tmp_path,
        HTTP_0 + "  - name: iiilog-triggers\n    config: {max_attempts: 1}\n",
    )
    http = Http(engine.http_url)
    fixed = {"now": False}

    def handler(event: dict[str, Any]) -> None:
        if not fixed["now"]:
            raise RuntimeError("not yet")

    try:
        with sdk_worker(engine.worker_url, "flaky") as w:
            w.register_function("c::flaky", handler)
            w.register_trigger(
                {"type": "state", "function_id": "c::flaky", "config": {"scope": "p"}}
            )

            def subscription() -> dict[str, Any] | None:
                rows = http.json("GET", "/_iiilog/api/overview")[1]["subscriptions"]
                return next((r for r in rows if r["function_id"] == "c::flaky"), None)

            wait_until(subscription, message="the subscription")
            call(w, "state::set", {"scope": "p", "key": "k", "value": 1})
            parked = wait_until(
                lambda: (s := subscription()) is not None and s["parked"] == 1 and s,
                message="one parked record",
            )
            fixed["now"] = True
            status, answer = http.json(
                "POST", "/_iiilog/api/redeliver", {"key": parked["key"]}
            )
            assert status == 200
            assert answer == {"key": parked["key"], "redelivered": 1, "still_parked": 0}
            wait_until(lambda: (s := subscription()) is not None and s["parked"] == 0)
    finally:
        engine.stop()
