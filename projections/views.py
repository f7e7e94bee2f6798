"""The inline views as a projection: what the store keeps up to date inside
each commit, recomputed from the records alone.

Pure. Used to rebuild and to verify (``projections.rebuild``): for every log,
``rows(fold(records))`` must equal the store's live view, row for row and in
list order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from eventlog import Address, Record, ViewRow

ViewState = dict[Address, tuple[int, Any]]  # address -> (list position, value)


class InlineViews:
    name = "views"
    compactable = True
    mirror: tuple[str, str] | None = None

    def accepts(self, record: Record) -> bool:
        return record.in_view and record.verb != "send"

    def initial(self) -> ViewState:
        return {}

    def apply(self, state: ViewState, record: Record) -> ViewState:
        if record.verb == "send" or not record.in_view:
            return state
        address = (record.space, record.scope, record.group or "", record.key or "")
        if not record.exists:
            state.pop(address, None)
        else:
            current = state.get(address)
            pos = current[0] if current is not None else record.offset
            state[address] = (pos, record.new_value)
        return state


def fold(records: Iterable[Record], state: ViewState | None = None) -> ViewState:
    views = InlineViews()
    acc = views.initial() if state is None else state
    for record in records:
        acc = views.apply(acc, record)
    return acc


def rows(state: ViewState, space: str) -> list[ViewRow]:
    """(scope, group, key, value) in the store's order: scope, group, position."""
    items = [(a, p, v) for a, (p, v) in state.items() if a[0] == space]
    items.sort(key=lambda item: (item[0][1], item[0][2], item[1]))
    return [(a[1], a[2], a[3], v) for a, _, v in items]
