"""Channel sockets: ``/ws/channels/{id}?key=...&dir=read|write`` on a worker port.

One end of an ``engine::channels::create`` channel per socket. Bytes and text
pass through unparsed; the writer's end-of-stream is the socket's close.
"""

from __future__ import annotations

import logging

from aiohttp import WSMsgType, web

from engine.channels import ChannelRegistry, as_bytes

from .frames import CLOSE_TIMEOUT_S
from .protocol import MAX_MESSAGE_BYTES

log = logging.getLogger("iiilog.channels")
CHANNELS = web.AppKey("channels", ChannelRegistry)
CHANNEL_FRAME_MAX = 64 * 1024  # SDK channel sockets drop frames over 1 MiB


async def channel_handler(request: web.Request) -> web.StreamResponse:
    """``/ws/channels/{id}?key=...&dir=read|write``: one end of a channel."""
    registry = request.app[CHANNELS]
    direction = request.query.get("dir", "")
    channel = registry.claim(
        request.match_info["channel_id"], request.query.get("key", ""), direction
    )
    if channel is None:
        raise web.HTTPNotFound(text="no such channel end")
    ws = web.WebSocketResponse(
        max_msg_size=MAX_MESSAGE_BYTES, timeout=CLOSE_TIMEOUT_S, compress=False
    )
    await ws.prepare(request)
    if direction == "write":
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await channel.put("text", msg.data)
                elif msg.type == WSMsgType.BINARY:
                    await channel.put("binary", msg.data)
        finally:
            await channel.end()
            registry.done(channel, "write")
        return ws
    try:
        while True:
            item = await channel.items.get()
            if item is None:
                break
            kind, data = item
            if kind == "text":
                await ws.send_str(str(data))
            else:
                raw = as_bytes(data)
                for start in range(0, max(len(raw), 1), CHANNEL_FRAME_MAX):
                    await ws.send_bytes(raw[start : start + CHANNEL_FRAME_MAX])
        await ws.close()
    except (ConnectionResetError, RuntimeError) as e:
        log.debug("channel reader %s went away: %s", channel.id, e)
    finally:
        registry.done(channel, "read")
    return ws
