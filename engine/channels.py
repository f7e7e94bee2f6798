"""Channels (iii's worker protocol): bounded FIFOs of text and binary
items plus an end mark, decoupled from the sockets at either end.

Either end may connect first, or never at the same time: items and the end mark
wait in the channel. A full channel makes its writer wait (backpressure), it
never drops. Channels die with their owner, when both ends are done, or five
minutes after creation if an end never came. The HTTP module uses the same
registry for request and response bodies.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from .core import CallContext, Engine
from .errors import EngineError
from .ids import random_bytes, uuid4_text
from .peer import Peer

Item = tuple[Literal["text", "binary"], str | bytes]
END: Any = None
UNCLAIMED_TTL_S = 300.0
MAX_BUFFER = 1024


@dataclass(eq=False)
class Channel:
    id: str
    writer_key: str
    reader_key: str
    buffer_size: int
    owner: Peer | None = None
    created: float = field(default_factory=time.monotonic)
    writer_taken: bool = False
    reader_taken: bool = False
    writer_done: bool = False
    reader_done: bool = False
    attached: asyncio.Event = field(default_factory=asyncio.Event)  # writer came
    # Called when an item arrives or the writer attaches (the HTTP module
    # waits on one event for its handler, its body pump and its response).
    on_activity: Callable[[], None] | None = None
    _items: asyncio.Queue[Item | None] | None = None
    _preloaded: list[Item | None] | None = None

    @property
    def items(self) -> asyncio.Queue[Item | None]:
        """The queue between the ends, made on first use: most channels of an
        HTTP request are never opened by a worker."""
        if self._items is None:
            self._items = asyncio.Queue(self.buffer_size)
            for item in self._preloaded or ():
                self._items.put_nowait(item)
            self._preloaded = None
        return self._items

    def has_items(self) -> bool:
        return self._items is not None and not self._items.empty()

    def preload(self, chunks: list[bytes]) -> bool:
        """A whole body known up front, and the end mark: kept until a reader
        comes. False when it does not fit the buffer (write it then)."""
        if len(chunks) + 1 > self.buffer_size or self._items is not None:
            return False
        self._preloaded = [*(("binary", c) for c in chunks), END]
        self.writer_done = True
        return True

    def ref(self, direction: Literal["read", "write"]) -> dict[str, str]:
        key = self.reader_key if direction == "read" else self.writer_key
        return {"channel_id": self.id, "access_key": key, "direction": direction}

    async def put(self, kind: Literal["text", "binary"], data: str | bytes) -> None:
        await self.items.put((kind, data))
        if self.on_activity is not None:
            self.on_activity()

    async def end(self) -> None:
        if not self.writer_done:
            self.writer_done = True
            await self.items.put(END)
            if self.on_activity is not None:
                self.on_activity()


def as_bytes(data: str | bytes) -> bytes:
    return data if isinstance(data, bytes) else data.encode()


class ChannelRegistry:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.channels: dict[str, Channel] = {}
        engine.add_builtin(
            "engine::channels::create",
            self.fn_create,
            "Create a channel; the caller owns it",
        )
        engine.listeners.append(self._on_engine_event)

    def create(self, buffer_size: int = 64, owner: Peer | None = None) -> Channel:
        # The id and both keys from the pooled random source (the HTTP module
        # makes two channels per request).
        seed = random_bytes(48)
        channel = Channel(
            uuid4_text(seed[:16]),
            seed[16:32].hex(),
            seed[32:].hex(),
            buffer_size,
            owner,
        )
        self.channels[channel.id] = channel
        return channel

    def claim(self, channel_id: str, key: str, direction: str) -> Channel | None:
        """Take one end of a channel; None when id, key or direction do not fit."""
        self._expire()
        channel = self.channels.get(channel_id)
        if channel is None:
            return None
        if direction == "write" and secrets.compare_digest(key, channel.writer_key):
            if channel.writer_taken:
                return None
            channel.writer_taken = True
            channel.attached.set()
            if channel.on_activity is not None:
                channel.on_activity()
            return channel
        if direction == "read" and secrets.compare_digest(key, channel.reader_key):
            if channel.reader_taken:
                return None
            channel.reader_taken = True
            return channel
        return None

    def done(self, channel: Channel, end: Literal["read", "write"]) -> None:
        if end == "read":
            channel.reader_done = True
        else:
            channel.writer_done = True
        if channel.reader_done and channel.writer_done:
            self.channels.pop(channel.id, None)

    def drop(self, channel: Channel) -> None:
        self.channels.pop(channel.id, None)

    def _expire(self) -> None:
        now = time.monotonic()
        for channel in list(self.channels.values()):
            unclaimed = not (channel.reader_taken and channel.writer_taken)
            if unclaimed and now - channel.created > UNCLAIMED_TTL_S:
                self.channels.pop(channel.id, None)

    def _on_engine_event(self, event: str, worker_id: str | None) -> None:
        if event != "worker_disconnected":
            return
        for channel in list(self.channels.values()):
            if channel.owner is not None and channel.owner.id == worker_id:
                self.channels.pop(channel.id, None)

    async def fn_create(self, data: Any, ctx: CallContext) -> Any:
        size = data.get("buffer_size") if isinstance(data, dict) else None
        if size is None:
            size = 64
        if (
            isinstance(size, bool)
            or not isinstance(size, int)
            or not (1 <= size <= MAX_BUFFER)
        ):
            raise EngineError(
                "INVALID_ARGUMENTS", f"buffer_size must be between 1 and {MAX_BUFFER}"
            )
        channel = self.create(size, ctx.caller)
        return {"writer": channel.ref("write"), "reader": channel.ref("read")}
