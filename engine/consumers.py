"""Log consumers: one cursor walking the log for one trigger binding.

A consumer reads the records after its cursor from the tail, hands the matching
ones to ``deliver`` one at a time, in offset order, and advances. It owns no
queue: when it is slow it simply reads further behind, from the store.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from eventlog import LogTail, Record

log = logging.getLogger("iiilog.consumers")

Match = Callable[[Record], bool]
Deliver = Callable[[Record], Awaitable[None]]


async def consume(
    tail: LogTail, start: int, match: Match, deliver: Deliver, *, name: str
) -> None:
    """Run until cancelled, delivering every matching record after ``start``."""
    cursor = start
    while True:
        records = await tail.read_after(cursor, 500)
        if not records:
            await tail.wait_beyond(cursor)
            continue
        for record in records:
            if match(record):
                try:
                    await deliver(record)
                except Exception:
                    log.exception(
                        "%s: delivery of offset %d failed", name, record.offset
                    )
            cursor = record.offset
