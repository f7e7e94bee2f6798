"""The backends the ``LogStore`` conformance suite runs against.

Each backend is a small adapter: open a fresh store, open it again (a restart),
and make the database itself refuse records of one scope (fault injection). A
new backend adds one class here; the tests run on it unchanged.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from eventlog import LogStore, SqliteStore
from eventlog.postgres import PostgresStore
from tests.storage import pg_refuse_scope, pg_schema, sqlite_refuse_scope


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


class PostgresBackend:
    """A schema of its own on the machine's PostgreSQL (a missing server fails
    the test, it is never skipped)."""

    name = "postgres"

    def __init__(self, schema: str) -> None:
        self.schema = schema
        self.url = ""

    async def create(self) -> None:
        self.url = await pg_schema(self.schema)

    async def open(self) -> LogStore:
        return await PostgresStore.open(self.url)

    async def refuse(self, scope: str | None) -> None:
        await pg_refuse_scope(self.url, scope)

    async def drop(self) -> None:
        await pg_schema(self.schema, drop=True)


Backend = SqliteBackend | PostgresBackend


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Backend]:
    b: Backend
    if request.param == "sqlite":
        b = SqliteBackend(tmp_path)
    else:
        b = PostgresBackend(f"iiilog_test_{uuid.uuid4().hex[:12]}")
        await b.create()
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
