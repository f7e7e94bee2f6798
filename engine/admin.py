"""iiilog's own engine functions (extensions): trigger cursors and parked
deliveries. Namespaced ``iiilog::`` so they never clash with iii's."""

from __future__ import annotations

from typing import Any

from .core import CallContext, Engine
from .durable import DurableTriggers
from .errors import EngineError


def install_admin(engine: Engine, durable: DurableTriggers) -> None:
    async def status(data: Any, ctx: CallContext) -> Any:
        return await durable.status()

    async def parked(data: Any, ctx: CallContext) -> Any:
        key = data.get("key") if isinstance(data, dict) else None
        if key is not None and not isinstance(key, str):
            raise EngineError("INVALID_ARGUMENTS", "`key` must be a string")
        return {"parked": await engine.store.parked_rows(key)}

    engine.add_builtin(
        "iiilog::triggers::status",
        status,
        "Durable trigger cursors, lag and parked counts",
    )
    engine.add_builtin(
        "iiilog::triggers::parked",
        parked,
        "Deliveries parked after their retries ran out",
    )
