"""One worker connection's protocol state, sans-IO in the manner of h11.

``WorkerSession`` turns received frames into events and outgoing messages into
bytes; it knows no socket, clock or engine (ids are handed in). Every frame
becomes exactly one event and ``receive`` never raises: a frame that cannot be
used becomes ``FrameDropped`` with its reason, so no frame costs a worker its
connection. Once closed, a session yields no events and sends nothing.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from eventlog.codec import dumps_bytes

from .protocol import (
    DropReason,
    FrameError,
    IncomingMessage,
    Outgoing,
    SessionClosed,
    WorkerRegistered,
    parse_frame,
)

# Binary frames with these prefixes on the main socket are telemetry (the SDKs
# normally send them on /otel).
TELEMETRY_PREFIXES = (b"OTLP", b"LOGS", b"MTRC")


@dataclass(frozen=True, slots=True)
class Telemetry:
    """An OTel frame (``OTLP`` traces, ``LOGS``, ``MTRC`` metrics), prefix included."""

    frame: bytes

    @property
    def kind(self) -> str:
        return self.frame[:4].decode("ascii")


@dataclass(frozen=True, slots=True)
class FrameDropped:
    """A frame that was not used; ``detail`` is already short enough to log."""

    reason: DropReason
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}" if self.detail else str(self.reason)


Event = IncomingMessage | Telemetry | FrameDropped


class WorkerSession:
    """The protocol side of one worker socket.

    Owns the connection's ``worker_id`` and its secret ``reattach_token``
    (both chosen by the caller), and whether the connection has ended.
    """

    __slots__ = ("_closed", "reattach_token", "worker_id")

    def __init__(self, worker_id: str, reattach_token: str) -> None:
        self.worker_id = worker_id
        self.reattach_token = reattach_token
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True

    def receive(self, frame: str | bytes) -> list[Event]:
        """The events in one text or binary frame (always one while open)."""
        if self._closed:
            return []
        if isinstance(frame, bytes) and frame.startswith(TELEMETRY_PREFIXES):
            return [Telemetry(frame)]
        try:
            return [parse_frame(frame)]
        except FrameError as e:
            return [FrameDropped(e.reason, e.detail)]

    def send(self, message: Outgoing) -> bytes:
        """The JSON payload of one text frame carrying ``message``."""
        if self._closed:
            raise SessionClosed(f"{message.type} not sent: the session has ended")
        return dumps_bytes(message.to_dict())

    def welcome(self, features: tuple[str, ...] = ()) -> bytes:
        """``workerregistered``: the first frame, right after the upgrade,
        with what the engine offers this connection."""
        return self.send(
            WorkerRegistered(self.worker_id, self.reattach_token, features)
        )

    def accepts_reattach(self, token: str | None) -> bool:
        """Does ``token`` prove the sender held this connection (§1.6)?"""
        return token is not None and secrets.compare_digest(
            token.encode(), self.reattach_token.encode()
        )
