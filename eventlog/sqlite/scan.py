"""Bulk reads of the SQLite log for rebuilds: blocking, for a thread.

Each call opens a read-only connection of its own, so a replay or a projection's
catch-up never competes with the engine's connections, and SQLite does the
grouping of ``compacted`` in C with the GIL released, beside a Python fold.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

from ..errors import StoreError
from ..records import Record
from ..rows import row_to_record
from . import schema as q


class SqliteScanner:
    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        try:
            return sqlite3.connect(
                f"file:{self.path}?mode=ro", uri=True, isolation_level=None
            )
        except sqlite3.Error as e:
            raise StoreError(f"cannot open the log at {self.path}: {e}") from e

    def scan(
        self, after: int, until: int, batch: int = 10_000
    ) -> Iterator[list[Record]]:
        db = self._connect()
        try:
            cursor = after
            while cursor < until:
                try:
                    rows = db.execute(q.READ_RANGE, (cursor, until, batch)).fetchall()
                except sqlite3.Error as e:
                    raise StoreError(f"read failed: {e}") from e
                if not rows:
                    return
                records = [row_to_record(r) for r in rows]
                cursor = records[-1].offset
                yield records
        finally:
            db.close()

    def compacted(self, after: int, until: int) -> list[Record]:
        db = self._connect()
        try:
            rows = db.execute(q.COMPACTED, {"after": after, "until": until}).fetchall()
        except sqlite3.Error as e:
            raise StoreError(f"read failed: {e}") from e
        finally:
            db.close()
        return [row_to_record(r) for r in rows]
