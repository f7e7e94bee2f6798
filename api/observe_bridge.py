"""The observe.v1 side of a worker connection (``ObservingPeer``, a mixin of
``api/worker_ws.WorkerConnection``).

It turns the engine's observe notices into this protocol's messages and the
connection's observe messages into calls on ``engine/observers.py``. A
connection is offered the features in ``workerregistered`` and uses them only
once it declares them in its ``engine::workers::register`` call; until then it
gets nothing of the family, and its calls carry no ``caller`` fields.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from engine.core import DEFAULT_NS, CallContext, Engine
from engine.observe_rules import clean_caller, observed_item
from engine.observers import OBSERVE_V1
from engine.peer import Peer

from .protocol import InvokeFunction, Outgoing
from .protocol_observe import (
    FunctionRegistered,
    InvocationsObserved,
    Observe,
    ObserverAck,
    ObserverAdded,
    ObserveResult,
    ObserverRemoved,
    ObserverStateChanged,
    Unobserve,
)

if TYPE_CHECKING:
    from .worker_ws import Listener


class ObservingPeer:
    """Needs the connection's ``engine``, ``listener``, ``namespace`` and
    ``_push``; keeps what the connection was offered and declared."""

    engine: Engine
    listener: Listener
    id: str
    offered: tuple[str, ...]
    features: frozenset[str]

    @property
    def namespace(self) -> str:
        raise NotImplementedError

    def _push(self, message: Outgoing) -> None:
        raise NotImplementedError

    # observe.v1: small control frames, pushed in order without waiting

    def observer_state(
        self,
        observer_id: str,
        state: str,
        reason: dict[str, str] | None,
        fires: int,
        reply: bool,
    ) -> None:
        if reply:
            self._push(ObserveResult(observer_id, state, reason))
        else:
            self._push(ObserverStateChanged(observer_id, state, fires, reason))

    def function_confirmed(
        self,
        function_id: str,
        namespace: str,
        revision: int,
        local_dispatch: bool,
        observers: list[dict[str, Any]],
    ) -> None:
        self._push(
            FunctionRegistered(
                function_id, namespace, revision, local_dispatch, observers
            )
        )

    def observer_added(
        self, function_id: str, namespace: str, revision: int, observer: dict[str, Any]
    ) -> None:
        self._push(ObserverAdded(function_id, namespace, revision, observer))

    def observer_removed(
        self, function_id: str, namespace: str, revision: int, observer_id: str
    ) -> None:
        self._push(ObserverRemoved(function_id, namespace, revision, observer_id))

    # -- from the connection's frames ------

    def _observe_fields(self, msg: InvokeFunction, ctx: CallContext) -> bool:
        """The observe fields of a call, from a connection that declared
        observe.v1 (ignored from others); True for such a connection."""
        if OBSERVE_V1 not in self.features:
            return False
        if msg.caller is not None:
            ctx.caller_ref = clean_caller(msg.caller)
        depth = msg.observe_depth
        if isinstance(depth, int) and not isinstance(depth, bool) and depth > 0:
            ctx.observe_depth = depth
        return True

    def _declare(self, data: Any) -> None:
        """The features a connection declares ride on its metadata call; they
        are read here, in frame order, so what it sends next finds them."""
        declared = data.get("features") if isinstance(data, dict) else None
        if isinstance(declared, list) and self.offered:
            self.features = frozenset(f for f in declared if f in self.offered)

    def _observe_control(self, event: Observe | Unobserve | ObserverAck) -> None:
        observers = self.listener.observers
        if observers is None:
            return
        peer = cast(Peer, self)
        match event:
            case Observe():
                options = {
                    "metadata": event.metadata,
                    "max_fires": event.max_fires,
                    "expires_in_ms": event.expires_in_ms,
                    "max_in_flight": event.max_in_flight,
                }
                observers.observe(peer, event.id, event.source, event.target, options)
            case Unobserve():
                observers.unobserve(peer, event.id)
            case ObserverAck():
                observers.ack(
                    peer,
                    event.function_id,
                    event.namespace,
                    event.id,
                    event.error,
                )

    def _observed(self, event: InvocationsObserved) -> None:
        observers = self.listener.observers
        if observers is None or OBSERVE_V1 not in self.features:
            return
        items = []
        for item in event.items:
            event_ = observed_item(
                item.function_id,
                item.namespace,
                item.invocation_id,
                item.status,
                item.parts(),
                item.started_at_ms,
                item.duration_ms,
                item.observe_depth,
            )
            items.append((item.function_id, item.namespace, item.matched, event_))
        observers.reported(cast(Peer, self), items)

    def _confirm(self, function_id: str) -> None:
        """Tell the observers a function of this connection is registered."""
        observers = self.listener.observers
        if observers is None:
            return
        ns = self.namespace
        table = (
            self.engine.functions
            if ns == DEFAULT_NS
            else self.engine.namespaced.get(ns)
        )
        served = table.served(function_id) if table is not None else []
        peer = cast(Peer, self)
        mine = [e for e in served if e.owner is peer]
        if mine:
            observers.function_registered(peer, mine[-1])
