"""A filtered, paged read of the log (the console's log view): what to match
and the one SELECT both backends run for it.

``LogQuery`` is checked when built, so a backend never sees a bad filter. The
SQL is put together from fixed fragments only (every value is a bound
parameter); ``select`` is pure and takes the backend's placeholder style.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .records import KINDS

SPACES = ("state", "stream", "queue")
MAX_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class LogQuery:
    """Records with ``after < offset <= until`` that match every filter set,
    at most ``limit`` of them: the oldest first, or the newest first (a page
    that ends at ``until``)."""

    after: int = 0
    until: int | None = None  # None: up to the head
    space: str | None = None  # 'state', 'stream' or 'queue'
    scope: str | None = None
    key: str | None = None
    limit: int = 100
    newest_first: bool = False

    def __post_init__(self) -> None:
        if self.after < 0 or (self.until is not None and self.until < 0):
            raise ValueError("offsets must not be negative")
        if self.space is not None and self.space not in SPACES:
            raise ValueError(f"space must be one of {', '.join(SPACES)}")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise ValueError(f"limit must be from 1 to {MAX_LIMIT}")

    def kinds(self) -> list[str]:
        """The record kinds of ``space`` (every kind when it is not set)."""
        if self.space is None:
            return list(KINDS)
        return [k for k in KINDS if k.startswith(f"{self.space}.")]


def select(
    query: LogQuery, table: str, columns: str, mark: Callable[[int], str]
) -> tuple[str, list[Any]]:
    """The SELECT for ``query`` and its parameters; ``mark(n)`` is the n-th
    placeholder (1-based: ``?`` for SQLite, ``$n`` for PostgreSQL)."""
    params: list[Any] = [query.after]
    where = [f"seq > {mark(1)}"]

    def bind(fragment: str, value: Any) -> None:
        params.append(value)
        where.append(fragment.format(mark(len(params))))

    if query.until is not None:
        bind("seq <= {}", query.until)
    if query.space is not None:
        marks = []
        for kind in query.kinds():
            params.append(kind)
            marks.append(mark(len(params)))
        where.append(f"kind IN ({', '.join(marks)})")
    if query.scope is not None:
        bind("scope = {}", query.scope)
    if query.key is not None:
        bind("key = {}", query.key)
    params.append(query.limit)
    order = "DESC" if query.newest_first else "ASC"
    sql = (
        f"SELECT {columns} FROM {table} WHERE {' AND '.join(where)}"
        f" ORDER BY seq {order} LIMIT {mark(len(params))}"
    )
    return sql, params
