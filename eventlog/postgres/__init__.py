"""The PostgreSQL backend of ``LogStore``: one log for several engine nodes."""

from .directory import PostgresDirectory
from .scan import PostgresScanner
from .schema import NOTIFY_CHANNEL, SCHEMA_VERSION
from .store import PostgresStore

__all__ = [
    "NOTIFY_CHANNEL",
    "SCHEMA_VERSION",
    "PostgresDirectory",
    "PostgresScanner",
    "PostgresStore",
]
