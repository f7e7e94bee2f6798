"""The projection runner: the only I/O in ``projections/`` besides rebuilds.

Each projection is fed from its snapshot (or from 0) to the head and then
follows the tail. Its state and position are saved together through the writer
(a *snapshot*: one bookkeeping operation, in a commit of the log) every
``snapshot_interval_s`` seconds (scheduled with APScheduler) and on shutdown, so
a restart folds only what came after the last snapshot. With snapshots off,
every start folds the whole history. A projection never seen before starts from
offset 0: it builds itself from all of history. What each start did (the
snapshot it began from, the head it reached, the records it read to get there)
is kept for ``iiilog::projections::list`` and the console.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from pydantic import BaseModel, ConfigDict, Field

from eventlog import (
    EventLogError,
    LogStore,
    LogTail,
    LogWriter,
    Record,
    SaveSnapshot,
)

from .base import Projection
from .bulk import fold_history

log = logging.getLogger("iiilog.projections")
BULK_FROM = 10_000  # records behind: fold them on a thread, not from the tail


class SnapshotConfig(BaseModel):
    """Module ``iiilog-projections`` (file keys ``snapshots``,
    ``snapshot_interval_s``): whether and how often projection states are
    saved, so a restart folds only what came after."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    enabled: bool = Field(True, alias="snapshots")
    interval_s: float = Field(5.0, gt=0, alias="snapshot_interval_s")


@dataclass(frozen=True, slots=True)
class StartReport:
    """How a projection caught up at start: from the snapshot at offset
    ``snapshot`` (None: no snapshot, from 0) to ``head``, reading ``folded``
    records of the log (all of them after the snapshot; a long stretch of a
    compactable projection reads its compacted form, fewer)."""

    snapshot: int | None
    head: int
    folded: int

    def view(self) -> dict[str, Any]:
        return {"snapshot": self.snapshot, "head": self.head, "folded": self.folded}


@dataclass(eq=False)
class _Running:
    projection: Projection
    state: Any
    position: int
    saved: int
    changed: asyncio.Event
    task: asyncio.Task[Any] | None = None
    snapshot: int | None = None  # the offset of the snapshot it started from
    folded_at_start: int = 0  # records read at start to reach the head
    start: StartReport | None = None


class ProjectionRunner:
    def __init__(
        self,
        store: LogStore,
        writer: LogWriter,
        tail: LogTail,
        projections: list[Projection],
        snapshots: SnapshotConfig | None = None,
        may_save: Callable[[], bool] = lambda: True,
    ) -> None:
        self.store = store
        self.writer = writer
        self.tail = tail
        self.projections = projections
        self.snapshots = snapshots or SnapshotConfig()
        # Every node sharing a log folds its projections; one saves snapshots.
        self.may_save = may_save
        self.running: dict[str, _Running] = {}
        self._scheduler: AsyncIOScheduler | None = None

    async def start(self) -> None:
        runs = []
        for projection in self.projections:
            saved = (
                await self.store.snapshot(projection.name)
                if self.snapshots.enabled
                else None
            )
            if saved is None:
                state, position = projection.initial(), 0
            else:
                state, position = saved.state, saved.position
            run = _Running(projection, state, position, position, asyncio.Event())
            run.snapshot = None if saved is None else saved.position
            runs.append(run)
        # Restart cost: fold what the snapshots lack. A long stretch is folded
        # on threads, every projection at once (nothing else reads the states
        # before start returns), then the rest from the tail.
        head = self.tail.head
        await asyncio.gather(*(self._bulk(run, head) for run in runs))
        for run in runs:
            await self._catch_up(run)
            run.start = StartReport(run.snapshot, run.position, run.folded_at_start)
            log.info(
                "projection %s: from %s, folded %d records to offset %d",
                run.projection.name,
                "offset 0 (no snapshot)"
                if run.snapshot is None
                else f"the snapshot at offset {run.snapshot}",
                run.folded_at_start,
                run.position,
            )
            self.running[run.projection.name] = run
            run.task = asyncio.get_running_loop().create_task(
                self._follow(run), name=f"projection:{run.projection.name}"
            )
            run.task.add_done_callback(_report)
        if self.snapshots.enabled:
            self._scheduler = AsyncIOScheduler(timezone="UTC")
            self._scheduler.add_job(
                self.save_all,
                "interval",
                seconds=self.snapshots.interval_s,
                max_instances=1,
                coalesce=True,
                id="projection-snapshots",
            )
            self._scheduler.start()

    async def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        for run in self.running.values():
            if run.task is not None:
                run.task.cancel()
        await asyncio.gather(
            *(r.task for r in self.running.values() if r.task), return_exceptions=True
        )
        if self.snapshots.enabled:
            await self.save_all()

    async def _bulk(self, run: _Running, head: int) -> None:
        if head - run.position < BULK_FROM:
            return
        run.state, read = await asyncio.to_thread(
            fold_history,
            self.store.scanner(),
            run.projection,
            run.state,
            run.position,
            head,
        )
        run.position = head
        run.folded_at_start += read

    async def _catch_up(self, run: _Running) -> None:
        while True:
            records = await self.tail.read_after(run.position, 5000)
            if not records:
                return
            run.folded_at_start += len(records)
            self._fold(run, records)

    def _fold(self, run: _Running, records: list[Record]) -> None:
        projection = run.projection
        state = run.state
        for record in records:
            if projection.accepts(record):
                state = projection.apply(state, record)
        run.state = state
        run.position = records[-1].offset
        run.changed.set()
        run.changed = asyncio.Event()

    async def _follow(self, run: _Running) -> None:
        """Fold what the tail gets, forever. A store that is away (reading
        behind the tail's window on PostgreSQL) is waited out, from the same
        position; a fold that raises is a bug: it stops this projection, said
        loudly (its state is no longer that of the log)."""
        delay = 0.1
        while True:
            try:
                records = await self.tail.read_after(run.position, 1000)
            except EventLogError as e:
                log.warning("projection %s: %s; retrying", run.projection.name, e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.1
            if not records:
                await self.tail.wait_beyond(run.position)
                continue
            self._fold(run, records)

    async def save_all(self) -> None:
        """A snapshot of every projection that moved since the last one."""
        if not self.may_save():
            return
        ts = int(time.time() * 1000)
        moved = [
            (
                run,
                SaveSnapshot.capture(run.projection.name, run.position, run.state, ts),
            )
            for run in self.running.values()
            if run.position != run.saved
        ]
        await asyncio.gather(*(self.writer.keep(op) for _, op in moved))
        for run, op in moved:
            run.saved = op.position

    def get(self, name: str) -> tuple[int, Any] | None:
        run = self.running.get(name)
        if run is None:
            return None
        return run.position, copy.deepcopy(run.state)

    def started(self, name: str) -> StartReport | None:
        """How projection ``name`` caught up when the engine started."""
        run = self.running.get(name)
        return run.start if run is not None else None


def _report(task: asyncio.Task[Any]) -> None:
    """A projection's follower that ended on its own: say why."""
    if not task.cancelled() and task.exception() is not None:
        log.error(
            "%s stopped: its fold raised", task.get_name(), exc_info=task.exception()
        )
