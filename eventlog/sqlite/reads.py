"""The read side of the SQLite store.

Point lookups by primary key (``view_get``, checkpoints, cursors, one record)
run inline on a plain read connection: microseconds, cheaper than a thread hop.
Scans that can be long go through aiosqlite so they never stall the loop. Inside
``_snapshot`` every read of the task sees one committed state. ``sqlite3``
errors become ``StoreError`` here.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextvars import ContextVar
from typing import Any

import aiosqlite

from ..bookkeeping import CursorInfo, ParkedRecord, Snapshot, SnapshotInfo
from ..codec import loads
from ..errors import StoreError
from ..logquery import LogQuery, select
from ..records import Record
from ..rows import row_to_record
from ..store import ViewRow
from . import schema as q

# Inside ``SqliteReads._snapshot`` this task's reads go to the snapshot connection.
_snapshot_conn: ContextVar[aiosqlite.Connection | None] = ContextVar(
    "snapshot_conn", default=None
)


class SqliteReads:
    _reader: aiosqlite.Connection  # scans
    _quick: sqlite3.Connection  # point reads, inline on the loop
    _snapshots: aiosqlite.Connection  # read transactions over several queries
    _snapshot_lock: Any  # asyncio.Lock

    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[Any]:
        conn = _snapshot_conn.get() or self._reader
        try:
            async with conn.execute(sql, params) as cur:
                return list(await cur.fetchall())
        except sqlite3.Error as e:
            raise StoreError(f"read failed: {e}") from e

    async def _fetch_point(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """A lookup that touches a handful of rows by key: run inline."""
        if _snapshot_conn.get() is not None:
            return await self._fetch(sql, params)
        try:
            return self._quick.execute(sql, params).fetchall()
        except sqlite3.Error as e:
            raise StoreError(f"read failed: {e}") from e

    @contextlib.asynccontextmanager
    async def _snapshot(self) -> AsyncIterator[None]:
        """One read transaction: every read of this task inside sees one state.

        It has a connection of its own, so the plain reads of other tasks never
        land inside it (they must always see the latest commit).
        """
        async with self._snapshot_lock:
            conn = self._snapshots
            token = _snapshot_conn.set(conn)
            try:
                await conn.execute("BEGIN")
                try:
                    yield
                finally:
                    await conn.execute("COMMIT")
            except sqlite3.Error as e:
                raise StoreError(f"read failed: {e}") from e
            finally:
                _snapshot_conn.reset(token)

    # -- the log -------------------------------------------------------------------

    async def read_head(self) -> int:
        rows = await self._fetch(q.READ_HEAD, ())
        return int(rows[0][0])

    async def read(self, after: int, limit: int = 1000) -> list[Record]:
        rows = await self._fetch(q.READ_AFTER, (after, limit))
        return [row_to_record(r) for r in rows]

    async def read_one(self, offset: int) -> Record | None:
        rows = await self._fetch_point(q.READ_ONE, (offset,))
        return row_to_record(rows[0]) if rows else None

    async def read_kinds(self, kinds: Sequence[str]) -> list[Record]:
        marks = ",".join("?" * len(kinds))
        rows = await self._fetch(
            f"SELECT {q.LOG_COLUMNS} FROM log WHERE kind IN ({marks}) ORDER BY seq",
            tuple(kinds),
        )
        return [row_to_record(r) for r in rows]

    async def read_matching(self, query: LogQuery) -> list[Record]:
        sql, params = select(query, "log", q.LOG_COLUMNS, lambda _n: "?")
        return [row_to_record(r) for r in await self._fetch(sql, params)]

    async def history(self, space: str, scope: str, offset: int) -> list[Record]:
        rows = await self._fetch(q.HISTORY, (scope, offset, *_verbs(space)))
        return [row_to_record(r) for r in rows]

    async def value_at(self, space: str, scope: str, key: str, offset: int) -> Any:
        rows = await self._fetch_point(q.VALUE_AT, (scope, key, offset, *_verbs(space)))
        return loads(rows[0][0]) if rows and rows[0][0] is not None else None

    # -- inline views --------------------------------------------------------------

    async def view_get(
        self, space: str, scope: str, group: str, key: str
    ) -> tuple[bool, Any]:
        rows = await self._fetch_point(q.VIEW_GET, (space, scope, group, key))
        return (True, loads(rows[0][0])) if rows else (False, None)

    async def view_list(self, space: str, scope: str, group: str) -> list[Any]:
        rows = await self._fetch(q.VIEW_LIST, (space, scope, group))
        return [loads(r[0]) for r in rows]

    async def _view_items(self, space: str) -> list[ViewRow]:
        rows = await self._fetch(q.VIEW_ITEMS, (space,))
        return [(r[0], r[1], r[2], loads(r[3])) for r in rows]

    async def view_scope_groups(self, space: str) -> list[tuple[str, str]]:
        rows = await self._fetch(q.VIEW_SCOPE_GROUPS, (space,))
        return [(r[0], r[1]) for r in rows]

    async def view_scopes(self, space: str) -> list[str]:
        return [r[0] for r in await self._fetch(q.VIEW_SCOPES, (space,))]

    async def view_groups(self, space: str, scope: str) -> list[str]:
        return [r[0] for r in await self._fetch(q.VIEW_GROUPS, (space, scope))]

    async def _views_position(self) -> int:
        rows = await self._fetch_point(q.CHECKPOINT, ("views",))
        return int(rows[0][0]) if rows else 0

    async def view_snapshot(
        self, spaces: Sequence[str]
    ) -> tuple[int, dict[str, list[ViewRow]]]:
        async with self._snapshot():
            position = await self._views_position()
            out = {space: await self._view_items(space) for space in spaces}
        return position, out

    async def view_read_at(
        self, space: str, scope: str, group: str, key: str | None
    ) -> tuple[int, Any]:
        async with self._snapshot():
            position = await self._views_position()
            if key is None:
                value: Any = await self.view_list(space, scope, group)
            else:
                value = (await self.view_get(space, scope, group, key))[1]
        return position, value

    # -- bookkeeping ---------------------------------------------------------------

    async def cursor(self, key: str) -> int | None:
        rows = await self._fetch_point(q.CURSOR, (key,))
        return int(rows[0][0]) if rows else None

    async def cursors(self) -> list[CursorInfo]:
        rows = await self._fetch(q.CURSORS, ())
        return [
            CursorInfo(r[0], r[1], r[2], loads(r[3]), r[4], r[5], r[6]) for r in rows
        ]

    async def parked(self, key: str | None = None) -> list[ParkedRecord]:
        rows = await self._fetch(q.PARKED, (key, key))
        return [ParkedRecord(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    async def snapshot(self, name: str) -> Snapshot | None:
        rows = await self._fetch_point(q.SNAPSHOT, (name,))
        if not rows:
            return None
        position, state, ts = rows[0]
        return Snapshot(name, int(position), loads(state), int(ts))

    async def snapshots(self) -> list[SnapshotInfo]:
        rows = await self._fetch(q.SNAPSHOTS, ())
        return [SnapshotInfo(r[0], r[1], r[2]) for r in rows]

    async def sends_pruned_through(self) -> int:
        rows = await self._fetch_point(q.SENDS_PRUNED_THROUGH, ())
        return int(rows[0][0]) if rows else 0


def _verbs(space: str) -> tuple[str, str, str]:
    """The kinds of a space that change its view."""
    return (f"{space}.set", f"{space}.update", f"{space}.delete")
