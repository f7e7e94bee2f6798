"""A worker's side of the iii protocol, in memory, for pairing with the engine's
``WorkerSession`` (the way h11's tests pair a client and a server).

Modelled on what iii-sdk 0.25 (Python) puts on the wire and how it reads the
engine's frames: compact JSON, optional fields left out, ``"result": null``
sent explicitly for a handler that returned None, no ``invocation_id`` on a
void call; on input an absent ``result`` reads as None, unknown types are
ignored, and a ``registrationrejected`` other than a function conflict is fatal.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Welcomed:
    """``workerregistered``."""

    worker_id: str
    reattach_token: str | None


@dataclass(frozen=True)
class Returned:
    """The answer to one of our calls (``invocationresult``)."""

    invocation_id: str
    result: Any
    error: Any


@dataclass(frozen=True)
class Called:
    """The engine hands us a call of one of our functions (``invokefunction``)."""

    invocation_id: str | None
    function_id: str
    data: Any
    metadata: Any
    traceparent: str | None
    baggage: str | None


@dataclass(frozen=True)
class TriggerAsked:
    """We provide the type: activate this binding (``registertrigger``)."""

    id: str
    trigger_type: str
    function_id: str
    config: Any
    metadata: Any


@dataclass(frozen=True)
class TriggerWithdrawn:
    """We provide the type: drop this binding (``unregistertrigger``)."""

    id: str
    trigger_type: str | None


@dataclass(frozen=True)
class TriggerFailed:
    """A binding of ours was refused (``triggerregistrationresult``)."""

    id: str
    error: Any


@dataclass(frozen=True)
class Rejected:
    """``registrationrejected``; ``fatal`` when the SDK would stop for good."""

    code: str
    fatal: bool


@dataclass(frozen=True)
class Ponged:
    pass


@dataclass(frozen=True)
class AuthRefused:
    """The RBAC listener's ``error`` frame before it closes."""

    message: str


@dataclass(frozen=True)
class Ignored:
    """A frame the SDK has no handler for."""

    type: Any


ClientEvent = (
    Welcomed
    | Returned
    | Called
    | TriggerAsked
    | TriggerWithdrawn
    | TriggerFailed
    | Rejected
    | Ponged
    | AuthRefused
    | Ignored
)


def _frame(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


@dataclass
class WorkerClient:
    """What one SDK connection sends and how it reads the engine's frames."""

    worker_id: str | None = None
    reattach_token: str | None = None
    failed: bool = False  # after a fatal rejection
    pending: dict[str, str] = field(default_factory=dict)  # invocation -> fn

    # -- frames the worker sends ---------------------------------------------

    def register_function(self, function_id: str, **optional: Any) -> str:
        fields = {k: v for k, v in optional.items() if v is not None}
        return _frame({"type": "registerfunction", "id": function_id, **fields})

    def unregister_function(self, function_id: str) -> str:
        return _frame({"type": "unregisterfunction", "id": function_id})

    def register_trigger_type(self, type_id: str, description: str) -> str:
        return _frame(
            {"type": "registertriggertype", "id": type_id, "description": description}
        )

    def register_trigger(
        self,
        trigger_id: str,
        trigger_type: str,
        function_id: str,
        config: Any = None,
        metadata: Any = None,
    ) -> str:
        message = {
            "type": "registertrigger",
            "id": trigger_id,
            "trigger_type": trigger_type,
            "function_id": function_id,
        }
        if config is not None:
            message["config"] = config
        if metadata is not None:
            message["metadata"] = metadata
        return _frame(message)

    def unregister_trigger(self, trigger_id: str, trigger_type: str) -> str:
        return _frame(
            {
                "type": "unregistertrigger",
                "id": trigger_id,
                "trigger_type": trigger_type,
            }
        )

    def trigger(
        self,
        function_id: str,
        data: Any = None,
        *,
        action: dict[str, Any] | None = None,
        metadata: Any = None,
    ) -> tuple[str | None, str]:
        """A call: (its invocation id, or None for a void call; the frame)."""
        message: dict[str, Any] = {"type": "invokefunction", "function_id": function_id}
        invocation_id = None
        if action is None or action.get("type") != "void":
            invocation_id = str(uuid.uuid4())
            message["invocation_id"] = invocation_id
            self.pending[invocation_id] = function_id
        if data is not None:
            message["data"] = data
        if metadata is not None:
            message["metadata"] = metadata
        if action is not None:
            message["action"] = action
        return invocation_id, _frame(message)

    def register_worker(self, name: str, **extra: Any) -> str:
        """``engine::workers::register``, the SDK's void call on every connect."""
        return self.trigger(
            "engine::workers::register",
            {"runtime": "python", "version": "0.25.0", "name": name, **extra},
            action={"type": "void"},
        )[1]

    def result(self, call: Called, value: Any = None) -> str:
        """The handler's return value; None is sent as an explicit null."""
        assert call.invocation_id is not None
        return _frame(
            {
                "type": "invocationresult",
                "invocation_id": call.invocation_id,
                "function_id": call.function_id,
                "result": value,
            }
        )

    def failure(self, call: Called, code: str, message: str) -> str:
        assert call.invocation_id is not None
        return _frame(
            {
                "type": "invocationresult",
                "invocation_id": call.invocation_id,
                "function_id": call.function_id,
                "error": {"code": code, "message": message},
            }
        )

    def reattach(self, previous: Welcomed) -> str:
        return _frame(
            {
                "type": "reattach",
                "previous_worker_id": previous.worker_id,
                "reattach_token": previous.reattach_token,
            }
        )

    def ping(self) -> str:
        return _frame({"type": "ping"})

    # -- frames the worker receives --------------------------------------------

    def receive(self, frame: bytes) -> ClientEvent:
        data = json.loads(frame)
        kind = data.get("type")
        if kind == "workerregistered":
            self.worker_id = data["worker_id"]
            self.reattach_token = data.get("reattach_token")
            return Welcomed(data["worker_id"], data.get("reattach_token"))
        if kind == "invocationresult":
            invocation_id = data.get("invocation_id", "")
            self.pending.pop(invocation_id, None)
            return Returned(invocation_id, data.get("result"), data.get("error"))
        if kind == "invokefunction":
            return Called(
                data.get("invocation_id"),
                data.get("function_id", ""),
                data.get("data"),
                data.get("metadata"),
                data.get("traceparent"),
                data.get("baggage"),
            )
        if kind == "registertrigger":
            return TriggerAsked(
                data["id"],
                data["trigger_type"],
                data["function_id"],
                data.get("config"),
                data.get("metadata"),
            )
        if kind == "unregistertrigger":
            return TriggerWithdrawn(data["id"], data.get("trigger_type"))
        if kind == "triggerregistrationresult":
            return TriggerFailed(data["id"], data.get("error"))
        if kind == "registrationrejected":
            fatal = data.get("code") != "FUNCTION_NAMESPACE_CONFLICT"
            self.failed = self.failed or fatal
            return Rejected(data.get("code", ""), fatal)
        if kind == "pong":
            return Ponged()
        if kind == "error":
            return AuthRefused(data["error"]["message"])
        return Ignored(kind)
