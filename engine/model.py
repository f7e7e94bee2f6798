"""The engine's values: a call's context, a registered function, a trigger
binding, and the protocols of what plugs into the engine (trigger providers,
the observers' view of invocations). Pure data: no I/O.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from eventlog import Origin

from .observe_rules import Descriptor, stamp_caller
from .peer import Peer

DEFAULT_NS = "default"
ENQUEUE = "engine::queue::enqueue"  # the queue provider's function
UNKNOWN_CALL = ("", "not_found")  # ``calls`` key of calls to no known function


def trace_id(traceparent: str | None) -> str | None:
    """The trace id of a W3C ``traceparent`` (``00-<32 hex>-<16 hex>-<2 hex>``),
    or None when the value does not have that shape. On every delivered call:
    three index checks and one slice."""
    if (
        traceparent is None
        or len(traceparent) < 55
        or traceparent[2] != "-"
        or traceparent[35] != "-"
        or traceparent[52] != "-"
    ):
        return None
    return traceparent[3:35]


@dataclass(slots=True)
class CallContext:
    function_id: str
    caller: Peer | None = None
    metadata: Any = None
    traceparent: str | None = None
    baggage: str | None = None
    namespace: str | None = None  # where ``function_id`` resolves; None = default
    delivery: bool = False  # a trigger delivery: its writes are tagged (dedupe)
    local_only: bool = False  # forwarded from another node: never forward again
    # observe.v1: the handler the call was made from (as its worker asserts
    # it, or the observed call of an activation), the observe hops so far,
    # and the activation marker of an observer's target call
    caller_ref: dict[str, Any] | None = None
    observe_depth: int = 0
    activation: dict[str, Any] | None = None

    def stamped_caller(self) -> dict[str, Any] | None:
        """Who started the call: the calling connection, then its handler."""
        peer = self.caller
        if peer is None:
            return stamp_caller(None, None, self.caller_ref)
        return stamp_caller(peer.id, peer.name, self.caller_ref)

    def origin(self) -> Origin:
        return Origin(
            worker_id=self.caller.id if self.caller else None,
            function_id=self.function_id,
            trace_id=trace_id(self.traceparent),
        )


Handler = Callable[[Any, CallContext], Awaitable[Any]]


@dataclass(slots=True)
class FunctionEntry:
    id: str
    owner: Peer | None = None  # None: built-in, served by ``handler``
    handler: Handler | None = None
    description: str | None = None
    request_format: Any = None
    response_format: Any = None
    metadata: Any = None
    wire_id: str | None = None  # the id the worker knows it by, when renamed (RBAC)
    observe: Descriptor | None = None  # registerfunction.observe (observe.v1)

    @property
    def worker_name(self) -> str:
        """Its worker's name; else the id's first ``::`` segment, as iii."""
        if self.owner is not None and self.owner.name:
            return self.owner.name
        return self.id.split("::", 1)[0]

    @property
    def internal(self) -> bool:
        return isinstance(self.metadata, dict) and self.metadata.get("internal") is True


@dataclass(slots=True)
class TriggerBinding:
    id: str
    trigger_type: str
    function_id: str
    config: Any
    metadata: Any = None
    owner: Peer | None = None
    state: Any = None  # the provider's own bookkeeping for this binding
    namespace: str | None = None  # where ``function_id`` resolves


class InvocationWatch(Protocol):
    """Sees the invocations of observed functions (``engine/observers.py``)."""

    def watching(self, entry: FunctionEntry) -> bool:
        """Is ``entry`` observed? Called on every invocation: O(1)."""

    async def run(
        self,
        entry: FunctionEntry,
        data: Any,
        ctx: CallContext,
        serve: Callable[[str | None], Awaitable[Any]],
    ) -> Any:
        """Run ``serve(invocation_id)`` and report what happened."""


class TriggerProvider(Protocol):
    """An in-process trigger type (state, http, ...)."""

    async def register(self, binding: TriggerBinding) -> None:
        """Validate and activate; raise ``TriggerRegistrationFailed`` to refuse."""

    async def unregister(self, binding: TriggerBinding) -> None: ...


def now_ms() -> int:
    return int(time.time() * 1000)
