"""RBAC worker listeners, as iii documents them.

An extra ``iii-worker-manager`` entry with an ``rbac`` block opens another
worker port whose connections are authenticated once at upgrade by an auth
function; its ``AuthResult`` becomes the connection's session. The session
decides which functions the connection may call (``check``: pure), and which
it may see in ``engine::functions::list``, and which trigger types it may bind
to which functions (a trigger may only deliver to what the session may call).
Registrations from such connections pass through hook functions first (in
``worker_ws``). Every listener's
settings, RBAC or not, are a ``WorkerManagerConfig``.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.core import FunctionEntry
from engine.errors import EngineError

# Engine calls the SDK makes by itself: always allowed.
INFRASTRUCTURE = frozenset(
    {
        "engine::channels::create",
        "engine::workers::register",
        "engine::log::info",
        "engine::log::warn",
        "engine::log::error",
        "engine::log::debug",
        "engine::log::trace",
        "engine::baggage::get",
        "engine::baggage::set",
        "engine::baggage::get_all",
    }
)
_MATCH = re.compile(r'^\s*match\(\s*["\'](.*)["\']\s*\)\s*$')


class RbacConfig(BaseModel):
    """The ``rbac`` block of an extra ``iii-worker-manager`` entry.

    ``middleware_function_id`` sits beside the block in the file, not in it;
    the listener (``WorkerManagerConfig``) copies it in, so a session's config
    carries everything its checks need as plain fields (read per call).
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    auth_function_id: str | None = None
    on_function_registration_function_id: str | None = None
    on_trigger_registration_function_id: str | None = None
    on_trigger_type_registration_function_id: str | None = None
    # `match("glob")` strings (a bare glob too) or `{metadata: {key: value}}`.
    expose_functions: list[str | dict[str, Any]] = []
    middleware_function_id: str | None = None  # from the listener

    @field_validator("expose_functions")
    @classmethod
    def _rules(cls, rules: list[str | dict[str, Any]]) -> list[str | dict[str, Any]]:
        for index, rule in enumerate(rules):
            if isinstance(rule, dict) and (
                set(rule) != {"metadata"} or not isinstance(rule["metadata"], dict)
            ):
                raise ValueError(
                    f'rule {index}: a rule is match("glob") or {{metadata: {{...}}}}'
                )
        return rules


class WorkerManagerConfig(BaseModel):
    """Module ``iii-worker-manager``: one worker WebSocket listener. Without an
    ``rbac`` block it is the main listener (default port 49134); with one, an
    RBAC listener (default port 49135)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    host: str = "0.0.0.0"
    port: int = Field(49134, ge=0, le=65535)
    middleware_function_id: str | None = None  # RBAC listeners only
    # iiilog: what one peer may leave unread before its calls, replies and
    # reads wait (above the transport's 64 KiB high-water mark), and how long
    # it may stay so before it is dropped.
    max_outbound_bytes: int = Field(4 * 1024 * 1024, ge=256 * 1024)
    slow_peer_timeout_ms: int = Field(30_000, ge=1)
    # The largest message a worker may send (iii: 64 MiB, spec §1.3); a
    # larger one closes the socket with 1009 (message too big).
    max_message_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    rbac: RbacConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _rbac_listener(cls, data: Any) -> Any:
        rbac = data.get("rbac") if isinstance(data, dict) else None
        if not isinstance(rbac, dict):
            return data
        if "middleware_function_id" in rbac:  # it belongs beside the block
            raise ValueError("rbac: unknown key 'middleware_function_id'")
        middleware = data.get("middleware_function_id")
        return {
            "port": 49135,
            **data,
            "rbac": {**rbac, "middleware_function_id": middleware},
        }


def exposed(rules: list[Any], entry: FunctionEntry) -> bool:
    """Does any ``expose_functions`` rule match this function? Pure."""
    for rule in rules:
        if isinstance(rule, str):
            m = _MATCH.match(rule)
            pattern = m.group(1) if m else rule
            if fnmatch.fnmatchcase(entry.id, pattern):
                return True
        elif isinstance(rule, dict) and isinstance(rule.get("metadata"), dict):
            meta = entry.metadata if isinstance(entry.metadata, dict) else {}
            if all(meta.get(k) == v for k, v in rule["metadata"].items()):
                return True
    return False


@dataclass
class RbacSession:
    """One authenticated connection's rights (its ``AuthResult``)."""

    config: RbacConfig
    allowed: frozenset[str]
    forbidden: frozenset[str]
    context: Any
    allow_function_registration: bool = True
    allow_trigger_type_registration: bool = False
    prefix: str | None = None
    allowed_trigger_types: frozenset[str] | None = None  # None: every type

    @classmethod
    def from_auth(cls, config: RbacConfig, result: dict[str, Any]) -> RbacSession:
        def ids(name: str) -> frozenset[str]:
            value = result.get(name) or []
            return frozenset(v for v in value if isinstance(v, str))

        prefix = result.get("function_registration_prefix")
        types = result.get("allowed_trigger_types")
        return cls(
            config=config,
            allowed=ids("allowed_functions"),
            forbidden=ids("forbidden_functions"),
            context=result.get("context"),
            allow_function_registration=result.get("allow_function_registration")
            is not False,
            allow_trigger_type_registration=result.get(
                "allow_trigger_type_registration"
            )
            is True,
            prefix=prefix if isinstance(prefix, str) and prefix else None,
            allowed_trigger_types=frozenset(t for t in types if isinstance(t, str))
            if isinstance(types, list)
            else None,
        )

    def check(self, function_id: str, entry: FunctionEntry | None) -> None:
        """Raise ``FORBIDDEN`` unless this session may call ``function_id``."""
        if function_id in self.forbidden:
            raise EngineError(
                "FORBIDDEN",
                f"function '{function_id}' not allowed (remove from"
                " rbac.forbidden_functions)",
            )
        if (
            function_id in self.allowed
            or function_id in INFRASTRUCTURE
            or (entry is not None and exposed(self.config.expose_functions, entry))
        ):
            return
        raise EngineError(
            "FORBIDDEN",
            f"function '{function_id}' not allowed (add to rbac.expose_functions)",
        )

    def check_trigger_type(self, trigger_type: str) -> None:
        """Raise ``FORBIDDEN`` unless this session may bind ``trigger_type``."""
        allowed = self.allowed_trigger_types
        if allowed is not None and trigger_type not in allowed:
            raise EngineError(
                "FORBIDDEN",
                f"trigger type '{trigger_type}' not allowed (add to the auth"
                " result's allowed_trigger_types)",
            )

    def check_target(
        self, function_id: str, entry: FunctionEntry | None, namespace: str
    ) -> None:
        """Raise ``FORBIDDEN`` unless a trigger of this session may deliver to
        ``function_id``: only what the session may call itself, or a trigger
        would run what a call may not."""
        try:
            self.check(function_id, entry)
        except EngineError:
            raise EngineError(
                "FORBIDDEN",
                f"function '{function_id}' not allowed in namespace '{namespace}'",
            ) from None

    def may_see(self, entry: FunctionEntry) -> bool:
        try:
            self.check(entry.id, entry)
        except EngineError:
            return False
        return True

    def prefixed(self, function_id: str) -> str:
        if self.prefix is None or function_id.startswith(f"{self.prefix}::"):
            return function_id
        return f"{self.prefix}::{function_id}"
