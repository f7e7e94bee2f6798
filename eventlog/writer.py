"""The single writer: queues mutations and bookkeeping, commits them in groups.

Callers ``await writer.submit(mutation)`` and get their ``Record`` only after the
transaction that holds it has committed (an acknowledged write is durable).
Everything that piles up while one commit runs goes into the next one: one
transaction and one fsync for many records. Bookkeeping (``keep``: cursors,
parked records, snapshots, tags, retention) rides in the same transactions.
Committed records are then published to the listeners (the tail) in offset order,
and each commit's size and duration to the batch observers (metrics).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from .bookkeeping import Bookkeeping
from .errors import StoreError
from .mutations import Mutation
from .records import Record
from .store import LogStore

log = logging.getLogger("iiilog.writer")

Listener = Callable[[list[Record]], None]
# (operations in the batch, records appended, seconds the commit took)
BatchObserver = Callable[[int, int, float], None]
_Item = (
    tuple[Mutation, "asyncio.Future[Record]"]
    | tuple[Bookkeeping, "asyncio.Future[Any]"]
    | None
)


class LogWriter:
    def __init__(self, store: LogStore, *, max_batch: int = 512) -> None:
        self.store = store
        self.max_batch = max_batch
        self._queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=max_batch * 8)
        # A full queue would let a new put overtake blocked ones, so admission
        # goes through a (FIFO) lock: commit order stays submission order.
        self._admission = asyncio.Lock()
        self._listeners: list[Listener] = []
        self._observers: list[BatchObserver] = []
        self._closing = False

    def on_commit(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def on_batch(self, observer: BatchObserver) -> None:
        """Called once per committed batch, after its callers were answered."""
        self._observers.append(observer)

    async def submit(self, mutation: Mutation) -> Record:
        """Queue one mutation; returns its committed record.

        A record with ``offset == 0`` means the mutation decided to write nothing.
        """
        return await self._enqueue(mutation)  # type: ignore[no-any-return]

    async def keep(self, op: Bookkeeping) -> Any:
        """Queue one bookkeeping operation; returns what it returned once its
        transaction has committed."""
        return await self._enqueue(op)

    async def _enqueue(self, item: Mutation | Bookkeeping) -> Any:
        if self._closing:
            raise StoreError("the engine is shutting down")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        async with self._admission:  # no suspension at all when uncontended
            await self._queue.put((item, future))  # type: ignore[arg-type]
        return await future

    async def run(self) -> None:
        """Commit batches until ``close`` is called and the queue is drained."""
        while True:
            item = await self._queue.get()
            mutations: list[tuple[Mutation, asyncio.Future[Record]]] = []
            books: list[tuple[Bookkeeping, asyncio.Future[Any]]] = []
            last = False
            while True:
                if item is None:
                    last = True
                    break
                if isinstance(item[0], Mutation):
                    mutations.append(item)
                else:
                    books.append(item)
                if len(mutations) + len(books) >= self.max_batch:
                    break
                if self._queue.empty():
                    break
                item = self._queue.get_nowait()
            await self._commit(mutations, books)
            if last:
                return

    async def close(self) -> None:
        """Refuse new writes; what is already queued still commits."""
        self._closing = True
        async with self._admission:
            await self._queue.put(None)

    async def _commit(
        self,
        mutations: list[tuple[Mutation, asyncio.Future[Record]]],
        books: list[tuple[Bookkeeping, asyncio.Future[Any]]],
    ) -> None:
        if not mutations and not books:
            return
        started = time.perf_counter()
        try:
            result = await self.store.commit(
                [m for m, _ in mutations], [b for b, _ in books]
            )
        except Exception as e:
            # Nothing of the batch was kept; its callers get the error and the
            # writer goes on (a dead writer would hang every later caller).
            log.error(
                "commit of %d mutations and %d bookkeeping operations failed: %s",
                len(mutations),
                len(books),
                e,
                exc_info=not isinstance(e, StoreError),
            )
            for _, fut in (*mutations, *books):
                if not fut.done():
                    fut.set_exception(e)
            return
        for (_, fut), outcome in zip(mutations, result.results, strict=True):
            if fut.done():
                continue
            if isinstance(outcome, BaseException):
                fut.set_exception(outcome)
            else:
                fut.set_result(outcome)
        for (_, kept_fut), kept in zip(books, result.kept, strict=True):
            if not kept_fut.done():
                kept_fut.set_result(kept)
        if result.new:
            for listener in self._listeners:
                listener(result.new)
        if self._observers:
            took = time.perf_counter() - started
            for observer in self._observers:
                observer(len(mutations) + len(books), len(result.new), took)
