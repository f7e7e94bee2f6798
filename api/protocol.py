"""The iii worker protocol: message models and frame parsing.

Sans-IO, in the manner of h11: no aiohttp import, no sockets. ``parse_frame``
turns one text/binary frame into a typed message (``UnknownMessage`` for a type
we do not handle) or raises ``ProtocolError``; ``encode`` turns an outbound dict
into a compact UTF-8 JSON text frame. Unknown fields are ignored, ``null`` reads
as absent (spec/worker-protocol.md §0).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from eventlog.codec import dumps, loads

MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class CloseCode(IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001
    INTERNAL_ERROR = 1011


class ProtocolError(Exception):
    """A frame we cannot use; the edge logs it and keeps the socket open."""

    close_code = None


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


class UnknownMessage(_Msg):
    """A well-formed frame whose ``type`` we do not handle: logged and dropped."""

    type: str


Message = Annotated[
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
    | Pong,
    Field(discriminator="type"),
]
_MESSAGE = TypeAdapter(Message)
KNOWN_TYPES = frozenset(
    m.model_fields["type"].annotation.__args__[0]  # type: ignore[union-attr]
    for m in (
        RegisterFunction,
        UnregisterFunction,
        InvokeFunction,
        InvocationResult,
        RegisterTrigger,
        UnregisterTrigger,
        TriggerRegistrationResult,
        RegisterTriggerType,
        UnregisterTriggerType,
        RegisterService,
        Reattach,
        Ping,
        Pong,
    )
)
AnyMessage = Message | UnknownMessage


def parse_frame(frame: str | bytes) -> AnyMessage:
    """Decode one frame. Raises ``ProtocolError`` for anything unusable."""
    if not frame or (isinstance(frame, str) and not frame.strip()):
        raise ProtocolError("empty frame")
    try:
        raw = loads(frame)
    except ValueError as e:
        raise ProtocolError(f"malformed JSON: {e}") from e
    if not isinstance(raw, dict):
        raise ProtocolError("a message must be a JSON object")
    kind = raw.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("a message needs a string `type`")
    if kind not in KNOWN_TYPES:
        return UnknownMessage(type=kind)
    # null means absent: drop explicit nulls so defaults apply.
    cleaned = {k: v for k, v in raw.items() if v is not None}
    try:
        return _MESSAGE.validate_python(cleaned)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or "message"
        raise ProtocolError(f"invalid {kind}: {where}: {first['msg']}") from e


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


def encode(message: dict[str, Any]) -> str:
    """Compact UTF-8 JSON; optional fields should already be left out."""
    return dumps(message)


def error_body(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}
