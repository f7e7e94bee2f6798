"""Folding a long stretch of history at once, off the event loop.

Blocking: run it on a thread (``asyncio.to_thread``). A compactable projection
(``projections/base.py``) folds the compacted log, which the store computes
(SQLite: in C, with the GIL released); any other reads every record through a
scanner of its own. The cyclic GC is paused meanwhile: a fold allocates a record
per row and keeps few, and the collector would walk the growing state again and
again (a third of a full pass, measured).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterable, Iterator
from typing import Any

from eventlog import LogScanner, Record

from .base import Projection


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic GC inside (it runs again afterwards, if it ran before)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def fold_history(
    scanner: LogScanner, projection: Projection, state: Any, after: int, until: int
) -> tuple[Any, int]:
    """``projection`` folded over ``after < offset <= until``, from ``state``,
    and how many records that read (the compacted ones, when compactable)."""
    read = 0
    with gc_paused():
        chunks: Iterable[list[Record]] = (
            [scanner.compacted(after, until)]
            if projection.compactable
            else scanner.scan(after, until)
        )
        accepts, apply = projection.accepts, projection.apply
        for records in chunks:
            read += len(records)
            for record in records:
                if accepts(record):
                    state = apply(state, record)
        return state, read
