"""The stream WebSocket server (iii's stream protocol) with resume by offset.

Clients join a (stream, group[, item]) on ``/`` with a ``join`` message, or by
connecting to ``/stream/{stream}/{group}[/{item}]``. Each subscription is a pump
that walks the log from a cursor: a ``sync`` snapshot tagged with the offset it
reflects and then every later matching record, or, with a ``from`` position,
exactly the matching records after it. Nothing is queued per subscriber: a slow
socket only holds back its own pump, which then reads from the store. What one
socket has waiting for its client is bounded (``FrameWriter``): past the bound
its pumps wait, its snapshots are not read and its next frames not taken. Every
message carries its ``offset``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qs

from aiohttp import WSMsgType, web
from pydantic import BaseModel, ConfigDict, Field

from engine.cluster import role
from engine.core import CallContext, Engine, now_ms
from engine.errors import EngineError
from engine.streams import StreamModule, control
from eventlog import EventLogError
from eventlog.codec import dumps, loads

from .frames import FrameWriter
from .protocol import clip

log = logging.getLogger("iiilog.streams")
CLIENT_FRAME_LIMIT = 1024 * 1024


class StreamConfig(BaseModel):
    """Module ``iii-stream`` (alias ``stream``)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    # iii settings this module does not implement: accepted, warned about.
    iii_unimplemented: ClassVar[frozenset[str]] = frozenset({"adapter"})

    host: str = "0.0.0.0"
    port: int = Field(3112, ge=0, le=65535)
    auth_function: str | None = None  # function id called at each upgrade
    # iiilog: how long stream::send records stay replayable, how often pruned.
    send_retention_ms: int = Field(7 * 24 * 3600 * 1000, ge=1)
    prune_interval_ms: int = Field(60_000, ge=1)
    # iiilog: subscriptions one client may hold at once (each is a pump task).
    max_subscriptions: int = Field(256, ge=1)


class BadJoin(ValueError):
    """A join whose fields are missing or of the wrong type."""


@dataclass
class Subscription:
    id: str
    stream: str
    group: str
    item: str | None
    task: asyncio.Task[Any] | None = None
    position: int = 0  # the log offset this subscription has read through


@dataclass(eq=False)
class StreamClient:
    ws: web.WebSocketResponse
    frames: FrameWriter
    context: Any = None
    subs: dict[str, Subscription] = field(default_factory=dict)
    remote: str | None = None
    connected_at_ms: int = field(default_factory=now_ms)
    # One snapshot at a time is read for a client, and only while it has room:
    # many joins from a client that does not read hold no snapshots.
    syncing: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def send(self, text: str | bytes) -> None:
        """Frames leave in call order, coalesced per turn of the loop; waits
        while the client has more than the bound unread (then its pump falls
        behind and reads from the log, not from a buffer)."""
        if self.frames.over:
            await self.frames.room()
        if self.ws.closed or not self.frames.open:
            raise ConnectionResetError("the client is gone")
        self.frames.push(text if isinstance(text, bytes) else text.encode())


def _membership(
    sub_id: str, stream: Any, group: Any, item: Any, context: Any
) -> dict[str, Any]:
    """The payload of ``stream:join`` / ``stream:leave`` triggers."""
    return {
        "subscription_id": sub_id,
        "stream_name": stream,
        "group_id": group,
        "id": item,
        "context": context,
    }


# Offsets are 64-bit: a longer string is no offset (and int() of thousands of
# digits is refused by Python itself).
_MAX_OFFSET_DIGITS = 19


def parse_position(value: Any) -> int | None:
    """``from``: a non-negative integer (or its ASCII decimal string); None if
    absent. Anything else is a ``BadJoin`` (``"²"`` passes ``str.isdigit``
    but is no number ``int`` reads)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise BadJoin("`from` must be a non-negative integer offset")
    if isinstance(value, str):
        digits = value.strip()
        if (
            digits.isascii()
            and digits.isdigit()
            and len(digits.lstrip("0")) <= _MAX_OFFSET_DIGITS
        ):
            return int(digits)
    elif isinstance(value, int) and 0 <= value < 1 << 63:
        return value
    raise BadJoin("`from` must be a non-negative integer offset")


def parse_join(data: Any) -> tuple[Subscription, int | None]:
    if not isinstance(data, dict):
        raise BadJoin("`data` must be an object")
    fields = {}
    for name in ("subscriptionId", "streamName", "groupId"):
        value = data.get(name)
        if not isinstance(value, str) or not value:
            raise BadJoin(f"`{name}` is required and must be a string")
        fields[name] = value
    item = data.get("id")
    if item is not None and not isinstance(item, str):
        raise BadJoin("`id` must be a string")
    sub = Subscription(
        fields["subscriptionId"], fields["streamName"], fields["groupId"], item
    )
    return sub, parse_position(data.get("from"))


class StreamServer:
    def __init__(
        self, engine: Engine, streams: StreamModule, config: StreamConfig
    ) -> None:
        self.engine = engine
        self.streams = streams
        self.config = config
        self.clients: set[StreamClient] = set()

    def abort_stalled(self) -> None:
        """Drop the clients over their outbound bound (at shutdown): a close
        frame would queue behind what they do not read, and its handshake
        would wait for nothing."""
        for client in list(self.clients):
            if client.frames.over:
                client.frames.abort()

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self.handle)
        return app

    async def start_retention(self) -> None:
        """Prune old ``stream.send`` records now and then every interval (one
        node of a cluster prunes; every node learns how far)."""
        self.streams.pruned_through = await self.engine.store.sends_pruned_through()
        cluster = self.engine.cluster
        cluster.keep("retention", role)

        async def loop() -> None:
            while True:
                try:
                    if cluster.holds("retention"):
                        await self.streams.prune(self.config.send_retention_ms)
                    else:
                        store = self.engine.store
                        self.streams.pruned_through = await store.sends_pruned_through()
                except EventLogError as e:
                    log.warning("retention pass failed: %s", e)
                await asyncio.sleep(self.config.prune_interval_ms / 1000)

        self.engine.spawn(loop(), name="stream-retention")

    # -- connection ------------------------------------------------------------------

    async def _auth(self, request: web.Request) -> Any:
        function_id = self.config.auth_function
        if not function_id:
            return None
        payload = {
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "path": request.path,
            "query_params": parse_qs(request.query_string, keep_blank_values=True),
            "addr": f"{request.remote}",
        }
        try:
            result = await self.engine.invoke(
                function_id, payload, CallContext(function_id=function_id)
            )
        except EngineError as e:
            log.warning("stream auth %s failed: %s", function_id, e)
            return None
        return result.get("context") if isinstance(result, dict) else None

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        # No permessage-deflate: a fan-out frame is encoded once and written
        # as is to every subscriber, not compressed once per subscriber.
        ws = web.WebSocketResponse(
            heartbeat=30.0, max_msg_size=CLIENT_FRAME_LIMIT, timeout=2.0, compress=False
        )
        await ws.prepare(request)
        client = StreamClient(
            ws, FrameWriter(request), await self._auth(request), remote=request.remote
        )
        self.clients.add(client)
        try:
            parts = [p for p in request.path.split("/") if p]
            if parts[:1] == ["stream"] and len(parts) in (3, 4):
                query = request.rel_url.query
                await self._join(
                    client,
                    {
                        "subscriptionId": query.get("subscriptionId", "url"),
                        "streamName": parts[1],
                        "groupId": parts[2],
                        "id": parts[3] if len(parts) == 4 else None,
                        "from": query.get("from"),
                    },
                )
            async for msg in ws:
                if client.frames.over:  # read no more while it does not read
                    await client.frames.room()
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    await self._on_frame(client, msg.data)
        finally:
            self.clients.discard(client)
            if client.frames.over:  # it does not read: no close handshake
                client.frames.abort()
            for sub in list(client.subs.values()):
                await self._leave(client, sub.id, sub)
        return ws

    async def _on_frame(self, client: StreamClient, frame: str | bytes) -> None:
        if not (frame.strip() if isinstance(frame, str | bytes) else frame):
            return
        try:
            msg = loads(frame)
        except RecursionError:
            # orjson stops at 1024 levels; the stdlib decoder it falls back to
            # gives up at the interpreter's recursion limit.
            log.info("stream client frame dropped: nested too deeply")
            return
        except ValueError as e:
            log.info("stream client frame dropped: malformed JSON: %s", clip(str(e)))
            return
        if not isinstance(msg, dict):
            log.info("stream client frame dropped: not an object")
            return
        kind, data = msg.get("type"), msg.get("data")
        if kind == "join":
            await self._join(client, data)
        elif kind == "leave":
            sub_id = data.get("subscriptionId") if isinstance(data, dict) else None
            if isinstance(sub_id, str):
                await self._leave(client, sub_id, None, data)
        else:
            log.info("stream client frame dropped: unknown type %r", kind)

    async def _error(
        self, client: StreamClient, code: str, message: str, data: Any
    ) -> None:
        sub_id = data.get("subscriptionId") if isinstance(data, dict) else None
        await client.send(
            dumps(
                {
                    "type": "error",
                    "subscriptionId": sub_id,
                    "error": {"code": code, "message": message},
                }
            )
        )

    async def _join(self, client: StreamClient, data: Any) -> None:
        try:
            sub, position = parse_join(data)
        except BadJoin as e:
            log.info("stream join refused: %s", e)
            await self._error(client, "INVALID_JOIN", str(e), data)
            return
        limit = self.config.max_subscriptions
        if sub.id not in client.subs and len(client.subs) >= limit:
            await self._error(
                client,
                "TOO_MANY_SUBSCRIPTIONS",
                f"a client may hold {limit} subscriptions at once (max_subscriptions)",
                data,
            )
            return
        payload = _membership(sub.id, sub.stream, sub.group, sub.item, client.context)
        if not await self.streams.run_membership("stream:join", payload):
            await client.send(
                dumps(
                    control(
                        sub.stream,
                        sub.group,
                        sub.item,
                        {"type": "unauthorized"},
                        self.engine.tail.head,
                        subscriptionId=sub.id,
                    )
                )
            )
            return
        old = client.subs.pop(sub.id, None)
        if old is not None and old.task is not None:
            old.task.cancel()
        client.subs[sub.id] = sub
        sub.task = self.engine.spawn(
            self._pump(client, sub, position),
            name=f"stream-sub:{sub.stream}/{sub.group}",
        )

    async def _leave(
        self,
        client: StreamClient,
        sub_id: str,
        sub: Subscription | None,
        data: Any = None,
    ) -> None:
        sub = client.subs.pop(sub_id, None) or sub
        if sub is not None and sub.task is not None:
            sub.task.cancel()
        if sub is not None:
            payload = _membership(
                sub.id, sub.stream, sub.group, sub.item, client.context
            )
        elif isinstance(data, dict):
            payload = _membership(
                sub_id,
                data.get("streamName"),
                data.get("groupId"),
                data.get("id"),
                client.context,
            )
        else:
            return
        await self.streams.run_membership("stream:leave", payload)

    # -- the pump ----------------------------------------------------------------------

    async def _sync(
        self, client: StreamClient, sub: Subscription, *, reset: bool
    ) -> int:
        async with client.syncing:
            if client.frames.over:
                await client.frames.room()
            return await self._sync_now(client, sub, reset=reset)

    async def _sync_now(
        self, client: StreamClient, sub: Subscription, *, reset: bool
    ) -> int:
        op = "list" if sub.item is None else "get"
        custom = self.streams.custom(op, sub.stream)
        if custom is not None:
            offset = self.engine.tail.head
            args: dict[str, Any] = {"stream_name": sub.stream, "group_id": sub.group}
            if sub.item is not None:
                args["item_id"] = sub.item
            try:
                value = await self.engine.invoke(
                    custom, args, CallContext(function_id=custom)
                )
            except EngineError as e:
                log.warning("sync through %s failed: %s", custom, e)
                value = [] if sub.item is None else None
        else:
            offset, value = await self.engine.store.view_read_at(
                "stream", sub.stream, sub.group, sub.item
            )
        extra: dict[str, Any] = {"subscriptionId": sub.id}
        if reset:
            extra["reset"] = True
        await client.send(
            dumps(
                control(
                    sub.stream,
                    sub.group,
                    sub.item,
                    {"type": "sync", "data": value},
                    offset,
                    **extra,
                )
            )
        )
        return offset

    async def _pump(
        self, client: StreamClient, sub: Subscription, position: int | None
    ) -> None:
        tail = self.engine.tail
        streams = self.streams
        try:
            if position is None:
                cursor = await self._sync(client, sub, reset=False)
            elif position < streams.pruned_through or position > tail.head:
                # Older than what is retained, or from another log: start over.
                cursor = await self._sync(client, sub, reset=True)
            else:
                cursor = position
            while True:
                if cursor < streams.pruned_through:
                    cursor = await self._sync(client, sub, reset=True)
                sub.position = cursor
                records = await tail.read_after(cursor, 500)
                if not records:
                    await tail.wait_beyond(cursor)
                    continue
                for record in records:
                    if (
                        record.space == "stream"
                        and record.scope == sub.stream
                        and record.group == sub.group
                        and (sub.item is None or record.key == sub.item)
                    ):
                        await client.send(streams.encoded(record))
                    cursor = record.offset
        except (ConnectionResetError, RuntimeError) as e:
            log.debug("subscription %s ended: %s", sub.id, e)
            with contextlib.suppress(Exception):
                await client.ws.close()
