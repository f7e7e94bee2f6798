"""Who may reach the console, its API and /metrics (api/console_access.py),
and the console's query parsing (api/console_views.py). Pure: no sockets."""

from __future__ import annotations

from typing import Any

import pytest

from api.console_access import (
    decide,
    host_name,
    is_loopback_address,
    is_loopback_host,
    presented_token,
    same_origin,
)
from api.console_views import log_query, state_query
from eventlog import LogQuery

TOKEN = "s3cret-token-of-some-length"


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("fe80::1%eth0", False),
        ("192.0.2.2", False),
        ("::ffff:192.0.2.2", False),
        ("10.0.0.1", False),
        ("localhost", False),  # a name is not an address
        ("", False),
        (None, False),
    ],
)
def test_loopback_addresses(address: str | None, loopback: bool) -> None:
    assert is_loopback_address(address) is loopback


@pytest.mark.parametrize(
    ("host", "name", "loopback"),
    [
        ("127.0.0.1:3111", "127.0.0.1", True),
        ("localhost:3111", "localhost", True),
        ("LOCALHOST", "localhost", True),
        ("app.localhost:80", "app.localhost", True),
        ("[::1]:3111", "::1", True),
        ("evil.example:3111", "evil.example", False),
        ("127.0.0.1.evil.example", "127.0.0.1.evil.example", False),
        ("192.0.2.2:3111", "192.0.2.2", False),
    ],
)
def test_loopback_hosts(host: str, name: str, loopback: bool) -> None:
    assert host_name(host) == name
    assert is_loopback_host(host) is loopback


def ask(
    remote: str | None = "127.0.0.1",
    token: str | None = None,
    presented: str | None = None,
    allow_remote: bool = False,
    **headers: str,
) -> Any:
    hdrs = {
        "host": "127.0.0.1:3111",
        **{k.replace("_", "-"): v for k, v in headers.items()},
    }
    return decide(
        remote=remote,
        headers=hdrs,
        token=token,
        presented=presented,
        allow_remote=allow_remote,
    )


def test_loopback_requests_are_served() -> None:
    assert ask().allowed
    assert ask(remote="::1", host="[::1]:3111").allowed
    assert ask(host="localhost:3111").allowed
    assert ask(token=TOKEN).allowed  # loopback needs no token
    assert ask(token=TOKEN, presented="wrong").allowed


@pytest.mark.parametrize(
    "why",
    [
        {"remote": "192.0.2.2"},
        {"remote": None},
        {"x_forwarded_for": "203.0.113.9"},
        {"forwarded": "for=203.0.113.9"},
        {"x_real_ip": "203.0.113.9"},
        {"x_forwarded_host": "example.org"},
        {"host": "attacker.example"},
    ],
)
def test_anything_else_needs_the_token(why: dict[str, Any]) -> None:
    refused = ask(**why)
    assert not refused.allowed and refused.status == 403
    assert "loopback" in refused.reason and "token" in refused.reason
    asked = ask(token=TOKEN, **why)
    assert not asked.allowed and asked.status == 401
    assert not ask(token=TOKEN, presented="nope", **why).allowed
    assert not ask(token=TOKEN, presented=TOKEN[:-1], **why).allowed
    granted = ask(token=TOKEN, presented=TOKEN, **why)
    assert granted.allowed and granted.via_token
    assert ask(allow_remote=True, **why).allowed


def test_where_a_token_is_read_from() -> None:
    bearer = {"authorization": f"Bearer {TOKEN}"}
    assert presented_token(bearer, {}, {}) == TOKEN
    assert presented_token({"authorization": f"bearer  {TOKEN} "}, {}, {}) == TOKEN
    assert presented_token({"authorization": f"Basic {TOKEN}"}, {}, {}) is None
    assert presented_token({}, {"iiilog_console": TOKEN}, {}) == TOKEN
    assert presented_token({}, {}, {"token": TOKEN}) == TOKEN
    assert presented_token({}, {}, {"token": ""}) is None
    # The header wins over the cookie, the cookie over the query.
    assert presented_token(bearer, {"iiilog_console": "c"}, {"token": "q"}) == TOKEN
    assert presented_token({}, {"iiilog_console": "c"}, {"token": "q"}) == "c"


@pytest.mark.parametrize(
    ("origin", "host", "same"),
    [
        (None, "127.0.0.1:3111", True),
        ("http://127.0.0.1:3111", "127.0.0.1:3111", True),
        ("http://LOCALHOST:3111", "localhost:3111", True),
        ("http://127.0.0.1:9999", "127.0.0.1:3111", False),
        ("http://attacker.example", "127.0.0.1:3111", False),
        ("null", "127.0.0.1:3111", False),
        ("http://127.0.0.1:3111", None, False),
    ],
)
def test_same_origin(origin: str | None, host: str | None, same: bool) -> None:
    assert same_origin(origin, host) is same


# -- query strings ------------------------------------------------------------------


def test_log_query_strings() -> None:
    assert log_query({}) == LogQuery(limit=50, newest_first=True)
    assert log_query(
        {
            "space": "state",
            "scope": "todos",
            "key": "k",
            "after": "3",
            "until": "9",
            "limit": "5",
            "order": "oldest",
        }
    ) == LogQuery(after=3, until=9, space="state", scope="todos", key="k", limit=5)
    # Empty fields of a form mean "not set".
    assert log_query({"space": "", "scope": "", "after": "", "until": " "}) == LogQuery(
        limit=50, newest_first=True
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"after": "-1"}, "`after` must be a non-negative integer"),
        ({"until": "1.5"}, "`until` must be a non-negative integer"),
        ({"limit": "0"}, "limit must be from 1 to 1000"),
        ({"limit": "lots"}, "`limit` must be a non-negative integer"),
        ({"space": "views"}, "space must be one of"),
        ({"order": "random"}, "`order` must be newest or oldest"),
    ],
)
def test_bad_log_query_strings(params: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        log_query(params)


def test_state_query_strings() -> None:
    assert state_query({"scope": "todos"}) == ("todos", None, None)
    assert state_query({"scope": "todos", "key": "a", "offset": "7"}) == (
        "todos",
        "a",
        7,
    )
    with pytest.raises(ValueError, match="`scope` is required"):
        state_query({"key": "a"})
    with pytest.raises(ValueError, match="`offset` must be"):
        state_query({"scope": "s", "offset": "yesterday"})
