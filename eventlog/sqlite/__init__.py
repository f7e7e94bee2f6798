"""The SQLite backend of ``LogStore`` (the embedded default)."""

from ..config import Synchronous
from .scan import SqliteScanner
from .store import LOG_FILE, SqliteStore

__all__ = ["LOG_FILE", "SqliteScanner", "SqliteStore", "Synchronous"]
