"""Calls between the engine nodes that share one log: the worker protocol,
node to node.

A node that needs a function only another node's worker serves connects to
that node's worker port as a worker would (``?iiilog_node=<its id>``), sends an
``invokefunction`` and waits for the ``invocationresult``. The other node runs
such calls only among its own workers, never forwarding them again. One
connection per node, opened on first use; when it drops, its calls in flight end
with ``invocation_stopped`` and the next call opens a new one. A node that cannot
be reached raises ``NodeUnreachable`` before anything was sent, so the caller
may try another node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import aiohttp

from engine.cluster import ForwardedCall, NodeUnreachable
from engine.errors import EngineError
from engine.ids import random_uuid
from eventlog.directory import NodeInfo

from .protocol import (
    MAX_MESSAGE_BYTES,
    CallDelivery,
    DropReason,
    FrameError,
    InvocationResult,
    NodeCall,
    encode,
    parse_frame,
)

log = logging.getLogger("iiilog.node-link")
CONNECT_TIMEOUT_S = 3.0
NODE_PARAM = "iiilog_node"


class _Link:
    def __init__(self, node: NodeInfo, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.node = node
        self.ws = ws
        self.pending: dict[str, asyncio.Future[Any]] = {}
        self.reader: asyncio.Task[Any] | None = None

    @property
    def open(self) -> bool:
        return not self.ws.closed and self.reader is not None and not self.reader.done()

    async def read(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    continue
                try:
                    message = parse_frame(msg.data)
                except FrameError as e:
                    if e.reason is not DropReason.UNKNOWN_TYPE:  # workerregistered
                        log.warning(
                            "node %s sent a bad frame: %s", self.node.node_id, e
                        )
                    continue
                if isinstance(message, InvocationResult):
                    future = self.pending.pop(message.invocation_id, None)
                    if future is not None and not future.done():
                        if message.error:
                            future.set_exception(EngineError.from_wire(message.error))
                        else:
                            future.set_result(message.result)
        finally:
            stopped = EngineError("invocation_stopped", "Invocation stopped")
            for future in self.pending.values():
                if not future.done():
                    future.set_exception(stopped)
            self.pending.clear()


class NodeLinks:
    """``engine.cluster.NodeTransport`` over WebSockets."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self._session: aiohttp.ClientSession | None = None
        self._links: dict[str, _Link] = {}
        self._connecting: dict[str, asyncio.Lock] = {}
        # when a connection to a node last failed (monotonic): the calls that
        # waited for that attempt fail with it instead of trying one by one
        self._failed: dict[str, float] = {}

    async def _link(self, node: NodeInfo) -> _Link:
        link = self._links.get(node.node_id)
        if link is not None and link.open and link.node.worker_url == node.worker_url:
            return link
        lock = self._connecting.setdefault(node.node_id, asyncio.Lock())
        asked = time.monotonic()
        async with lock:
            link = self._links.get(node.node_id)
            if link is not None and link.open:
                return link
            failed = self._failed.get(node.node_id, float("-inf"))
            if failed >= asked:  # tried while this call waited: no second try
                raise NodeUnreachable(f"{node.worker_url}: just failed")
            if self._session is None:
                self._session = aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(
                        total=None, sock_connect=CONNECT_TIMEOUT_S
                    )
                )
            url = f"{node.worker_url.rstrip('/')}/?{NODE_PARAM}={self.node_id}"
            try:
                # The whole handshake, not only the TCP connect: a frozen node
                # (stopped, swapping) accepts connections but never answers.
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    ws = await self._session.ws_connect(
                        url,
                        timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
                        max_msg_size=MAX_MESSAGE_BYTES,
                        heartbeat=10.0,
                        compress=0,
                    )
            except TimeoutError as e:
                self._failed[node.node_id] = time.monotonic()
                raise NodeUnreachable(
                    f"{node.worker_url}: no handshake within {CONNECT_TIMEOUT_S} s"
                ) from e
            except (aiohttp.ClientError, OSError) as e:
                self._failed[node.node_id] = time.monotonic()
                raise NodeUnreachable(f"{node.worker_url}: {e}") from e
            link = _Link(node, ws)
            link.reader = asyncio.get_running_loop().create_task(
                link.read(), name=f"node-link:{node.node_id[:8]}"
            )
            self._links[node.node_id] = link
            return link

    async def call(self, node: NodeInfo, call: ForwardedCall) -> Any:
        link = await self._link(node)
        invocation_id = random_uuid()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        link.pending[invocation_id] = future
        message = NodeCall(
            CallDelivery(
                invocation_id,
                call.function_id,
                call.data,
                call.metadata,
                call.traceparent,
                call.baggage,
            ),
            call.namespace,
            call.delivery,
        )
        try:
            await link.ws.send_bytes(encode(message))
        except (ConnectionResetError, RuntimeError, aiohttp.ClientError) as e:
            link.pending.pop(invocation_id, None)
            raise NodeUnreachable(f"{node.worker_url}: {e}") from e
        try:
            return await future
        finally:
            link.pending.pop(invocation_id, None)

    async def close(self) -> None:
        for link in list(self._links.values()):
            with contextlib.suppress(Exception):
                await link.ws.close()
            if link.reader is not None:
                link.reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await link.reader
        self._links.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
