"""Channels through the real SDK: streamed HTTP responses (``@http`` helper,
set_status / set_headers / binary chunks), request bodies read from the
request-body channel, and a data channel between two functions."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from iii.helpers import create_channel
from iii_helpers.http import http

from tests.harness import EngineProcess, Http, sdk_worker, wait_until

PDF = bytes(range(256)) * 4096  # 1 MiB of every byte value


@pytest.fixture(scope="module")
def streaming(engine: EngineProcess) -> Iterator[tuple[Http, Any]]:
    async def download(req: Any, res: Any) -> None:
        await res.status(201)
        await res.headers({"content-type": "application/pdf", "x-kind": "stream"})
        writer = res.writer
        for start in range(0, len(PDF), 60_000):
            await writer.write(PDF[start : start + 60_000])
        await writer.close_async()

    async def upload(req: Any, res: Any) -> Any:
        data = await req.request_body.read_all()
        return {
            "status_code": 200,
            "body": {"size": len(data), "head": data[:12].decode()},
        }

    async def silent(req: Any, res: Any) -> None:
        await res.headers({"x-empty": "yes"})
        await res.writer.close_async()

    with sdk_worker(engine.worker_url, "streaming") as w:
        for fid, handler, path, method in (
            ("ch::download", download, "files/report.pdf", "GET"),
            ("ch::upload", upload, "files", "POST"),
            ("ch::silent", silent, "empty", "GET"),
        ):
            w.register_function(fid, http(handler))
            w.register_trigger(
                {
                    "type": "http",
                    "function_id": fid,
                    "config": {"api_path": path, "http_method": method},
                }
            )
        api = Http(engine.http_url)
        wait_until(lambda: api.request("GET", "/empty")[0] != 404)
        yield api, w


def test_streamed_download_is_byte_for_byte(streaming: tuple[Http, Any]) -> None:
    api, _ = streaming
    status, headers, body = api.request("GET", "/files/report.pdf")
    assert status == 201
    assert headers["content-type"] == "application/pdf"
    assert headers["x-kind"] == "stream"
    assert body == PDF


def test_writer_closed_without_chunks(streaming: tuple[Http, Any]) -> None:
    api, _ = streaming
    status, headers, body = api.request("GET", "/empty")
    assert (status, headers["x-empty"], body) == (200, "yes", b"")


def test_raw_upload_through_the_request_body_channel(
    streaming: tuple[Http, Any],
) -> None:
    api, _ = streaming
    payload = b"plain-text: " + b"x" * (3 * 1024 * 1024)
    status, body = api.json(
        "POST", "/files", raw=payload, headers={"content-type": "text/plain"}
    )
    assert status == 200
    assert body == {"size": len(payload), "head": "plain-text: "}


def test_data_channel_between_two_functions(engine: EngineProcess) -> None:
    with sdk_worker(engine.worker_url, "channel-pair") as w:

        async def consume(data: dict[str, Any]) -> dict[str, Any]:
            content = await data["reader"].read_all()
            return {"bytes": len(content), "first": content[:3].decode()}

        w.register_function("ch::consume", consume)
        channel = create_channel(w)
        blob = b"abc" + b"z" * 200_000

        async def produce() -> None:
            await channel.writer.write(blob)
            await channel.writer.close_async()

        asyncio.run(produce())  # written and closed before any reader exists
        # Through the engine: a worker's call to its own function would run
        # in-process (local-dispatch.v1), and the 0.25 SDK resolves a channel
        # ref there only in its dict form.
        result = w.trigger(
            {
                "function_id": "ch::consume",
                "payload": {"reader": channel.reader_ref},
                "dispatch": "remote",
            }
        )
    assert result == {"bytes": len(blob), "first": "abc"}


def test_unknown_channel_is_404(engine: EngineProcess) -> None:
    http_url = engine.worker_url.replace("ws://", "http://")
    status, _, _ = Http(http_url).request("GET", "/ws/channels/nope?key=x&dir=read")
    assert status == 404
