"""The one place tests touch a log's database directly (SQLite data dirs).

Reads are read-only, beside a live engine: offsets, tags, snapshots. The
writes exist only to fake what the engine must detect or survive: a tampered
view or snapshot (drift for ``replay --verify``), a forgotten snapshot (a new
projection), and ``sqlite_refuse_scope``, fault injection for the storage
conformance suite (the database itself refuses a commit, the way a full disk
or a dropped connection does).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from eventlog import Record
from eventlog.codec import dumps, loads
from eventlog.postgres.schemas import create_schema, drop_schema
from eventlog.sqlite import LOG_FILE, SqliteScanner


def _read(data_dir: Path, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    db = sqlite3.connect(f"file:{data_dir / LOG_FILE}?mode=ro", uri=True)
    try:
        return list(db.execute(sql, params))
    finally:
        db.close()


def _write(data_dir: Path, sql: str, params: tuple[Any, ...] = ()) -> None:
    db = sqlite3.connect(data_dir / LOG_FILE, isolation_level=None)
    try:
        db.execute(sql, params)
    finally:
        db.close()


def records(data_dir: Path, after: int = 0) -> list[Record]:
    """Every record after ``after``, in offset order."""
    scanner = SqliteScanner(data_dir / LOG_FILE)
    return [r for chunk in scanner.scan(after, 2**62) for r in chunk]


def log_offsets(data_dir: Path) -> list[int]:
    return [row[0] for row in _read(data_dir, "SELECT seq FROM log ORDER BY seq")]


def delivery_tags(data_dir: Path) -> int:
    """How many handler write tags are kept."""
    return int(_read(data_dir, "SELECT COUNT(*) FROM dedupe")[0][0])


def snapshot_positions(data_dir: Path) -> dict[str, int]:
    rows = _read(data_dir, "SELECT name, position FROM projections")
    return {name: int(position) for name, position in rows}


def tamper_state(data_dir: Path, key: str | None, value: Any) -> str:
    """Overwrite a state view row behind the log's back (the first row when
    ``key`` is None); returns the key."""
    if key is None:
        key = _read(data_dir, "SELECT key FROM view WHERE space='state' LIMIT 1")[0][0]
    _write(
        data_dir,
        "UPDATE view SET value=? WHERE space='state' AND key=?",
        (dumps(value), key),
    )
    return str(key)


def tamper_snapshot(data_dir: Path, name: str, state: Any) -> None:
    _write(
        data_dir, "UPDATE projections SET state=? WHERE name=?", (dumps(state), name)
    )


def forget_snapshot(data_dir: Path, name: str) -> None:
    """As if the projection had just been added to the registry."""
    _write(data_dir, "DELETE FROM projections WHERE name=?", (name,))


def snapshot_state(data_dir: Path, name: str) -> Any:
    rows = _read(data_dir, "SELECT state FROM projections WHERE name=?", (name,))
    return loads(rows[0][0]) if rows else None


def sqlite_refuse_scope(data_dir: Path, scope: str | None) -> None:
    """From now on the database refuses records of ``scope`` and trigger cursors
    keyed ``scope`` (None: accept all)."""
    db = sqlite3.connect(data_dir / LOG_FILE, isolation_level=None)
    try:
        for table, column in (("log", "scope"), ("cursors", "key")):
            db.execute(f"DROP TRIGGER IF EXISTS refuse_{table}")
            if scope is not None:
                db.execute(
                    f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table}"
                    f" WHEN NEW.{column} = '{scope}'"
                    " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
                )
    finally:
        db.close()


def sqlite_refuse_parked(data_dir: Path, refuse: bool) -> None:
    """From now on the database refuses (or accepts again) parked records."""
    db = sqlite3.connect(data_dir / LOG_FILE, isolation_level=None)
    try:
        db.execute("DROP TRIGGER IF EXISTS refuse_parked")
        if refuse:
            db.execute(
                "CREATE TRIGGER refuse_parked BEFORE INSERT ON parked"
                " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )
    finally:
        db.close()


# -- PostgreSQL ----------------------------------------------------------------------

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


async def pg_schema(name: str, *, drop: bool = False) -> str:
    """Create (or drop) a schema of its own for one test; returns its URL."""
    if drop:
        await drop_schema(PG_URL, name)
        return PG_URL
    return await create_schema(PG_URL, name)


async def pg_refuse_scope(url: str, scope: str | None) -> None:
    """The PostgreSQL twin of ``sqlite_refuse_scope``."""
    import asyncpg

    conn = await asyncpg.connect(url, timeout=10)
    try:
        for table in ("iiilog_log", "iiilog_cursors"):
            await conn.execute(f"DROP TRIGGER IF EXISTS refuse ON {table}")
        if scope is None:
            return
        await conn.execute(
            "CREATE OR REPLACE FUNCTION refuse_scope() RETURNS trigger AS $$"
            f" BEGIN IF TG_ARGV[0] = 'log' AND NEW.scope = '{scope}'"
            f" OR TG_ARGV[0] = 'cursors' AND NEW.key = '{scope}'"
            " THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END"
            " $$ LANGUAGE plpgsql"
        )
        for table, arg in (("iiilog_log", "log"), ("iiilog_cursors", "cursors")):
            await conn.execute(
                f"CREATE TRIGGER refuse BEFORE INSERT ON {table}"
                f" FOR EACH ROW EXECUTE FUNCTION refuse_scope('{arg}')"
            )
    finally:
        await conn.close()


async def pg_own_role(role: str, *, drop: bool = False) -> str:
    """A login role owning a schema of the same name (or both dropped); returns
    the URL a node connects with as that role."""
    if drop:
        await pg_admin(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            f" WHERE usename = '{role}'",
            f'DROP SCHEMA IF EXISTS "{role}" CASCADE',
            f'DROP ROLE IF EXISTS "{role}"',
        )
    else:
        await pg_admin(
            f'CREATE ROLE "{role}" LOGIN',
            f'CREATE SCHEMA "{role}" AUTHORIZATION "{role}"',
        )
    return f"postgresql://{role}@127.0.0.1:5432/test?search_path={role}"


async def pg_kill_connections(role: str) -> None:
    """Terminate every connection of ``role`` at once."""
    await pg_admin(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        f" WHERE usename = '{role}'"
    )


async def pg_allow_login(role: str, allowed: bool) -> None:
    """An outage without a restart: ``role`` may (not) open connections."""
    await pg_admin(f'ALTER ROLE "{role}" {"LOGIN" if allowed else "NOLOGIN"}')


async def pg_key_lookup_plan(url: str, keys: list[tuple[str, str, str, str]]) -> str:
    """``EXPLAIN ANALYZE`` of the lookup a commit makes for its addresses."""
    import asyncpg

    from eventlog.postgres import schema as q

    conn = await asyncpg.connect(url, timeout=10)
    try:
        rows = await conn.fetch(
            "EXPLAIN ANALYZE " + q.LOAD_VIEW_ROWS,
            *(list(c) for c in zip(*keys, strict=True)),
        )
    finally:
        await conn.close()
    return "\n".join(r[0] for r in rows)


async def pg_admin(*statements: str) -> None:
    """Statements as the superuser (roles, outages), one connection."""
    import asyncpg

    conn = await asyncpg.connect(PG_URL, timeout=10)
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()
