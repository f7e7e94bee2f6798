"""SQLite store for the log and its inline views (WAL).

One write connection, owned by ``LogWriter`` (which never uses it for two
things at once). A batch is staged on the event loop (read the current values,
compute, append, apply the views) and only its ``COMMIT``, which waits for the
disk, runs on a dedicated writer thread; bookkeeping transactions run whole on
that thread. A batch appends its records and applies its view changes and the
view checkpoint in one ``BEGIN IMMEDIATE`` transaction, so the log and the views
can never disagree after a crash. Offsets are assigned here, gapless, in commit
order.

Reads: point lookups by primary key (``view_get``, checkpoints, cursors) run
inline on a plain read connection — a few microseconds, cheaper than a thread
hop; scans that can be long go through aiosqlite so they never stall the loop.
sqlite3 errors are mapped to ``StoreError`` in this module only.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import aiosqlite

from .codec import dumps, loads
from .errors import DataDirLockedError, StoreError
from .records import Kind, Origin, Record

SCHEMA_VERSION = 1
Synchronous = Literal["off", "normal", "full", "extra"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    seq       INTEGER PRIMARY KEY,
    ts        INTEGER NOT NULL,
    kind      TEXT    NOT NULL,
    scope     TEXT    NOT NULL,
    grp       TEXT,
    key       TEXT,
    old_value TEXT,            -- NULL: the address held nothing before
    new_value TEXT,            -- NULL: the address holds nothing after
    extra     TEXT,            -- JSON: ops, errors, event_type, origin
    v         INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS log_scope ON log (scope, seq);
CREATE TABLE IF NOT EXISTS view (
    space TEXT    NOT NULL,    -- 'state' or 'stream'
    scope TEXT    NOT NULL,
    grp   TEXT    NOT NULL,    -- '' for state
    key   TEXT    NOT NULL,
    value TEXT    NOT NULL,
    pos   INTEGER NOT NULL,    -- offset that created the key: list order
    PRIMARY KEY (space, scope, grp, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS view_pos ON view (space, scope, grp, pos);
CREATE TABLE IF NOT EXISTS checkpoint (
    name     TEXT PRIMARY KEY,
    position INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS log_addr ON log (scope, key, seq);
CREATE INDEX IF NOT EXISTS log_kind ON log (kind, seq);
CREATE TABLE IF NOT EXISTS cursors (   -- durable trigger subscriptions
    key          TEXT PRIMARY KEY,     -- function id + trigger type + config
    function_id  TEXT NOT NULL,
    trigger_type TEXT NOT NULL,
    config       TEXT NOT NULL,
    position     INTEGER NOT NULL,     -- every record <= position was handled
    updated_ms   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS parked (    -- deliveries that kept failing
    key      TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    error    TEXT NOT NULL,
    ts       INTEGER NOT NULL,
    PRIMARY KEY (key, seq)
);
CREATE TABLE IF NOT EXISTS dedupe (    -- writes made while handling a delivery
    trace_id TEXT NOT NULL,
    n        INTEGER NOT NULL,         -- the handler's n-th write
    seq      INTEGER NOT NULL,         -- the record it produced
    ts       INTEGER NOT NULL,
    PRIMARY KEY (trace_id, n)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS projections (
    name     TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    state    TEXT NOT NULL,
    ts       INTEGER NOT NULL
);
"""

_T = TypeVar("_T")
Address = tuple[str, str, str, str]  # (space, scope, group or '', key)

# Inside ``SqliteStore._snapshot`` this task's reads go to the snapshot connection.
_snapshot_conn: ContextVar[aiosqlite.Connection | None] = ContextVar(
    "snapshot_conn", default=None
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a mutation does to its address, computed from the current value."""

    exists: bool
    new_value: Any = None
    ops: list[Any] | None = None
    errors: list[dict[str, Any]] | None = None
    event_type: str | None = None
    touches_view: bool = True
    record: bool = True  # False: nothing happened, no record (e.g. delete of nothing)
    old: tuple[bool, Any] | None = None  # (existed, value) when not from the view


# (existed, old_value) -> Outcome. Pure; run by the single writer.
Compute = Callable[[bool, Any], Outcome]


@dataclass(slots=True)
class Mutation:
    kind: Kind
    scope: str
    group: str | None
    key: str | None
    compute: Compute
    origin: Origin | None = None
    # (trace id, n): the n-th write of one trigger delivery. A mutation whose key
    # is already in the log is not applied again; its first record is returned.
    dedupe: tuple[str, int] | None = None

    @property
    def address(self) -> Address:
        return (
            self.kind.split(".", 1)[0],
            self.scope,
            self.group or "",
            self.key or "",
        )


@dataclass(slots=True)
class _Plan:
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    deletes: list[Address] = field(default_factory=list)
    upserts: list[tuple[Any, ...]] = field(default_factory=list)
    dedupe: list[tuple[str, int, int, int]] = field(default_factory=list)


@dataclass(slots=True)
class BatchResult:
    """Per mutation, a record or the exception its ``compute`` raised.

    ``new`` lists the records this batch appended, in offset order (a deduped
    mutation's result is an older record, and a no-op's has offset 0).
    """

    results: list[Record | BaseException] = field(default_factory=list)
    new: list[Record] = field(default_factory=list)


def _row_to_record(row: Sequence[Any]) -> Record:
    # The hot loop of every replay and catch-up: positional arguments, no
    # decoding of what is absent (most records have no ``extra``).
    seq, ts, kind, scope, grp, key, old, new, extra, _v = row
    ops = errors = event_type = origin = None
    in_view = True
    if extra is not None:
        info = loads(extra)
        ops, errors = info.get("ops"), info.get("errors")
        event_type, in_view = info.get("event_type"), info.get("in_view", True)
        if info.get("origin"):
            origin = Origin(**info["origin"])
    return Record(
        seq,
        ts,
        kind,
        scope,
        grp,
        key,
        old is not None,
        None if old is None else loads(old),
        new is not None,
        None if new is None else loads(new),
        ops,
        errors,
        event_type,
        in_view,
        origin,
    )


class SqliteStore:
    """The log table, the inline views and their checkpoint in one SQLite file."""

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
        self._quick = quick  # point reads, inline on the loop
        self._snapshots = snapshots  # read transactions that span several queries
        self._snapshot_lock = asyncio.Lock()
        self._lock_fd = lock_fd
        self._head = 0

    # -- lifecycle ---------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        data_dir: Path,
        *,
        synchronous: Synchronous = "full",
        read_only: bool = False,
    ) -> SqliteStore:
        data_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (once, at start)
        path = data_dir / "log.sqlite3"
        lock_fd = None
        writer = None
        try:
            if not read_only:
                lock_fd = _lock(data_dir)
                writer = sqlite3.connect(
                    path, isolation_level=None, check_same_thread=False
                )
                writer.execute("PRAGMA journal_mode=WAL")
                writer.execute(f"PRAGMA synchronous={synchronous.upper()}")
                writer.executescript(_SCHEMA)
                writer.execute(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema', ?)",
                    (str(SCHEMA_VERSION),),
                )
            elif not path.exists():
                raise StoreError(f"no log at {path.name} in the data dir")
            uri = f"file:{path}?mode=ro" if read_only else f"file:{path}"
            reader = await aiosqlite.connect(uri, uri=True, isolation_level=None)
            await reader.execute("PRAGMA query_only=ON")
            quick = sqlite3.connect(uri, uri=True, isolation_level=None)
            quick.execute("PRAGMA query_only=ON")
            snapshots = await aiosqlite.connect(uri, uri=True, isolation_level=None)
            await snapshots.execute("PRAGMA query_only=ON")
        except sqlite3.Error as e:
            if lock_fd is not None:
                os.close(lock_fd)
            raise StoreError(f"cannot open the log: {e}") from e
        store = cls(path, writer, reader, quick, snapshots, lock_fd)
        store._head = await store.read_head()
        return store

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

    @property
    def head(self) -> int:
        """Offset of the last committed record (0 for an empty log)."""
        return self._head

    async def _on_writer(self, run: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``run(connection)`` on the writer thread."""
        db = self._writer
        if db is None:
            raise StoreError("the store is open read-only")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer_thread, run, db)

    async def commit(self, batch: Sequence[Mutation]) -> BatchResult:
        """Append one record per mutation and apply the views, atomically.

        The transaction is staged inline (planning is Python: on a thread it
        would only fight the loop for the GIL, once per SQLite call); only the
        ``COMMIT``, which waits for the disk, runs on the writer thread.
        """
        db = self._writer
        if db is None:
            raise StoreError("the store is open read-only")
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                result = self._stage(db, batch)
                if result.new:
                    await self._commit_off_loop(db)
                else:
                    db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            raise StoreError(f"commit failed: {e}") from e
        if result.new:
            self._head = result.new[-1].offset
        return result

    async def _commit_off_loop(self, db: sqlite3.Connection) -> None:
        done = self._writer_thread.submit(db.execute, "COMMIT")
        try:
            await asyncio.wrap_future(done)
        except asyncio.CancelledError:
            # The connection is busy until the COMMIT returns; the caller's
            # rollback must not race it. It is one fsync: wait for it.
            with contextlib.suppress(sqlite3.Error):
                done.result()
            raise

    def _stage(self, db: sqlite3.Connection, batch: Sequence[Mutation]) -> BatchResult:
        """Plan the batch and write it, inside the caller's open transaction."""
        result, plan = self._plan(db, batch)
        rows, deletes, upserts = plan.rows, plan.deletes, plan.upserts
        if not rows:
            return result
        db.executemany(
            "INSERT INTO log(seq, ts, kind, scope, grp, key, old_value,"
            " new_value, extra) VALUES (?,?,?,?,?,?,?,?,?)",
            rows,
        )
        if plan.dedupe:
            db.executemany(
                "INSERT INTO dedupe(trace_id, n, seq, ts) VALUES (?,?,?,?)",
                plan.dedupe,
            )
        if deletes:
            db.executemany(
                "DELETE FROM view WHERE space=? AND scope=? AND grp=? AND key=?",
                deletes,
            )
        if upserts:
            db.executemany(
                "INSERT INTO view(space, scope, grp, key, value, pos)"
                " VALUES (?,?,?,?,?,?) ON CONFLICT(space, scope, grp, key)"
                " DO UPDATE SET value=excluded.value",
                upserts,
            )
        db.execute(
            "INSERT INTO checkpoint(name, position) VALUES ('views', ?)"
            " ON CONFLICT(name) DO UPDATE SET position=excluded.position",
            (rows[-1][0],),
        )
        return result

    def _plan(
        self, db: sqlite3.Connection, batch: Sequence[Mutation]
    ) -> tuple[BatchResult, _Plan]:
        current = _load(db, {m.address for m in batch})
        done = _load_dedupe(db, [m.dedupe for m in batch if m.dedupe])
        ts = int(time.time() * 1000)
        offset = self._head
        result = BatchResult()
        plan = _Plan()
        rows = plan.rows
        deleted: set[Address] = set()
        final: dict[Address, tuple[str, int] | None] = {}
        for m in batch:
            if m.dedupe is not None and m.dedupe in done:
                result.results.append(done[m.dedupe])  # already applied once
                continue
            addr = m.address
            old_text, pos = current.get(addr, (None, 0))
            existed = old_text is not None
            old_value = loads(old_text) if old_text is not None else None
            try:
                out = m.compute(existed, old_value)
                new_text = dumps(out.new_value) if out.exists else None
                if out.old is not None:
                    rec_existed, rec_old = out.old
                elif out.touches_view:
                    rec_existed, rec_old = existed, old_value
                else:
                    rec_existed, rec_old = False, None
                rec_old_text = (
                    (old_text if out.old is None else dumps(rec_old))
                    if rec_existed
                    else None
                )
            except Exception as e:  # a bug in one mutation must not sink the batch
                result.results.append(e)
                continue
            if not out.record:
                result.results.append(
                    Record(
                        offset=0,
                        ts=ts,
                        kind=m.kind,
                        scope=m.scope,
                        group=m.group,
                        key=m.key,
                        existed=existed,
                        old_value=old_value,
                        exists=existed,
                        new_value=old_value,
                        in_view=False,
                    )
                )
                continue
            offset += 1
            if m.dedupe is not None:
                plan.dedupe.append((m.dedupe[0], m.dedupe[1], offset, ts))
            extra: dict[str, Any] = {}
            if out.ops is not None:
                extra["ops"] = out.ops
            if out.errors:
                extra["errors"] = out.errors
            if out.event_type is not None:
                extra["event_type"] = out.event_type
            if not out.touches_view:
                extra["in_view"] = False
            if m.origin is not None:
                extra["origin"] = m.origin.to_dict()
            rows.append(
                (
                    offset,
                    ts,
                    m.kind,
                    m.scope,
                    m.group,
                    m.key,
                    rec_old_text,
                    new_text,
                    dumps(extra) if extra else None,
                )
            )
            result.results.append(
                Record(
                    offset=offset,
                    ts=ts,
                    kind=m.kind,
                    scope=m.scope,
                    group=m.group,
                    key=m.key,
                    existed=rec_existed,
                    old_value=rec_old,
                    exists=out.exists,
                    new_value=out.new_value,
                    ops=out.ops,
                    errors=out.errors or None,
                    event_type=out.event_type,
                    in_view=out.touches_view,
                    origin=m.origin,
                )
            )
            result.new.append(result.results[-1])  # type: ignore[arg-type]
            if m.dedupe is not None:
                done[m.dedupe] = result.results[-1]  # type: ignore[assignment]
            if not out.touches_view:
                continue
            if new_text is None:
                if existed:
                    deleted.add(addr)
                current[addr] = (None, 0)
                final[addr] = None
            else:
                keep = pos if existed else offset
                current[addr] = (new_text, keep)
                final[addr] = (new_text, keep)
        plan.deletes = list(deleted)
        plan.upserts = [(*a, v[0], v[1]) for a, v in final.items() if v is not None]
        return result, plan

    # -- reading -----------------------------------------------------------------

    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[sqlite3.Row]:
        conn = _snapshot_conn.get() or self._reader
        try:
            async with conn.execute(sql, params) as cur:
                return list(await cur.fetchall())
        except sqlite3.Error as e:
            raise StoreError(f"read failed: {e}") from e

    async def _fetch_point(self, sql: str, params: Sequence[Any]) -> list[sqlite3.Row]:
        """A lookup that touches a handful of rows by key: run inline."""
        if _snapshot_conn.get() is not None:
            return await self._fetch(sql, params)
        try:
            return self._quick.execute(sql, params).fetchall()
        except sqlite3.Error as e:
            raise StoreError(f"read failed: {e}") from e

    async def read_head(self) -> int:
        """The last offset ever assigned (pruned records included)."""
        rows = await self._fetch(
            "SELECT MAX(COALESCE((SELECT MAX(seq) FROM log), 0),"
            " COALESCE((SELECT CAST(value AS INTEGER) FROM meta"
            " WHERE key='sends_pruned_through'), 0))",
            (),
        )
        return int(rows[0][0])

    async def write_small(
        self, statements: Sequence[tuple[str, Sequence[Any]]]
    ) -> None:
        """One short transaction of bookkeeping writes (cursors, parked records,
        projection state). Must run on the writer (``LogWriter.run_exclusive``)."""

        def run(db: sqlite3.Connection) -> None:
            def body() -> None:
                for sql, params in statements:
                    db.execute(sql, params)

            _transaction(db, body, "write failed")

        await self._on_writer(run)

    async def cursor(self, key: str) -> int | None:
        rows = await self._fetch_point(
            "SELECT position FROM cursors WHERE key=?", (key,)
        )
        return int(rows[0][0]) if rows else None

    async def cursor_rows(self) -> list[dict[str, Any]]:
        rows = await self._fetch(
            "SELECT c.key, c.function_id, c.trigger_type, c.config, c.position,"
            " c.updated_ms, (SELECT COUNT(*) FROM parked p WHERE p.key = c.key)"
            " FROM cursors c ORDER BY c.function_id, c.key",
            (),
        )
        return [
            {
                "key": r[0],
                "function_id": r[1],
                "trigger_type": r[2],
                "config": loads(r[3]),
                "position": r[4],
                "updated_ms": r[5],
                "parked": r[6],
            }
            for r in rows
        ]

    async def parked_rows(self, key: str | None = None) -> list[dict[str, Any]]:
        rows = await self._fetch(
            "SELECT key, seq, attempts, error, ts FROM parked"
            " WHERE ? IS NULL OR key = ? ORDER BY key, seq",
            (key, key),
        )
        return [
            {"key": r[0], "offset": r[1], "attempts": r[2], "error": r[3], "ts": r[4]}
            for r in rows
        ]

    async def projection_state(self, name: str) -> tuple[int, str] | None:
        rows = await self._fetch_point(
            "SELECT position, state FROM projections WHERE name=?", (name,)
        )
        return (int(rows[0][0]), rows[0][1]) if rows else None

    async def projection_rows(self) -> list[dict[str, Any]]:
        rows = await self._fetch(
            "SELECT name, position, ts FROM projections ORDER BY name", ()
        )
        return [{"name": r[0], "position": r[1], "ts": r[2]} for r in rows]

    async def value_at(self, space: str, scope: str, key: str, offset: int) -> Any:
        """Time travel: the value of one address right after ``offset``."""
        rows = await self._fetch_point(
            "SELECT new_value FROM log WHERE scope=? AND key=? AND seq<=?"
            " AND kind IN (?, ?, ?) AND (extra IS NULL OR json_extract(extra,"
            " '$.in_view') IS NOT 0) ORDER BY seq DESC LIMIT 1",
            (scope, key, offset, f"{space}.set", f"{space}.update", f"{space}.delete"),
        )
        return loads(rows[0][0]) if rows and rows[0][0] is not None else None

    async def history(self, space: str, scope: str, offset: int) -> list[Record]:
        """Every record of one scope up to ``offset`` (to fold a past view)."""
        rows = await self._fetch(
            "SELECT * FROM log WHERE scope=? AND seq<=? AND kind IN (?, ?, ?)"
            " ORDER BY seq",
            (scope, offset, f"{space}.set", f"{space}.update", f"{space}.delete"),
        )
        return [_row_to_record(r) for r in rows]

    async def read_kinds(self, kinds: Sequence[str]) -> list[Record]:
        """Every record of these kinds, in offset order (e.g. to rebuild queues)."""
        marks = ",".join("?" * len(kinds))
        rows = await self._fetch(
            f"SELECT * FROM log WHERE kind IN ({marks}) ORDER BY seq", tuple(kinds)
        )
        return [_row_to_record(r) for r in rows]

    async def read_one(self, offset: int) -> Record | None:
        rows = await self._fetch_point("SELECT * FROM log WHERE seq=?", (offset,))
        return _row_to_record(rows[0]) if rows else None

    async def sends_pruned_through(self) -> int:
        """Highest offset of a ``stream.send`` record removed by retention."""
        rows = await self._fetch_point(
            "SELECT value FROM meta WHERE key='sends_pruned_through'", ()
        )
        return int(rows[0][0]) if rows else 0

    async def prune_sends(self, before_ts: int) -> int:
        """Retention: drop ``stream.send`` records older than ``before_ts`` (ms).

        Must run on the writer (``LogWriter.run_exclusive``). Returns how many
        were removed. Views are not affected: sends never touch them.
        """

        def run(db: sqlite3.Connection) -> int:
            def body() -> int:
                through, count = db.execute(
                    "SELECT MAX(seq), COUNT(*) FROM log"
                    " WHERE kind='stream.send' AND ts < ?",
                    (before_ts,),
                ).fetchone()
                if through is not None:
                    db.execute(
                        "DELETE FROM log WHERE kind='stream.send' AND seq <= ?",
                        (through,),
                    )
                    db.execute(
                        "INSERT INTO meta(key, value) VALUES"
                        " ('sends_pruned_through', ?) ON CONFLICT(key)"
                        " DO UPDATE SET value=MAX(CAST(value AS INTEGER),"
                        " CAST(excluded.value AS INTEGER))",
                        (str(through),),
                    )
                return int(count or 0)

            return _transaction(db, body, "pruning failed")

        return await self._on_writer(run)

    async def read(self, after: int, limit: int = 1000) -> list[Record]:
        """Records with ``offset > after``, in offset order, at most ``limit``."""
        rows = await self._fetch(
            "SELECT * FROM log WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
        )
        return [_row_to_record(r) for r in rows]

    async def view_get(
        self, space: str, scope: str, group: str, key: str
    ) -> tuple[bool, Any]:
        rows = await self._fetch_point(
            "SELECT value FROM view WHERE space=? AND scope=? AND grp=? AND key=?",
            (space, scope, group, key),
        )
        return (True, loads(rows[0][0])) if rows else (False, None)

    async def view_list(self, space: str, scope: str, group: str) -> list[Any]:
        rows = await self._fetch(
            "SELECT value FROM view WHERE space=? AND scope=? AND grp=? ORDER BY pos",
            (space, scope, group),
        )
        return [loads(r[0]) for r in rows]

    async def view_items(self, space: str) -> list[tuple[str, str, str, Any]]:
        """Every (scope, group, key, value) of a view, in list order."""
        rows = await self._fetch(
            "SELECT scope, grp, key, value FROM view WHERE space=?"
            " ORDER BY scope, grp, pos",
            (space,),
        )
        return [(r[0], r[1], r[2], loads(r[3])) for r in rows]

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

    async def view_snapshot(
        self, spaces: Sequence[str]
    ) -> tuple[int, dict[str, list[tuple[str, str, str, Any]]]]:
        """Every view's rows and the offset they reflect, from one read snapshot."""
        async with self._snapshot():
            position = await self.checkpoint("views")
            out = {space: await self.view_items(space) for space in spaces}
        return position, out

    async def view_read_at(
        self, space: str, scope: str, group: str, key: str | None
    ) -> tuple[int, Any]:
        """A group's list (``key`` None) or one item, with the offset it reflects."""
        async with self._snapshot():
            position = await self.checkpoint("views")
            if key is None:
                value: Any = await self.view_list(space, scope, group)
            else:
                value = (await self.view_get(space, scope, group, key))[1]
        return position, value

    async def view_scope_groups(self, space: str) -> list[tuple[str, str]]:
        rows = await self._fetch(
            "SELECT DISTINCT scope, grp FROM view WHERE space=? ORDER BY scope, grp",
            (space,),
        )
        return [(r[0], r[1]) for r in rows]

    async def view_scopes(self, space: str) -> list[str]:
        rows = await self._fetch(
            "SELECT DISTINCT scope FROM view WHERE space=? ORDER BY scope", (space,)
        )
        return [r[0] for r in rows]

    async def view_groups(self, space: str, scope: str) -> list[str]:
        rows = await self._fetch(
            "SELECT DISTINCT grp FROM view WHERE space=? AND scope=? ORDER BY grp",
            (space, scope),
        )
        return [r[0] for r in rows]

    async def checkpoint(self, name: str) -> int:
        rows = await self._fetch_point(
            "SELECT position FROM checkpoint WHERE name=?", (name,)
        )
        return int(rows[0][0]) if rows else 0


def scan_log(
    path: Path, after: int, until: int, *, batch: int = 10_000
) -> Iterator[list[Record]]:
    """Records ``after < offset <= until`` in offset order, in lists of up to
    ``batch``, from a read-only connection of their own.

    Blocking: for bulk reads on a thread (replay, projection catch-up), where a
    thread hop per row batch through aiosqlite would cost more than the read.
    """
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error as e:
        raise StoreError(f"cannot open the log: {e}") from e
    try:
        cursor = after
        while cursor < until:
            try:
                rows = db.execute(
                    "SELECT * FROM log WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
                    (cursor, until, batch),
                ).fetchall()
            except sqlite3.Error as e:
                raise StoreError(f"read failed: {e}") from e
            if not rows:
                return
            records = [_row_to_record(r) for r in rows]
            cursor = records[-1].offset
            yield records
    finally:
        db.close()


# Per address (space, scope, group, key) of the inline views: its latest record,
# the latest record that created it and the latest one that deleted it. Records
# that change no view (stream.send, custom streams: ``in_view`` false in
# ``extra``) are left out.
_COMPACTED = """
WITH per_address AS MATERIALIZED (
    SELECT MAX(seq) AS latest,
           MAX(CASE WHEN old_value IS NULL AND new_value IS NOT NULL THEN seq END)
               AS born,
           MAX(CASE WHEN new_value IS NULL THEN seq END) AS gone
    FROM log
    WHERE seq > :after AND seq <= :until AND kind != 'stream.send'
      AND (extra IS NULL OR instr(extra, '"in_view":false') = 0
           OR json_extract(extra, '$.in_view') IS NOT 0)
    GROUP BY scope, key, grp, substr(kind, 1, 5)  -- 'state', 'strea(m)', 'queue'
)
SELECT * FROM log WHERE seq IN (
    SELECT latest FROM per_address
    UNION ALL SELECT born FROM per_address
    UNION ALL SELECT gone FROM per_address
) ORDER BY seq
"""


def scan_compacted(path: Path, after: int, until: int) -> list[Record]:
    """The compacted log of ``after < offset <= until``, in offset order.

    For every address at most three records survive: the latest one, the latest
    one that created the address and the latest one that deleted it. Folded in
    offset order onto the state at ``after``, they give a last-writer-wins view
    exactly what folding every record gives, list order included: a key deleted
    and created again moves to the end, one only overwritten keeps its place.
    SQLite does the grouping in C with the GIL released, so it runs beside a
    Python fold on another thread.
    """
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error as e:
        raise StoreError(f"cannot open the log: {e}") from e
    try:
        rows = db.execute(_COMPACTED, {"after": after, "until": until}).fetchall()
    except sqlite3.Error as e:
        raise StoreError(f"read failed: {e}") from e
    finally:
        db.close()
    return [_row_to_record(r) for r in rows]


def _transaction(db: sqlite3.Connection, body: Callable[[], _T], what: str) -> _T:
    """``body()`` inside one ``BEGIN IMMEDIATE`` transaction (writer thread)."""
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            out = body()
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    except sqlite3.Error as e:
        raise StoreError(f"{what}: {e}") from e
    return out


def _load(
    db: sqlite3.Connection, addresses: Iterable[Address]
) -> dict[Address, tuple[str | None, int]]:
    """The current view rows (value, pos) of these addresses."""
    keys = [list(a) for a in addresses]
    if not keys:
        return {}
    sql = (
        "SELECT v.space, v.scope, v.grp, v.key, v.value, v.pos FROM json_each(?) j"
        " JOIN view v ON v.space = json_extract(j.value, '$[0]')"
        " AND v.scope = json_extract(j.value, '$[1]')"
        " AND v.grp = json_extract(j.value, '$[2]')"
        " AND v.key = json_extract(j.value, '$[3]')"
    )
    rows = db.execute(sql, (dumps(keys),)).fetchall()
    return {(r[0], r[1], r[2], r[3]): (r[4], r[5]) for r in rows}


def _load_dedupe(
    db: sqlite3.Connection, keys: list[tuple[str, int]]
) -> dict[tuple[str, int], Record]:
    """The records earlier deliveries already produced for these keys."""
    if not keys:
        return {}
    sql = (
        "SELECT d.trace_id, d.n, l.* FROM json_each(?) j"
        " JOIN dedupe d ON d.trace_id = json_extract(j.value, '$[0]')"
        " AND d.n = json_extract(j.value, '$[1]')"
        " JOIN log l ON l.seq = d.seq"
    )
    rows = db.execute(sql, (dumps([list(k) for k in keys]),)).fetchall()
    return {(r[0], r[1]): _row_to_record(r[2:]) for r in rows}


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
