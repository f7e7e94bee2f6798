"""HTTP-invoked functions (``iii-http-functions``): the engine calls a real
local webhook when such a function is invoked, with iii's headers, auth from
the engine's environment, and iii's result and error mapping."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from iii import InvocationError
from iii_helpers.http import HttpInvocationConfig

from tests.harness import EngineProcess, call, engine_with, sdk_worker, wait_until


class Webhook(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        body = json.loads(raw or b"null")
        Webhook.seen.append(
            {
                "method": self.command,
                "path": self.path,
                "headers": dict(self.headers),
                "lower": {k.lower(): v for k, v in self.headers.items()},
                "raw": raw,
                "body": body,
            }
        )
        if self.path == "/fail":
            self.send_response(502)
            self.end_headers()
            return
        payload = json.dumps({"ok": True, "echo": body}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_POST = do_PUT = _answer

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture(scope="module")
def webhook() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def hf_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    root: Path = tmp_path_factory.mktemp("hf")
    proc = engine_with(
        root,
        "  - name: iii-http-functions\n    config:\n      security:\n"
        "        url_allowlist: [127.0.0.1, localhost]\n"
        "        block_private_ips: false\n        require_https: false\n",
        env={
            "HOOK_TOKEN": "s3cret",
            "HOOK_API_KEY": "k-7f3a",
            "HOOK_HMAC_SECRET": "hmac-5ecret",
        },
    )
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def strict_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    """``iii-http-functions`` with its default security, as iii:
    ``require_https`` and ``block_private_ips`` on, every host allowed."""
    proc = engine_with(
        tmp_path_factory.mktemp("hf-strict"), "  - name: iii-http-functions\n"
    )
    try:
        yield proc
    finally:
        proc.stop()


def requests_to(path: str) -> list[dict[str, Any]]:
    return [r for r in Webhook.seen if r["path"] == path]


def listed(client: Any, function_id: str) -> bool:
    return function_id in [
        f["function_id"]
        for f in call(client, "engine::functions::list", {})["functions"]
    ]


def test_engine_calls_the_url(hf_engine: EngineProcess, webhook: str) -> None:
    with sdk_worker(hf_engine.worker_url, "hooks") as w:
        ref = w.register_function(
            "hf::put",
            HttpInvocationConfig(
                url=f"{webhook}/orders",
                method="PUT",
                headers={"X-Custom": "yes"},
                auth={"type": "bearer", "token_key": "HOOK_TOKEN"},
            ),
        )
        w.register_function("hf::fail", HttpInvocationConfig(url=f"{webhook}/fail"))
        wait_until(lambda: listed(w, "hf::put") and listed(w, "hf::fail"))
        result = call(w, "hf::put", {"order": 7})
        assert result["ok"] is True and result["echo"]["order"] == 7
        request = Webhook.seen[-1]
        assert request["method"] == "PUT" and request["path"] == "/orders"
        assert request["headers"]["X-Custom"] == "yes"
        assert request["headers"]["Authorization"] == "Bearer s3cret"
        assert request["headers"]["x-iii-Function-Path"] == "hf::put"
        assert request["body"]["_caller_worker_id"]
        with pytest.raises(InvocationError) as err:
            call(w, "hf::fail", {})
        assert (err.value.code, err.value.message) == (
            "http_error",
            "HTTP 502 Bad Gateway",
        )
        ref.unregister()
        wait_until(lambda: not listed(w, "hf::put"))
        count = len(Webhook.seen)
        with pytest.raises(InvocationError) as err:
            call(w, "hf::put", {})
        assert err.value.code == "function_not_found"
        assert len(Webhook.seen) == count


def test_disallowed_url_is_not_registered(hf_engine: EngineProcess) -> None:
    with sdk_worker(hf_engine.worker_url, "bad-hooks") as w:
        w.register_function(
            "hf::elsewhere", HttpInvocationConfig(url="http://example.invalid/x")
        )
        w.register_function("hf::marker", lambda d: None)
        wait_until(lambda: listed(w, "hf::marker"))
        assert not listed(w, "hf::elsewhere")
        wait_until(lambda: "not in url_allowlist" in hf_engine.log())


def test_api_key_auth_sends_the_engines_value_in_the_named_header(
    hf_engine: EngineProcess, webhook: str
) -> None:
    """``api_key`` auth: the target gets the value of the engine's environment
    variable ``value_key`` in the header named by ``header``. The worker only
    names the variable (this test process does not have it), and no other
    auth header is sent."""
    assert "HOOK_API_KEY" not in os.environ
    with sdk_worker(hf_engine.worker_url, "key-hooks") as w:
        w.register_function(
            "hf::keyed",
            HttpInvocationConfig(
                url=f"{webhook}/keyed",
                auth={
                    "type": "api_key",
                    "header": "X-Api-Key",
                    "value_key": "HOOK_API_KEY",
                },
            ),
        )
        wait_until(lambda: listed(w, "hf::keyed"))
        assert call(w, "hf::keyed", {"n": 1})["echo"]["n"] == 1
    [request] = requests_to("/keyed")
    assert request["headers"]["X-Api-Key"] == "k-7f3a"
    assert "authorization" not in request["lower"]
    assert "x-iii-signature" not in request["lower"]


def test_hmac_auth_signs_the_exact_body_as_iii_does(
    hf_engine: EngineProcess, webhook: str
) -> None:
    """``hmac`` auth: the target gets ``x-iii-Timestamp`` (Unix seconds, now)
    and ``x-iii-Signature: sha256=<hex>``, the HMAC-SHA256 under the engine's
    secret (environment variable ``secret_key``) of ``<timestamp>:<base64 of
    the body bytes received>``, as iii signs; the target verifies it with the
    shared secret. No bearer header is sent."""
    assert "HOOK_HMAC_SECRET" not in os.environ
    with sdk_worker(hf_engine.worker_url, "signed-hooks") as w:
        w.register_function(
            "hf::signed",
            HttpInvocationConfig(
                url=f"{webhook}/signed",
                auth={"type": "hmac", "secret_key": "HOOK_HMAC_SECRET"},
            ),
        )
        wait_until(lambda: listed(w, "hf::signed"))
        before = int(time.time())
        result = call(w, "hf::signed", {"text": "naïve ✓", "n": 2})
        after = int(time.time())
    assert result["echo"]["text"] == "naïve ✓"
    [request] = requests_to("/signed")
    timestamp = request["headers"]["x-iii-Timestamp"]
    assert before <= int(timestamp) <= after
    signed = f"{timestamp}:{base64.b64encode(request['raw']).decode()}".encode()
    expected = hmac.new(b"hmac-5ecret", signed, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(
        request["headers"]["x-iii-Signature"], f"sha256={expected}"
    )
    assert "authorization" not in request["lower"]


def test_auth_from_a_variable_the_engine_lacks_is_not_registered(
    hf_engine: EngineProcess,
) -> None:
    """An auth that names an environment variable the engine does not have is
    refused at registration (as iii), and the log names the variable."""
    with sdk_worker(hf_engine.worker_url, "unset-hooks") as w:
        w.register_function(
            "hf::unset",
            HttpInvocationConfig(
                url="http://127.0.0.1:9/x",
                auth={"type": "hmac", "secret_key": "HOOK_NOT_SET"},
            ),
        )
        w.register_function("hf::marker-unset", lambda d: None)
        wait_until(lambda: listed(w, "hf::marker-unset"))  # after hf::unset
        assert not listed(w, "hf::unset")
    wait_until(
        lambda: (
            "HTTP-invoked function hf::unset not registered: environment"
            " variable 'HOOK_NOT_SET' is not set" in hf_engine.log()
        )
    )


def test_require_https_refuses_plain_http(strict_engine: EngineProcess) -> None:
    """With ``require_https`` (the default) an http:// URL is not registered
    and the log says why; the same public host over https is (registering
    calls nothing). As iii, the worker is sent nothing either way."""
    with sdk_worker(strict_engine.worker_url, "plain-hooks") as w:
        w.register_function("hf::plain", HttpInvocationConfig(url="http://8.8.8.8/h"))
        w.register_function("hf::tls", HttpInvocationConfig(url="https://8.8.8.8/h"))
        wait_until(lambda: listed(w, "hf::tls"))  # registered after hf::plain
        assert not listed(w, "hf::plain")
        with pytest.raises(InvocationError) as err:
            call(w, "hf::plain", {})
        assert err.value.code == "function_not_found"
    wait_until(
        lambda: (
            "HTTP-invoked function hf::plain not registered: url"
            " 'http://8.8.8.8/h' must use https (require_https)" in strict_engine.log()
        )
    )


def test_block_private_ips_refuses_private_and_loopback_targets(
    strict_engine: EngineProcess, webhook: str
) -> None:
    """With ``block_private_ips`` (the default) no URL on a loopback, private,
    link-local or unspecified address is registered: literal addresses, and
    names that resolve to one (``localhost``, ``127.1``, ``2130706433``),
    each with a log line naming the address. The 127.0.0.1 target is a live
    server, so the refusal is the check, not a dead port."""
    port = webhook.rsplit(":", 1)[1]
    refused = {
        f"https://127.0.0.1:{port}/hook": "host '127.0.0.1' is",
        "https://10.1.2.3/hook": "host '10.1.2.3' is",
        "https://172.16.0.1/hook": "host '172.16.0.1' is",
        "https://192.168.1.20/hook": "host '192.168.1.20' is",
        "https://169.254.169.254/latest": "host '169.254.169.254' is",
        "https://0.0.0.0/hook": "host '0.0.0.0' is",
        "https://[::1]/hook": "host '::1' is",
        "https://[fd00::1]/hook": "host 'fd00::1' is",
        f"https://localhost:{port}/hook": "host 'localhost' resolves to",
        "https://127.1/hook": "host '127.1' resolves to 127.0.0.1,",
        "https://2130706433/hook": "host '2130706433' resolves to 127.0.0.1,",
    }
    with sdk_worker(strict_engine.worker_url, "private-hooks") as w:
        for i, url in enumerate(refused):
            w.register_function(f"hf::private-{i}", HttpInvocationConfig(url=url))
        w.register_function("hf::public", HttpInvocationConfig(url="https://1.1.1.1/"))
        wait_until(lambda: listed(w, "hf::public"))  # registered after the rest
        names = [
            f["function_id"]
            for f in call(w, "engine::functions::list", {})["functions"]
        ]
        assert [n for n in names if n.startswith("hf::private-")] == []
    last = f"hf::private-{len(refused) - 1} not registered"
    wait_until(lambda: last in strict_engine.log())  # logged in order
    log = strict_engine.log()
    for i, reason in enumerate(refused.values()):
        line = f"HTTP-invoked function hf::private-{i} not registered: {reason}"
        pattern = re.escape(line) + r".* a private address \(block_private_ips\)"
        assert re.search(pattern, log), line
    assert requests_to("/hook") == []
