"""The tail of the log: recent records in memory, older ones from the store.

When several nodes share the log, commits of other nodes reach the tail through
``follow``: woken by ``poke`` (a notification, or a local commit that left a
gap) and by a poll every ``poll_s`` seconds, which is the truth: a lost
notification may delay a record, never lose one. Records are published in
offset order, each once.

Consumers pull: ``read_after(offset)`` returns what follows ``offset`` (from the
in-memory window when it still covers it, else from the store), and ``wait_beyond``
parks until something newer is committed. No consumer has a queue of its own, so
a slow one costs memory for nothing but its cursor, and falls back to the store
by itself when the window has moved past it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from .errors import EventLogError
from .records import Record
from .store import LogStore
from .waiting import wait_event

log = logging.getLogger("iiilog.tail")


class LogTail:
    def __init__(self, store: LogStore, *, window: int = 20_000) -> None:
        self.store = store
        self.head = store.head
        self._recent: deque[Record] = deque(maxlen=window)
        self._changed = asyncio.Event()
        self._poked = asyncio.Event()

    def publish(self, records: list[Record]) -> None:
        """Called by the writer after each commit, in offset order."""
        if records[0].offset != self.head + 1 and self._recent:
            # The window must hold consecutive offsets (reads index into it).
            # Anything else is a bug upstream: drop it, reads go to the store.
            log.error(
                "tail: offset %d published after head %d; window reset",
                records[0].offset,
                self.head,
            )
            self._recent.clear()
        self._recent.extend(records)
        self.head = records[-1].offset
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def offer(self, records: list[Record]) -> None:
        """A local commit on a shared log: published now if it follows the
        head, else the follower fetches the gap (other nodes' commits) and it."""
        if records[0].offset == self.head + 1:
            self.publish(records)
        elif records[-1].offset > self.head:
            self.poke()

    def poke(self) -> None:
        """Something new may be in the store: wake the follower."""
        self._poked.set()

    async def follow(self, poll_s: float) -> None:
        """Publish what other writers committed, until cancelled."""
        while True:
            await wait_event(self._poked, poll_s)
            self._poked.clear()
            try:
                await self.catch_up()
            except EventLogError as e:  # the store is away: the poll retries
                log.warning("tail: reading new records failed: %s", e)

    async def catch_up(self) -> None:
        while True:
            records = await self.store.read(self.head, 1000)
            fresh = [r for r in records if r.offset > self.head]  # offered meanwhile
            if not fresh:
                return
            self.publish(fresh)

    async def read_after(self, offset: int, limit: int = 1000) -> list[Record]:
        if offset >= self.head:
            return []
        recent = self._recent
        if recent and recent[0].offset <= offset + 1:
            start = offset + 1 - recent[0].offset
            end = min(len(recent), start + limit)
            return [recent[i] for i in range(start, end)]
        return await self.store.read(offset, limit)

    async def wait_beyond(self, offset: int, timeout: float | None = None) -> bool:
        """Wait until the head passes ``offset``; False on timeout."""
        while self.head <= offset:
            if not await wait_event(self._changed, timeout):
                return self.head > offset
        return True
