"""Physical ceilings of the SQLite backend, for the benchmarks: what the
storage alone can do, measured beside the engine in the same run.

``insert_rate``: raw aiosqlite batched inserts of log-shaped rows, one
transaction per batch of 512, same journal mode and synchronous setting.
``scan_rate``: read every row of a log and decode its JSON columns, nothing more.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import aiosqlite

from ..codec import loads
from .store import LOG_FILE


async def insert_rate(path: Path, synchronous: str, seconds: float) -> dict[str, Any]:
    db = await aiosqlite.connect(path, isolation_level=None)
    await db.execute("PRAGMA journal_mode=WAL")
    await db.execute(f"PRAGMA synchronous={synchronous.upper()}")
    await db.execute(
        "CREATE TABLE log (seq INTEGER PRIMARY KEY, ts INTEGER,"
        " kind TEXT, scope TEXT, grp TEXT, key TEXT, old_value TEXT,"
        " new_value TEXT, extra TEXT)"
    )
    value = '{"title":"milk","completed":false,"n":1}'
    seq, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        rows = [
            (seq + i + 1, 0, "state.set", "bench", None, f"k{i}", value, value, None)
            for i in range(512)
        ]
        seq += 512
        await db.execute("BEGIN IMMEDIATE")
        await db.executemany("INSERT INTO log VALUES (?,?,?,?,?,?,?,?,?)", rows)
        await db.execute("COMMIT")
    elapsed = time.perf_counter() - started
    await db.close()
    return {"rows": seq, "rows_per_s": seq / elapsed}


def scan_rate(data_dir: Path) -> dict[str, Any]:
    db = sqlite3.connect(f"file:{data_dir / LOG_FILE}?mode=ro", uri=True)
    started = time.perf_counter()
    count = 0
    for row in db.execute("SELECT seq, old_value, new_value, extra FROM log"):
        for col in row[1:]:
            if col is not None:
                loads(col)
        count += 1
    elapsed = time.perf_counter() - started
    db.close()
    return {"records": count, "seconds": elapsed, "records_per_s": count / elapsed}
