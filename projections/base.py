"""The projection protocol: a named, pure fold over log records.

``accepts(record)`` is the source filter, ``initial()`` the empty state and
``apply(state, record)`` the next one. No awaits, no database, no clock: time
and ids come from the record. States are JSON values (snapshots store them as
JSON); ``apply`` may update the accumulator in place and return it.

``compactable`` is a promise about the fold: True means it is a last-writer-wins
map over view addresses that ignores records changing no view, so folding, per
address, only its latest record and the latest ones that created and deleted it
gives the same state as folding every record (``todos`` and the inline views;
counters such as ``todo-metrics`` are not). A rebuild then folds the compacted
log (``LogScanner.compacted``) instead of the whole history.

``mirror`` names a state (scope, key) that a worker keeps equal to the
projection's state, if any (the todo worker keeps ``todo-metrics``/``global``
by triggers): a rebuild folds the whole log and compares that live value with
it, so double-counted or missed changes show up as drift.
"""

from __future__ import annotations

from typing import Any, Protocol

from eventlog import Record


class Projection(Protocol):
    name: str
    compactable: bool
    mirror: tuple[str, str] | None

    def accepts(self, record: Record) -> bool: ...

    def initial(self) -> Any: ...

    def apply(self, state: Any, record: Record) -> Any: ...
