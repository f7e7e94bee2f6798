"""What an RBAC listener does for its connections (spec Appendix C), at the engine.

``authenticate`` calls the auth function once per upgrade; its ``AuthResult``
becomes the connection's ``RbacSession`` (the pure rules, ``api/rbac.py``).
``RbacGate`` then puts each registration through its hook function (which may
refuse or rename it) and routes each call through the checks and the
middleware. A refused registration is dropped silently, as iii does.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from aiohttp import web

from engine.core import DEFAULT_NS, CallContext, Engine
from engine.errors import EngineError
from engine.peer import Peer

from .protocol import (
    InvokeFunction,
    RegisterFunction,
    RegisterTrigger,
    RegisterTriggerType,
)
from .rbac import RbacConfig, RbacSession

log = logging.getLogger("iiilog.rbac")

# A registration that passes through a hook comes out as the same kind.
Registration = TypeVar(
    "Registration", RegisterFunction, RegisterTrigger, RegisterTriggerType
)
# What a registration hook's result may change.
_RENAMES = ("function_id", "trigger_type", "config", "metadata", "description")


async def authenticate(
    engine: Engine, config: RbacConfig, request: web.Request
) -> RbacSession | None:
    """Call the auth function once per upgrade; None means refused."""
    if not config.auth_function_id:
        return RbacSession.from_auth(config, {})
    query: dict[str, list[str]] = {}
    for key, value in request.query.items():
        query.setdefault(key, []).append(value)
    payload = {
        "headers": {k.lower(): v for k, v in request.headers.items()},
        "query_params": query,
        "ip_address": request.remote,
    }
    try:
        result = await engine.invoke(
            config.auth_function_id,
            payload,
            CallContext(function_id=config.auth_function_id),
        )
    except EngineError as e:
        log.info("authentication refused: %s", e.message)
        return None
    if not isinstance(result, dict):
        return None
    return RbacSession.from_auth(config, result)


class RbacGate:
    """One RBAC connection's admission of registrations and calls."""

    def __init__(self, engine: Engine, session: RbacSession) -> None:
        self.engine = engine
        self.session = session
        self._renamed: dict[str, str] = {}  # worker's function id -> engine's

    def function_id(self, wire_id: str) -> str:
        """The id the engine registers the worker's function ``wire_id`` under:
        the hook's rename, else the session's prefix."""
        return self._renamed.pop(wire_id, self.session.prefixed(wire_id))

    async def admit(self, msg: Registration, namespace: str) -> Registration | None:
        """The registration as its hook accepted it, or None (dropped)."""
        session = self.session
        config = session.config
        if isinstance(msg, RegisterFunction):
            if not session.allow_function_registration:
                return None
            hook = config.on_function_registration_function_id
            payload: dict[str, Any] = {
                "function_id": session.prefixed(msg.id),
                "description": msg.description,
                "metadata": msg.metadata,
                "namespace": namespace,
                "context": session.context,
            }
        elif isinstance(msg, RegisterTriggerType):
            if not session.allow_trigger_type_registration:
                return None
            hook = config.on_trigger_type_registration_function_id
            payload = {
                "trigger_type_id": msg.id,
                "description": msg.description,
                "context": session.context,
            }
        else:
            msg = msg.model_copy(
                update={"function_id": session.prefixed(msg.function_id)}
            )
            hook = config.on_trigger_registration_function_id
            payload = {
                "trigger_id": msg.id,
                "trigger_type": msg.trigger_type,
                "function_id": msg.function_id,
                "config": msg.config,
                "metadata": msg.metadata,
                "namespace": msg.namespace or DEFAULT_NS,
                "context": session.context,
            }
        if not hook:
            return msg
        try:
            result = await self.engine.invoke(
                hook, payload, CallContext(function_id=hook)
            )
        except EngineError as e:
            log.info("%s refused %s: %s", hook, msg.type, e.message)
            return None
        if not isinstance(result, dict):
            return msg
        renames = {k: v for k, v in result.items() if v is not None and k in _RENAMES}
        if isinstance(msg, RegisterFunction) and "function_id" in renames:
            self._renamed[msg.id] = str(renames["function_id"])
            return msg.model_copy(
                update={
                    "description": renames.get("description", msg.description),
                    "metadata": renames.get("metadata", msg.metadata),
                }
            )
        if isinstance(msg, RegisterTrigger):
            renames.pop("description", None)
            return msg.model_copy(update=renames)
        return msg

    def _check_binding(self, data: Any) -> None:
        """``engine::register_trigger`` from this session: the same rules as
        its ``registertrigger`` (a type it may bind, a target it may call)."""
        opts = data if isinstance(data, dict) else {}
        trigger_type, function_id = opts.get("trigger_type"), opts.get("function_id")
        if not isinstance(trigger_type, str) or not isinstance(function_id, str):
            return  # the function itself answers INVALID_ARGUMENTS
        self.session.check_trigger_type(trigger_type)
        namespace = opts.get("namespace")
        self.session.check_target(
            function_id,
            self.engine.functions.get(function_id),
            namespace if isinstance(namespace, str) and namespace else DEFAULT_NS,
        )

    async def invoke(self, msg: InvokeFunction, ctx: CallContext, caller: Peer) -> Any:
        """A call from this connection: checked, then routed via the middleware."""
        session = self.session
        engine = self.engine
        entry = engine.functions.get(msg.function_id)
        session.check(msg.function_id, entry)
        if msg.function_id == "engine::register_trigger":
            self._check_binding(msg.data)
        if msg.action_type == "enqueue":
            queue = (msg.action or {}).get("queue")
            return await engine.enqueue(queue, msg.function_id, msg.data, ctx)
        middleware = session.config.middleware_function_id
        if entry is not None and entry.owner is not None and middleware:
            request: dict[str, Any] = {
                "function_id": msg.function_id,
                "payload": msg.data,
                "context": session.context,
            }
            if msg.action is not None:
                request["action"] = msg.action
            if msg.namespace is not None:
                request["namespace"] = msg.namespace
            return await engine.invoke(
                middleware, request, CallContext(function_id=middleware, caller=caller)
            )
        result = await engine.invoke(msg.function_id, msg.data, ctx)
        if msg.function_id == "engine::functions::list" and isinstance(result, dict):
            visible = {e.id for e in engine.functions.values() if session.may_see(e)}
            result = {
                **result,
                "functions": [
                    f
                    for f in result.get("functions", [])
                    if f.get("function_id") in visible
                ],
            }
        return result
