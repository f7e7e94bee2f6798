"""A raw stream client for the stream tests (``Sub``), and the calls they make."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from tests.wsclients import RawWorker


def tcp_wmem_max() -> int:
    """The largest send buffer the kernel may give a socket."""
    return int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])


def name() -> str:
    return f"st-{uuid.uuid4().hex[:8]}"


class Sub:
    """A raw stream client socket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def join(
        self,
        stream: str,
        group: str,
        item: str | None = None,
        sub_id: str = "s-1",
        position: Any = None,
    ) -> None:
        data: dict[str, Any] = {
            "subscriptionId": sub_id,
            "streamName": stream,
            "groupId": group,
        }
        if position is not None:
            data["from"] = position
        if item is not None:
            data["id"] = item
        await self.ws.send_str(json.dumps({"type": "join", "data": data}))

    async def next(self, timeout: float = 10) -> dict[str, Any]:
        msg = await self.ws.receive(timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, f"socket not open: {msg}"
        return json.loads(msg.data)  # type: ignore[no-any-return]

    async def take(self, n: int, timeout: float = 30) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout):
            return [await self.next(timeout) for _ in range(n)]

    async def quiet(self, timeout: float = 0.3) -> bool:
        """True when nothing arrives within ``timeout``."""
        try:
            msg = await self.ws.receive(timeout)
        except TimeoutError:
            return True
        raise AssertionError(f"unexpected message: {msg.data!r}")


async def open_sub(session: aiohttp.ClientSession, url: str) -> Sub:
    return Sub(await session.ws_connect(url))


async def ok(worker: RawWorker, function_id: str, data: Any) -> Any:
    reply = await worker.call(function_id, data)
    assert "error" not in reply, reply
    return reply.get("result")  # absent when the function returned nothing


def send(
    stream: str, group: str, i: int, item: str | None = None
) -> tuple[str, dict[str, Any]]:
    data: dict[str, Any] = {
        "stream_name": stream,
        "group_id": group,
        "type": "tick",
        "data": {"i": i},
    }
    if item is not None:
        data["id"] = item
    return "stream::send", data
