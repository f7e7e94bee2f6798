"""Bulk reads of the PostgreSQL log for rebuilds: blocking, for a thread.

Each call runs a private event loop with a connection of its own on the calling
thread (asyncpg is async only), so a rebuild never competes with the engine's
pool, and the server computes ``compacted`` while a fold runs elsewhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg

from ..errors import StoreError
from ..records import Record
from ..rows import row_to_record
from . import schema as q


class PostgresScanner:
    def __init__(self, url: str) -> None:
        self.url = url

    def scan(
        self, after: int, until: int, batch: int = 10_000
    ) -> Iterator[list[Record]]:
        loop = asyncio.new_event_loop()
        try:
            conn = loop.run_until_complete(self._connect())
            try:
                cursor = after
                while cursor < until:
                    try:
                        rows = loop.run_until_complete(
                            conn.fetch(q.READ_RANGE, cursor, until, batch)
                        )
                    except (
                        asyncpg.PostgresError,
                        asyncpg.InterfaceError,
                        OSError,
                    ) as e:
                        raise StoreError(f"read failed: {e}") from e
                    if not rows:
                        return
                    records = [row_to_record(tuple(r)) for r in rows]
                    cursor = records[-1].offset
                    yield records
            finally:
                loop.run_until_complete(conn.close())
        finally:
            loop.close()

    def compacted(self, after: int, until: int) -> list[Record]:
        async def run() -> list[Record]:
            conn = await self._connect()
            try:
                rows = await conn.fetch(q.COMPACTED, after, until)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as e:
                raise StoreError(f"read failed: {e}") from e
            finally:
                await conn.close()
            return [row_to_record(tuple(r)) for r in rows]

        return asyncio.run(run())

    async def _connect(self) -> asyncpg.Connection:
        try:
            return await asyncpg.connect(self.url, timeout=10)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as e:
            raise StoreError(f"cannot open the log: {e}") from e
