"""The storage interface: what the engine, projections and replay need of a log.

``LogStore`` is the one contract every backend implements (SQLite embedded,
PostgreSQL for several nodes); ``tests/conformance`` holds the suite each must
pass. Offsets are 1, 2, 3 … gapless, in commit order; a batch, its view changes
and its bookkeeping commit in one transaction or not at all. Only the writer
(``LogWriter``) calls ``commit``. Bulk scans for rebuilds are blocking and run on
a thread (``LogScanner``), where a hop per row batch would cost more than the read.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from .bookkeeping import (
    Bookkeeping,
    CursorInfo,
    ParkedRecord,
    Snapshot,
    SnapshotInfo,
)
from .logquery import LogQuery
from .mutations import BatchResult, Mutation
from .records import Record

# (scope, group or '', key, value): one row of an inline view, in list order.
ViewRow = tuple[str, str, str, Any]


class LogScanner(Protocol):
    """Blocking bulk reads with a connection of their own (use on a thread)."""

    def scan(
        self, after: int, until: int, batch: int = 10_000
    ) -> Iterator[list[Record]]:
        """Records ``after < offset <= until`` in offset order, in lists."""
        ...

    def compacted(self, after: int, until: int) -> list[Record]:
        """Per view address, its latest record and the latest ones that created
        and deleted it (records that change no view are left out), in offset
        order: folded onto the state at ``after``, a last-writer-wins view
        comes out exactly as from every record, list order included."""
        ...


class LogStore(Protocol):
    @property
    def head(self) -> int:
        """The last offset this process committed or read (0: empty log)."""
        ...

    @property
    def location(self) -> str:
        """Where the log lives, for messages (a path or a database name)."""
        ...

    async def close(self) -> None: ...

    # -- appending (the single writer only) ---------------------------------------

    async def commit(
        self, batch: Sequence[Mutation], books: Sequence[Bookkeeping] = ()
    ) -> BatchResult:
        """Append one record per mutation that happens, apply the inline views
        and the bookkeeping, atomically. Raises ``StoreError`` (nothing kept)."""
        ...

    # -- the log -------------------------------------------------------------------

    async def read_head(self) -> int:
        """The last offset ever assigned, from the database (pruned included)."""
        ...

    async def read(self, after: int, limit: int = 1000) -> list[Record]: ...

    async def read_one(self, offset: int) -> Record | None: ...

    async def read_kinds(self, kinds: Sequence[str]) -> list[Record]:
        """Every record of these kinds, in offset order (to rebuild queues)."""
        ...

    async def read_matching(self, query: LogQuery) -> list[Record]:
        """A page of the records that match ``query`` (the console's log view)."""
        ...

    async def history(self, space: str, scope: str, offset: int) -> list[Record]:
        """The view-changing records of one scope up to ``offset``."""
        ...

    async def value_at(self, space: str, scope: str, key: str, offset: int) -> Any:
        """Time travel: one address's value right after ``offset`` (or None)."""
        ...

    def scanner(self) -> LogScanner: ...

    # -- inline views --------------------------------------------------------------

    async def view_get(
        self, space: str, scope: str, group: str, key: str
    ) -> tuple[bool, Any]: ...

    async def view_list(self, space: str, scope: str, group: str) -> list[Any]: ...

    async def view_scopes(self, space: str) -> list[str]: ...

    async def view_groups(self, space: str, scope: str) -> list[str]: ...

    async def view_scope_groups(self, space: str) -> list[tuple[str, str]]: ...

    async def view_read_at(
        self, space: str, scope: str, group: str, key: str | None
    ) -> tuple[int, Any]:
        """A group's list (``key`` None) or one item, and the offset it reflects,
        from one read snapshot."""
        ...

    async def view_snapshot(
        self, spaces: Sequence[str]
    ) -> tuple[int, dict[str, list[ViewRow]]]:
        """Every row of these views and the offset they reflect, from one read
        snapshot."""
        ...

    # -- bookkeeping ---------------------------------------------------------------

    async def cursor(self, key: str) -> int | None: ...

    async def cursors(self) -> list[CursorInfo]: ...

    async def parked(self, key: str | None = None) -> list[ParkedRecord]: ...

    async def snapshot(self, name: str) -> Snapshot | None: ...

    async def snapshots(self) -> list[SnapshotInfo]: ...

    async def sends_pruned_through(self) -> int:
        """The highest offset of a ``stream.send`` removed by retention."""
        ...
