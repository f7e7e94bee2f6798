"""The SQLite backend of ``LogStore`` (the embedded default)."""

from .scan import SqliteScanner
from .store import LOG_FILE, SqliteStore, Synchronous

__all__ = ["LOG_FILE", "SqliteScanner", "SqliteStore", "Synchronous"]
