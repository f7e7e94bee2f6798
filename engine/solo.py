"""A node alone on its log (SQLite), and what a kept task is.

``keep(name, run)``: ``run()`` runs while this node holds lease ``name``; alone,
every lease is its own, so it runs until dropped (and starts again after
``RESTART_S`` when it fails). ``SharedCluster`` (``engine/cluster.py``) keeps
tasks the same way under leases in the cluster directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eventlog.directory import NodeInfo, RemoteRoute

from .errors import FunctionNotFound

if TYPE_CHECKING:
    from .core import CallContext, Engine

log = logging.getLogger("iiilog.cluster")

Runner = Callable[[], Coroutine[Any, Any, Any]]
Saver = Callable[[], Awaitable[None]]
# A kept task that failed (a bug, a database error) starts again after this.
RESTART_S = 1.0


async def role() -> None:
    """What a lease that guards a role rather than a task runs while held (the
    snapshot writer, retention): nothing, until the lease is lost."""
    await asyncio.Event().wait()


@dataclass(eq=False)
class Kept:
    name: str
    run: Runner
    task: asyncio.Task[Any] | None = None

    async def stop(self) -> None:
        """Cancel the task, if it runs, and wait until it has ended."""
        task, self.task = self.task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _again(kept: Kept) -> None:
    """Run a kept task; one that fails starts again (what a shared node's
    lease renewal does): one bad delivery must not stop it for good."""
    while True:
        try:
            await kept.run()
            return
        except Exception as e:
            log.warning("%s failed (%r); again in %.0f s", kept.name, e, RESTART_S)
        await asyncio.sleep(RESTART_S)


class SoloCluster:
    """A node alone on its log: every lease is its own."""

    shared = False

    def __init__(self, engine: Engine, node_id: str = "solo") -> None:
        self.engine = engine
        self.node_id = node_id
        self._kept: dict[str, Kept] = {}
        self._fires: set[tuple[str, int]] = set()

    def keep(self, name: str, run: Runner) -> None:
        kept = Kept(name, run)
        self._kept[name] = kept
        kept.task = self.engine.spawn(_again(kept), name=f"lease:{name}")

    async def drop(self, name: str, before_release: Saver | None = None) -> None:
        kept = self._kept.pop(name, None)
        if kept is None:
            return
        await kept.stop()
        if before_release is not None:
            await before_release()

    def holds(self, name: str) -> bool:
        return name in self._kept

    async def claim_fire(self, job: str, scheduled_ms: int) -> bool:
        """Replicas of one cron trigger fire once per scheduled time."""
        if (job, scheduled_ms) in self._fires:
            return False
        self._fires.add((job, scheduled_ms))
        if len(self._fires) > 10_000:
            self._fires = {f for f in self._fires if f[1] >= scheduled_ms - 86_400_000}
        return True

    async def claim_worker_name(
        self, worker_id: str, namespace: str, name: str, *, force: bool
    ) -> str | None:
        return None  # one node: the engine's own check is the whole truth

    async def release_worker_name(self, worker_id: str) -> None:
        return None

    async def invoke_remote(self, function_id: str, data: Any, ctx: CallContext) -> Any:
        raise FunctionNotFound(function_id, namespace=ctx.namespace or "default")

    def route_changed(self, added: list[RemoteRoute], removed: list[str]) -> None:
        return None

    def on_routes(self, listener: Callable[[list[RemoteRoute]], None]) -> None:
        return None

    async def start(self, node: NodeInfo) -> None:
        return None

    async def stop(self) -> None:
        for name in list(self._kept):
            await self.drop(name)

    async def describe(self) -> dict[str, Any]:
        return {"node_id": self.node_id, "shared": False, "nodes": []}
