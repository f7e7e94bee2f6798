"""A worker port's aiohttp app: the worker socket on ``/`` (RBAC listeners
authenticate it first), telemetry on ``/otel`` and channels on
``/ws/channels/{id}``. Each socket's settings come from its listener's
``WorkerManagerConfig``; what a worker socket does is ``worker_ws``.
"""

from __future__ import annotations

from aiohttp import WSMsgType, web

from engine.channels import ChannelRegistry
from engine.core import Engine
from engine.http_functions import HttpFunctions
from engine.logs import LogSink
from engine.observers import Observers
from engine.remote_triggers import WorkerTriggerTypes

from .channel_ws import CHANNELS, channel_handler
from .frames import CLOSE_TIMEOUT_S, FrameWriter
from .node_link import NODE_PARAM
from .protocol import MAX_MESSAGE_BYTES, AuthFailed, encode
from .rbac import WorkerManagerConfig
from .rbac_session import RbacGate, authenticate
from .worker_ws import LISTENER, Listener, WorkerConnection


def _engine_socket(
    max_message_bytes: int = MAX_MESSAGE_BYTES,
) -> web.WebSocketResponse:
    """The worker and telemetry sockets' settings. A message of exactly
    ``max_message_bytes`` is accepted, as iii accepts one of exactly its
    64 MiB; aiohttp refuses a message as long as ``max_msg_size``, hence +1."""
    return web.WebSocketResponse(
        max_msg_size=max_message_bytes + 1,
        heartbeat=20.0,
        timeout=CLOSE_TIMEOUT_S,
        compress=False,  # as iii: no permessage-deflate (it costs both ends CPU)
    )


async def worker_handler(request: web.Request) -> web.WebSocketResponse:
    listener = request.app[LISTENER]
    config = listener.config
    gate: RbacGate | None = None
    if config.rbac is not None:
        rbac = await authenticate(listener.engine, config.rbac, request)
        if rbac is not None:
            gate = RbacGate(listener.engine, rbac)
    ws = _engine_socket(config.max_message_bytes)
    await ws.prepare(request)
    if config.rbac is not None and gate is None:
        await ws.send_str(encode(AuthFailed("authentication failed")).decode())
        await ws.close()
        return ws
    connection: list[WorkerConnection] = []  # for the stuck callback
    frames = FrameWriter(
        request,
        limit=config.max_outbound_bytes,
        stuck_after_s=config.slow_peer_timeout_ms / 1000,
        on_stuck=lambda: connection[0].stuck(),
    )
    conn = WorkerConnection(
        listener,
        ws,
        frames,
        request.remote,
        gate,
        node_link=gate is None and NODE_PARAM in request.query,
    )
    connection.append(conn)
    await conn.serve()
    return ws


async def otel_handler(request: web.Request) -> web.WebSocketResponse:
    """Telemetry socket: ``LOGS`` and ``OTLP`` frames feed the log sink."""
    ws = _engine_socket()
    await ws.prepare(request)
    logs = request.app[LISTENER].logs
    async for msg in ws:
        if msg.type == WSMsgType.BINARY:
            logs.frame(msg.data, None)
    return ws


def make_worker_app(
    engine: Engine,
    logs: LogSink,
    channels: ChannelRegistry,
    http_functions: HttpFunctions | None = None,
    config: WorkerManagerConfig | None = None,
    observers: Observers | None = None,
) -> web.Application:
    app = web.Application()
    app[LISTENER] = Listener(
        engine,
        WorkerTriggerTypes(engine),
        logs,
        http_functions,
        config or WorkerManagerConfig(),
        observers,
    )
    app[CHANNELS] = channels
    app.router.add_get("/otel", otel_handler)
    app.router.add_get("/ws/channels/{channel_id}", channel_handler)
    app.router.add_get("/{tail:.*}", worker_handler)
    return app
