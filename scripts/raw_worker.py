"""A hand-driven worker socket (aiohttp): send dicts or raw frames, read
frames. For tests and benchmarks that speak the worker protocol directly."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aiohttp


class RawWorker:
    """A hand-driven worker socket: send dicts or raw frames, read frames."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.registered: dict[str, Any] = {}

    async def send(self, msg: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(msg))

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        msg = await self.ws.receive(timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, f"socket not open: {msg}"
        return json.loads(msg.data)  # type: ignore[no-any-return]

    async def recv_type(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.recv(timeout)
                if frame.get("type") == kind:
                    return frame

    async def call(
        self, function_id: str, data: Any = None, **extra: Any
    ) -> dict[str, Any]:
        invocation_id = str(uuid.uuid4())
        msg = {
            "type": "invokefunction",
            "invocation_id": invocation_id,
            "function_id": function_id,
            **extra,
        }
        if data is not None:
            msg["data"] = data
        await self.send(msg)
        async with asyncio.timeout(10):
            while True:
                frame = await self.recv(10)
                if (
                    frame.get("type") == "invocationresult"
                    and frame.get("invocation_id") == invocation_id
                ):
                    return frame

    async def alive(self) -> None:
        """The socket still works: a JSON ping gets its pong (frames before
        the pong are skipped)."""
        await self.send({"type": "ping"})
        await self.recv_type("pong")

    async def only_pong(self) -> None:
        """Nothing was sent since the last frame read: a JSON ping's pong is
        the very next frame."""
        await self.send({"type": "ping"})
        frame = await self.recv()
        assert frame == {"type": "pong"}, f"expected only the pong, got {frame}"

    async def send_many(self, calls: list[tuple[str, Any]]) -> list[dict[str, Any]]:
        """Pipeline many calls on this socket; returns the replies in call order."""
        ids = []
        for function_id, data in calls:
            invocation_id = str(uuid.uuid4())
            ids.append(invocation_id)
            await self.send(
                {
                    "type": "invokefunction",
                    "invocation_id": invocation_id,
                    "function_id": function_id,
                    "data": data,
                }
            )
        replies: dict[str, dict[str, Any]] = {}
        async with asyncio.timeout(120):
            while len(replies) < len(ids):
                frame = await self.recv(120)
                if frame.get("type") == "invocationresult":
                    replies[frame["invocation_id"]] = frame
        return [replies[i] for i in ids]
