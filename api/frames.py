"""Coalesced, bounded writes of server-side WebSocket text frames (the I/O half
of ``protocol.text_frame``).

What one socket has queued for its peer (frames not yet written plus the
transport's buffer) is bounded: writers wait for ``room`` while it is over the
limit, and a peer that stays over it for too long is reported as stuck.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

from .protocol import text_frame

# How long a close handshake may take before the socket is dropped (aiohttp's
# default of 10 s can hold a shutdown up when a client is going away itself).
CLOSE_TIMEOUT_S = 2.0
# Outbound bytes one socket may have queued before its writers wait.
DEFAULT_OUTBOUND_LIMIT = 4 * 1024 * 1024
# How often a socket over its limit is looked at: for its waiters, and for
# ``on_stuck``.
_POLL_S = 0.005
_WATCH_S = 0.1


class FrameWriter:
    """Outbound text frames of one server-side WebSocket, coalesced: the frames
    pushed during one turn of the event loop leave in one write (one syscall,
    one wake-up of the peer) instead of one each. A group commit resolves many
    calls at once, so their replies come out together.

    Frames are written whole and in push order; aiohttp's own writes on the
    socket (pings, the close frame) are whole frames too, so nothing
    interleaves inside a frame. ``close`` callers flush first.

    Bound: ``buffered`` (pushed, not yet taken by the kernel) may pass
    ``limit`` by at most the frames pushed after the last ``room`` check, one
    per writer, because writers ``await room()`` before they build a frame.
    ``limit`` is above the transport's high-water mark (64 KiB), so over the
    limit means the transport holds it until the peer reads.
    When the socket stays over the limit for ``stuck_after_s``, ``on_stuck``
    runs once (the owner decides: the worker bridge drops the peer).
    """

    def __init__(
        self,
        request: web.Request,
        limit: int = DEFAULT_OUTBOUND_LIMIT,
        stuck_after_s: float | None = None,
        on_stuck: Callable[[], None] | None = None,
    ) -> None:
        self._transport = request.transport
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._scheduled = False
        self.limit = limit
        self._stuck_after_s = stuck_after_s
        self._on_stuck = on_stuck
        self._over_since: float | None = None  # loop time; None: under the limit
        self._room: asyncio.Event | None = None  # set when back under the limit

    def push(self, payload: bytes) -> None:
        frame = text_frame(payload)
        self._pending.append(frame)
        self._pending_bytes += len(frame)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)
        if self._over_since is None and self.over:
            self._watch()

    def flush(self) -> None:
        self._scheduled = False
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    @property
    def open(self) -> bool:
        transport = self._transport
        return transport is not None and not transport.is_closing()

    @property
    def buffered(self) -> int:
        """Bytes pushed that the kernel has not taken yet."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return self._pending_bytes
        return self._pending_bytes + transport.get_write_buffer_size()

    @property
    def over(self) -> bool:
        """More is queued for the peer than the limit allows."""
        return self.open and self.buffered > self.limit

    async def room(self) -> None:
        """Wait until the socket is under its limit (or gone).

        The waiters share one event, set by a poll of the buffer every few
        milliseconds while the socket is over its limit: aiohttp's own drain
        future is shared with its writer (pings, close), and one cancelled
        waiter there cancels it for all, which would end a waiter here with a
        stray ``CancelledError``.
        """
        while self.over:
            self.flush()
            if not self.over:
                return  # the kernel took it
            if self._room is None:
                self._room = asyncio.Event()
                asyncio.get_running_loop().call_later(_POLL_S, self._poll)
            await self._room.wait()

    def _poll(self) -> None:
        room = self._room
        if room is None:
            return
        if self.over:
            asyncio.get_running_loop().call_later(_POLL_S, self._poll)
            return
        self._room = None
        room.set()

    def abort(self) -> None:
        """Drop the connection and whatever is queued for it."""
        self._pending.clear()
        self._pending_bytes = 0
        transport = self._transport
        if transport is not None:
            transport.abort()

    # -- stuck peers ----------------------------------------------------------------

    def _watch(self) -> None:
        if self._on_stuck is None or self._stuck_after_s is None:
            return
        loop = asyncio.get_running_loop()
        self._over_since = loop.time()
        loop.call_later(_WATCH_S, self._check)

    def _check(self) -> None:
        if self._over_since is None or self._stuck_after_s is None:
            return
        if not self.over:
            self._over_since = None  # it read: the clock starts again next time
            return
        loop = asyncio.get_running_loop()
        if loop.time() - self._over_since < self._stuck_after_s:
            loop.call_later(_WATCH_S, self._check)
            return
        on_stuck, self._on_stuck = self._on_stuck, None
        self._over_since = None
        if on_stuck is not None:
            on_stuck()
