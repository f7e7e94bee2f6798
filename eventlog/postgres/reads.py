"""The read side of the PostgreSQL store, and its error mapping.

Every read takes a pooled connection; reads that must agree with each other
(a view and the offset it reflects) run in one REPEATABLE READ transaction.
``errors`` turns asyncpg's failures (server errors, lost connections,
timeouts) into ``StoreError``, in this package only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from ..bookkeeping import CursorInfo, ParkedRecord, Snapshot, SnapshotInfo
from ..codec import loads
from ..errors import StoreError
from ..logquery import LogQuery, select
from ..records import Record
from ..rows import row_to_record
from ..store import ViewRow
from . import schema as q

Conn = asyncpg.Connection | PoolConnectionProxy


@asynccontextmanager
async def errors(what: str) -> AsyncIterator[None]:
    try:
        yield
    except StoreError:
        raise
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as e:
        raise StoreError(f"{what}: {e}") from e
    except (OSError, TimeoutError) as e:
        raise StoreError(f"{what}: {e or type(e).__name__}") from e


class PostgresReads:
    _pool: asyncpg.Pool

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        async with errors("read failed"), self._pool.acquire() as conn:
            return list(await conn.fetch(sql, *args))

    async def _value(self, sql: str, *args: Any) -> Any:
        async with errors("read failed"), self._pool.acquire() as conn:
            return await conn.fetchval(sql, *args)

    # -- the log -------------------------------------------------------------------

    async def read_head(self) -> int:
        return int(await self._value(q.READ_HEAD))

    async def read(self, after: int, limit: int = 1000) -> list[Record]:
        return [
            row_to_record(tuple(r))
            for r in await self._fetch(q.READ_AFTER, after, limit)
        ]

    async def read_one(self, offset: int) -> Record | None:
        rows = await self._fetch(q.READ_ONE, offset)
        return row_to_record(tuple(rows[0])) if rows else None

    async def read_kinds(self, kinds: Sequence[str]) -> list[Record]:
        return [
            row_to_record(tuple(r))
            for r in await self._fetch(q.READ_KINDS, list(kinds))
        ]

    async def read_matching(self, query: LogQuery) -> list[Record]:
        sql, params = select(query, "iiilog_log", q.LOG_COLUMNS, lambda n: f"${n}")
        return [row_to_record(tuple(r)) for r in await self._fetch(sql, *params)]

    async def history(self, space: str, scope: str, offset: int) -> list[Record]:
        rows = await self._fetch(q.HISTORY, scope, offset, _verbs(space))
        return [row_to_record(tuple(r)) for r in rows]

    async def value_at(self, space: str, scope: str, key: str, offset: int) -> Any:
        text = await self._value(q.VALUE_AT, scope, key, offset, _verbs(space))
        return loads(text) if text is not None else None

    # -- inline views --------------------------------------------------------------

    async def view_get(
        self, space: str, scope: str, group: str, key: str
    ) -> tuple[bool, Any]:
        text = await self._value(q.VIEW_GET, space, scope, group, key)
        return (True, loads(text)) if text is not None else (False, None)

    async def view_list(self, space: str, scope: str, group: str) -> list[Any]:
        return [
            loads(r[0]) for r in await self._fetch(q.VIEW_LIST, space, scope, group)
        ]

    async def view_scopes(self, space: str) -> list[str]:
        return [r[0] for r in await self._fetch(q.VIEW_SCOPES, space)]

    async def view_groups(self, space: str, scope: str) -> list[str]:
        return [r[0] for r in await self._fetch(q.VIEW_GROUPS, space, scope)]

    async def view_scope_groups(self, space: str) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in await self._fetch(q.VIEW_SCOPE_GROUPS, space)]

    @asynccontextmanager
    async def _snapshot(self) -> AsyncIterator[Conn]:
        async with (
            errors("read failed"),
            self._pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            yield conn

    async def view_read_at(
        self, space: str, scope: str, group: str, key: str | None
    ) -> tuple[int, Any]:
        async with self._snapshot() as conn:
            position = await conn.fetchval(q.VIEWS_POSITION) or 0
            if key is None:
                rows = await conn.fetch(q.VIEW_LIST, space, scope, group)
                value: Any = [loads(r[0]) for r in rows]
            else:
                text = await conn.fetchval(q.VIEW_GET, space, scope, group, key)
                value = loads(text) if text is not None else None
        return int(position), value

    async def view_snapshot(
        self, spaces: Sequence[str]
    ) -> tuple[int, dict[str, list[ViewRow]]]:
        out: dict[str, list[ViewRow]] = {}
        async with self._snapshot() as conn:
            position = await conn.fetchval(q.VIEWS_POSITION) or 0
            for space in spaces:
                rows = await conn.fetch(q.VIEW_ITEMS, space)
                out[space] = [(r[0], r[1], r[2], loads(r[3])) for r in rows]
        return int(position), out

    # -- bookkeeping ---------------------------------------------------------------

    async def cursor(self, key: str) -> int | None:
        position = await self._value(q.CURSOR, key)
        return int(position) if position is not None else None

    async def cursors(self) -> list[CursorInfo]:
        return [
            CursorInfo(r[0], r[1], r[2], loads(r[3]), r[4], r[5], r[6])
            for r in await self._fetch(q.CURSORS)
        ]

    async def parked(self, key: str | None = None) -> list[ParkedRecord]:
        return [
            ParkedRecord(r[0], r[1], r[2], r[3], r[4])
            for r in await self._fetch(q.PARKED, key)
        ]

    async def snapshot(self, name: str) -> Snapshot | None:
        rows = await self._fetch(q.SNAPSHOT, name)
        if not rows:
            return None
        position, state, ts = rows[0]
        return Snapshot(name, int(position), loads(state), int(ts))

    async def snapshots(self) -> list[SnapshotInfo]:
        return [SnapshotInfo(r[0], r[1], r[2]) for r in await self._fetch(q.SNAPSHOTS)]

    async def sends_pruned_through(self) -> int:
        return int(await self._value(q.PRUNED_THROUGH))


def _verbs(space: str) -> list[str]:
    return [f"{space}.set", f"{space}.update", f"{space}.delete"]
