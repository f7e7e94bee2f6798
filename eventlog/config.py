"""The event log's settings (module ``iiilog-eventlog``): where the log lives,
how hard each commit is pushed to disk, and how many records one group commit
takes at most. A pydantic model the composition root validates once at start;
the store and writer take its plain values. Imports nothing of ours.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# SQLite's PRAGMA synchronous levels the store accepts.
Synchronous = Literal["off", "normal", "full", "extra"]


class EventLogConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    data_dir: Path = Field(Path("./data"), strict=False)
    # A PostgreSQL URL: the log lives there, shared by every node started with
    # it; the data dir then holds only local files (engine.json). None: SQLite
    # in the data dir.
    database_url: str | None = None
    # SQLite's PRAGMA synchronous: `full` syncs every commit (nothing
    # acknowledged is lost on power failure), `normal` may lose the last ones.
    synchronous: Synchronous = "full"
    max_batch: int = Field(512, ge=1)

    @field_validator("database_url")
    @classmethod
    def _postgres(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("synchronous", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value
