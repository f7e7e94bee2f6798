"""The durable, append-only log: records, the SQLite store, the writer, the tail."""

from .errors import DataDirLockedError, EventLogError, StoreError
from .records import KINDS, Kind, Origin, Record
from .store import Mutation, Outcome, SqliteStore
from .tail import LogTail
from .writer import LogWriter

__all__ = [
    "KINDS",
    "DataDirLockedError",
    "EventLogError",
    "Kind",
    "LogTail",
    "LogWriter",
    "Mutation",
    "Origin",
    "Outcome",
    "Record",
    "SqliteStore",
    "StoreError",
]
