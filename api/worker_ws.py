"""The worker bridge: one iii worker's WebSocket (``worker_listener`` serves it).

It only moves frames: socket → ``WorkerSession.receive`` → one ``match`` over
the events → the engine, and engine → typed message → ``WorkerSession.send`` →
socket. Frames are applied in arrival order; invocations run in their own tasks
so the read loop never waits for a result. Outbound frames are coalesced per
socket (``FrameWriter``) and bounded (``max_outbound_bytes``): while a peer
has more than that waiting, its replies wait, its calls do not start and its
next frames are not read; a peer that stays so for ``slow_peer_timeout_ms`` is
dropped (its callers get ``invocation_stopped``). A bad frame is logged and
dropped; the socket stays open.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, assert_never

from aiohttp import WebSocketError, WSCloseCode, WSMsgType, web

from engine.core import (
    DEFAULT_NS,
    CallContext,
    Engine,
    TriggerBinding,
    now_ms,
    trace_id,
)
from engine.errors import EngineError
from engine.http_functions import HttpFunctions
from engine.ids import random_uuid
from engine.logs import LogSink
from engine.observers import OBSERVE_V1, Observers
from engine.peer import Invocation, Rejection
from engine.remote_triggers import WorkerTriggerTypes

from .frames import FrameWriter
from .observe_bridge import ObservingPeer
from .protocol import (
    CallDelivery,
    CallResult,
    CloseCode,
    DropReason,
    InvocationResult,
    InvokeFunction,
    Outgoing,
    Ping,
    Pong,
    PongReply,
    Reattach,
    RegisterFunction,
    RegisterService,
    RegisterTrigger,
    RegisterTriggerType,
    RegistrationRejected,
    TriggerForward,
    TriggerRefused,
    TriggerRegistrationResult,
    TriggerWithdraw,
    UnregisterFunction,
    UnregisterTrigger,
    UnregisterTriggerType,
    clip,
)
from .protocol_observe import (
    ENGINE_FEATURES,
    InvocationsObserved,
    LocalInvocationStats,
    Observe,
    ObserverAck,
    Unobserve,
)
from .rbac import WorkerManagerConfig
from .rbac_session import RbacGate
from .session import Event, FrameDropped, Telemetry, WorkerSession
from .worker_registration import RegisteringPeer

log = logging.getLogger("iiilog.bridge")


@dataclass(frozen=True)
class Listener:
    """What one worker port serves with (the main port or an RBAC port)."""

    engine: Engine
    trigger_types: WorkerTriggerTypes
    logs: LogSink
    http_functions: HttpFunctions | None
    config: WorkerManagerConfig
    observers: Observers | None = None


LISTENER = web.AppKey("listener", Listener)


def _node_link_may_send(event: Event) -> bool:
    """What another engine node sends on its link (``api/node_link.py``):
    plain calls, and the socket's own pings and drops."""
    if isinstance(event, InvokeFunction):
        return event.action is None
    return isinstance(event, Ping | Pong | FrameDropped)


class WorkerConnection(ObservingPeer, RegisteringPeer):
    """One worker socket; the engine's ``Peer``."""

    def __init__(
        self,
        listener: Listener,
        ws: web.WebSocketResponse,
        frames: FrameWriter,
        ip: str | None,
        gate: RbacGate | None = None,
        node_link: bool = False,
    ) -> None:
        self.engine = listener.engine
        # Another engine node calling in for its callers: not a worker; its
        # calls run among this node's own workers only.
        self.node_link = node_link
        self.listener = listener
        self.gate = gate
        self.ws = ws
        self.frames = frames
        self.ip = ip
        self.session = WorkerSession(random_uuid(), random_uuid())
        self.id = self.session.worker_id
        self.name: str | None = None
        self.metadata: dict[str, Any] = {}
        self.connected_at_ms = now_ms()
        self.inflight: set[str] = set()
        # What this listener offers: observe is not offered on RBAC ports
        # (their middleware and hooks see every call and registration), nor
        # to another node. ``features``: what the connection declared of it.
        plain = gate is None and not node_link and listener.observers is not None
        self.offered = ENGINE_FEATURES if plain else ()
        self.features: frozenset[str] = frozenset()

    @property
    def closed(self) -> bool:
        return self.session.closed

    @property
    def namespace(self) -> str:
        return self.metadata.get("namespace") or DEFAULT_NS

    # -- the engine's Peer -------------------------------------------------------

    async def deliver(self, call: Invocation) -> None:
        if self.session.closed:
            raise EngineError("invocation_stopped", "Invocation stopped")
        delivery = CallDelivery(
            call.invocation_id,
            call.function_id,
            call.data,
            call.metadata,
            call.traceparent,
            call.baggage,
        )
        if OBSERVE_V1 in self.features:
            delivery.caller = call.caller
            delivery.observe_depth = call.observe_depth
            delivery.activation = call.activation
        await self._send(delivery)

    async def forward_trigger(self, binding: TriggerBinding) -> None:
        await self._send(
            TriggerForward(
                binding.id,
                binding.trigger_type,
                binding.function_id,
                binding.config,
                binding.metadata,
            )
        )

    async def withdraw_trigger(self, binding: TriggerBinding) -> None:
        await self._send(
            TriggerWithdraw(
                binding.id, binding.trigger_type, binding.function_id, binding.config
            )
        )

    async def trigger_refused(self, binding: TriggerBinding, error: Any) -> None:
        await self._send(
            TriggerRefused(binding.id, binding.trigger_type, binding.function_id, error)
        )

    async def reject(self, rejection: Rejection) -> None:
        """``registrationrejected``: say why, then close (the SDK stops there)."""
        log.warning("worker %s rejected: %s", self.id, rejection.code)
        self._push(
            RegistrationRejected(
                rejection.code,
                rejection.namespace,
                rejection.owner_worker_id,
                rejection.worker_name,
                rejection.function_id,
            )
        )
        await self.close()

    # -- frames ------------------------------------------------------------------

    def _push(self, message: Outgoing) -> None:
        if not self.session.closed and not self.ws.closed:
            self.frames.push(self.session.send(message))

    async def _send(self, message: Outgoing) -> None:
        if self.frames.over:  # backpressure: the peer does not read
            await self.frames.room()
        self._push(message)

    def stuck(self) -> None:
        """The peer left more than ``max_outbound_bytes`` unread for longer
        than ``slow_peer_timeout_ms``: drop it (the read loop then ends and
        the disconnect cleanup answers its callers)."""
        log.warning(
            "worker %s (%s) dropped: %d bytes unread for over %d ms",
            self.id,
            self.name or "unnamed",
            self.frames.buffered,
            self.listener.config.slow_peer_timeout_ms,
        )
        self.frames.abort()

    async def serve(self) -> None:
        if not self.node_link:
            self.engine.connect(self)
        try:
            self.frames.push(self.session.welcome(self.offered))
            async for msg in self.ws:
                if self.frames.over:  # read no more while it does not read
                    await self.frames.room()
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    for event in self.session.receive(msg.data):
                        await self._dispatch(event)
                elif msg.type == WSMsgType.ERROR:
                    self._socket_error(self.ws.exception())
        finally:
            await self.close()

    def _socket_error(self, error: BaseException | None) -> None:
        """aiohttp ends the socket after an error; say why, in one line."""
        if (
            isinstance(error, WebSocketError)
            and error.code == WSCloseCode.MESSAGE_TOO_BIG
        ):
            log.warning(
                "worker %s closed (1009): a message over max_message_bytes"
                " (%d bytes): %s",
                self.id,
                self.listener.config.max_message_bytes,
                error,
            )
        elif isinstance(error, ConnectionError | WebSocketError):
            log.info("worker %s: socket ended: %s", self.id, error)
        else:
            log.warning("worker %s: socket error: %r", self.id, error)

    async def close(self) -> None:
        """Run the §1.7 cleanup once, as soon as the socket is done."""
        if self.session.closed:
            return
        self.session.close()
        if not self.node_link:
            self.listener.trigger_types.provider_gone(self)
            await self.engine.disconnect(self)
        self.frames.flush()  # what was sent goes out before the close frame
        if self.frames.over:
            # It does not read: a close frame would queue behind what it left
            # unread, and the handshake (and a shutdown) wait for nothing.
            self.frames.abort()
        elif not self.ws.closed:
            await self.ws.close(code=CloseCode.GOING_AWAY)

    async def _dispatch(self, event: Event) -> None:
        if self.node_link and not _node_link_may_send(event):
            # Another node only calls functions: what it registered would
            # outlive it (a node link's close is no worker's disconnect) and
            # calls to it would wait on a socket that is gone.
            log.warning(
                "node link %s: %s dropped (a node link only calls functions)",
                self.id,
                type(event).__name__,
            )
            return
        try:
            await self._apply(event)
        except Exception:
            log.exception(
                "worker %s: handling %s failed", self.id, type(event).__name__
            )

    async def _apply(self, event: Event) -> None:
        engine = self.engine
        match event:
            case InvokeFunction():
                if event.function_id == "engine::workers::register":
                    self._declare(event.data)
                # Never wait here: the results this socket must deliver come
                # in on it too. Tasks start in arrival order, and so reach
                # the writer in that order.
                engine.spawn(
                    self._invoke(event), name=f"invoke:{clip(event.function_id)}"
                )
            case InvocationResult():
                engine.resolve(event.invocation_id, event.result, event.error)
            case RegisterFunction():
                await self._register_function(event)
            case UnregisterFunction():
                engine.unregister_function(self, event.id)
                if self.listener.observers is not None:
                    self.listener.observers.function_unregistered(self, event.id)
            case RegisterTrigger():
                await self._register_trigger(event)
            case UnregisterTrigger():
                await engine.unregister_trigger(event.id, self)
            case RegisterTriggerType():
                admitted = await self._admit(event)
                if admitted is not None:
                    await self.listener.trigger_types.register_type(
                        self, admitted.id, admitted.description
                    )
            case UnregisterTriggerType():
                self.listener.trigger_types.unregister_type(self, event.id)
            case TriggerRegistrationResult():
                await self.listener.trigger_types.result(self, event.id, event.error)
            case Reattach():
                await self._reattach(event)
            case Observe() | Unobserve() | ObserverAck():
                self._observe_control(event)
            case InvocationsObserved():
                self._observed(event)
            case LocalInvocationStats():
                if self.listener.observers is not None:
                    self.listener.observers.local_invocations(
                        event.functions, event.dropped_reports
                    )
            case Ping():
                await self._send(PongReply())
            case Pong() | RegisterService():
                pass  # nothing to do (services are not modelled)
            case Telemetry():
                self.listener.logs.frame(event.frame, self.id)
            case FrameDropped(reason=DropReason.UNKNOWN_TYPE):
                log.info("worker %s: frame dropped: %s", self.id, event)
            case FrameDropped():
                log.warning("worker %s: frame dropped: %s", self.id, event)
            case _:
                assert_never(event)

    async def _reattach(self, msg: Reattach) -> None:
        old = self.engine.workers.get(msg.previous_worker_id or "")
        if not isinstance(old, WorkerConnection) or old is self:
            return
        if not old.session.accepts_reattach(msg.reattach_token):
            log.warning("worker %s: reattach with a wrong token ignored", self.id)
            return
        await old.close()

    async def _invoke(self, msg: InvokeFunction) -> None:
        if self.frames.over:  # its replies would only pile up: not yet
            await self.frames.room()
            if self.session.closed:
                return
        action = msg.action_type
        reply = msg.invocation_id is not None and action != "void"
        ctx = CallContext(
            function_id=msg.function_id,
            caller=self,
            metadata=msg.metadata,
            traceparent=msg.traceparent,
            baggage=msg.baggage,
            namespace=msg.namespace,
            local_only=self.node_link,
        )
        observe = self._observe_fields(msg, ctx)
        # A trigger delivery led by another node: the handler's writes reach
        # this node (its worker is here), so they are tagged here.
        delivery = trace_id(msg.traceparent) if msg.iiilog_delivery else None
        if delivery is not None and self.node_link:
            self.engine.deliveries[delivery] = 0
        try:
            if msg.namespace is not None and not msg.namespace.strip():
                raise EngineError("INVALID_NAMESPACE", "namespace must not be blank")
            observers = self.listener.observers
            if observe and msg.activation is not None and observers is not None:
                result = await observers.owner_call(self, msg.activation, msg.data, ctx)
            elif self.gate is not None:
                result = await self.gate.invoke(msg, ctx, self)
            elif action == "enqueue":
                queue = (msg.action or {}).get("queue")
                result = await self.engine.enqueue(
                    queue, msg.function_id, msg.data, ctx
                )
            else:
                result = await self.engine.invoke(msg.function_id, msg.data, ctx)
        except EngineError as e:
            if not reply:
                log.info("void call %s failed: %s", clip(msg.function_id), clip(str(e)))
                return
            await self._reply(msg, None, e.body())
        except Exception as e:
            log.exception("invocation of %s failed", clip(msg.function_id))
            if reply:
                await self._reply(
                    msg, None, {"code": "invocation_error", "message": clip(str(e))}
                )
        else:
            if reply:
                await self._reply(msg, result, None)
        finally:
            if delivery is not None and self.node_link:
                self.engine.deliveries.pop(delivery, None)

    async def _reply(
        self, msg: InvokeFunction, result: Any, error: dict[str, Any] | None
    ) -> None:
        assert msg.invocation_id is not None
        out = CallResult(msg.invocation_id, msg.function_id, result, error)
        try:
            await self._send(out)
        except (TypeError, ValueError, RecursionError) as e:
            # A result JSON cannot carry (too deep for the encoder): the caller
            # still gets its one answer.
            out.result = None
            out.error = {"code": "serialization_error", "message": clip(str(e))}
            await self._send(out)
