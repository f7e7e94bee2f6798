"""What the console shows, as JSON: engine objects turned into plain rows, and
the console's query strings turned into checked arguments.

Pure: reads what it is handed, never the database or the network. A bad query
parameter raises ``ValueError`` with a message that names it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from engine.core import DEFAULT_NS, Engine
from eventlog import LogQuery, Record


def _int(params: Mapping[str, str], name: str, default: int | None) -> int | None:
    raw = params.get(name, "").strip()
    if raw == "":
        return default
    if not raw.isdigit():
        raise ValueError(f"`{name}` must be a non-negative integer")
    return int(raw)


def positive(params: Mapping[str, str], name: str, default: int) -> int:
    value = _int(params, name, default)
    if not value:
        raise ValueError(f"`{name}` must be a positive integer")
    return value


def _text(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    return value if value else None


def log_query(params: Mapping[str, str]) -> LogQuery:
    """``?space&scope&key&after&until&limit&order`` (order: ``newest``, the
    default, or ``oldest``) as a ``LogQuery``."""
    order = params.get("order", "newest")
    if order not in ("newest", "oldest"):
        raise ValueError("`order` must be newest or oldest")
    return LogQuery(
        after=_int(params, "after", 0) or 0,
        until=_int(params, "until", None),
        space=_text(params, "space"),
        scope=_text(params, "scope"),
        key=_text(params, "key"),
        limit=_int(params, "limit", 50) or 0,
        newest_first=order == "newest",
    )


def state_query(params: Mapping[str, str]) -> tuple[str, str | None, int | None]:
    """Time travel: ``?scope&key&offset`` (no offset: now)."""
    scope = _text(params, "scope")
    if scope is None:
        raise ValueError("`scope` is required")
    return scope, _text(params, "key"), _int(params, "offset", None)


def record_row(record: Record) -> dict[str, Any]:
    row: dict[str, Any] = {
        "offset": record.offset,
        "ts": record.ts,
        "kind": record.kind,
        "scope": record.scope,
        "group": record.group,
        "key": record.key,
        "old_value": record.old_value if record.existed else None,
        "new_value": record.new_value if record.exists else None,
    }
    if record.ops is not None:
        row["ops"] = record.ops
    if record.errors:
        row["errors"] = record.errors
    if record.event_type is not None:
        row["event_type"] = record.event_type
    if record.origin is not None:
        row["origin"] = record.origin.to_dict()
    return row


def worker_rows(engine: Engine) -> list[dict[str, Any]]:
    """Connected workers, oldest connection first."""
    out = []
    for peer in engine.workers.values():
        meta = peer.metadata
        functions = [
            e.id
            for table in (engine.functions, *engine.namespaced.values())
            for e in table.owned_by(peer)
        ]
        out.append(
            {
                "id": peer.id,
                "name": peer.name or meta.get("name"),
                "runtime": meta.get("runtime"),
                "sdk_version": meta.get("version"),
                "namespace": meta.get("namespace") or DEFAULT_NS,
                "pid": meta.get("pid"),
                "ip": peer.ip,
                "connected_at_ms": peer.connected_at_ms,
                "functions": sorted(functions),
                "in_flight": len(peer.inflight),
            }
        )
    return sorted(out, key=lambda w: (w["connected_at_ms"], w["id"]))


def function_rows(engine: Engine) -> list[dict[str, Any]]:
    """Every function with the triggers bound to it; the engine's own
    (``state::*``, ``engine::*``, ...) marked ``builtin``."""
    bound: dict[str, list[dict[str, Any]]] = {}
    for b in engine.triggers.values():
        bound.setdefault(b.function_id, []).append(
            {
                "id": b.id,
                "type": b.trigger_type,
                "config": b.config,
                "active": b.trigger_type in engine.providers,
            }
        )
    tables = [(DEFAULT_NS, engine.functions), *engine.namespaced.items()]
    out = []
    for namespace, table in tables:
        for entry in table.values():
            out.append(
                {
                    "function_id": entry.id,
                    "namespace": namespace,
                    "worker": entry.worker_name,
                    "builtin": entry.owner is None,
                    "description": entry.description,
                    "triggers": bound.get(entry.id, []),
                }
            )
    return sorted(out, key=lambda f: (f["builtin"], f["function_id"], f["namespace"]))


def stream_client_rows(clients: Iterable[Any]) -> list[dict[str, Any]]:
    """Stream WebSocket clients (``api.stream_ws.StreamClient``) and where
    each of their subscriptions is in the log."""
    out = []
    for client in clients:
        out.append(
            {
                "remote": client.remote,
                "connected_at_ms": client.connected_at_ms,
                "subscriptions": [
                    {
                        "id": sub.id,
                        "stream": sub.stream,
                        "group": sub.group,
                        "item": sub.item,
                        "position": sub.position,
                    }
                    for sub in client.subs.values()
                ],
            }
        )
    return sorted(out, key=lambda c: c["connected_at_ms"])
