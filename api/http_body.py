"""HTTP bodies as channels: the request body pumped into the request-body
channel (64 KiB chunks, at most ``max_body_bytes``), and a streamed response
written from the response channel (its control frames first).
"""

from __future__ import annotations

from aiohttp import web

from engine.channels import Channel, as_bytes

BODY_CHUNK = 64 * 1024


class BodyTooLarge(Exception):
    """A request body past ``max_body_bytes``: answered 413."""

    def __init__(self, size: int | None, limit: int) -> None:
        self.size, self.limit = size, limit
        super().__init__(self.message)

    @property
    def message(self) -> str:
        size = "request body" if self.size is None else f"request body of {self.size}"
        unit = "" if self.size is None else " bytes"
        return (
            f"{size}{unit} exceeds the configured max_body_bytes limit of {self.limit}"
        )


async def pump_body(
    channel: Channel, request: web.Request, raw: bytes | None, limit: int
) -> None:
    """Fill the request-body channel (≤ 64 KiB chunks), then close it.
    A body without a length that passes ``max_body_bytes`` stops here
    (``BodyTooLarge``; the request is answered 413 if it still can be)."""
    if raw is not None:
        for start in range(0, len(raw), BODY_CHUNK):
            await channel.put("binary", raw[start : start + BODY_CHUNK])
    else:
        seen = 0
        async for chunk in request.content.iter_chunked(BODY_CHUNK):
            seen += len(chunk)
            if seen > limit:
                raise BodyTooLarge(None, limit)
            await channel.put("binary", chunk)
    await channel.end()


async def stream_response(
    request: web.Request,
    channel: Channel,
    status: int,
    headers: dict[str, str],
    first: bytes | None,
) -> web.StreamResponse:
    response = web.StreamResponse(status=status)
    for name, value in headers.items():
        if name.lower() not in ("content-length", "transfer-encoding"):
            response.headers[name] = value
    response.enable_chunked_encoding()
    await response.prepare(request)
    if first is not None:
        await response.write(first)
        while True:
            item = await channel.items.get()
            if item is None:
                break
            if item[0] == "binary":
                await response.write(as_bytes(item[1]))
    await response.write_eof()
    return response
