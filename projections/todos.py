"""``todos``: the todo list, folded from the history of state scope ``todos``.

Pure. The state maps todo key -> todo, in list order (a dict keeps insertion
order; an overwrite keeps the position, a delete drops it, like state::list).
"""

from __future__ import annotations

from typing import Any

from eventlog import Record


class Todos:
    name = "todos"
    compactable = True  # key -> latest value, in creation order
    mirror: tuple[str, str] | None = None

    def accepts(self, record: Record) -> bool:
        return record.space == "state" and record.scope == "todos" and record.in_view

    def initial(self) -> dict[str, Any]:
        return {}

    def apply(self, state: dict[str, Any], record: Record) -> dict[str, Any]:
        key = record.key or ""
        if record.exists:
            state[key] = record.new_value
        else:
            state.pop(key, None)
        return state
