"""The projection runner: the only I/O in ``projections/``.

Each projection is fed from its checkpoint to the head and then follows the
tail. Its state and checkpoint are saved together, in one transaction on the
writer (a *snapshot*), every ``snapshot_interval_s`` seconds (scheduled with
APScheduler) and on shutdown, so a restart folds only what came after the last
snapshot. With snapshots off, every start folds the whole history. A projection
never seen before starts from offset 0: it builds itself from all of history.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from dataclasses import dataclass
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from pydantic import BaseModel, ConfigDict, Field

from eventlog import LogTail, LogWriter, SqliteStore
from eventlog.codec import dumps, loads

from .base import Projection
from .bulk import fold_history

log = logging.getLogger("iiilog.projections")
BULK_FROM = 10_000  # records behind: fold them on a thread, not from the tail

_SAVE = (
    "INSERT INTO projections(name, position, state, ts) VALUES (?,?,?,?)"
    " ON CONFLICT(name) DO UPDATE SET position=excluded.position,"
    " state=excluded.state, ts=excluded.ts"
)


class SnapshotConfig(BaseModel):
    """Module ``iiilog-projections`` (file keys ``snapshots``,
    ``snapshot_interval_s``): whether and how often projection states are
    saved, so a restart folds only what came after."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    enabled: bool = Field(True, alias="snapshots")
    interval_s: float = Field(5.0, gt=0, alias="snapshot_interval_s")


@dataclass(eq=False)
class _Running:
    projection: Projection
    state: Any
    position: int
    saved: int
    changed: asyncio.Event
    task: asyncio.Task[Any] | None = None


class ProjectionRunner:
    def __init__(
        self,
        store: SqliteStore,
        writer: LogWriter,
        tail: LogTail,
        projections: list[Projection],
        snapshots: SnapshotConfig | None = None,
    ) -> None:
        self.store = store
        self.writer = writer
        self.tail = tail
        self.projections = projections
        self.snapshots = snapshots or SnapshotConfig()
        self.running: dict[str, _Running] = {}
        self._scheduler: AsyncIOScheduler | None = None
        self.startup_fold_s = 0.0

    async def start(self) -> None:
        started = time.perf_counter()
        runs = []
        for projection in self.projections:
            saved = (
                await self.store.projection_state(projection.name)
                if self.snapshots.enabled
                else None
            )
            if saved is None:
                state, position = projection.initial(), 0
            else:
                position, text = saved
                state = loads(text)
            runs.append(
                _Running(projection, state, position, position, asyncio.Event())
            )
        # Restart cost: fold what the snapshots lack. A long stretch is folded
        # on threads, every projection at once (nothing else reads the states
        # before start returns), then the rest from the tail.
        head = self.tail.head
        await asyncio.gather(*(self._bulk(run, head) for run in runs))
        for run in runs:
            await self._catch_up(run)
            self.running[run.projection.name] = run
            run.task = asyncio.get_running_loop().create_task(
                self._follow(run), name=f"projection:{projection.name}"
            )
        self.startup_fold_s = time.perf_counter() - started
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
        run.state = await asyncio.to_thread(
            fold_history, self.store.path, run.projection, run.state, run.position, head
        )
        run.position = head

    async def _catch_up(self, run: _Running) -> None:
        while True:
            records = await self.tail.read_after(run.position, 5000)
            if not records:
                return
            self._fold(run, records)

    def _fold(self, run: _Running, records: list[Any]) -> None:
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
        while True:
            records = await self.tail.read_after(run.position, 1000)
            if not records:
                await self.tail.wait_beyond(run.position)
                continue
            self._fold(run, records)

    async def save_all(self) -> None:
        """A snapshot of every projection that moved since the last one."""
        ts = int(time.time() * 1000)
        batch = [
            (run, run.position, dumps(run.state))
            for run in self.running.values()
            if run.position != run.saved
        ]
        if not batch:
            return
        statements = [
            (_SAVE, (run.projection.name, pos, text, ts)) for run, pos, text in batch
        ]
        await self.writer.run_exclusive(lambda: self.store.write_small(statements))
        for run, pos, _ in batch:
            run.saved = pos

    def get(self, name: str) -> tuple[int, Any] | None:
        run = self.running.get(name)
        if run is None:
            return None
        return run.position, copy.deepcopy(run.state)

    async def wait_for(self, name: str, position: int, timeout: float) -> bool:
        """Until projection ``name`` has folded ``position``; False on timeout."""
        run = self.running[name]
        deadline = time.monotonic() + timeout
        while run.position < position:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(run.changed.wait(), remaining)
            except TimeoutError:
                return run.position >= position
        return True
