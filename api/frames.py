"""Coalesced writes of server-side WebSocket text frames (the I/O half of
``protocol.text_frame``)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from .protocol import text_frame

# How long a close handshake may take before the socket is dropped (aiohttp's
# default of 10 s can hold a shutdown up when a client is going away itself).
CLOSE_TIMEOUT_S = 2.0


class FrameWriter:
    """Outbound text frames of one server-side WebSocket, coalesced: the frames
    pushed during one turn of the event loop leave in one write (one syscall,
    one wake-up of the peer) instead of one each. A group commit resolves many
    calls at once, so their replies come out together.

    Frames are written whole and in push order; aiohttp's own writes on the
    socket (pings, the close frame) are whole frames too, so nothing
    interleaves inside a frame. ``close`` callers flush first.
    """

    def __init__(self, request: web.Request) -> None:
        self._transport = request.transport
        self._protocol = request.protocol
        self._pending: list[bytes] = []
        self._scheduled = False

    def push(self, payload: bytes) -> None:
        self._pending.append(text_frame(payload))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    @property
    def paused(self) -> bool:
        """The transport asked writers to wait (the peer does not read)."""
        return self._protocol.writing_paused

    async def drain(self) -> None:
        """Backpressure: wait while the peer does not read what was written."""
        if self._protocol.writing_paused:
            self.flush()
            await self._protocol._drain_helper()
