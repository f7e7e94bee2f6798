"""Typed bookkeeping that lives beside the log: trigger cursors, parked
deliveries, write tags, projection snapshots and retention.

Each operation is a value; the writer commits it in the same transaction as the
batch of records it rides with (``LogStore.commit``), so a cursor, a snapshot or
a tag never disagrees with the log after a crash. The read side is typed too
(``CursorInfo``, ``ParkedRecord``, ``Snapshot``, ``SnapshotInfo``). Pure data, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .codec import dumps


@dataclass(frozen=True, slots=True)
class SaveCursor:
    """A durable trigger subscription's position: every record <= it was handled.
    A saved position never moves back (a node that led the subscription before
    may save late)."""

    key: str
    function_id: str
    trigger_type: str
    config: Any
    position: int
    ts: int


@dataclass(frozen=True, slots=True)
class Park:
    """A delivery that kept failing, set aside (upsert by key and offset)."""

    key: str
    offset: int
    attempts: int
    error: str
    ts: int


@dataclass(frozen=True, slots=True)
class Unpark:
    key: str
    offset: int


@dataclass(frozen=True, slots=True)
class SaveSnapshot:
    """A projection's state as of ``position``, encoded when it is captured
    (a fold keeps changing its state in place afterwards)."""

    name: str
    position: int
    encoded_state: str
    ts: int

    @classmethod
    def capture(cls, name: str, position: int, state: Any, ts: int) -> SaveSnapshot:
        return cls(name, position, dumps(state), ts)


@dataclass(frozen=True, slots=True)
class PruneTags:
    """Forget delivery write tags made before ``before_ms``."""

    before_ms: int


@dataclass(frozen=True, slots=True)
class PruneSends:
    """Retention: drop ``stream.send`` records older than ``before_ms``.
    Returns how many went; the head never moves back."""

    before_ms: int


Bookkeeping = SaveCursor | Park | Unpark | SaveSnapshot | PruneTags | PruneSends


@dataclass(frozen=True, slots=True)
class CursorInfo:
    key: str
    function_id: str
    trigger_type: str
    config: Any
    position: int
    updated_ms: int
    parked: int


@dataclass(frozen=True, slots=True)
class ParkedRecord:
    key: str
    offset: int
    attempts: int
    error: str
    ts: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    name: str
    position: int
    state: Any
    ts: int


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """A stored snapshot without its state (listings)."""

    name: str
    position: int
    ts: int
