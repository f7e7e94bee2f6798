"""Observers in the engine: the driver of the pure ``ObserverBook``.

It feeds the book what happens (observe messages, registrations, acks, owner
reports, routed invocations, the clock) and carries out what the book answers:
peers are told through their typed ``Peer`` methods, activations run as
ordinary invocations of the target in tasks the engine owns. Deliveries are not
durable: an observed invocation is not a record of the log (docs/observe.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from eventlog import wait_event

from .core import DEFAULT_NS, CallContext, Engine, FunctionEntry, now_ms
from .errors import EngineError
from .ids import random_uuid
from .observe_book import ObserverBook
from .observe_effects import (
    Activation,
    Added,
    Effect,
    Observer,
    Refused,
    Removed,
    Run,
    Source,
    Status,
)
from .observe_legacy import LegacyShim
from .observe_rules import (
    PLAIN,
    Event,
    FnKey,
    ObserveError,
    parse_observe,
)
from .peer import Peer

log = logging.getLogger("iiilog.observe")

OBSERVE_V1 = "observe.v1"
LOCAL_DISPATCH_V1 = "local-dispatch.v1"


def peer_namespace(peer: Peer | None) -> str:
    if peer is None:
        return DEFAULT_NS
    return peer.metadata.get("namespace") or DEFAULT_NS


def entry_key(entry: FunctionEntry) -> FnKey:
    return (peer_namespace(entry.owner), entry.id)


class _Registry:
    """The book's ``World``: the engine's function tables, read only."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _served(self, key: FnKey) -> list[FunctionEntry]:
        ns, function_id = key
        table = (
            self.engine.functions
            if ns == DEFAULT_NS
            else self.engine.namespaced.get(ns)
        )
        return table.served(function_id) if table is not None else []

    def source(self, key: FnKey) -> Source | None:
        served = self._served(key)
        if not served:
            return None
        needs_ack = any(
            e.owner is not None and OBSERVE_V1 in e.owner.features for e in served
        )
        return Source(served[-1].observe or PLAIN, needs_ack)

    def target_exists(self, key: FnKey) -> bool:
        return bool(self._served(key))


class Observers:
    def __init__(self, engine: Engine, book: ObserverBook | None = None) -> None:
        self.engine = engine
        self.book = book or ObserverBook()
        self.world = _Registry(engine)
        self.ready: set[str] = set()  # peers whose worker metadata arrived
        self.legacy = LegacyShim(self)
        self.local_stats: dict[str, dict[str, Any]] = {}
        self._refresh_due = False
        self._wake = asyncio.Event()
        self._timer: asyncio.Task[None] | None = None

    # -- carrying out effects ------

    def apply(self, effects: list[Effect]) -> None:
        workers = self.engine.workers
        for effect in effects:
            match effect:
                case Status(peer_id, observer_id, state, reason, fires, reply):
                    peer = workers.get(peer_id)
                    if peer is not None and not peer.closed:
                        peer.observer_state(observer_id, state, reason, fires, reply)
                case Added(peer_id, (ns, fid), revision, info):
                    peer = workers.get(peer_id)
                    if peer is not None and not peer.closed:
                        peer.observer_added(fid, ns, revision, info)
                case Removed(peer_id, (ns, fid), revision, observer_id):
                    peer = workers.get(peer_id)
                    if peer is not None and not peer.closed:
                        peer.observer_removed(fid, ns, revision, observer_id)
                case Refused(binding_id, error):
                    binding = self.engine.triggers.get(binding_id)
                    if binding is not None and binding.owner is not None:
                        self.engine.spawn(
                            binding.owner.trigger_refused(binding, error),
                            name=f"observe:refused:{binding_id}",
                        )
                case Run(act):
                    self.engine.spawn(
                        self._run(act), name=f"observe:{act.activation_id}"
                    )
        self._wake.set()

    async def _invoke_target(self, act: Activation) -> Any:
        ns, function_id = act.target
        ctx = CallContext(
            function_id=function_id,
            metadata=act.observer.spec.metadata,
            namespace=ns,
            caller_ref=act.caller,
            observe_depth=act.observe_depth,
            activation=act.marker(),
        )
        return await self.engine.invoke(function_id, act.payload, ctx)

    async def _run(self, act: Activation) -> None:
        ok = False
        try:
            await self._invoke_target(act)
            ok = True
        except EngineError as e:
            log.info("observer %s: target failed: %s", act.observer.spec.id, e)
        finally:
            self.apply(self.book.done(act, ok))

    # -- the clock ------

    def start(self) -> None:
        if self._timer is None:
            self._timer = self.engine.spawn(self._clock(), name="observe:clock")

    async def _clock(self) -> None:
        while True:
            self._wake.clear()
            deadline = self.book.next_deadline()
            if deadline is None:
                await self._wake.wait()
                continue
            delay = (deadline - now_ms()) / 1000
            if delay > 0 and await wait_event(self._wake, delay):
                continue
            self.apply(self.book.tick(now_ms()))

    # -- the registry ------

    def on_engine_event(self, event: str, worker_id: str | None) -> None:
        if event == "worker_metadata_updated" and worker_id is not None:
            peer = self.engine.workers.get(worker_id)
            if peer is not None and OBSERVE_V1 in peer.features:
                self.ready.add(worker_id)
                ns = peer_namespace(peer)
                table = (
                    self.engine.functions
                    if ns == DEFAULT_NS
                    else self.engine.namespaced.get(ns)
                )
                for entry in table.owned_by(peer) if table is not None else []:
                    self._confirm(peer, entry)
        elif event == "worker_disconnected" and worker_id is not None:
            self.ready.discard(worker_id)
            effects: list[Effect] = []
            for key, owners in list(self.book.confirmed.items()):
                if worker_id in owners:
                    effects += self.book.function_left(key, worker_id, self.world)
            effects += self.book.peer_left(worker_id, self.world, now_ms())
            self.apply(effects)
            self._schedule_refresh()
        elif event == "functions_changed":
            self._schedule_refresh()

    def _schedule_refresh(self) -> None:
        if not self._refresh_due:
            self._refresh_due = True
            asyncio.get_running_loop().call_soon(self._refresh)

    def _refresh(self) -> None:
        self._refresh_due = False
        self.legacy.prune()
        self.apply(self.book.refresh(self.world))

    def function_registered(self, peer: Peer, entry: FunctionEntry) -> None:
        """A worker's function landed in the registry (the bridge tells)."""
        descriptor = entry.observe
        if descriptor is not None and descriptor.legacy_trigger_type is not None:
            self.legacy.declared(descriptor.legacy_trigger_type, entry_key(entry))
        if peer.id in self.ready:
            self._confirm(peer, entry)

    def function_unregistered(self, peer: Peer, function_id: str) -> None:
        key = (peer_namespace(peer), function_id)
        self.apply(self.book.function_left(key, peer.id, self.world))

    def _confirm(self, peer: Peer, entry: FunctionEntry) -> None:
        key = entry_key(entry)
        revision, infos, effects = self.book.function_confirmed(
            key, peer.id, self.world
        )
        local = LOCAL_DISPATCH_V1 in peer.features
        peer.function_confirmed(entry.id, key[0], revision, local, infos)
        self.apply(effects)

    # -- messages from workers ------

    def observe(
        self,
        peer: Peer,
        observer_id: str,
        source: Any,
        target: Any,
        options: dict[str, Any],
    ) -> None:
        if OBSERVE_V1 not in peer.features:
            unsupported = {
                "code": "UNSUPPORTED",
                "message": "declare observe.v1 in engine::workers::register first",
            }
            peer.observer_state(observer_id, "error", unsupported, 0, True)
            return
        try:
            spec = parse_observe(
                observer_id, source, target, home=peer_namespace(peer), **options
            )
        except ObserveError as e:
            peer.observer_state(observer_id, "error", e.body(), 0, True)
            return
        self.apply(self.book.observe(spec, peer.id, self.world, now_ms()))

    def unobserve(self, peer: Peer, observer_id: str) -> None:
        self.apply(self.book.unobserve(observer_id, peer.id))

    def ack(
        self,
        peer: Peer,
        function_id: str,
        namespace: str | None,
        observer_id: str,
        error: Any,
    ) -> None:
        key = (namespace or peer_namespace(peer), function_id)
        body = None
        if error:
            body = {
                "code": str(error.get("code") or "OBSERVE_REJECTED")
                if isinstance(error, dict)
                else "OBSERVE_REJECTED",
                "message": str(error.get("message") or "")
                if isinstance(error, dict)
                else str(error),
            }
        self.apply(self.book.ack(key, peer.id, observer_id, body, self.world))

    def reported(
        self, peer: Peer, items: list[tuple[str, str | None, list[str], Event]]
    ) -> None:
        """``invocationsobserved``: (function id, namespace, matched, event)."""
        now = now_ms()
        effects: list[Effect] = []
        for function_id, namespace, matched, event in items:
            key = (namespace or peer_namespace(peer), function_id)
            event.namespace = key[0]
            effects += self.book.reported(key, peer.id, matched, event, now)
        self.apply(effects)

    def local_invocations(
        self, functions: list[dict[str, Any]], dropped: list[dict[str, Any]]
    ) -> None:
        """``localinvocationstats``: totals per function, for introspection."""
        for row in functions:
            stats = self._stats(row.get("function_id"))
            if stats is not None:
                for name in ("count", "errors", "duration_ms_sum"):
                    value = row.get(name)
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        stats[name] += value
        for row in dropped:
            stats = self._stats(row.get("function_id"))
            count, reason = row.get("count"), row.get("reason")
            if stats is not None and isinstance(count, int) and isinstance(reason, str):
                stats["dropped_reports"][reason] = (
                    stats["dropped_reports"].get(reason, 0) + count
                )

    def _stats(self, function_id: Any) -> dict[str, Any] | None:
        if not isinstance(function_id, str):
            return None
        if function_id not in self.local_stats and len(self.local_stats) >= 10_000:
            return None
        return self.local_stats.setdefault(
            function_id,
            {"count": 0, "errors": 0, "duration_ms_sum": 0.0, "dropped_reports": {}},
        )

    async def owner_call(
        self, peer: Peer, marker: Any, data: Any, ctx: CallContext
    ) -> Any:
        """``obs.call``: an invocation of an observer's target by the owner
        of the observed function; answered with the target's result."""
        observer_id = marker.get("observer_id") if isinstance(marker, dict) else None
        if not isinstance(observer_id, str):
            raise EngineError("INVALID_ARGUMENTS", "activation.observer_id is required")
        outcome, effects = self.book.owner_call(
            observer_id,
            peer.id,
            data,
            ctx.stamped_caller(),
            ctx.observe_depth,
            now_ms(),
        )
        self.apply(effects)
        if isinstance(outcome, ObserveError):
            raise EngineError(outcome.code, outcome.message)
        ok = False
        try:
            result = await self._invoke_target(outcome)
            ok = True
            return result
        finally:
            self.apply(self.book.done(outcome, ok))

    # -- routed invocations (the engine's InvocationWatch) --------------------------

    def watching(self, entry: FunctionEntry) -> bool:
        by_source = self.book.by_source
        return bool(by_source) and entry_key(entry) in by_source

    async def run(
        self,
        entry: FunctionEntry,
        data: Any,
        ctx: CallContext,
        serve: Callable[[str | None], Awaitable[Any]],
    ) -> Any:
        """An auto-delivered function called through the engine: the engine
        evaluates its observers (an owner reports the calls it runs itself)."""
        if (entry.observe or PLAIN).delivery != "auto":
            return await serve(None)
        invocation_id = random_uuid()
        started, t0 = now_ms(), time.perf_counter()
        parts: dict[str, Any] = {"input": data}
        try:
            result = await serve(invocation_id)
        except EngineError as e:
            parts["error"] = e.body()
            self._routed(entry, ctx, invocation_id, "error", parts, started, t0)
            raise
        parts["output"] = result
        self._routed(entry, ctx, invocation_id, "success", parts, started, t0)
        return result

    def _routed(
        self,
        entry: FunctionEntry,
        ctx: CallContext,
        invocation_id: str,
        status: str,
        parts: dict[str, Any],
        started: int,
        t0: float,
    ) -> None:
        caller = ctx.stamped_caller()
        if caller is not None:
            parts["caller"] = caller
        if ctx.metadata is not None:
            parts["metadata"] = ctx.metadata
        key = entry_key(entry)
        duration = (time.perf_counter() - t0) * 1000
        event = Event(
            entry.id,
            key[0],
            invocation_id,
            status,
            parts,
            started,
            duration,
            ctx.observe_depth,
        )
        self.apply(self.book.routed(key, event, now_ms()))

    # -- introspection ------

    def install_builtins(self) -> None:
        async def get(data: Any, ctx: CallContext) -> Any:
            observer_id = data.get("id") if isinstance(data, dict) else None
            obs = (
                self.book.observers.get(observer_id)
                if isinstance(observer_id, str)
                else None
            )
            if obs is None:
                raise EngineError("NOT_FOUND", f"Observer {observer_id} not found")
            return {"observer": observer_view(obs)}

        async def list_all(data: Any, ctx: CallContext) -> Any:
            opts = data if isinstance(data, dict) else {}
            function_id = opts.get("function_id")
            views = [
                observer_view(o)
                for o in self.book.live()
                if function_id is None or o.spec.source[1] == function_id
            ]
            return {"observers": views, "local_invocations": self.local_stats}

        self.engine.add_builtin(
            "engine::observers::get", get, "One observer and its counters"
        )
        self.engine.add_builtin("engine::observers::list", list_all, "Every observer")


def observer_view(obs: Observer) -> dict[str, Any]:
    """What ``engine::observers::get`` shows."""
    spec = obs.spec
    out: dict[str, Any] = {
        "id": spec.id,
        "state": obs.state,
        "source": {"function_id": spec.source[1], "namespace": spec.source[0]},
        "target": {"function_id": spec.target[1], "namespace": spec.target[0]},
        **{k: v for k, v in spec.info().items() if k not in ("id", "target")},
        "deliver": spec.deliver,
        "max_in_flight": spec.max_in_flight,
        "fires": obs.fires,
        "in_flight": obs.in_flight,
        "queued": len(obs.queue),
        "failures": obs.failures,
        "dropped": dict(obs.dropped),
    }
    for name, value in (
        ("reason", obs.reason),
        ("metadata", spec.metadata),
        ("max_fires", spec.max_fires),
        ("expires_at_ms", obs.expires_at),
        ("worker_id", obs.peer),
    ):
        if value is not None:
            out[name] = value
    return out


def install(engine: Engine) -> Observers:
    """Observers for ``engine``: its invocation watch, its events, builtins."""
    observers = Observers(engine)
    engine.watch = observers
    engine.listeners.append(observers.on_engine_event)
    observers.install_builtins()
    return observers
