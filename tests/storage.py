"""The one place tests touch a log's database directly.

``query_log`` reads a data dir's SQLite file read-only (beside a live engine).
``refuse_scope`` is fault injection for the storage conformance suite: it makes
the database itself refuse any record of one scope, so a commit fails inside
the database, the way a full disk or a dropped connection fails it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from eventlog.sqlite import LOG_FILE


def query_log(
    data_dir: Path, sql: str, params: tuple[Any, ...] = ()
) -> list[tuple[Any, ...]]:
    """Read the engine's SQLite file directly, read-only (beside a live engine)."""
    db = sqlite3.connect(f"file:{data_dir / LOG_FILE}?mode=ro", uri=True)
    try:
        return list(db.execute(sql, params))
    finally:
        db.close()


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
