"""A client's broken request or dropped connection is one log line, not a
traceback: aiohttp logs both at ERROR with the stack on ``aiohttp.server``,
though the request was already answered 400 (or nobody is left to answer).

``install`` puts a filter on that logger which rewrites exactly those records
(a malformed HTTP message: INFO; a connection the peer reset: DEBUG) into one
line; every other record passes unchanged.
"""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError

from .protocol import clip

SERVER_LOGGER = "aiohttp.server"


class ClientErrorLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            # "Invalid header token:\n\n  b'bad line'\n  ^": the lines but the caret
            lines = [line.strip() for line in str(error.message).splitlines()]
            reason = " ".join(line for line in lines if line.strip("^"))
            _one_line(
                record, logging.INFO, f"bad HTTP request: {error.code} {clip(reason)}"
            )
        elif isinstance(error, ConnectionError):
            _one_line(record, logging.DEBUG, f"client went away: {error!r}")
        return True


def _one_line(record: logging.LogRecord, level: int, text: str) -> None:
    message = record.getMessage()  # "Error handling request from <addr>"
    record.levelno, record.levelname = level, logging.getLevelName(level)
    record.msg, record.args = "%s: %s", (message, text)
    record.exc_info, record.exc_text = None, None


def install() -> None:
    """Once per process (idempotent)."""
    logger = logging.getLogger(SERVER_LOGGER)
    if not any(isinstance(f, ClientErrorLines) for f in logger.filters):
        logger.addFilter(ClientErrorLines())
