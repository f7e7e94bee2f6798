"""The PostgreSQL log store: one log shared by several engine nodes (asyncpg).

A commit is one READ COMMITTED transaction on a pooled connection: lock the
head row first (appends of every node queue there, so offsets stay gapless and
in commit order), load the touched view rows and write tags, plan the batch
(``planner``, the same pure function as SQLite's), write the plan in one
statement, apply the bookkeeping, notify ``iiilog_log`` (a wake-up hint for the
other nodes, never the truth), commit. A rollback gives the numbers back. Lost
connections and timeouts become ``StoreError``; the pool reconnects by itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

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
from ..errors import StoreError
from ..mutations import Address, BatchResult, Mutation
from ..planner import Plan, plan_batch
from ..records import Record
from ..rows import row_to_record
from ..waiting import wait_event
from . import schema as q
from .directory import PostgresDirectory
from .reads import Conn, PostgresReads, errors
from .scan import PostgresScanner

log = logging.getLogger("iiilog.postgres")
COMMIT_TIMEOUT_S = 15.0  # a commit that cannot finish (database gone) fails


class PostgresStore(PostgresReads):
    def __init__(self, url: str, pool: asyncpg.Pool, head: int) -> None:
        self.url = url
        self._pool = pool
        self._head = head

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        pool_size: int = 8,
        connect_timeout: float = 5.0,
        create: bool = True,
    ) -> PostgresStore:
        """Connect, create or migrate the schema (once, even when several nodes
        start together), and learn the head. With ``create`` false (tools that
        only read) a database without a log is an error, and nothing is made."""
        try:
            async with errors(f"cannot open the log at {_safe(url)}"):
                pool = await asyncpg.create_pool(
                    url,
                    min_size=1,
                    max_size=pool_size,
                    timeout=connect_timeout,
                    command_timeout=COMMIT_TIMEOUT_S,
                    reset=_no_session_state,
                )
        except OSError as e:
            raise StoreError(f"cannot open the log at {_safe(url)}: {e}") from e
        try:
            async with errors("cannot create the schema"), pool.acquire() as conn:
                if create:
                    await migrate(conn)
                elif await conn.fetchval(q.HAS_LOG) is None:
                    raise StoreError(f"no iiilog log in {_safe(url)}")
            store = cls(url, pool, 0)
            store._head = await store.read_head()
        except BaseException:
            await pool.close()
            raise
        return store

    @property
    def head(self) -> int:
        return self._head

    async def read_head(self) -> int:
        head = await super().read_head()
        self.observe(head)
        return head

    def observe(self, head: int) -> None:
        """Another node committed up to ``head`` (learned from the database)."""
        if head > self._head:
            self._head = head

    @property
    def location(self) -> str:
        return _safe(self.url)

    def scanner(self) -> PostgresScanner:
        return PostgresScanner(self.url)

    def directory(self) -> PostgresDirectory:
        """The cluster directory in the same database."""
        return PostgresDirectory(self._pool)

    async def watch(self, wake: Callable[[], None], retry_s: float = 1.0) -> None:
        """Call ``wake`` on every commit notification, until cancelled. The
        listening connection is opened again whenever it is lost (and ``wake``
        is called then too: notifications sent meanwhile are gone)."""
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self.url, timeout=5)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(q.NOTIFY_CHANNEL, lambda *_: wake())
                wake()
                while not lost.is_set():
                    if not await wait_event(lost, retry_s * 5):
                        # a silent half-open socket: probe it
                        await conn.fetchval("SELECT 1", timeout=retry_s * 5)
            except (
                OSError,
                TimeoutError,
                asyncpg.PostgresError,
                asyncpg.InterfaceError,
            ) as e:
                log.warning("listening for commits on %s failed: %s", self.location, e)
            finally:
                if conn is not None and not conn.is_closed():
                    conn.terminate()
            await asyncio.sleep(retry_s)

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self._pool.close(), 5)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            self._pool.terminate()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Conn]:
        async with (
            errors("the database is unreachable"),
            self._pool.acquire(timeout=COMMIT_TIMEOUT_S) as conn,
        ):
            yield conn

    # -- writing -------------------------------------------------------------------

    async def commit(
        self, batch: Sequence[Mutation], books: Sequence[Bookkeeping] = ()
    ) -> BatchResult:
        if not batch and not books:
            return BatchResult()
        async with (
            self._connection() as conn,
            errors("commit failed"),
            conn.transaction(),
        ):
            head = int(await conn.fetchval(q.LOCK_HEAD))
            self.observe(head)
            plan = await self._stage(conn, batch, head)
            kept = [await _keep(conn, op) for op in books]
        if plan.head is not None:
            self.observe(plan.head)
        plan.result.kept = kept
        return plan.result

    async def _stage(self, conn: Conn, batch: Sequence[Mutation], head: int) -> Plan:
        if not batch:
            return Plan()
        addresses = list({m.address for m in batch})
        rows = await conn.fetch(q.LOAD_VIEW_ROWS, *_columns(addresses, 4))
        current: dict[Address, tuple[str | None, int]] = {
            (r[0], r[1], r[2], r[3]): (r[4], r[5]) for r in rows
        }
        wanted = list({m.dedupe for m in batch if m.dedupe is not None})
        applied: dict[tuple[str, int], Record] = {}
        if wanted:
            for r in await conn.fetch(q.LOAD_TAGS, *_columns(wanted, 2)):
                applied[(r[0], r[1])] = row_to_record(tuple(r)[2:])
        plan = plan_batch(batch, current, applied, head, int(time.time() * 1000))
        if plan.rows:
            await conn.fetchval(
                q.WRITE_PLAN,
                *_columns(plan.rows, 9),
                *_columns(plan.tags, 4),
                *_columns(plan.view_deletes, 4),
                *_columns(plan.view_upserts, 6),
                plan.head,
            )
        return plan


async def _no_session_state(_conn: Conn) -> None:
    """A pooled connection goes back as it is: no pooled use leaves session
    state behind (no LISTEN: the watcher has its own connection; no SET; the
    migration's advisory lock is released in a ``finally``), and asyncpg still
    rolls back an open transaction itself. Its default reset costs a round
    trip per release (17% of a follower's CPU in a profile)."""


async def migrate(conn: Conn) -> None:
    """Bring the schema to ``SCHEMA_VERSION``; concurrent callers wait."""
    await conn.execute(q.MIGRATION_LOCK)
    try:
        async with conn.transaction():
            await conn.execute(q.VERSION_TABLE)
            version = int(await conn.fetchval(q.VERSION))
            for number, script in q.MIGRATIONS:
                if number > version:
                    await conn.execute(script)
                    await conn.execute(q.SET_VERSION, number)
            if version > q.SCHEMA_VERSION:
                raise StoreError(
                    f"the database holds schema version {version}; this iiilog"
                    f" knows up to {q.SCHEMA_VERSION} (upgrade iiilog)"
                )
    finally:
        await conn.execute(q.MIGRATION_UNLOCK)


async def _keep(conn: Conn, op: Bookkeeping) -> Any:
    match op:
        case SaveCursor():
            await conn.execute(
                q.SAVE_CURSOR,
                op.key,
                op.function_id,
                op.trigger_type,
                dumps(op.config),
                op.position,
                op.ts,
            )
        case Park():
            await conn.execute(q.PARK, op.key, op.offset, op.attempts, op.error, op.ts)
        case Unpark():
            await conn.execute(q.UNPARK, op.key, op.offset)
        case SaveSnapshot():
            await conn.execute(
                q.SAVE_SNAPSHOT, op.name, op.position, op.encoded_state, op.ts
            )
        case PruneTags():
            await conn.execute(q.PRUNE_TAGS, op.before_ms)
        case PruneSends():
            return int(await conn.fetchval(q.PRUNE_SENDS, op.before_ms))
    return None


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows as one list per column (for ``unnest``)."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}@{host}"
