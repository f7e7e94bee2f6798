"""The ``engine::*`` functions: worker metadata and introspection (protocol §5)."""

from __future__ import annotations

from typing import Any

from .core import CallContext, Engine, FunctionEntry
from .errors import EngineError


def _worker_name(engine: Engine, entry: FunctionEntry) -> str:
    if entry.owner is not None and entry.owner.name:
        return entry.owner.name
    return entry.id.split("::", 1)[0]


def _visible(entry: FunctionEntry, include_internal: bool) -> bool:
    if include_internal:
        return True
    if entry.id.startswith("engine::") and not entry.id.startswith("engine::queue::"):
        return False
    return not entry.internal


def install(engine: Engine) -> None:
    async def register_worker(data: Any, ctx: CallContext) -> Any:
        if not isinstance(data, dict):
            raise EngineError("INVALID_ARGUMENTS", "worker metadata must be an object")
        namespace = data.get("namespace")
        if isinstance(namespace, str) and not namespace.strip():
            raise EngineError("INVALID_NAMESPACE", "namespace must not be blank")
        peer = ctx.caller
        if peer is None:
            caller_id = data.get("_caller_worker_id")
            peer = engine.workers.get(caller_id) if isinstance(caller_id, str) else None
        if peer is None:
            return {"success": False}
        peer.metadata = {k: v for k, v in data.items() if k != "_caller_worker_id"}
        name = data.get("name")
        peer.name = name if isinstance(name, str) else None
        engine.notify("worker_metadata_updated", peer.id)
        return {"success": True}

    async def list_functions(data: Any, ctx: CallContext) -> Any:
        opts = data if isinstance(data, dict) else {}
        include_internal = opts.get("include_internal") is True
        search = opts.get("search")
        prefix = opts.get("prefix")
        worker = opts.get("worker")
        out = []
        for entry in sorted(engine.functions.values(), key=lambda e: e.id):
            if not _visible(entry, include_internal):
                continue
            if isinstance(prefix, str) and not entry.id.startswith(prefix):
                continue
            if isinstance(search, str) and search.lower() not in entry.id.lower():
                continue
            name = _worker_name(engine, entry)
            if isinstance(worker, str) and worker != name:
                continue
            item: dict[str, Any] = {
                "function_id": entry.id,
                "namespace": "default",
                "worker_name": name,
            }
            if entry.description:
                item["description"] = entry.description
            if entry.metadata is not None:
                item["metadata"] = entry.metadata
            if entry.request_format is not None:
                item["request_format"] = entry.request_format
            if entry.response_format is not None:
                item["response_format"] = entry.response_format
            out.append(item)
        return {"functions": out}

    async def list_workers(data: Any, ctx: CallContext) -> Any:
        out = []
        for peer in engine.workers.values():
            meta = peer.metadata
            if "pid" not in meta:
                continue
            functions = sorted(
                f.id for f in engine.functions.values() if f.owner is peer
            )
            out.append(
                {
                    "id": peer.id,
                    "name": peer.name,
                    "description": meta.get("description"),
                    "version": meta.get("version"),
                    "namespace": meta.get("namespace") or "default",
                    "runtime": meta.get("runtime"),
                    "os": meta.get("os"),
                    "pid": meta.get("pid"),
                    "isolation": meta.get("isolation"),
                    "status": "connected",
                    "function_count": len(functions),
                    "functions": functions,
                    "connected_at_ms": peer.connected_at_ms,
                    "active_invocations": len(peer.inflight),
                    "ip_address": getattr(peer, "ip", None),
                }
            )
        return {"workers": out}

    async def list_trigger_types(data: Any, ctx: CallContext) -> Any:
        return {
            "triggers": [
                {
                    "id": tid,
                    "namespace": "default",
                    "worker_name": "iiilog",
                    "description": desc,
                }
                for tid, desc in sorted(engine.trigger_type_info.items())
            ]
        }

    async def list_registered(data: Any, ctx: CallContext) -> Any:
        opts = data if isinstance(data, dict) else {}
        out = []
        for b in engine.triggers.values():
            if opts.get("trigger_type") not in (None, b.trigger_type):
                continue
            if opts.get("function_id") not in (None, b.function_id):
                continue
            out.append(
                {
                    "id": b.id,
                    "trigger_type": b.trigger_type,
                    "function_id": b.function_id,
                    "config": b.config,
                    "worker_name": b.owner.name if b.owner else None,
                    "active": b.trigger_type in engine.providers,
                }
            )
        return {"registered_triggers": out}

    engine.add_builtin("engine::workers::register", register_worker)
    engine.add_builtin("engine::functions::list", list_functions)
    engine.add_builtin("engine::workers::list", list_workers)
    engine.add_builtin("engine::triggers::list", list_trigger_types)
    engine.add_builtin("engine::trigger-types::list", list_trigger_types)
    engine.add_builtin("engine::registered-triggers::list", list_registered)
