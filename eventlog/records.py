"""The log record: one durable, immutable fact per acknowledged change.

The envelope (offset, time, address, origin) is kept apart from the outcome
(before/after values) and the intent (ops and their errors). Records are
self-contained: a consumer at any offset needs nothing else to act on one.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Kind = Literal[
    "state.set",
    "state.update",
    "state.delete",
    "stream.set",
    "stream.update",
    "stream.delete",
    "stream.send",
]
KINDS: tuple[str, ...] = Kind.__args__  # type: ignore[attr-defined]


class Immutable(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Origin(Immutable):
    """Who caused the change (audit); every field is optional."""

    worker_id: str | None = None
    function_id: str | None = None
    invocation_id: str | None = None
    trace_id: str | None = None


class Record(Immutable):
    offset: int
    ts: int
    kind: Kind
    scope: str
    group: str | None = None
    key: str | None = None
    existed: bool = False
    old_value: Any = None
    exists: bool = True
    new_value: Any = None
    ops: list[Any] | None = None
    errors: list[dict[str, Any]] | None = None
    event_type: str | None = None
    in_view: bool = True  # False: the record changes no inline view (sends, custom)
    origin: Origin | None = None

    @property
    def space(self) -> str:
        """The view a record belongs to: ``state`` or ``stream``."""
        return self.kind.split(".", 1)[0]

    @property
    def verb(self) -> str:
        return self.kind.split(".", 1)[1]
