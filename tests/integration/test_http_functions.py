"""HTTP-invoked functions (``iii-http-functions``): the engine calls a real
local webhook when such a function is invoked, with iii's headers, auth from
the engine's environment, and iii's result and error mapping."""

from __future__ import annotations

import json
import threading
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
        body = json.loads(self.rfile.read(length) or b"null")
        Webhook.seen.append(
            {
                "method": self.command,
                "path": self.path,
                "headers": dict(self.headers),
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
        env={"HOOK_TOKEN": "s3cret"},
    )
    try:
        yield proc
    finally:
        proc.stop()


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
