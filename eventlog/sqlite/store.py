"""The SQLite log store (the embedded default): one file, WAL, one writer.

A commit is staged on the event loop (load the touched view rows and write tags,
plan the batch, write log rows, views and tags) inside ``BEGIN IMMEDIATE``; its
bookkeeping and its ``COMMIT``, which waits for the disk, run on a dedicated
writer thread, where the next batch cannot interfere. A ``LOCK`` file keeps a
second engine off the data dir. Offsets are assigned here, gapless, in commit
order. ``sqlite3``/``aiosqlite`` errors become ``StoreError`` in this package.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from ..bookkeeping import (
    Bookkeeping,
    Park,
    PruneSends,
    PruneTags,
    SaveCursor,
    SaveSnapshot,
    Unpark,
)
from ..codec import dumps
from ..config import Synchronous
from ..errors import DataDirLockedError, StoreError
from ..mutations import Address, BatchResult, Mutation
from ..planner import Plan, plan_batch
from ..records import Record
from ..rows import row_to_record
from . import schema as q
from .reads import SqliteReads
from .scan import SqliteScanner

LOG_FILE = "log.sqlite3"
_T = TypeVar("_T")


class SqliteStore(SqliteReads):
    """The log table, the inline views and the bookkeeping in one SQLite file."""

    def __init__(
        self,
        path: Path,
        writer: sqlite3.Connection | None,
        reader: aiosqlite.Connection,
        quick: sqlite3.Connection,
        snapshots: aiosqlite.Connection,
        lock_fd: int | None,
    ) -> None:
        self.path = path
        self._writer = writer
        self._writer_thread = ThreadPoolExecutor(1, thread_name_prefix="iiilog-log")
        self._reader = reader
        self._quick = quick
        self._snapshots = snapshots
        self._snapshot_lock = asyncio.Lock()
        self._lock_fd = lock_fd
        self._head = 0

    @classmethod
    async def open(
        cls,
        data_dir: Path,
        *,
        synchronous: Synchronous = "full",
        read_only: bool = False,
    ) -> SqliteStore:
        """Open (read-write: create) the log in ``data_dir``. Read-only never
        creates anything: a missing log is a ``StoreError`` naming the path."""
        path = data_dir / LOG_FILE
        lock_fd = None
        writer = None
        try:
            if read_only:
                if not path.exists():
                    raise StoreError(f"no log at {path}")
            else:
                data_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (once)
                lock_fd = _lock(data_dir)
                writer = sqlite3.connect(
                    path, isolation_level=None, check_same_thread=False
                )
                writer.execute("PRAGMA journal_mode=WAL")
                writer.execute(f"PRAGMA synchronous={synchronous.upper()}")
                writer.executescript(q.SCHEMA)
                writer.execute(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema', ?)",
                    (str(q.SCHEMA_VERSION),),
                )
            uri = f"file:{path}?mode=ro" if read_only else f"file:{path}"
            reader = await aiosqlite.connect(uri, uri=True, isolation_level=None)
            await reader.execute("PRAGMA query_only=ON")
            quick = sqlite3.connect(uri, uri=True, isolation_level=None)
            quick.execute("PRAGMA query_only=ON")
            snapshots = await aiosqlite.connect(uri, uri=True, isolation_level=None)
            await snapshots.execute("PRAGMA query_only=ON")
        except (sqlite3.Error, OSError) as e:
            if lock_fd is not None:
                os.close(lock_fd)
            raise StoreError(f"cannot open the log at {path}: {e}") from e
        store = cls(path, writer, reader, quick, snapshots, lock_fd)
        store._head = await store.read_head()
        return store

    @property
    def head(self) -> int:
        return self._head

    @property
    def location(self) -> str:
        return str(self.path)

    def scanner(self) -> SqliteScanner:
        return SqliteScanner(self.path)

    async def close(self) -> None:
        if self._writer is not None:
            await self._on_writer(lambda db: db.close())
            self._writer = None
        self._writer_thread.shutdown()
        await self._reader.close()
        self._quick.close()
        await self._snapshots.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- writing (single writer) -------------------------------------------------

    async def _on_writer(self, run: Callable[[sqlite3.Connection], _T]) -> _T:
        """``run(connection)`` on the writer thread. A cancelled caller still
        waits for it: the connection is busy until it returns, and the caller's
        rollback must not race it."""
        db = self._writer
        if db is None:
            raise StoreError("the store is open read-only")
        done = self._writer_thread.submit(run, db)
        try:
            return await asyncio.wrap_future(done)
        except asyncio.CancelledError:
            try:
                done.result()
            except Exception:
                pass
            raise

    async def commit(
        self, batch: Sequence[Mutation], books: Sequence[Bookkeeping] = ()
    ) -> BatchResult:
        """Planning and staging run inline (Python work: on a thread it would
        only fight the loop for the GIL, once per SQLite call); bookkeeping and
        ``COMMIT`` run on the writer thread."""
        db = self._writer
        if db is None:
            raise StoreError("the store is open read-only")
        kept: list[Any] = []
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                plan = self._stage(db, batch)
                if books:
                    kept = await self._on_writer(lambda db: _keep(db, books))
                if plan.rows or books:
                    await self._on_writer(lambda db: db.execute("COMMIT"))
                else:
                    db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            raise StoreError(f"commit failed: {e}") from e
        if plan.head is not None:
            self._head = plan.head
        plan.result.kept = kept
        return plan.result

    def _stage(self, db: sqlite3.Connection, batch: Sequence[Mutation]) -> Plan:
        """Plan the batch and write it, inside the open transaction."""
        if not batch:
            return Plan()
        plan = plan_batch(
            batch,
            _load_view_rows(db, {m.address for m in batch}),
            _load_tags(db, [m.dedupe for m in batch if m.dedupe]),
            self._head,
            int(time.time() * 1000),
        )
        if not plan.rows:
            return plan
        db.executemany(q.INSERT_LOG, plan.rows)
        if plan.tags:
            db.executemany(q.INSERT_TAG, plan.tags)
        if plan.view_deletes:
            db.executemany(q.DELETE_VIEW, plan.view_deletes)
        if plan.view_upserts:
            db.executemany(q.UPSERT_VIEW, plan.view_upserts)
        db.execute(q.SET_VIEWS_CHECKPOINT, (plan.head,))
        return plan


def _keep(db: sqlite3.Connection, books: Sequence[Bookkeeping]) -> list[Any]:
    """Apply bookkeeping operations in the open transaction (writer thread)."""
    out: list[Any] = []
    for op in books:
        result: Any = None
        match op:
            case SaveCursor():
                db.execute(
                    q.SAVE_CURSOR,
                    (
                        op.key,
                        op.function_id,
                        op.trigger_type,
                        dumps(op.config),
                        op.position,
                        op.ts,
                    ),
                )
            case Park():
                db.execute(q.PARK, (op.key, op.offset, op.attempts, op.error, op.ts))
            case Unpark():
                db.execute(q.UNPARK, (op.key, op.offset))
            case SaveSnapshot():
                db.execute(
                    q.SAVE_SNAPSHOT, (op.name, op.position, op.encoded_state, op.ts)
                )
            case PruneTags():
                db.execute(q.PRUNE_TAGS, (op.before_ms,))
            case PruneSends():
                # Every send up to the newest old one goes (the pruned-through
                # mark is one offset); the count is of what went.
                (through,) = db.execute(q.SENDS_TO_PRUNE, (op.before_ms,)).fetchone()
                result = 0
                if through is not None:
                    result = db.execute(q.PRUNE_SENDS, (through,)).rowcount
                    db.execute(q.SET_PRUNED_THROUGH, (str(through),))
        out.append(result)
    return out


def _load_view_rows(
    db: sqlite3.Connection, addresses: set[Address]
) -> dict[Address, tuple[str | None, int]]:
    """The current view rows (value, pos) of these addresses."""
    if not addresses:
        return {}
    rows = db.execute(q.LOAD_VIEW_ROWS, (dumps([list(a) for a in addresses]),))
    return {(r[0], r[1], r[2], r[3]): (r[4], r[5]) for r in rows.fetchall()}


def _load_tags(
    db: sqlite3.Connection, tags: list[tuple[str, int]]
) -> dict[tuple[str, int], Record]:
    """The records earlier deliveries already produced for these tags."""
    if not tags:
        return {}
    rows = db.execute(q.LOAD_TAGS, (dumps([list(t) for t in tags]),)).fetchall()
    return {(r[0], r[1]): row_to_record(r[2:]) for r in rows}


def _lock(data_dir: Path) -> int:
    fd = os.open(data_dir / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as e:
        os.close(fd)
        raise DataDirLockedError(
            f"the data dir {data_dir} is in use by another engine"
        ) from e
    return fd
