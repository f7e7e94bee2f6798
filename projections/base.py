"""The projection protocol: a named, pure fold over log records.

``accepts(record)`` is the source filter, ``initial()`` the empty state and
``apply(state, record)`` the next one. No awaits, no database, no clock: time
and ids come from the record. States are JSON values (they are stored as
JSON); ``apply`` may update the accumulator in place and return it.
"""

from __future__ import annotations

from typing import Any, Protocol

from eventlog import Record


class Projection(Protocol):
    name: str

    def accepts(self, record: Record) -> bool: ...

    def initial(self) -> Any: ...

    def apply(self, state: Any, record: Record) -> Any: ...
