"""The observe.v1 family of the worker protocol: its messages, both directions.

Pure, like ``api/protocol.py``, which puts the incoming models here into its
union. They are lenient: an ``observe`` is accepted whatever its source and
target hold, so the engine can answer a malformed one with an error the
worker sees (``observeresult``) instead of dropping the frame. Only connections
that declared ``observe.v1`` are sent the outgoing ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from engine.observers import LOCAL_DISPATCH_V1, OBSERVE_V1

# What the engine supports: sent in every ``workerregistered``. A connection
# gets the observe messages only if it listed the feature too.
ENGINE_FEATURES = (OBSERVE_V1, LOCAL_DISPATCH_V1)


class _Msg(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# -- incoming (worker → engine) ------------------------------------------------


class Observe(_Msg):
    """Create an observer, or replay it (same ``id``) on a new connection."""

    type: Literal["observe"]
    id: str
    source: Any = None
    target: Any = None
    metadata: Any = None
    max_fires: Any = None
    expires_in_ms: Any = None
    max_in_flight: Any = None


class Unobserve(_Msg):
    type: Literal["unobserve"]
    id: str


class ObserverAck(_Msg):
    """The owner of an observed function accepts (or rejects) an observer."""

    type: Literal["observerack"]
    function_id: str
    id: str
    namespace: str | None = None
    revision: int = 0
    error: Any = None


class ObservedItem(_Msg):
    """One item of ``invocationsobserved``. ``input``, ``output``, ``error``
    and ``metadata`` tell null from absent: see ``parts``."""

    function_id: str
    invocation_id: str
    namespace: str | None = None
    matched: list[str] = []
    status: str = "success"
    input: Any = None
    output: Any = None
    error: Any = None
    caller: Any = None
    metadata: Any = None
    started_at_ms: float = 0
    duration_ms: float = 0.0
    observe_depth: int = 0

    def parts(self) -> dict[str, Any]:
        sent = self.model_fields_set
        out = {k: getattr(self, k) for k in ("input", "output", "error", "metadata")}
        out = {k: v for k, v in out.items() if k in sent}
        if isinstance(self.caller, dict):
            out["caller"] = self.caller
        return out


class InvocationsObserved(_Msg):
    """Local invocations of auto functions an owner matched, and the events
    owners emitted (``obs.emit``)."""

    type: Literal["invocationsobserved"]
    items: list[ObservedItem] = []


class LocalInvocationStats(_Msg):
    """Counts of the calls a worker ran in-process (local dispatch)."""

    type: Literal["localinvocationstats"]
    window_ms: int = 0
    functions: list[dict[str, Any]] = []
    dropped_reports: list[dict[str, Any]] = []


ObserveMessage = (
    Observe | Unobserve | ObserverAck | InvocationsObserved | LocalInvocationStats
)


# -- outgoing (engine → worker) ------------------------------------------------


@dataclass(slots=True)
class ObserveResult:
    """The answer to ``observe``: the observer's state now."""

    type: ClassVar[str] = "observeresult"
    id: str
    state: str
    error: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "id": self.id, "state": self.state}
        if self.error is not None:
            out["error"] = self.error
        return out


@dataclass(slots=True)
class ObserverStateChanged:
    type: ClassVar[str] = "observerstatechanged"
    id: str
    state: str
    fires: int
    reason: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            "id": self.id,
            "state": self.state,
            "fires": self.fires,
        }
        if self.reason is not None:
            out["reason"] = self.reason
        return out


@dataclass(slots=True)
class FunctionRegistered:
    """The ``registerfunction`` ack, with every observer the owner must
    acknowledge, and whether it may run its own calls of it in-process."""

    type: ClassVar[str] = "functionregistered"
    id: str
    namespace: str
    revision: int
    local_dispatch: bool
    observers: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "id": self.id,
            "namespace": self.namespace,
            "revision": self.revision,
            "local_dispatch": self.local_dispatch,
            "observers": self.observers,
        }


@dataclass(slots=True)
class ObserverAdded:
    type: ClassVar[str] = "observeradded"
    function_id: str
    namespace: str
    revision: int
    observer: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "function_id": self.function_id,
            "namespace": self.namespace,
            "revision": self.revision,
            "observer": self.observer,
        }


@dataclass(slots=True)
class ObserverRemoved:
    type: ClassVar[str] = "observerremoved"
    function_id: str
    namespace: str
    revision: int
    id: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "function_id": self.function_id,
            "namespace": self.namespace,
            "revision": self.revision,
            "id": self.id,
        }


ObserveOutgoing = (
    ObserveResult
    | ObserverStateChanged
    | FunctionRegistered
    | ObserverAdded
    | ObserverRemoved
)
