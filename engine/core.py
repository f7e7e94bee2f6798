"""The engine: function registry, trigger bindings and invocation routing.

It knows nothing about sockets or the wire: a worker connection is a ``Peer``
(``engine/peer.py``), and the bridge turns what the engine asks of it into
protocol messages. Built-in modules register in-process functions and
trigger-type providers here; workers register theirs through the bridge. Every
background task has an owner: ``Engine.spawn`` keeps a reference and logs what
a task raised; ``Engine.stop`` cancels the rest.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from eventlog import EventLogError, LogStore, LogTail, LogWriter, Origin

from .cluster import Cluster, SoloCluster
from .errors import EngineError, FunctionNotFound
from .ids import random_uuid
from .model import (
    DEFAULT_NS,
    ENQUEUE,
    UNKNOWN_CALL,
    CallContext,
    FunctionEntry,
    Handler,
    InvocationWatch,
    TriggerBinding,
    TriggerProvider,
    now_ms,
    trace_id,
)
from .peer import Invocation, Peer
from .registry import FunctionTable
from .trigger_providers import pending_message

# The engine's values live in engine/model.py; importing them from here works too.
__all__ = [
    "DEFAULT_NS",
    "ENQUEUE",
    "CallContext",
    "Engine",
    "FunctionEntry",
    "Handler",
    "InvocationWatch",
    "TriggerBinding",
    "TriggerProvider",
    "now_ms",
    "trace_id",
]

log = logging.getLogger("iiilog.engine")


@dataclass(slots=True)
class _Pending:
    future: asyncio.Future[Any]
    target: Peer


@dataclass
class Engine:
    store: LogStore
    writer: LogWriter
    tail: LogTail
    functions: FunctionTable = field(default_factory=FunctionTable)
    triggers: dict[str, TriggerBinding] = field(default_factory=dict)
    providers: dict[str, TriggerProvider] = field(default_factory=dict)
    trigger_type_info: dict[str, str] = field(default_factory=dict)
    workers: dict[str, Peer] = field(default_factory=dict)
    # functions of workers in other namespaces than "default": ns -> id -> entry
    namespaced: dict[str, FunctionTable] = field(default_factory=dict)
    # (event, worker id) callbacks: worker_connected / worker_disconnected /
    # worker_metadata_updated / functions_changed
    listeners: list[Callable[[str, str | None], None]] = field(default_factory=list)
    # (trace id, function id) of every call delivered to a worker (logs)
    trace_listeners: list[Callable[[str, str], None]] = field(default_factory=list)
    # trace id of a trigger delivery in progress -> writes it has made so far
    deliveries: dict[str, int] = field(default_factory=dict)
    # (function id, outcome) -> calls made through ``invoke`` (metrics)
    calls: dict[tuple[str, str], int] = field(default_factory=dict)
    # this node among the nodes sharing the log (set by the composition root)
    cluster: Cluster = field(init=False)
    # the observers' view of invocations (set when observe is installed)
    watch: InvocationWatch | None = None
    _pending: dict[str, _Pending] = field(default_factory=dict)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    # -- tasks -------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s failed", task.get_name(), exc_info=task.exception())

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- functions ---------------------------------------------------------------

    def add_builtin(
        self, function_id: str, handler: Handler, description: str | None = None
    ) -> None:
        self.functions.add(
            FunctionEntry(function_id, handler=handler, description=description)
        )

    def notify(self, event: str, worker_id: str | None = None) -> None:
        for listener in self.listeners:
            try:
                listener(event, worker_id)
            except Exception:
                log.exception("engine listener failed on %s", event)

    def _table(self, namespace: str | None) -> FunctionTable:
        if not namespace or namespace == DEFAULT_NS:
            return self.functions
        return self.namespaced.setdefault(namespace, FunctionTable())

    def register_function(self, peer: Peer, entry: FunctionEntry) -> None:
        """A worker serves ``entry.id``; replicas of one id take calls in turn."""
        entry.owner = peer
        if not self._table(peer.metadata.get("namespace")).add(entry):
            log.warning(
                "worker %s tried to register built-in function %s; ignored",
                peer.id,
                entry.id,
            )
            return
        self.notify("functions_changed")

    def unregister_function(self, peer: Peer, function_id: str) -> None:
        for table in (self.functions, *self.namespaced.values()):
            if table.remove(function_id, peer) is not None:
                self.notify("functions_changed")

    def lookup(self, function_id: str, namespace: str | None) -> FunctionEntry:
        """The function ``function_id`` as seen from ``namespace`` (§7).

        Worker functions live in their worker's namespace; the engine's own
        functions (state::*, engine::*, ...) are visible from every namespace.
        """
        entry: FunctionEntry | None
        if namespace and namespace != DEFAULT_NS:
            table = self.namespaced.get(namespace)
            entry = table.pick(function_id) if table is not None else None
            if entry is None:
                builtin = self.functions.get(function_id)
                entry = (
                    builtin if builtin is not None and builtin.owner is None else None
                )
        else:
            entry = self.functions.pick(function_id)
        if entry is None:
            elsewhere = sorted(
                ns
                for ns, fns in self.namespaced.items()
                if function_id in fns and ns != namespace
            )
            if namespace not in (None, DEFAULT_NS) and function_id in self.functions:
                elsewhere.insert(0, DEFAULT_NS)
            raise FunctionNotFound(
                function_id, namespace=namespace or DEFAULT_NS, elsewhere=elsewhere
            )
        return entry

    def set_namespace(self, peer: Peer, namespace: str) -> None:
        """A worker said which namespace it belongs to: move what it registered."""
        if namespace == DEFAULT_NS:
            return
        target = self._table(namespace)
        for entry in self.functions.owned_by(peer):
            self.functions.remove(entry.id, peer)
            target.add(entry)
        for binding in self.triggers.values():
            if binding.owner is peer and binding.namespace in (None, DEFAULT_NS):
                binding.namespace = namespace
        self.notify("functions_changed")

    def __post_init__(self) -> None:
        self.cluster = SoloCluster(self)

    async def invoke(self, function_id: str, data: Any, ctx: CallContext) -> Any:
        """Run a function wherever it lives (another node's worker included);
        raises ``EngineError`` on failure. Counted in ``calls`` by outcome."""
        calls = self.calls
        try:
            entry: FunctionEntry | None = self.lookup(function_id, ctx.namespace)
        except FunctionNotFound:
            if ctx.local_only or not self.cluster.shared:
                # Unknown ids are not labels of their own: any caller could
                # invent them without end.
                calls[UNKNOWN_CALL] = calls.get(UNKNOWN_CALL, 0) + 1
                raise
            entry = None  # served by another node sharing the log
        label, outcome = function_id, "error"
        try:
            watch = self.watch
            if entry is None:
                try:
                    result = await self.cluster.invoke_remote(function_id, data, ctx)
                except FunctionNotFound:
                    label, outcome = UNKNOWN_CALL
                    raise
                except EventLogError as e:  # the directory is away: say so
                    raise EngineError("log_unavailable", str(e)) from e
            elif watch is not None and watch.watching(entry):
                result = await watch.run(
                    entry,
                    data,
                    ctx,
                    lambda invocation_id: self._serve(
                        entry, function_id, data, ctx, invocation_id
                    ),
                )
            else:
                result = await self._serve(entry, function_id, data, ctx, None)
            outcome = "ok"
            return result
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            key = (label, outcome)
            calls[key] = calls.get(key, 0) + 1

    async def _serve(
        self,
        entry: FunctionEntry,
        function_id: str,
        data: Any,
        ctx: CallContext,
        invocation_id: str | None,
    ) -> Any:
        if entry.handler is not None:
            try:
                return await entry.handler(data, ctx)
            except EventLogError as e:  # the log's database is away: say so
                raise EngineError("log_unavailable", str(e)) from e
        assert entry.owner is not None
        return await self._call_worker(
            entry.owner, entry.wire_id or function_id, data, ctx, invocation_id
        )

    async def _call_worker(
        self,
        target: Peer,
        function_id: str,
        data: Any,
        ctx: CallContext,
        invocation_id: str | None = None,
    ) -> Any:
        invocation_id = invocation_id or random_uuid()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[invocation_id] = _Pending(future, target)
        target.inflight.add(invocation_id)
        if isinstance(data, dict) and ctx.caller is not None:
            data = {**data, "_caller_worker_id": ctx.caller.id}
        # Every delivered call carries trace context (a fresh trace when the
        # caller had none), so what the handler logs can be tied to it.
        traceparent = ctx.traceparent
        trace = trace_id(traceparent)
        if traceparent is None or trace is None:
            trace = secrets.token_hex(16)
            traceparent = f"00-{trace}-{secrets.token_hex(8)}-01"
        for listener in self.trace_listeners:
            listener(trace, function_id)
        call = Invocation(
            invocation_id,
            function_id,
            data,
            ctx.metadata,
            traceparent,
            ctx.baggage or None,
            ctx.stamped_caller(),
            ctx.observe_depth,
            ctx.activation,
        )
        try:
            await target.deliver(call)
            return await future
        finally:
            self._pending.pop(invocation_id, None)
            target.inflight.discard(invocation_id)

    async def enqueue(
        self, queue: Any, function_id: str, data: Any, ctx: CallContext
    ) -> Any:
        """Hand a call to the queue provider; its answer is the receipt."""
        if ENQUEUE not in self.functions:
            raise EngineError(
                "enqueue_error",
                "No queue provider is installed. Add the iii-queue module to the"
                " engine config.",
            )
        return await self.invoke(
            ENQUEUE, {"queue": queue, "function_id": function_id, "data": data}, ctx
        )

    def resolve(self, invocation_id: str, result: Any, error: Any) -> None:
        """An ``invocationresult`` came back from a worker."""
        pending = self._pending.get(invocation_id)
        if pending is None or pending.future.done():
            log.debug("result for unknown invocation %s dropped", invocation_id)
            return
        if error:
            pending.future.set_exception(EngineError.from_wire(error))
        else:
            pending.future.set_result(result)

    # -- triggers ----------------------------------------------------------------

    def add_provider(
        self, trigger_type: str, provider: TriggerProvider, description: str
    ) -> None:
        self.providers[trigger_type] = provider
        self.trigger_type_info[trigger_type] = description

    async def register_trigger(self, binding: TriggerBinding) -> None:
        """Upsert by id. Raises ``TriggerRegistrationFailed`` if the type refuses."""
        previous = self.triggers.get(binding.id)
        provider = self.providers.get(binding.trigger_type)
        if provider is not None:
            if previous is not None:
                await self._deactivate(previous)
                self.triggers.pop(binding.id, None)
            await provider.register(binding)
        else:
            if previous is not None:
                await self._deactivate(previous)
            # No provider yet: kept pending, like iii (not an error), and said.
            log.warning(
                pending_message(binding.trigger_type, binding.function_id, binding.id)
            )
        self.triggers[binding.id] = binding

    async def unregister_trigger(self, trigger_id: str, owner: Peer | None) -> None:
        binding = self.triggers.get(trigger_id)
        if binding is None or (owner is not None and binding.owner is not owner):
            return
        del self.triggers[trigger_id]
        await self._deactivate(binding)

    async def _deactivate(self, binding: TriggerBinding) -> None:
        provider = self.providers.get(binding.trigger_type)
        if provider is not None:
            try:
                await provider.unregister(binding)
            except Exception:
                log.exception("unregistering trigger %s failed", binding.id)

    async def fire(
        self,
        function_id: str,
        payload: Any,
        *,
        condition: str | None = None,
        metadata: Any = None,
        traceparent: str | None = None,
        namespace: str | None = None,
        delivery: bool = False,
    ) -> bool:
        """Run a trigger's condition (if any), then its function.

        Returns False when the condition said ``false`` or failed (logged, the
        event is skipped, like iii). Errors of the function itself propagate.
        """
        if condition:
            try:
                verdict = await self.invoke(
                    condition,
                    payload,
                    CallContext(
                        function_id=condition,
                        traceparent=traceparent,
                        namespace=namespace,
                    ),
                )
            except EngineError as e:
                log.error("condition %s failed, event skipped: %s", condition, e)
                return False
            if verdict is False:
                return False
        await self.invoke(
            function_id,
            payload,
            CallContext(
                function_id=function_id,
                metadata=metadata,
                traceparent=traceparent,
                namespace=namespace,
                delivery=delivery,
            ),
        )
        return True

    async def call_binding(self, binding: TriggerBinding, payload: Any) -> Any:
        """Invoke a trigger binding's function with the binding's metadata."""
        return await self.invoke(
            binding.function_id,
            payload,
            CallContext(
                function_id=binding.function_id,
                metadata=binding.metadata,
                namespace=binding.namespace,
            ),
        )

    def delivery_tag(self, origin: Origin | None) -> tuple[str, int] | None:
        """(trace id, n) for the n-th write made while handling a delivery."""
        trace_id = origin.trace_id if origin is not None else None
        if trace_id is None:
            return None
        n = self.deliveries.get(trace_id)
        if n is None:
            return None
        self.deliveries[trace_id] = n + 1
        return (trace_id, n)

    # -- workers -----------------------------------------------------------------

    def connect(self, peer: Peer) -> None:
        self.workers[peer.id] = peer
        self.notify("worker_connected", peer.id)

    async def disconnect(self, peer: Peer) -> None:
        """iii's cleanup of a worker that disconnects, ownership-checked."""
        for table in (self.functions, *self.namespaced.values()):
            table.remove_owner(peer)
        for invocation_id in list(peer.inflight):
            pending = self._pending.get(invocation_id)
            if pending is not None and not pending.future.done():
                pending.future.set_exception(
                    EngineError("invocation_stopped", "Invocation stopped")
                )
        for binding in [b for b in self.triggers.values() if b.owner is peer]:
            self.triggers.pop(binding.id, None)
            await self._deactivate(binding)
        self.workers.pop(peer.id, None)
        if peer.name:
            await self.cluster.release_worker_name(peer.id)
        self.notify("worker_disconnected", peer.id)
