"""Real WebSocket clients for tests: the hand-driven worker socket (shared with
the benchmarks, ``scripts/raw_worker.py``) and a stream watcher (the sync
``websockets`` client, in a thread)."""

from __future__ import annotations

import json
import threading
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from scripts.raw_worker import RawWorker

__all__ = ["RawWorker", "StreamWatcher"]


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
