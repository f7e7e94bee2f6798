"""Real WebSocket clients for tests: the hand-driven worker socket (shared with
the benchmarks, ``scripts/raw_worker.py``) and a stream watcher (the sync
``websockets`` client, in a thread)."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from scripts.raw_worker import RawWorker

__all__ = ["RawSocket", "RawWorker", "StalledSocket", "StreamWatcher", "client_frame"]


class StreamWatcher:
    """A real WebSocket client joined to a stream group, collecting messages."""

    def __init__(self, url: str) -> None:
        self.messages: list[dict[str, Any]] = []
        self._url = url
        self._ws: Any = None
        self._open = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        assert self._open.wait(10), "stream socket did not open"

    def _read(self) -> None:
        with connect(self._url) as ws:
            self._ws = ws
            self._open.set()
            try:
                for raw in ws:
                    self.messages.append(json.loads(raw))
            except ConnectionClosed:
                pass

    def events(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["event"]["type"] == "event"]

    def close(self) -> None:
        self._ws.close()
        self._thread.join(5)


class RawSocket:
    """A WebSocket client on a plain socket: frames are built by hand
    (``client_frame``), so a test controls fragmentation and interleaving.
    ``rcvbuf`` (bytes) is set before ``connect``, when the window is agreed."""

    def __init__(self, url: str, rcvbuf: int | None = None) -> None:
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect((parts.hostname or "127.0.0.1", parts.port or 80))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {parts.hostname}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)  # byte by byte: read nothing past the head
            assert chunk, "closed during the upgrade"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head
        self._buffer, self._at = b"", 0  # received, not yet returned: [_at:]

    def send_text(self, text: str) -> None:
        self.sock.sendall(client_frame(text.encode()))

    def send_json(self, msg: Any) -> None:
        self.send_text(json.dumps(msg))

    def send_fragmented(self, payload: bytes, sizes: list[int]) -> None:
        """Send ``payload`` as one fragmented text message: a text frame with
        FIN clear, then continuation frames, FIN on the last; ``sizes`` are
        the lengths of all but the last fragment (which gets the rest). A
        ``ping`` control frame goes between the first two fragments, as
        RFC 6455 §5.4 allows."""
        cuts = [0]
        for size in sizes:
            cuts.append(cuts[-1] + size)
        assert cuts[-1] < len(payload), "the last fragment would be empty"
        cuts.append(len(payload))
        frames = []
        for index in range(len(cuts) - 1):
            last = index == len(cuts) - 2
            opcode = 0x1 if index == 0 else 0x0
            piece = payload[cuts[index] : cuts[index + 1]]
            frames.append(client_frame(piece, opcode=opcode, fin=last))
            if index == 0:
                frames.append(client_frame(b"between", opcode=0x9))
        self.sock.sendall(b"".join(frames))

    def read_frame(self, timeout: float = 60.0) -> tuple[int, bytes]:
        """The next data or close frame as (opcode, payload) (server frames:
        unmasked, unfragmented), answering pings on the way as a reading
        client does and skipping pongs."""
        deadline = time.monotonic() + timeout
        while True:
            buffer, at = self._buffer, self._at  # unread: buffer[at:]
            while len(buffer) - at >= 2:
                opcode, length = buffer[at] & 0x0F, buffer[at + 1] & 0x7F
                start = {126: 4, 127: 10}.get(length, 2)
                if len(buffer) - at < start:
                    break  # the extended length is in the next chunk
                if start > 2:
                    length = int.from_bytes(buffer[at + 2 : at + start], "big")
                if len(buffer) - at < start + length:
                    break
                payload = buffer[at + start : at + start + length]
                at += start + length
                self._at = at
                if opcode == 0x9:  # ping: pong with its payload
                    self.sock.sendall(client_frame(payload, opcode=0xA))
                elif opcode != 0xA:
                    return opcode, payload
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = self.sock.recv(1 << 20)
            assert chunk, "closed by the engine (no close frame)"
            self._buffer, self._at = buffer[at:] + chunk, 0

    def read_frames(self, n: int, timeout: float = 60.0) -> list[str]:
        """Read ``n`` text frames (binary frames are skipped)."""
        deadline = time.monotonic() + timeout
        frames: list[str] = []
        while len(frames) < n:
            opcode, payload = self.read_frame(max(0.01, deadline - time.monotonic()))
            assert opcode != 0x8, f"closed after {len(frames)} frames: {payload!r}"
            if opcode == 0x1:
                frames.append(payload.decode())
        return frames

    def read_json(self, timeout: float = 10.0) -> Any:
        return json.loads(self.read_frames(1, timeout)[0])

    def read_close(self, timeout: float = 10.0) -> int:
        """Skip frames up to the engine's close frame; its status code."""
        deadline = time.monotonic() + timeout
        while True:
            opcode, payload = self.read_frame(max(0.01, deadline - time.monotonic()))
            if opcode == 0x8:
                return int.from_bytes(payload[:2], "big")

    def gone(self, timeout: float = 10.0) -> bool:
        """Read what is buffered until the engine's end of the socket is
        closed (EOF or reset): True when that happens within ``timeout``."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self.sock.settimeout(max(0.01, deadline - time.monotonic()))
                if not self.sock.recv(1 << 20):
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False
        return False

    def close(self) -> None:
        self.sock.close()


class StalledSocket(RawSocket):
    """A WebSocket client on a plain socket with a tiny receive buffer that
    sends and never reads: the peer that does not read what it asked for.

    The buffer is set before ``connect`` (the window is agreed then), so the
    engine's writes back up after a few KiB.
    """

    def __init__(self, url: str, rcvbuf: int = 8192) -> None:
        super().__init__(url, rcvbuf)


def client_frame(payload: bytes, opcode: int = 0x1, fin: bool = True) -> bytes:
    """One masked client-to-server WebSocket frame (RFC 6455 §5.2); with
    ``fin`` False, a fragment that more frames continue (opcode 0)."""
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    mask = os.urandom(4)
    key = (mask * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(
        n, "big"
    )
    return head + mask + masked
