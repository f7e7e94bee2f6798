"""The iii worker protocol: message models, frame parsing and encoding.

Pure: no aiohttp, no sockets, no engine. Incoming (worker → engine) messages
are pydantic models in one discriminated union, decoded by ``parse_frame``;
unknown fields are ignored and ``null`` reads as absent. Outgoing (engine →
worker) messages are slotted dataclasses with an explicit ``to_dict``: one is
built for every call and reply, so they cost no validation.

ProtocolError          base of the protocol's errors
├── FrameError         a frame we cannot use (``reason``): dropped, socket open
└── SessionClosed      sending on a session that has ended
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from eventlog.codec import dumps_bytes, loads

from .protocol_observe import ObserveMessage, ObserveOutgoing

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# A peer's strings (types, function ids) can be megabytes long; what we log of
# them is cut to this many characters.
LOG_CLIP = 200


def clip(text: str, limit: int = LOG_CLIP) -> str:
    """``text`` cut to ``limit`` characters for a log line, marked when cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} chars)"


class CloseCode(IntEnum):
    GOING_AWAY = 1001


class DropReason(StrEnum):
    """Why a frame was dropped (the connection stays open in every case)."""

    MALFORMED_JSON = "malformed JSON"
    TOO_DEEP = "nested too deeply"
    NOT_AN_OBJECT = "not a JSON object"
    NO_TYPE = "missing or invalid type"
    INVALID = "invalid message"
    UNKNOWN_TYPE = "unknown message type"


class ProtocolError(Exception):
    """Base of the protocol's errors."""


class FrameError(ProtocolError):
    """A frame we cannot use. ``detail`` is short enough to log."""

    def __init__(self, reason: DropReason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else str(reason))
        self.reason = reason
        self.detail = detail


class SessionClosed(ProtocolError):
    """A message was to be sent on a session that has ended."""


# -- incoming (worker → engine) ------------------------------------------------


class _Msg(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class RegisterFunction(_Msg):
    type: Literal["registerfunction"]
    id: Annotated[str, Field(min_length=1)]
    description: str | None = None
    request_format: Any = None
    response_format: Any = None
    metadata: Any = None
    invocation: dict[str, Any] | None = None
    observe: Any = (
        None  # observe.v1: {delivery, args_format, legacy_trigger_type, allow}
    )


class UnregisterFunction(_Msg):
    type: Literal["unregisterfunction"]
    id: str


class InvokeFunction(_Msg):
    type: Literal["invokefunction"]
    function_id: str
    data: Any = None
    invocation_id: str | None = None
    action: dict[str, Any] | None = None
    metadata: Any = None
    namespace: str | None = None
    traceparent: str | None = None
    baggage: str | None = None
    # observe.v1: the handler the call is made from, the observe hops so far,
    # and the observer of an owner's ``obs.call``
    caller: Any = None
    observe_depth: Any = None
    activation: Any = None
    # iiilog, node to node only: the call is a trigger delivery (tag its writes)
    iiilog_delivery: bool = False

    @property
    def action_type(self) -> str | None:
        return None if self.action is None else str(self.action.get("type"))


class InvocationResult(_Msg):
    type: Literal["invocationresult"]
    invocation_id: str
    function_id: str | None = None
    result: Any = None
    error: Any = None


class RegisterTrigger(_Msg):
    type: Literal["registertrigger"]
    id: str
    trigger_type: str
    function_id: str
    config: Any = None
    metadata: Any = None
    namespace: str | None = None


class UnregisterTrigger(_Msg):
    type: Literal["unregistertrigger"]
    id: str
    trigger_type: str | None = None


class TriggerRegistrationResult(_Msg):
    type: Literal["triggerregistrationresult"]
    id: str
    trigger_type: str | None = None
    function_id: str | None = None
    error: Any = None


class RegisterTriggerType(_Msg):
    type: Literal["registertriggertype"]
    id: str
    description: str | None = None
    trigger_request_format: Any = None
    call_request_format: Any = None


class UnregisterTriggerType(_Msg):
    type: Literal["unregistertriggertype"]
    id: str


class RegisterService(_Msg):
    type: Literal["registerservice"]
    id: str
    name: str | None = None
    description: str | None = None


class Reattach(_Msg):
    type: Literal["reattach"]
    previous_worker_id: str | None = None
    reattach_token: str | None = None


class Ping(_Msg):
    type: Literal["ping"]


class Pong(_Msg):
    type: Literal["pong"]


IncomingMessage = (
    RegisterFunction
    | UnregisterFunction
    | InvokeFunction
    | InvocationResult
    | RegisterTrigger
    | UnregisterTrigger
    | TriggerRegistrationResult
    | RegisterTriggerType
    | UnregisterTriggerType
    | RegisterService
    | Reattach
    | Ping
    | Pong
    | ObserveMessage
)
Message = Annotated[IncomingMessage, Field(discriminator="type")]
_MESSAGE: TypeAdapter[IncomingMessage] = TypeAdapter(Message)
KNOWN_TYPES = frozenset(
    get_args(model.model_fields["type"].annotation)[0]
    for model in get_args(IncomingMessage)
)


def parse_frame(frame: str | bytes) -> IncomingMessage:
    """Decode one frame into its message. Raises ``FrameError`` otherwise."""
    if not frame or (isinstance(frame, str) and not frame.strip()):
        raise FrameError(DropReason.MALFORMED_JSON, "empty frame")
    try:
        raw = loads(frame)
    except RecursionError:
        # orjson stops at 1024 levels; the stdlib decoder it falls back to
        # gives up at the interpreter's recursion limit.
        raise FrameError(DropReason.TOO_DEEP) from None
    except ValueError as e:
        raise FrameError(DropReason.MALFORMED_JSON, clip(str(e))) from None
    if not isinstance(raw, dict):
        raise FrameError(DropReason.NOT_AN_OBJECT, type(raw).__name__)
    kind = raw.get("type")
    if not isinstance(kind, str):
        raise FrameError(DropReason.NO_TYPE)
    if kind not in KNOWN_TYPES:
        raise FrameError(DropReason.UNKNOWN_TYPE, repr(clip(kind)))
    # null means absent: drop explicit nulls so defaults apply.
    cleaned = {k: v for k, v in raw.items() if v is not None}
    try:
        return _MESSAGE.validate_python(cleaned)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or "message"
        detail = clip(f"{kind}: {where}: {first['msg']}")
        raise FrameError(DropReason.INVALID, detail) from None


# -- outgoing (engine → worker) ------------------------------------------------
# Optional fields are left out rather than sent as null (spec §0).


@dataclass(slots=True)
class WorkerRegistered:
    """Sent right after the upgrade: the connection's id, its reattach secret
    and the features the engine offers it (used only if it declares them too)."""

    type: ClassVar[str] = "workerregistered"
    worker_id: str
    reattach_token: str
    features: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "workerregistered",
            "worker_id": self.worker_id,
            "reattach_token": self.reattach_token,
        }
        if self.features:
            out["features"] = list(self.features)
        return out


@dataclass(slots=True)
class CallDelivery:
    """``invokefunction``: a call the engine hands to the worker serving it."""

    type: ClassVar[str] = "invokefunction"
    invocation_id: str
    function_id: str
    data: Any
    metadata: Any = None
    traceparent: str | None = None
    baggage: str | None = None
    # observe.v1 connections only: who started it, observe hops, the observer
    caller: dict[str, Any] | None = None
    observe_depth: int = 0
    activation: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "invokefunction",
            "invocation_id": self.invocation_id,
            "function_id": self.function_id,
            "data": self.data,
        }
        if self.metadata is not None:
            out["metadata"] = self.metadata
        if self.traceparent:
            out["traceparent"] = self.traceparent
        if self.baggage:
            out["baggage"] = self.baggage
        if self.caller is not None:
            out["caller"] = self.caller
        if self.observe_depth:
            out["observe_depth"] = self.observe_depth
        if self.activation is not None:
            out["activation"] = self.activation
        return out


@dataclass(slots=True)
class CallResult:
    """``invocationresult``: the answer to a worker's call.

    A ``None`` result leaves the ``result`` key out (as iii does); both SDKs
    read the missing key as null, and Node's tests expect it missing.
    """

    type: ClassVar[str] = "invocationresult"
    invocation_id: str
    function_id: str
    result: Any = None
    error: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "invocationresult",
            "invocation_id": self.invocation_id,
            "function_id": self.function_id,
        }
        if self.error is not None:
            out["error"] = self.error
        elif self.result is not None:
            out["result"] = self.result
        return out


@dataclass(slots=True)
class TriggerForward:
    """``registertrigger`` to the worker providing the binding's type."""

    type: ClassVar[str] = "registertrigger"
    id: str
    trigger_type: str
    function_id: str
    config: Any = None
    metadata: Any = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "registertrigger",
            "id": self.id,
            "trigger_type": self.trigger_type,
            "function_id": self.function_id,
        }
        if self.config is not None:
            out["config"] = self.config
        if self.metadata is not None:
            out["metadata"] = self.metadata
        return out


@dataclass(slots=True)
class TriggerWithdraw:
    """``unregistertrigger`` to the provider; the id is the one it was given,
    ``function_id`` and ``config`` help providers that keep no state."""

    type: ClassVar[str] = "unregistertrigger"
    id: str
    trigger_type: str
    function_id: str
    config: Any = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "unregistertrigger",
            "id": self.id,
            "trigger_type": self.trigger_type,
            "function_id": self.function_id,
        }
        if self.config is not None:
            out["config"] = self.config
        return out


@dataclass(slots=True)
class TriggerRefused:
    """``triggerregistrationresult`` with an error, to the binding's owner."""

    type: ClassVar[str] = "triggerregistrationresult"
    id: str
    trigger_type: str
    function_id: str
    error: Any

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "triggerregistrationresult",
            "id": self.id,
            "trigger_type": self.trigger_type,
            "function_id": self.function_id,
            "error": self.error,
        }


@dataclass(slots=True)
class RegistrationRejected:
    """``registrationrejected``; ``WORKER_NAMESPACE_CONFLICT`` is fatal in the
    SDK (it never reconnects), so the engine closes the socket after it."""

    type: ClassVar[str] = "registrationrejected"
    code: str
    namespace: str
    owner_worker_id: str
    worker_name: str | None = None
    function_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "registrationrejected",
            "code": self.code,
            "namespace": self.namespace,
            "owner_worker_id": self.owner_worker_id,
        }
        if self.worker_name is not None:
            out["worker_name"] = self.worker_name
        if self.function_id is not None:
            out["function_id"] = self.function_id
        return out


@dataclass(slots=True)
class PongReply:
    """The answer to a JSON ``ping``."""

    type: ClassVar[str] = "pong"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "pong"}


@dataclass(slots=True)
class AuthFailed:
    """The one frame an RBAC listener sends before closing a refused socket."""

    type: ClassVar[str] = "error"
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "error",
            "error": {"code": "AUTH_ERROR", "message": self.message},
        }


@dataclass(slots=True)
class NodeCall:
    """``invokefunction`` from one engine node to another (the calling node is
    the worker here): a call for a function one of the other node's workers
    serves, with its namespace and whether it is a trigger delivery."""

    type: ClassVar[str] = "invokefunction"
    call: CallDelivery
    namespace: str | None
    delivery: bool

    def to_dict(self) -> dict[str, Any]:
        out = self.call.to_dict()
        if self.namespace is not None:
            out["namespace"] = self.namespace
        if self.delivery:
            out["iiilog_delivery"] = True
        return out


Outgoing = (
    WorkerRegistered
    | CallDelivery
    | NodeCall
    | CallResult
    | TriggerForward
    | TriggerWithdraw
    | TriggerRefused
    | RegistrationRejected
    | PongReply
    | AuthFailed
    | ObserveOutgoing
)


def encode(message: Outgoing) -> bytes:
    """Compact UTF-8 JSON, never ``\\uXXXX`` escapes (spec §1.3)."""
    return dumps_bytes(message.to_dict())


def text_frame(payload: bytes) -> bytes:
    """One unmasked, final WebSocket text frame (RFC 6455 §5.2), as a server
    sends it: opcode 0x1, then the 7-bit, 16-bit or 64-bit payload length."""
    n = len(payload)
    if n < 126:
        head = bytes((0x81, n))
    elif n < 1 << 16:
        head = bytes((0x81, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x81, 127)) + n.to_bytes(8, "big")
    return head + payload
