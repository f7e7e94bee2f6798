"""The single writer: queues mutations and commits them in groups.

Callers ``await writer.submit(mutation)`` and get their ``Record`` only after the
transaction that holds it has committed (an acknowledged write is durable).
Everything that piles up while one commit runs goes into the next one: one
transaction and one fsync for many records. Committed records are then published
to the tail in offset order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from .errors import StoreError
from .records import Record
from .store import Mutation, SqliteStore

log = logging.getLogger("iiilog.writer")

Listener = Callable[[list[Record]], None]


class LogWriter:
    def __init__(self, store: SqliteStore, *, max_batch: int = 512) -> None:
        self.store = store
        self.max_batch = max_batch
        self._queue: asyncio.Queue[tuple[Mutation, asyncio.Future[Record]] | None] = (
            asyncio.Queue(maxsize=max_batch * 8)
        )
        self._closing = False
        self._listeners: list[Listener] = []
        self.batches = 0
        self.records = 0

    def on_commit(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def submit(self, mutation: Mutation) -> Record:
        if self._closing:
            raise StoreError("the engine is shutting down")
        future: asyncio.Future[Record] = asyncio.get_running_loop().create_future()
        await self._queue.put((mutation, future))
        return await future

    async def run(self) -> None:
        """Commit batches until ``close`` is called and the queue is drained."""
        while True:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self.max_batch and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stop = True
                    break
                batch.append(item)
            await self._commit(batch)
            if stop:
                return

    async def close(self) -> None:
        """Refuse new writes; what is already queued still commits."""
        self._closing = True
        await self._queue.put(None)

    async def _commit(
        self, batch: list[tuple[Mutation, asyncio.Future[Record]]]
    ) -> None:
        try:
            result = await self.store.commit([m for m, _ in batch])
        except StoreError as e:
            log.error("commit of %d mutations failed: %s", len(batch), e)
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(e)
            return
        committed: list[Record] = []
        for (_, fut), outcome in zip(batch, result.results, strict=True):
            if isinstance(outcome, BaseException):
                if not fut.done():
                    fut.set_exception(outcome)
                continue
            committed.append(outcome)
            if not fut.done():
                fut.set_result(outcome)
        self.batches += 1
        self.records += len(committed)
        if committed:
            for listener in self._listeners:
                listener(committed)
