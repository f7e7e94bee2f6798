"""Baseline servers for the benches: a bare aiohttp WebSocket app, run as a
separate process (so it does not share the load generator's core), whose port
the caller learns from its first line of output."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator


@contextlib.asynccontextmanager
async def python_server(code: str, *args: str) -> AsyncIterator[int]:
    """Run ``python -c code args...``; yields the port it prints first."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, *args, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        yield int(await proc.stdout.readline())
    finally:
        proc.kill()
        await proc.wait()
