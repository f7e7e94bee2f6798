"""The single writer: queues mutations and commits them in groups.

Callers ``await writer.submit(mutation)`` and get their ``Record`` only after the
transaction that holds it has committed (an acknowledged write is durable).
Everything that piles up while one commit runs goes into the next one: one
transaction and one fsync for many records. Committed records are then published
to the listeners (the tail) in offset order. Maintenance that must not interleave
with a commit (retention) runs here too, between batches (``run_exclusive``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .errors import StoreError
from .records import Record
from .store import Mutation, SqliteStore

log = logging.getLogger("iiilog.writer")

Listener = Callable[[list[Record]], None]


@dataclass(slots=True)
class _Job:
    run: Callable[[], Awaitable[Any]]
    future: asyncio.Future[Any]


_Item = tuple[Mutation, "asyncio.Future[Record]"] | _Job | None


class LogWriter:
    def __init__(self, store: SqliteStore, *, max_batch: int = 512) -> None:
        self.store = store
        self.max_batch = max_batch
        self._queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=max_batch * 8)
        # A full queue would let a new put overtake blocked ones, so admission
        # goes through a (FIFO) lock: commit order stays submission order.
        self._admission = asyncio.Lock()
        self._listeners: list[Listener] = []
        self._closing = False
        self.batches = 0
        self.records = 0

    def on_commit(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def submit(self, mutation: Mutation) -> Record:
        """Queue one mutation; returns its committed record.

        A record with ``offset == 0`` means the mutation decided to write nothing.
        """
        if self._closing:
            raise StoreError("the engine is shutting down")
        future: asyncio.Future[Record] = asyncio.get_running_loop().create_future()
        await self._put((mutation, future))
        return await future

    async def _put(self, item: _Item) -> None:
        async with self._admission:  # no suspension at all when uncontended
            await self._queue.put(item)

    async def run_exclusive(self, run: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``run`` on the writer, between two batches."""
        if self._closing:
            raise StoreError("the engine is shutting down")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await self._put(_Job(run, future))
        return await future

    async def run(self) -> None:
        """Commit batches until ``close`` is called and the queue is drained."""
        while True:
            item = await self._queue.get()
            batch: list[tuple[Mutation, asyncio.Future[Record]]] = []
            while True:
                if item is None:
                    await self._commit(batch)
                    return
                if isinstance(item, _Job):
                    await self._commit(batch)
                    batch = []
                    await self._run_job(item)
                else:
                    batch.append(item)
                if len(batch) >= self.max_batch or self._queue.empty():
                    break
                item = self._queue.get_nowait()
            await self._commit(batch)

    async def close(self) -> None:
        """Refuse new writes; what is already queued still commits."""
        self._closing = True
        await self._put(None)

    @staticmethod
    async def _run_job(job: _Job) -> None:
        try:
            result = await job.run()
        except Exception as e:
            if not job.future.done():
                job.future.set_exception(e)
        else:
            if not job.future.done():
                job.future.set_result(result)

    async def _commit(
        self, batch: list[tuple[Mutation, asyncio.Future[Record]]]
    ) -> None:
        if not batch:
            return
        try:
            result = await self.store.commit([m for m, _ in batch])
        except StoreError as e:
            log.error("commit of %d mutations failed: %s", len(batch), e)
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(e)
            return
        for (_, fut), outcome in zip(batch, result.results, strict=True):
            if fut.done():
                continue
            if isinstance(outcome, BaseException):
                fut.set_exception(outcome)
            else:
                fut.set_result(outcome)
        committed = result.new
        self.batches += 1
        self.records += len(committed)
        if committed:
            for listener in self._listeners:
                listener(committed)
