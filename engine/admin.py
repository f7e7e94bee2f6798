"""iiilog's own engine functions (extensions): trigger cursors, parked
deliveries and projections. Namespaced ``iiilog::`` so they never clash with
iii's."""

from __future__ import annotations

from typing import Any

from projections.runner import ProjectionRunner

from .core import CallContext, Engine
from .durable import DurableTriggers
from .errors import EngineError
from .trigger_providers import provided_by


def install_admin(
    engine: Engine, durable: DurableTriggers, projections: ProjectionRunner
) -> None:
    async def status(data: Any, ctx: CallContext) -> Any:
        return await durable.status()

    async def parked(data: Any, ctx: CallContext) -> Any:
        key = data.get("key") if isinstance(data, dict) else None
        if key is not None and not isinstance(key, str):
            raise EngineError("INVALID_ARGUMENTS", "`key` must be a string")
        rows = await engine.store.parked(key)
        return {
            "parked": [
                {
                    "key": r.key,
                    "offset": r.offset,
                    "attempts": r.attempts,
                    "error": r.error,
                    "ts": r.ts,
                }
                for r in rows
            ]
        }

    async def redeliver(data: Any, ctx: CallContext) -> Any:
        opts = data if isinstance(data, dict) else {}
        key, offset = opts.get("key"), opts.get("offset")
        if not isinstance(key, str):
            raise EngineError("INVALID_ARGUMENTS", "`key` is required")
        if offset is not None and (
            isinstance(offset, bool) or not isinstance(offset, int)
        ):
            raise EngineError("INVALID_ARGUMENTS", "`offset` must be an integer")
        return await durable.redeliver(key, offset)

    async def list_projections(data: Any, ctx: CallContext) -> Any:
        head = engine.tail.head
        out = []
        for name in sorted(projections.running):
            position, _ = projections.get(name) or (0, None)
            start = projections.started(name)
            out.append(
                {
                    "name": name,
                    "position": position,
                    "lag": head - position,
                    "start": start.view() if start is not None else None,
                }
            )
        return {"projections": out}

    async def get_projection(data: Any, ctx: CallContext) -> Any:
        name = data.get("name") if isinstance(data, dict) else None
        if not isinstance(name, str):
            raise EngineError("INVALID_ARGUMENTS", "`name` is required")
        found = projections.get(name)
        if found is None:
            raise EngineError("NOT_FOUND", f"no projection named {name!r}")
        position, state = found
        return {"name": name, "position": position, "state": state}

    async def pending(data: Any, ctx: CallContext) -> Any:
        return {
            "pending": [
                {
                    "id": b.id,
                    "trigger_type": b.trigger_type,
                    "function_id": b.function_id,
                    "config": b.config,
                    "provided_by": provided_by(b.trigger_type),
                }
                for b in engine.triggers.values()
                if b.trigger_type not in engine.providers
            ]
        }

    for function_id, handler, description in (
        (
            "iiilog::triggers::pending",
            pending,
            "Triggers bound to a type nobody provides yet, and who would",
        ),
        (
            "iiilog::triggers::status",
            status,
            "Durable trigger cursors, lag and parked counts",
        ),
        (
            "iiilog::triggers::parked",
            parked,
            "Deliveries parked after their retries ran out",
        ),
        (
            "iiilog::triggers::redeliver",
            redeliver,
            "Deliver a subscription's parked records again",
        ),
        (
            "iiilog::projections::list",
            list_projections,
            "Projections and how far they have folded the log",
        ),
        (
            "iiilog::projections::get",
            get_projection,
            "A projection's state and the offset it reflects",
        ),
    ):
        engine.add_builtin(function_id, handler, description)
