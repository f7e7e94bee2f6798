"""The backends the ``LogStore`` conformance suite runs against.

Each backend is a small adapter: open a fresh store, open it again (a restart),
and make the database itself refuse records of one scope (fault injection). A
new backend adds one class here; the tests run on it unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from eventlog import LogStore, SqliteStore
from tests.storage import sqlite_refuse_scope


class SqliteBackend:
    name = "sqlite"

    def __init__(self, root: Path) -> None:
        self.data_dir = root / "data"

    async def open(self) -> LogStore:
        return await SqliteStore.open(self.data_dir, synchronous="normal")

    async def refuse(self, scope: str | None) -> None:
        sqlite_refuse_scope(self.data_dir, scope)

    async def drop(self) -> None:
        return None


Backend = SqliteBackend


@pytest.fixture(params=["sqlite"])
async def backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Backend]:
    b = SqliteBackend(tmp_path)
    try:
        yield b
    finally:
        await b.drop()


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[LogStore]:
    s = await backend.open()
    try:
        yield s
    finally:
        await s.close()
