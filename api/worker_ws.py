"""The worker bridge: iii workers' WebSocket on ``/`` (and a drain for ``/otel``).

It moves frames and calls the engine, nothing more. Frames are read and applied
in arrival order; invocations run in their own tasks so the read loop never waits
for a result. Outbound frames are coalesced per socket (``FrameWriter``): what
is sent in one turn of the loop leaves in one write, in send order; a sender
waits only when the transport asks it to drain (the backpressure). A bad frame
is logged and dropped; the socket stays open.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from aiohttp import WSMsgType, web

from engine.channels import ChannelRegistry, as_bytes
from engine.core import (
    DEFAULT_NS,
    CallContext,
    Engine,
    FunctionEntry,
    TriggerBinding,
    now_ms,
)
from engine.errors import EngineError
from engine.http_functions import HttpFunctions
from engine.logs import LogSink
from engine.remote_triggers import WorkerTriggerTypes
from eventlog.codec import dumps_bytes as encode_bytes

from .frames import FrameWriter
from .protocol import (
    MAX_MESSAGE_BYTES,
    CloseCode,
    InvocationResult,
    InvokeFunction,
    Ping,
    ProtocolError,
    Reattach,
    RegisterFunction,
    RegisterTrigger,
    RegisterTriggerType,
    TriggerRegistrationResult,
    UnknownMessage,
    UnregisterFunction,
    UnregisterTrigger,
    UnregisterTriggerType,
    encode,
    parse_frame,
)
from .rbac import RbacConfig, RbacSession

log = logging.getLogger("iiilog.bridge")
# How long a close handshake may take before the socket is dropped (aiohttp's
# default of 10 s can hold a shutdown up when a client is going away itself).
CLOSE_TIMEOUT_S = 2.0


class WorkerConnection:
    """One worker socket; the engine's ``Peer``."""

    def __init__(
        self,
        engine: Engine,
        ws: web.WebSocketResponse,
        frames: FrameWriter,
        ip: str | None,
        trigger_types: WorkerTriggerTypes,
        logs: LogSink,
        http_functions: HttpFunctions | None = None,
        session: RbacSession | None = None,
    ) -> None:
        self.engine = engine
        self.session = session
        self._admitted: dict[str, str] = {}  # worker's function id -> engine's
        self.http_functions = http_functions
        self.logs = logs
        self.trigger_types = trigger_types
        self.ws = ws
        self.frames = frames
        self.ip = ip
        self.id = str(uuid.uuid4())
        self.reattach_token = str(uuid.uuid4())
        self.name: str | None = None
        self.metadata: dict[str, Any] = {}
        self.connected_at_ms = now_ms()
        self.inflight: set[str] = set()
        self.closed = False

    async def send(self, message: dict[str, Any]) -> None:
        if self.closed:
            raise EngineError("invocation_stopped", "Invocation stopped")
        if self.ws.closed:
            return
        self.frames.push(encode_bytes(message))
        await self.frames.drain()

    async def serve(self) -> None:
        self.engine.connect(self)
        try:
            await self.send(
                {
                    "type": "workerregistered",
                    "worker_id": self.id,
                    "reattach_token": self.reattach_token,
                }
            )
            async for msg in self.ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    await self._on_frame(msg.data)
                elif msg.type == WSMsgType.ERROR:
                    log.warning(
                        "worker %s: socket error: %s", self.id, self.ws.exception()
                    )
        finally:
            await self.close()

    async def reject(self, message: dict[str, Any]) -> None:
        """``registrationrejected``: say why, then close (the SDK stops there)."""
        log.warning("worker %s rejected: %s", self.id, message.get("code"))
        if not self.ws.closed:
            self.frames.push(encode_bytes(message))
        await self.close()

    async def close(self) -> None:
        """Run the §1.7 cleanup once, as soon as the socket is done."""
        if self.closed:
            return
        self.closed = True
        self.trigger_types.provider_gone(self)
        await self.engine.disconnect(self)
        self.frames.flush()  # what was sent goes out before the close frame
        if not self.ws.closed:
            await self.ws.close(code=CloseCode.GOING_AWAY)

    async def _on_frame(self, frame: str | bytes) -> None:
        if isinstance(frame, bytes) and frame[:4] in (b"OTLP", b"LOGS", b"MTRC"):
            self.logs.frame(frame, self.id)  # telemetry may come on the main socket
            return
        try:
            msg = parse_frame(frame)
        except ProtocolError as e:
            log.warning("worker %s: frame dropped: %s", self.id, e)
            return
        try:
            await self._dispatch(msg)
        except Exception:
            log.exception("worker %s: handling %s failed", self.id, msg.type)

    async def _dispatch(self, msg: Any) -> None:
        engine = self.engine
        if self.session is not None and isinstance(
            msg, RegisterFunction | RegisterTrigger | RegisterTriggerType
        ):
            msg = await self._admit(msg)
            if msg is None:
                return
        if isinstance(msg, InvokeFunction):
            # Never wait here: the results this socket must deliver come in on
            # it too. Tasks start in arrival order, and so reach the writer.
            engine.spawn(self._invoke(msg), name=f"invoke:{msg.function_id}")
        elif isinstance(msg, InvocationResult):
            engine.resolve(msg.invocation_id, msg.result, msg.error)
        elif isinstance(msg, RegisterFunction) and msg.invocation is not None:
            if self.http_functions is None:
                log.error(
                    "function %s has an HTTP invocation but the"
                    " iii-http-functions module is not loaded",
                    msg.id,
                )
            else:
                self.http_functions.register(
                    self, msg.id, msg.invocation, msg.description, msg.metadata
                )
        elif isinstance(msg, RegisterFunction) and self.session is not None:
            renamed = self._admitted.pop(msg.id, self.session.prefixed(msg.id))
            engine.register_function(
                self,
                FunctionEntry(
                    renamed,
                    description=msg.description,
                    request_format=msg.request_format,
                    response_format=msg.response_format,
                    metadata=msg.metadata,
                    wire_id=msg.id,
                ),
            )
        elif isinstance(msg, RegisterFunction):
            engine.register_function(
                self,
                FunctionEntry(
                    msg.id,
                    description=msg.description,
                    request_format=msg.request_format,
                    response_format=msg.response_format,
                    metadata=msg.metadata,
                ),
            )
        elif isinstance(msg, UnregisterFunction):
            engine.unregister_function(self, msg.id)
        elif isinstance(msg, RegisterTrigger):
            await self._register_trigger(msg)
        elif isinstance(msg, UnregisterTrigger):
            await engine.unregister_trigger(msg.id, self)
        elif isinstance(msg, RegisterTriggerType):
            await self.trigger_types.register_type(self, msg.id, msg.description)
        elif isinstance(msg, UnregisterTriggerType):
            self.trigger_types.unregister_type(self, msg.id)
        elif isinstance(msg, TriggerRegistrationResult):
            await self.trigger_types.result(self, msg.id, msg.error)
        elif isinstance(msg, Reattach):
            await self._reattach(msg)
        elif isinstance(msg, Ping):
            await self.send({"type": "pong"})
        elif isinstance(msg, UnknownMessage):
            log.info("worker %s: unknown message type %r ignored", self.id, msg.type)
        # registerservice, pong: nothing to do

    async def _admit(self, msg: Any) -> Any:
        """RBAC registration hooks: None drops the registration (silently)."""
        session = self.session
        assert session is not None
        config = session.config
        if isinstance(msg, RegisterFunction):
            if not session.allow_function_registration:
                return None
            hook = config.on_function_registration_function_id
            payload: dict[str, Any] = {
                "function_id": session.prefixed(msg.id),
                "description": msg.description,
                "metadata": msg.metadata,
                "namespace": self.metadata.get("namespace") or DEFAULT_NS,
                "context": session.context,
            }
        elif isinstance(msg, RegisterTriggerType):
            if not session.allow_trigger_type_registration:
                return None
            hook = config.on_trigger_type_registration_function_id
            payload = {
                "trigger_type_id": msg.id,
                "description": msg.description,
                "context": session.context,
            }
        else:
            msg = msg.model_copy(
                update={"function_id": session.prefixed(msg.function_id)}
            )
            hook = config.on_trigger_registration_function_id
            payload = {
                "trigger_id": msg.id,
                "trigger_type": msg.trigger_type,
                "function_id": msg.function_id,
                "config": msg.config,
                "metadata": msg.metadata,
                "namespace": msg.namespace or DEFAULT_NS,
                "context": session.context,
            }
        if not hook:
            return msg
        try:
            result = await self.engine.invoke(
                hook, payload, CallContext(function_id=hook)
            )
        except EngineError as e:
            log.info("rbac: %s refused %s: %s", hook, msg.type, e.message)
            return None
        if isinstance(result, dict):
            renames = {
                k: v
                for k, v in result.items()
                if v is not None
                and k
                in ("function_id", "trigger_type", "config", "metadata", "description")
            }
            if isinstance(msg, RegisterFunction) and "function_id" in renames:
                msg = msg.model_copy(
                    update={
                        "description": renames.get("description", msg.description),
                        "metadata": renames.get("metadata", msg.metadata),
                    }
                )
                self._admitted[msg.id] = str(renames["function_id"])
            elif isinstance(msg, RegisterTrigger):
                msg = msg.model_copy(
                    update={
                        k: v
                        for k, v in renames.items()
                        if k in ("function_id", "trigger_type", "config", "metadata")
                    }
                )
        return msg

    async def _register_trigger(self, msg: RegisterTrigger) -> None:
        binding = TriggerBinding(
            id=msg.id,
            trigger_type=msg.trigger_type,
            function_id=msg.function_id,
            config=msg.config,
            metadata=msg.metadata,
            owner=self,
            namespace=msg.namespace or self.metadata.get("namespace"),
        )
        try:
            await self.engine.register_trigger(binding)
        except EngineError as e:
            log.warning(
                "worker %s: trigger %s (%s) refused: %s",
                self.id,
                msg.id,
                msg.trigger_type,
                e.message,
            )
            await self.send(
                {
                    "type": "triggerregistrationresult",
                    "id": msg.id,
                    "trigger_type": msg.trigger_type,
                    "function_id": msg.function_id,
                    "error": {"code": e.code, "message": e.message},
                }
            )

    async def _reattach(self, msg: Reattach) -> None:
        old = self.engine.workers.get(msg.previous_worker_id or "")
        if not isinstance(old, WorkerConnection) or old is self:
            return
        if msg.reattach_token != old.reattach_token:
            log.warning("worker %s: reattach with a wrong token ignored", self.id)
            return
        await old.close()

    async def _invoke(self, msg: InvokeFunction) -> None:
        action = msg.action_type
        reply = msg.invocation_id is not None and action != "void"
        ctx = CallContext(
            function_id=msg.function_id,
            caller=self,
            metadata=msg.metadata,
            traceparent=msg.traceparent,
            baggage=msg.baggage,
            namespace=msg.namespace,
        )
        try:
            if msg.namespace is not None and not msg.namespace.strip():
                raise EngineError("INVALID_NAMESPACE", "namespace must not be blank")
            if self.session is not None:
                result = await self._invoke_restricted(msg, ctx)
            elif action == "enqueue":
                result = await self._enqueue(msg, ctx)
            else:
                result = await self.engine.invoke(msg.function_id, msg.data, ctx)
        except EngineError as e:
            if not reply:
                log.info("void call %s failed: %s", msg.function_id, e)
                return
            await self._reply(msg, error=e.body())
        except Exception as e:
            log.exception("invocation of %s failed", msg.function_id)
            if reply:
                await self._reply(
                    msg, error={"code": "invocation_error", "message": str(e)}
                )
        else:
            if reply:
                await self._reply(msg, result=result)

    async def _invoke_restricted(self, msg: InvokeFunction, ctx: CallContext) -> Any:
        """A call from an RBAC session: checked, and routed via the middleware."""
        session = self.session
        assert session is not None
        entry = self.engine.functions.get(msg.function_id)
        session.check(msg.function_id, entry)
        if msg.action_type == "enqueue":
            return await self._enqueue(msg, ctx)
        middleware = session.config.middleware_function_id
        if entry is not None and entry.owner is not None and middleware:
            request: dict[str, Any] = {
                "function_id": msg.function_id,
                "payload": msg.data,
                "context": session.context,
            }
            if msg.action is not None:
                request["action"] = msg.action
            if msg.namespace is not None:
                request["namespace"] = msg.namespace
            return await self.engine.invoke(
                middleware, request, CallContext(function_id=middleware, caller=self)
            )
        result = await self.engine.invoke(msg.function_id, msg.data, ctx)
        if msg.function_id == "engine::functions::list" and isinstance(result, dict):
            visible = {
                e.id for e in self.engine.functions.values() if session.may_see(e)
            }
            result = {
                **result,
                "functions": [
                    f
                    for f in result.get("functions", [])
                    if f.get("function_id") in visible
                ],
            }
        return result

    async def _enqueue(self, msg: InvokeFunction, ctx: CallContext) -> Any:
        """Hand the call to the queue provider (``engine::queue::enqueue``)."""
        provider = "engine::queue::enqueue"
        if provider not in self.engine.functions:
            raise EngineError(
                "enqueue_error",
                "No queue provider is installed. Add the iii-queue module to the"
                " engine config.",
            )
        queue = (msg.action or {}).get("queue")
        return await self.engine.invoke(
            provider,
            {"queue": queue, "function_id": msg.function_id, "data": msg.data},
            ctx,
        )

    async def _reply(
        self,
        msg: InvokeFunction,
        *,
        result: Any = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        out: dict[str, Any] = {
            "type": "invocationresult",
            "invocation_id": msg.invocation_id,
            "function_id": msg.function_id,
        }
        if error is not None:
            out["error"] = error
        else:
            out["result"] = result
        if not self.closed:
            await self.send(out)


async def _authenticate(
    engine: Engine, config: RbacConfig, request: web.Request
) -> RbacSession | None:
    """Call the auth function once per upgrade; None means refused."""
    if not config.auth_function_id:
        return RbacSession.from_auth(config, {})
    query: dict[str, list[str]] = {}
    for key, value in request.query.items():
        query.setdefault(key, []).append(value)
    payload = {
        "headers": {k.lower(): v for k, v in request.headers.items()},
        "query_params": query,
        "ip_address": request.remote,
    }
    try:
        result = await engine.invoke(
            config.auth_function_id,
            payload,
            CallContext(function_id=config.auth_function_id),
        )
    except EngineError as e:
        log.info("rbac: authentication refused: %s", e.message)
        return None
    if not isinstance(result, dict):
        return None
    return RbacSession.from_auth(config, result)


def _engine_socket() -> web.WebSocketResponse:
    """The worker and telemetry sockets' settings."""
    return web.WebSocketResponse(
        max_msg_size=MAX_MESSAGE_BYTES,
        heartbeat=20.0,
        timeout=CLOSE_TIMEOUT_S,
        compress=False,  # as iii: no permessage-deflate (it costs both ends CPU)
    )


async def worker_handler(request: web.Request) -> web.WebSocketResponse:
    engine: Engine = request.app["engine"]
    rbac: RbacConfig | None = request.app["rbac"]
    session = await _authenticate(engine, rbac, request) if rbac else None
    ws = _engine_socket()
    await ws.prepare(request)
    if rbac is not None and session is None:
        await ws.send_str(
            encode(
                {
                    "type": "error",
                    "error": {"code": "AUTH_ERROR", "message": "authentication failed"},
                }
            )
        )
        await ws.close()
        return ws
    conn = WorkerConnection(
        engine,
        ws,
        FrameWriter(request),
        request.remote,
        request.app["trigger_types"],
        request.app["logs"],
        request.app["http_functions"],
        session,
    )
    await conn.serve()
    return ws


async def otel_handler(request: web.Request) -> web.WebSocketResponse:
    """Telemetry socket: ``LOGS`` and ``OTLP`` frames feed the log sink."""
    ws = _engine_socket()
    await ws.prepare(request)
    logs: LogSink = request.app["logs"]
    async for msg in ws:
        if msg.type == WSMsgType.BINARY:
            logs.frame(msg.data, None)
    return ws


CHANNEL_FRAME_MAX = 64 * 1024  # SDK channel sockets drop frames over 1 MiB


async def channel_handler(request: web.Request) -> web.StreamResponse:
    """``/ws/channels/{id}?key=...&dir=read|write``: one end of a channel."""
    registry: ChannelRegistry = request.app["channels"]
    direction = request.query.get("dir", "")
    channel = registry.claim(
        request.match_info["channel_id"], request.query.get("key", ""), direction
    )
    if channel is None:
        raise web.HTTPNotFound(text="no such channel end")
    ws = web.WebSocketResponse(
        max_msg_size=MAX_MESSAGE_BYTES, timeout=CLOSE_TIMEOUT_S, compress=False
    )
    await ws.prepare(request)
    if direction == "write":
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await channel.put("text", msg.data)
                elif msg.type == WSMsgType.BINARY:
                    await channel.put("binary", msg.data)
        finally:
            await channel.end()
            registry.done(channel, "write")
        return ws
    try:
        while True:
            item = await channel.items.get()
            if item is None:
                break
            kind, data = item
            if kind == "text":
                await ws.send_str(str(data))
            else:
                raw = as_bytes(data)
                for start in range(0, max(len(raw), 1), CHANNEL_FRAME_MAX):
                    await ws.send_bytes(raw[start : start + CHANNEL_FRAME_MAX])
        await ws.close()
    except (ConnectionResetError, RuntimeError) as e:
        log.debug("channel reader %s went away: %s", channel.id, e)
    finally:
        registry.done(channel, "read")
    return ws


def make_worker_app(
    engine: Engine,
    logs: LogSink,
    channels: ChannelRegistry,
    http_functions: HttpFunctions | None = None,
    rbac: RbacConfig | None = None,
) -> web.Application:
    app = web.Application()
    app["engine"] = engine
    app["trigger_types"] = WorkerTriggerTypes(engine)
    app["logs"] = logs
    app["channels"] = channels
    app["http_functions"] = http_functions
    app["rbac"] = rbac
    app.router.add_get("/otel", otel_handler)
    app.router.add_get("/ws/channels/{channel_id}", channel_handler)
    app.router.add_get("/{tail:.*}", worker_handler)
    return app
