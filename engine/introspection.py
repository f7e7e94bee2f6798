"""The ``engine::*`` functions: worker metadata and introspection (protocol §5).

They read the engine's registries and never write the log. What a worker is
told goes through its ``Peer`` (a rejection), never as a wire message built here.
"""

from __future__ import annotations

import uuid
from typing import Any

from eventlog.codec import dumps

from .core import DEFAULT_NS, CallContext, Engine, FunctionEntry, TriggerBinding
from .errors import EngineError
from .peer import Peer, Rejection

SUMMARY_CHARS = 80  # config_summary: the config's JSON cut here, then "…"


def config_summary(config: Any) -> str:
    """A trigger's config for a list view: compact JSON, keys in the order the
    worker sent them, cut at 80 characters (not bytes) with an ellipsis. For
    display only; ``config`` beside it is the whole value."""
    text = dumps(config)
    return text if len(text) <= SUMMARY_CHARS else text[:SUMMARY_CHARS] + "…"


def _visible(entry: FunctionEntry, include_internal: bool) -> bool:
    if include_internal:
        return True
    if entry.id.startswith("engine::") and not entry.id.startswith("engine::queue::"):
        return False
    return not entry.internal


def _holder(engine: Engine, peer: Peer, namespace: str, name: str) -> Peer | None:
    """Another live connection that already goes by (namespace, name)."""
    for other in engine.workers.values():
        if other is peer or other.closed:
            continue
        other_ns = other.metadata.get("namespace") or DEFAULT_NS
        if other.name == name and other_ns == namespace:
            return other
    return None


def _binding_worker(engine: Engine, binding: TriggerBinding) -> str:
    """The worker that registered the binding; else the one serving its
    function; else the function id's first ``::`` segment (as iii)."""
    if binding.owner is not None and binding.owner.name:
        return binding.owner.name
    table = engine.namespaced.get(binding.namespace or DEFAULT_NS, engine.functions)
    entry = table.get(binding.function_id) or engine.functions.get(binding.function_id)
    if entry is not None:
        return entry.worker_name
    return binding.function_id.split("::", 1)[0]


def _summary(entry: FunctionEntry) -> dict[str, Any]:
    item: dict[str, Any] = {
        "function_id": entry.id,
        "namespace": DEFAULT_NS,
        "worker_name": entry.worker_name,
    }
    if entry.description:
        item["description"] = entry.description
    if entry.metadata is not None:
        item["metadata"] = entry.metadata
    return item


def _detail(engine: Engine, entry: FunctionEntry) -> dict[str, Any]:
    item = _summary(entry)
    if entry.request_format is not None:
        item["request_schema"] = entry.request_format
    if entry.response_format is not None:
        item["response_schema"] = entry.response_format
    item["registered_triggers"] = [
        {"id": b.id, "trigger_type": b.trigger_type, "config": b.config}
        for b in engine.triggers.values()
        if b.function_id == entry.id
    ]
    return item


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
        name = data.get("name")
        ns = namespace if isinstance(namespace, str) else DEFAULT_NS
        if isinstance(name, str) and name:
            # One live worker per (namespace, name), across every node sharing
            # the log. Node clients do not understand the rejection (they would
            # reconnect forever): there the newcomer takes the name over.
            takes_over = data.get("runtime") == "node"
            local = _holder(engine, peer, ns, name)
            owner = local.id if local is not None and not takes_over else None
            if owner is None:
                owner = await engine.cluster.claim_worker_name(
                    peer.id, ns, name, force=takes_over
                )
            if owner is not None:
                await peer.reject(
                    Rejection(
                        code="WORKER_NAMESPACE_CONFLICT",
                        namespace=ns,
                        owner_worker_id=owner,
                        worker_name=name,
                    )
                )
                return {"success": False}
        peer.metadata = {k: v for k, v in data.items() if k != "_caller_worker_id"}
        peer.name = name if isinstance(name, str) else None
        engine.set_namespace(peer, ns)
        engine.notify("worker_metadata_updated", peer.id)
        return {"success": True}

    async def list_functions(data: Any, ctx: CallContext) -> Any:
        opts = data if isinstance(data, dict) else {}
        include_internal = opts.get("include_internal") is True
        search = opts.get("search")
        prefix = opts.get("prefix")
        worker = opts.get("worker")
        out = []
        everything = [(DEFAULT_NS, e) for e in engine.functions.values()] + [
            (ns, e) for ns, fns in engine.namespaced.items() for e in fns.values()
        ]
        for ns, entry in sorted(everything, key=lambda item: (item[1].id, item[0])):
            if not _visible(entry, include_internal):
                continue
            if isinstance(prefix, str) and not entry.id.startswith(prefix):
                continue
            if isinstance(search, str) and search.lower() not in entry.id.lower():
                continue
            name = entry.worker_name
            if isinstance(worker, str) and worker != name:
                continue
            item: dict[str, Any] = {
                "function_id": entry.id,
                "namespace": ns,
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
            functions = sorted(f.id for f in engine.functions.owned_by(peer))
            out.append(
                {
                    "id": peer.id,
                    "name": peer.name,
                    "description": meta.get("description"),
                    "version": meta.get("version"),
                    "namespace": meta.get("namespace") or DEFAULT_NS,
                    "runtime": meta.get("runtime"),
                    "os": meta.get("os"),
                    "pid": meta.get("pid"),
                    "isolation": meta.get("isolation"),
                    "status": "connected",
                    "function_count": len(functions),
                    "functions": functions,
                    "connected_at_ms": peer.connected_at_ms,
                    "active_invocations": len(peer.inflight),
                    "ip_address": peer.ip,
                }
            )
        return {"workers": out}

    async def list_trigger_types(data: Any, ctx: CallContext) -> Any:
        return {
            "triggers": [
                {
                    "id": tid,
                    "namespace": DEFAULT_NS,
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
                    "config_summary": config_summary(b.config),
                    "worker_name": _binding_worker(engine, b),
                    "active": b.trigger_type in engine.providers,
                }
            )
        return {"registered_triggers": out}

    async def function_info(data: Any, ctx: CallContext) -> Any:
        opts = data if isinstance(data, dict) else {}
        one, many = opts.get("function_id"), opts.get("function_ids")
        if (one is None) == (many is None):
            raise EngineError(
                "INVALID_ARGUMENTS", "pass exactly one of function_id or function_ids"
            )
        if one is not None:
            entry = engine.functions.get(one) if isinstance(one, str) else None
            if entry is None:
                raise EngineError("NOT_FOUND", f"Function {one} not found")
            return _detail(engine, entry)
        if not isinstance(many, list) or len(many) > 32:
            raise EngineError(
                "INVALID_ARGUMENTS", "function_ids must be a list of at most 32 ids"
            )
        out: list[dict[str, Any]] = []
        for fid in many:
            entry = engine.functions.get(fid) if isinstance(fid, str) else None
            out.append(
                _detail(engine, entry)
                if entry
                else {"function_id": fid, "error": "not_found"}
            )
        return {"functions": out}

    async def worker_info(data: Any, ctx: CallContext) -> Any:
        name = data.get("name") if isinstance(data, dict) else None
        if not isinstance(name, str):
            raise EngineError("INVALID_ARGUMENTS", "`name` is required")
        summaries = (await list_workers({}, ctx))["workers"]
        worker = next((w for w in summaries if w["name"] == name), None)
        if worker is None:
            raise EngineError("NOT_FOUND", f"Worker {name} not found")
        peer = engine.workers[worker["id"]]
        return {
            "worker": {**worker, "internal": False, "latest_metrics": None},
            "functions": [_summary(f) for f in engine.functions.owned_by(peer)],
            "trigger_types": [
                {"id": t, "description": d}
                for t, d in engine.trigger_type_info.items()
                if getattr(engine.providers.get(t), "peer", None) is peer
            ],
            "registered_triggers": [
                {
                    "id": b.id,
                    "trigger_type": b.trigger_type,
                    "function_id": b.function_id,
                    "config": b.config,
                }
                for b in engine.triggers.values()
                if b.owner is peer
            ],
        }

    async def registered_trigger_info(data: Any, ctx: CallContext) -> Any:
        tid = data.get("id") if isinstance(data, dict) else None
        binding = engine.triggers.get(tid) if isinstance(tid, str) else None
        if binding is None:
            raise EngineError("NOT_FOUND", f"Trigger {tid} not found")
        entry = engine.functions.get(binding.function_id)
        out: dict[str, Any] = {
            "id": binding.id,
            "trigger_type": binding.trigger_type,
            "function_id": binding.function_id,
            "worker_name": binding.owner.name if binding.owner else None,
            "config": binding.config,
            "trigger": {
                "id": binding.trigger_type,
                "namespace": DEFAULT_NS,
                "description": engine.trigger_type_info[binding.trigger_type],
            }
            if binding.trigger_type in engine.trigger_type_info
            else None,
            "function": _detail(engine, entry) if entry else None,
        }
        if binding.metadata is not None:
            out["metadata"] = binding.metadata
        return out

    async def trigger_type_info(data: Any, ctx: CallContext) -> Any:
        tid = data.get("id") if isinstance(data, dict) else None
        if not isinstance(tid, str) or tid not in engine.trigger_type_info:
            raise EngineError("NOT_FOUND", f"Trigger type {tid} not found")
        provider = engine.providers.get(tid)
        peer = getattr(provider, "peer", None)
        return {
            "id": tid,
            "namespace": DEFAULT_NS,
            "worker_name": peer.name if peer else "iiilog",
            "description": engine.trigger_type_info[tid],
            "instance_count": sum(
                1 for b in engine.triggers.values() if b.trigger_type == tid
            ),
        }

    async def register_trigger(data: Any, ctx: CallContext) -> Any:
        """A binding owned by no connection: it outlives the caller."""
        opts = data if isinstance(data, dict) else {}
        trigger_type, function_id = opts.get("trigger_type"), opts.get("function_id")
        if not isinstance(trigger_type, str) or not isinstance(function_id, str):
            raise EngineError(
                "INVALID_ARGUMENTS", "trigger_type and function_id are required"
            )
        binding = TriggerBinding(
            id=str(uuid.uuid4()),
            trigger_type=trigger_type,
            function_id=function_id,
            config=opts.get("config"),
            metadata=opts.get("metadata"),
            owner=None,
        )
        await engine.register_trigger(binding)
        return {"id": binding.id}

    async def unregister_trigger(data: Any, ctx: CallContext) -> Any:
        tid = data.get("id") if isinstance(data, dict) else None
        if not isinstance(tid, str):
            raise EngineError("INVALID_ARGUMENTS", "`id` is required")
        existed = tid in engine.triggers
        await engine.unregister_trigger(tid, None)
        return {"removed": existed}

    engine.add_builtin("engine::functions::info", function_info)
    engine.add_builtin("engine::workers::info", worker_info)
    engine.add_builtin("engine::registered-triggers::info", registered_trigger_info)
    engine.add_builtin("engine::triggers::info", trigger_type_info)
    engine.add_builtin("engine::register_trigger", register_trigger)
    engine.add_builtin("engine::unregister_trigger", unregister_trigger)
    engine.add_builtin("engine::workers::register", register_worker)
    engine.add_builtin("engine::functions::list", list_functions)
    engine.add_builtin("engine::workers::list", list_workers)
    engine.add_builtin("engine::triggers::list", list_trigger_types)
    engine.add_builtin("engine::trigger-types::list", list_trigger_types)
    engine.add_builtin("engine::registered-triggers::list", list_registered)
