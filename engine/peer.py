"""What the engine asks of a connected worker (``Peer``), in engine terms.

The engine never builds a wire message: it hands a peer an ``Invocation``, a
trigger binding or a ``Rejection``, and the bridge (``api/worker_ws.py``)
turns each into the protocol's message for that worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .core import TriggerBinding


@dataclass(slots=True)
class Invocation:
    """A call the engine hands to the worker that serves ``function_id``."""

    invocation_id: str
    function_id: str  # as the worker knows it
    data: Any
    metadata: Any = None
    traceparent: str | None = None
    baggage: str | None = None
    # observe.v1: who started the call, its observe hops, the observer it
    # activates (``{observer_id, activation_id}``)
    caller: dict[str, Any] | None = None
    observe_depth: int = 0
    activation: dict[str, Any] | None = None


@dataclass(slots=True)
class Rejection:
    """Why a worker's registration is refused (``registrationrejected``)."""

    code: str
    namespace: str
    owner_worker_id: str
    worker_name: str | None = None
    function_id: str | None = None


class Peer(Protocol):
    """A connected worker, as the engine sees it."""

    id: str
    name: str | None
    metadata: dict[str, Any]
    connected_at_ms: int
    inflight: set[str]
    ip: str | None
    # what the connection declared in ``engine::workers::register`` and this
    # engine serves it with (``observe.v1``, ``local-dispatch.v1``)
    features: frozenset[str]

    @property
    def closed(self) -> bool:
        """The connection has ended (its cleanup may still be running)."""

    async def deliver(self, call: Invocation) -> None:
        """Send a call; raise ``EngineError`` (``invocation_stopped``) when the
        connection has ended. The result comes back through ``Engine.resolve``."""

    async def forward_trigger(self, binding: TriggerBinding) -> None:
        """This peer provides ``binding.trigger_type``: activate the binding."""

    async def withdraw_trigger(self, binding: TriggerBinding) -> None:
        """This peer provides ``binding.trigger_type``: drop the binding."""

    async def trigger_refused(self, binding: TriggerBinding, error: Any) -> None:
        """This peer owns ``binding``, and its provider refused it."""

    async def reject(self, rejection: Rejection) -> None:
        """Say why the worker is refused, then close the connection."""

    # observe.v1 (only called for peers with that feature). Small control
    # messages: pushed in order, never waiting for the transport.

    def observer_state(
        self,
        observer_id: str,
        state: str,
        reason: dict[str, str] | None,
        fires: int,
        reply: bool,
    ) -> None:
        """An observer this peer created: its state (``reply``: the answer
        to its ``observe``)."""

    def function_confirmed(
        self,
        function_id: str,
        namespace: str,
        revision: int,
        local_dispatch: bool,
        observers: list[dict[str, Any]],
    ) -> None:
        """A function this peer registered is served, with its observers."""

    def observer_added(
        self, function_id: str, namespace: str, revision: int, observer: dict[str, Any]
    ) -> None:
        """A new observer of a function this peer serves, to acknowledge."""

    def observer_removed(
        self, function_id: str, namespace: str, revision: int, observer_id: str
    ) -> None:
        """An observer of a function this peer serves is gone."""
