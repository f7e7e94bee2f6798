"""RBAC worker listeners (spec/worker-protocol.md Appendix C).

An extra ``iii-worker-manager`` entry with an ``rbac`` block opens another
worker port whose connections are authenticated once at upgrade by an auth
function; its ``AuthResult`` becomes the connection's session. The session
decides which functions the connection may call (``check``: pure), and which
it may see in ``engine::functions::list``. Registrations from such connections
pass through hook functions first (in ``worker_ws``).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any

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


@dataclass
class RbacConfig:
    host: str = "0.0.0.0"
    port: int = 49135
    middleware_function_id: str | None = None
    auth_function_id: str | None = None
    on_function_registration_function_id: str | None = None
    on_trigger_registration_function_id: str | None = None
    on_trigger_type_registration_function_id: str | None = None
    expose_functions: list[Any] = field(default_factory=list)

    @classmethod
    def parse(cls, conf: dict[str, Any]) -> RbacConfig:
        rbac = conf.get("rbac") or {}
        if not isinstance(rbac, dict):
            raise ValueError("rbac must be a mapping")
        expose = rbac.get("expose_functions") or []
        if not isinstance(expose, list):
            raise ValueError("rbac.expose_functions must be a list")
        return cls(
            host=str(conf.get("host", "0.0.0.0")),
            port=int(conf.get("port", 49135)),
            middleware_function_id=conf.get("middleware_function_id"),
            auth_function_id=rbac.get("auth_function_id"),
            on_function_registration_function_id=rbac.get(
                "on_function_registration_function_id"
            ),
            on_trigger_registration_function_id=rbac.get(
                "on_trigger_registration_function_id"
            ),
            on_trigger_type_registration_function_id=rbac.get(
                "on_trigger_type_registration_function_id"
            ),
            expose_functions=expose,
        )


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

    @classmethod
    def from_auth(cls, config: RbacConfig, result: dict[str, Any]) -> RbacSession:
        def ids(name: str) -> frozenset[str]:
            value = result.get(name) or []
            return frozenset(v for v in value if isinstance(v, str))

        prefix = result.get("function_registration_prefix")
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
