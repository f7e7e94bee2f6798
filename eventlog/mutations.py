"""What a writer asks of the log: mutations, their outcomes, a batch's result.

A ``Mutation`` names an address and carries a pure ``compute(existed, old)``
that the single writer runs against the address's current value inside the
commit, so read-modify-write (``state::update``) is atomic and per-key order is
the log order. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .records import Kind, Origin, Record

# (space, scope, group or '', key or ''): one entry of an inline view.
Address = tuple[str, str, str, str]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a mutation does to its address, computed from the current value."""

    exists: bool
    new_value: Any = None
    ops: list[Any] | None = None
    errors: list[dict[str, Any]] | None = None
    event_type: str | None = None
    touches_view: bool = True
    record: bool = True  # False: nothing happened, no record (e.g. delete of nothing)
    old: tuple[bool, Any] | None = None  # (existed, value) when not from the view


# (existed, old_value) -> Outcome. Pure; run by the single writer.
Compute = Callable[[bool, Any], Outcome]


@dataclass(slots=True)
class Mutation:
    kind: Kind
    scope: str
    group: str | None
    key: str | None
    compute: Compute
    origin: Origin | None = None
    # (trace id, n): the n-th write of one trigger delivery. A mutation whose tag
    # was applied before is not applied again; its first record is returned.
    dedupe: tuple[str, int] | None = None

    @property
    def address(self) -> Address:
        return (
            self.kind.split(".", 1)[0],
            self.scope,
            self.group or "",
            self.key or "",
        )


@dataclass(slots=True)
class BatchResult:
    """Per mutation, a record or the exception its ``compute`` raised.

    ``new`` lists the records this batch appended, in offset order (a deduped
    mutation's result is an older record, and a no-op's has offset 0).
    ``kept`` holds, per bookkeeping operation of the commit, what it returned.
    """

    results: list[Record | BaseException] = field(default_factory=list)
    new: list[Record] = field(default_factory=list)
    kept: list[Any] = field(default_factory=list)
