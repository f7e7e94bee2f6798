"""Errors raised by the event log.

EventLogError
├── StoreError          the database refused or failed a read or a commit
└── DataDirLockedError  another engine process owns the data dir
"""


class EventLogError(Exception):
    """Base of every error the event log raises."""


class StoreError(EventLogError):
    """A read or commit failed in the database; nothing of the batch was kept."""


class DataDirLockedError(EventLogError):
    """The data dir is locked by another running engine (one writer per log)."""
