"""The legacy shim: old ``register_trigger`` calls served by an observable
function that declares ``legacy_trigger_type``.

While such a function is registered, its type has a provider here, like any
trigger type: each binding of the type becomes an observer of the function
(the binding's id, its config as the args, its function as the target, its
metadata as the sidecar). When the function goes away the provider goes with
it and the bindings wait, parked, as for a worker provider that left.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .core import DEFAULT_NS, TriggerBinding, now_ms
from .errors import EngineError, TriggerRegistrationFailed
from .observe_rules import FnKey, ObserveError, check_source, legacy_spec

if TYPE_CHECKING:
    from .observers import Observers

log = logging.getLogger("iiilog.observe")


class LegacyProvider:
    """The trigger type ``trigger_type``, served by observers of ``source``."""

    def __init__(self, observers: Observers, trigger_type: str, source: FnKey) -> None:
        self.observers = observers
        self.trigger_type = trigger_type
        self.source = source

    async def register(self, binding: TriggerBinding) -> None:
        """Raises ``TriggerRegistrationFailed`` when the config is not args
        the function accepts (its ``args_format``)."""
        spec = legacy_spec(
            binding.id,
            self.trigger_type,
            self.source,
            (binding.namespace or DEFAULT_NS, binding.function_id),
            binding.config,
            binding.metadata,
        )
        observers = self.observers
        found = observers.world.source(self.source)
        if found is not None:
            try:
                check_source(spec, found.descriptor)
            except ObserveError as e:
                raise TriggerRegistrationFailed(f"{e.code}: {e.message}") from None
        observers.apply(observers.book.observe(spec, None, observers.world, now_ms()))

    async def unregister(self, binding: TriggerBinding) -> None:
        self.observers.apply(self.observers.book.unobserve(binding.id, None))


class LegacyShim:
    def __init__(self, observers: Observers) -> None:
        self.observers = observers
        self.providers: dict[str, LegacyProvider] = {}

    def declared(self, trigger_type: str, source: FnKey) -> None:
        """A function registered with ``legacy_trigger_type``."""
        engine = self.observers.engine
        current = engine.providers.get(trigger_type)
        if isinstance(current, LegacyProvider) and current.source == source:
            return
        if current is not None and not isinstance(current, LegacyProvider):
            log.warning(
                "trigger type %s has a provider; the legacy shim of %s is unused",
                trigger_type,
                source[1],
            )
            return
        provider = LegacyProvider(self.observers, trigger_type, source)
        self.providers[trigger_type] = provider
        engine.add_provider(trigger_type, provider, f"served by {source[1]}")
        engine.spawn(self._replay(provider), name=f"observe:legacy:{trigger_type}")

    async def _replay(self, provider: LegacyProvider) -> None:
        """Bindings of the type that waited (parked) become observers."""
        engine = self.observers.engine
        for binding in list(engine.triggers.values()):
            if binding.trigger_type != provider.trigger_type:
                continue
            if self.providers.get(provider.trigger_type) is not provider:
                return
            try:
                await provider.register(binding)
            except EngineError as e:
                if binding.owner is not None:
                    await binding.owner.trigger_refused(binding, e.body())

    def prune(self) -> None:
        """Providers whose function is gone are removed; their bindings stay,
        parked, and their observers end."""
        observers = self.observers
        engine = observers.engine
        for trigger_type, provider in list(self.providers.items()):
            if observers.world.source(provider.source) is not None:
                continue
            del self.providers[trigger_type]
            if engine.providers.get(trigger_type) is provider:
                del engine.providers[trigger_type]
                engine.trigger_type_info.pop(trigger_type, None)
            for binding in list(engine.triggers.values()):
                if binding.trigger_type == trigger_type:
                    observers.apply(observers.book.unobserve(binding.id, None))
