"""Schemas of their own in one PostgreSQL database, for tests and benchmarks
that need a fresh log without a database of their own: a log lives wherever
the URL's ``search_path`` points."""

from __future__ import annotations

import asyncpg

from .reads import errors


async def create_schema(url: str, name: str) -> str:
    """Create schema ``name``; returns ``url`` pointed at it."""
    async with errors(f"cannot create schema {name}"):
        conn = await asyncpg.connect(url, timeout=10)
        try:
            await conn.execute(f'CREATE SCHEMA "{name}"')
        finally:
            await conn.close()
    return f"{url}{'&' if '?' in url else '?'}search_path={name}"


async def drop_schema(url: str, name: str) -> None:
    """Drop schema ``name`` and everything in it."""
    async with errors(f"cannot drop schema {name}"):
        conn = await asyncpg.connect(url, timeout=10)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        finally:
            await conn.close()
