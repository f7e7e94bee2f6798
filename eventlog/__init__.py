"""The durable, append-only log: records, the storage interface and its
backends, the single writer, the tail.

Nothing outside this package writes SQL or imports a database driver.
"""

from .bookkeeping import (
    Bookkeeping,
    CursorInfo,
    Park,
    ParkedRecord,
    PruneSends,
    PruneTags,
    SaveCursor,
    SaveSnapshot,
    Snapshot,
    SnapshotInfo,
    Unpark,
)
from .errors import DataDirLockedError, EventLogError, StoreError
from .logquery import LogQuery
from .mutations import Address, BatchResult, Compute, Mutation, Outcome
from .records import KINDS, Kind, Origin, Record
from .sqlite import SqliteStore
from .store import LogScanner, LogStore, ViewRow
from .tail import LogTail
from .waiting import wait_event
from .writer import LogWriter

__all__ = [
    "KINDS",
    "Address",
    "BatchResult",
    "Bookkeeping",
    "Compute",
    "CursorInfo",
    "DataDirLockedError",
    "EventLogError",
    "Kind",
    "LogQuery",
    "LogScanner",
    "LogStore",
    "LogTail",
    "LogWriter",
    "Mutation",
    "Origin",
    "Outcome",
    "Park",
    "ParkedRecord",
    "PruneSends",
    "PruneTags",
    "Record",
    "SaveCursor",
    "SaveSnapshot",
    "Snapshot",
    "SnapshotInfo",
    "SqliteStore",
    "StoreError",
    "Unpark",
    "ViewRow",
    "wait_event",
]
