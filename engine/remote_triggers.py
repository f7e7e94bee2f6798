"""Trigger types provided by workers (``registertriggertype``, as iii).

A worker that sends ``registertriggertype`` becomes the provider of that type:
the engine forwards each binding of the type to it (``registertrigger``, once
per binding) and the provider fires them itself by calling functions. When the
provider goes away its bindings are parked, not dropped, and replayed with
their original ids when a provider for the type registers again. When a
binding's owner goes away, the provider is told (``unregistertrigger``).
"""

from __future__ import annotations

import logging
from typing import Any

from .core import Engine, TriggerBinding
from .peer import Peer

log = logging.getLogger("iiilog.trigger-types")


class RemoteProvider:
    """A trigger type served by a worker: its bindings are handed to that peer."""

    def __init__(self, peer: Peer, type_id: str, description: str | None) -> None:
        self.peer = peer
        self.type_id = type_id
        self.description = description or ""

    async def register(self, binding: TriggerBinding) -> None:
        await self.peer.forward_trigger(binding)

    async def unregister(self, binding: TriggerBinding) -> None:
        await self.peer.withdraw_trigger(binding)


class WorkerTriggerTypes:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def register_type(
        self, peer: Peer, type_id: str, description: str | None
    ) -> None:
        current = self.engine.providers.get(type_id)
        if current is not None and not isinstance(current, RemoteProvider):
            log.warning(
                "worker %s tried to provide built-in trigger type %s; ignored",
                peer.id,
                type_id,
            )
            return
        provider = RemoteProvider(peer, type_id, description)
        self.engine.providers[type_id] = provider
        self.engine.trigger_type_info[type_id] = provider.description
        # Replay every binding of the type (live or parked), once each, by id.
        for binding in list(self.engine.triggers.values()):
            if binding.trigger_type == type_id:
                log.info(
                    "pending trigger %s (%s -> %s) handed to worker %s",
                    binding.id,
                    type_id,
                    binding.function_id,
                    peer.id,
                )
                await provider.register(binding)

    def unregister_type(self, peer: Peer, type_id: str) -> None:
        provider = self.engine.providers.get(type_id)
        if isinstance(provider, RemoteProvider) and provider.peer is peer:
            del self.engine.providers[type_id]
            self.engine.trigger_type_info.pop(type_id, None)

    def provider_gone(self, peer: Peer) -> None:
        """Its types disappear; their bindings stay, parked."""
        for type_id, provider in list(self.engine.providers.items()):
            if isinstance(provider, RemoteProvider) and provider.peer is peer:
                self.unregister_type(peer, type_id)

    async def result(self, peer: Peer, trigger_id: str, error: Any) -> None:
        """A provider's ``triggerregistrationresult``: errors go to the owner."""
        binding = self.engine.triggers.get(trigger_id)
        if binding is None or not error:
            return
        provider = self.engine.providers.get(binding.trigger_type)
        if not isinstance(provider, RemoteProvider) or provider.peer is not peer:
            return
        log.warning("provider %s refused trigger %s: %s", peer.id, trigger_id, error)
        if binding.owner is not None:
            await binding.owner.trigger_refused(binding, error)
