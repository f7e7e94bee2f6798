"""Waiting for an ``asyncio.Event`` with a timeout, cancellation-safe.

Not ``asyncio.wait_for(event.wait(), timeout)``: on Python 3.11 ``wait_for``
swallows a cancellation that arrives in the same turn of the loop as the event
is set (it returns the inner result instead of raising), so a ``while True``
loop built on it goes on after ``cancel()``, and a shutdown that gathers its
task never ends. ``asyncio.timeout`` keeps the cancellation.
"""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, timeout: float | None) -> bool:
    """Wait until ``event`` is set or ``timeout`` seconds (None: no limit)
    passed; whether it is set. A cancellation always propagates."""
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True
