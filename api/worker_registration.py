"""Registrations from a worker socket (``RegisteringPeer``, a mixin of
``api/worker_ws.WorkerConnection``): functions and triggers, through the RBAC
gate on an RBAC port.

On an RBAC port a registration first passes the port's hooks; a trigger is then
checked twice, as iii does: its type against the session's allowed trigger
types before the hook runs, and its target (as the hook and the function
prefix left it) against the functions the session may call. A refused trigger
gets a ``triggerregistrationresult`` with the engine's error.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, cast

from engine.core import Engine, FunctionEntry, TriggerBinding
from engine.errors import EngineError
from engine.observe_rules import Descriptor
from engine.peer import Peer

from .protocol import Outgoing, RegisterFunction, RegisterTrigger, TriggerRefused, clip
from .rbac_session import RbacGate, Registration

if TYPE_CHECKING:
    from .worker_ws import Listener

log = logging.getLogger("iiilog.bridge")


class RegisteringPeer:
    """Needs the connection's ``engine``, ``listener``, ``gate``, ``metadata``,
    ``namespace``, ``_confirm``, ``_send`` and ``trigger_refused``."""

    engine: Engine
    listener: Listener
    gate: RbacGate | None
    id: str
    metadata: dict[str, Any]

    @property
    def namespace(self) -> str:
        raise NotImplementedError

    @property
    def peer(self) -> Peer:
        """This connection as the engine sees it (the class it mixes into is
        the engine's ``Peer``)."""
        return cast("Peer", self)

    def _confirm(self, function_id: str) -> None:
        raise NotImplementedError

    async def _send(self, message: Outgoing) -> None:
        raise NotImplementedError

    async def trigger_refused(self, binding: TriggerBinding, error: Any) -> None:
        raise NotImplementedError

    async def _admit(self, msg: Registration) -> Registration | None:
        """Through the RBAC hooks on an RBAC port; unchanged otherwise."""
        if self.gate is None:
            return msg
        return await self.gate.admit(msg, self.namespace)

    async def _register_function(self, msg: RegisterFunction) -> None:
        admitted = await self._admit(msg)
        if admitted is None:
            return
        if admitted.invocation is not None:
            http_functions = self.listener.http_functions
            if http_functions is None:
                log.error(
                    "function %s has an HTTP invocation but the"
                    " iii-http-functions module is not loaded",
                    clip(admitted.id),
                )
            elif await http_functions.register(
                self.peer,
                admitted.id,
                admitted.invocation,
                admitted.description,
                admitted.metadata,
            ):
                self._confirm(admitted.id)
            return
        function_id = (
            admitted.id if self.gate is None else self.gate.function_id(msg.id)
        )
        self.engine.register_function(
            self.peer,
            FunctionEntry(
                function_id,
                description=admitted.description,
                request_format=admitted.request_format,
                response_format=admitted.response_format,
                metadata=admitted.metadata,
                wire_id=None if self.gate is None else msg.id,
                observe=None if msg.observe is None else Descriptor.parse(msg.observe),
            ),
        )
        self._confirm(function_id)

    async def _register_trigger(self, msg: RegisterTrigger) -> None:
        gate = self.gate
        if gate is not None:  # the type first, before its hook runs (as iii)
            try:
                gate.session.check_trigger_type(msg.trigger_type)
            except EngineError as e:
                await self._trigger_forbidden(msg, e)
                return
        admitted = await self._admit(msg)
        if admitted is None:
            return
        if gate is not None:  # the target as the hook and the prefix left it
            namespace = admitted.namespace or self.namespace
            try:
                entry = self.engine.lookup(admitted.function_id, namespace)
            except EngineError:
                entry = None
            try:
                gate.session.check_target(admitted.function_id, entry, namespace)
            except EngineError as e:
                await self._trigger_forbidden(admitted, e)
                return
        binding = TriggerBinding(
            id=admitted.id,
            trigger_type=admitted.trigger_type,
            function_id=admitted.function_id,
            config=admitted.config,
            metadata=admitted.metadata,
            owner=self.peer,
            namespace=admitted.namespace or self.metadata.get("namespace"),
        )
        try:
            await self.engine.register_trigger(binding)
        except EngineError as e:
            log.warning(
                "worker %s: trigger %s (%s) refused: %s",
                self.id,
                clip(binding.id),
                clip(binding.trigger_type),
                clip(e.message),
            )
            await self.trigger_refused(binding, e.body())

    async def _trigger_forbidden(self, msg: RegisterTrigger, e: EngineError) -> None:
        log.warning(
            "worker %s: trigger %s (%s -> %s) refused: %s",
            self.id,
            clip(msg.id),
            clip(msg.trigger_type),
            clip(msg.function_id),
            clip(e.message),
        )
        await self._send(
            TriggerRefused(msg.id, msg.trigger_type, msg.function_id, e.body())
        )
