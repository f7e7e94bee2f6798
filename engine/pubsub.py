"""Pub/sub (``publish`` + the ``subscribe`` trigger type) and the engine's own
trigger types ``engine::workers-available`` / ``engine::functions-available``.

Like iii: fire-and-forget fan-out, each delivery in its own task, the raw
``data`` as payload, no ordering or retries, and nothing kept for subscribers
that are not there (publishes are messages, not state). Unlike iii's local
adapter, removing one subscription leaves the topic's others in place.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from .core import DEFAULT_NS, CallContext, Engine, TriggerBinding
from .errors import EngineError, TriggerRegistrationFailed

log = logging.getLogger("iiilog.pubsub")


class _Fanout:
    """Bindings of one trigger type, each invoked in a task of its own."""

    def __init__(self, engine: Engine, trigger_type: str) -> None:
        self.engine = engine
        self.trigger_type = trigger_type
        self.bindings: dict[str, TriggerBinding] = {}

    async def register(self, binding: TriggerBinding) -> None:
        if binding.config is not None and not isinstance(binding.config, dict):
            raise TriggerRegistrationFailed(
                "Failed to parse trigger config: expected an object"
            )
        self.bindings[binding.id] = binding

    async def unregister(self, binding: TriggerBinding) -> None:
        self.bindings.pop(binding.id, None)

    def deliver(self, bindings: list[TriggerBinding], payload: Any) -> None:
        for binding in bindings:
            self.engine.spawn(
                self._one(binding, payload),
                name=f"{self.trigger_type}:{binding.function_id}",
            )

    async def _one(self, binding: TriggerBinding, payload: Any) -> None:
        try:
            await self.engine.call_binding(binding, payload)
        except EngineError as e:
            log.warning(
                "%s -> %s failed: %s", self.trigger_type, binding.function_id, e
            )


class Subscriptions(_Fanout):
    async def register(self, binding: TriggerBinding) -> None:
        await super().register(binding)
        topic = (binding.config or {}).get("topic")
        if not isinstance(topic, str) or not topic:
            log.warning(
                "subscribe trigger %s has no topic: it will never fire", binding.id
            )


class PubSubConfig(BaseModel):
    """Module ``iii-pubsub`` (alias ``pubsub``): no settings of its own;
    fan-out is in process, so iii's adapter does not apply."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    # iii settings this module does not implement: accepted, warned about.
    iii_unimplemented: ClassVar[frozenset[str]] = frozenset({"adapter"})


class PubSubModule:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.subscriptions = Subscriptions(engine, "subscribe")
        engine.add_provider(
            "subscribe", self.subscriptions, "Receive messages published to a topic"
        )
        engine.add_builtin("publish", self.publish, "Publish a message to a topic")

    async def publish(self, data: Any, ctx: CallContext) -> Any:
        topic = data.get("topic") if isinstance(data, dict) else None
        if not isinstance(topic, str) or not topic:
            raise EngineError("topic_not_set", "Topic is not set")
        payload = data.get("data")
        matching = [
            b
            for b in self.subscriptions.bindings.values()
            if isinstance(b.config, dict) and b.config.get("topic") == topic
        ]
        self.subscriptions.deliver(matching, payload)
        return None


class Availability:
    """``engine::workers-available`` and ``engine::functions-available``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.workers = _Fanout(engine, "engine::workers-available")
        self.functions = _Fanout(engine, "engine::functions-available")
        engine.add_provider(
            "engine::workers-available",
            self.workers,
            "A worker connected, disconnected or described itself",
        )
        engine.add_provider(
            "engine::functions-available",
            self.functions,
            "The set of registered functions changed",
        )
        self._known: frozenset[str] = frozenset()
        self._pending: asyncio.Task[None] | None = None
        engine.listeners.append(self._on_engine_event)

    def _on_engine_event(self, event: str, worker_id: str | None) -> None:
        if worker_id is not None and event.startswith("worker_"):
            self.workers.deliver(
                list(self.workers.bindings.values()),
                {"event": event, "worker_id": worker_id},
            )
        if self._pending is None:  # coalesce bursts of (un)registrations
            # An engine task, so that stopping the engine cancels it.
            self._pending = self.engine.spawn(
                self._functions_changed(), name="functions-available"
            )

    async def _functions_changed(self) -> None:
        await asyncio.sleep(0.1)
        self._pending = None
        ids = frozenset(self.engine.functions)
        if ids == self._known:
            return
        self._known = ids
        summaries = [
            {"function_id": f.id, "namespace": DEFAULT_NS, "worker_name": f.worker_name}
            for f in sorted(self.engine.functions.values(), key=lambda f: f.id)
        ]
        self.functions.deliver(
            list(self.functions.bindings.values()),
            {"event": "functions_changed", "functions": summaries},
        )
