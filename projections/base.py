"""The projection protocol: a named, pure fold over log records.

``initial()`` gives the empty state and ``apply(state, record)`` the next one.
No awaits, no database, no clock: time and ids come from the record. Folds may
update the accumulator in place and return it (it is never shared).
"""

from __future__ import annotations

from typing import Any, Protocol

from eventlog import Record


class Projection(Protocol):
    name: str

    def initial(self) -> Any: ...

    def apply(self, state: Any, record: Record) -> Any: ...
