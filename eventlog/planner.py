"""The batch planner: what one group commit writes, decided without a database.

Pure: no I/O, no clock. Given the batch, the current view rows of the addresses
it touches, the write tags already applied and the head, it runs every
mutation's ``compute`` in order (a later mutation of a key sees the earlier
ones), assigns offsets ``head+1…`` to the records that happen, and says which
log rows, view rows and tags to write. A ``compute`` that raises fails only its
own mutation. Every backend writes the plan it gets in one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .codec import dumps, loads
from .mutations import Address, BatchResult, Mutation
from .records import Record
from .rows import LogRow

# The current view row of an address: (value as JSON text or None, list position).
Current = Mapping[Address, tuple[str | None, int]]
Tag = tuple[str, int]


@dataclass(slots=True)
class Plan:
    result: BatchResult = field(default_factory=BatchResult)
    rows: list[LogRow] = field(default_factory=list)
    view_deletes: list[Address] = field(default_factory=list)
    # (space, scope, grp, key, value text, list position): the final row of each
    # address the batch leaves in the view. An overwrite keeps its position; a
    # key created (again) takes its record's offset. No address is in both lists.
    view_upserts: list[tuple[str, str, str, str, str, int]] = field(
        default_factory=list
    )
    tags: list[tuple[str, int, int, int]] = field(default_factory=list)

    @property
    def head(self) -> int | None:
        """The last offset this plan appends (None when it appends nothing)."""
        return self.rows[-1][0] if self.rows else None


def plan_batch(
    batch: Sequence[Mutation],
    current: Current,
    applied: Mapping[Tag, Record],
    head: int,
    ts: int,
) -> Plan:
    plan = Plan()
    result = plan.result
    rows = plan.rows
    now = dict(current)  # later mutations of an address see the earlier ones
    done = dict(applied)
    final: dict[Address, tuple[str, int] | None] = {}
    offset = head
    for m in batch:
        if m.dedupe is not None and m.dedupe in done:
            result.results.append(done[m.dedupe])  # applied once already
            continue
        addr = m.address
        old_text, pos = now.get(addr, (None, 0))
        existed = old_text is not None
        old_value = loads(old_text) if old_text is not None else None
        try:
            out = m.compute(existed, old_value)
            new_text = dumps(out.new_value) if out.exists else None
            if out.old is not None:
                rec_existed, rec_old = out.old
            elif out.touches_view:
                rec_existed, rec_old = existed, old_value
            else:
                rec_existed, rec_old = False, None
            rec_old_text = (
                (old_text if out.old is None else dumps(rec_old))
                if rec_existed
                else None
            )
        except Exception as e:  # a bug in one mutation must not sink the batch
            result.results.append(e)
            continue
        if not out.record:
            result.results.append(
                Record(
                    0,
                    ts,
                    m.kind,
                    m.scope,
                    m.group,
                    m.key,
                    existed,
                    old_value,
                    existed,
                    old_value,
                    in_view=False,
                )
            )
            continue
        offset += 1
        if m.dedupe is not None:
            plan.tags.append((m.dedupe[0], m.dedupe[1], offset, ts))
        rows.append(
            (
                offset,
                ts,
                m.kind,
                m.scope,
                m.group,
                m.key,
                rec_old_text,
                new_text,
                _extra(m, out.ops, out.errors, out.event_type, out.touches_view),
            )
        )
        record = Record(
            offset,
            ts,
            m.kind,
            m.scope,
            m.group,
            m.key,
            rec_existed,
            rec_old,
            out.exists,
            out.new_value,
            out.ops,
            out.errors or None,
            out.event_type,
            out.touches_view,
            m.origin,
        )
        result.results.append(record)
        result.new.append(record)
        if m.dedupe is not None:
            done[m.dedupe] = record
        if not out.touches_view:
            continue
        if new_text is None:
            now[addr] = (None, 0)
            final[addr] = None
        else:
            keep = pos if existed else offset
            now[addr] = (new_text, keep)
            final[addr] = (new_text, keep)
    plan.view_deletes = [a for a, v in final.items() if v is None]
    plan.view_upserts = [(*a, v[0], v[1]) for a, v in final.items() if v is not None]
    return plan


def _extra(
    m: Mutation,
    ops: list[Any] | None,
    errors: list[dict[str, Any]] | None,
    event_type: str | None,
    touches_view: bool,
) -> str | None:
    extra: dict[str, Any] = {}
    if ops is not None:
        extra["ops"] = ops
    if errors:
        extra["errors"] = errors
    if event_type is not None:
        extra["event_type"] = event_type
    if not touches_view:
        extra["in_view"] = False
    if m.origin is not None:
        extra["origin"] = m.origin.to_dict()
    return dumps(extra) if extra else None
