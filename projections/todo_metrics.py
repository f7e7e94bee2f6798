"""``todo-metrics``: how many todos exist and how many are completed, folded
from the history of state scope ``todos``.

Pure. A created todo counts once, a deleted one is taken back, and a change of
``completed`` moves the completed count; deleting a missing key changes nothing.
"""

from __future__ import annotations

from typing import Any

from eventlog import Record


def _completed(todo: Any) -> int:
    return 1 if isinstance(todo, dict) and todo.get("completed") else 0


class TodoMetrics:
    name = "todo-metrics"
    compactable = False  # a counter needs every record
    mirror: tuple[str, str] | None = ("todo-metrics", "global")  # kept by triggers

    def accepts(self, record: Record) -> bool:
        return record.space == "state" and record.scope == "todos"

    def initial(self) -> dict[str, int]:
        return {"total": 0, "completed": 0}

    def apply(self, state: dict[str, int], record: Record) -> dict[str, int]:
        before = record.old_value if record.existed else None
        after = record.new_value if record.exists else None
        if record.existed != record.exists:
            state["total"] += 1 if record.exists else -1
        state["completed"] += _completed(after) - _completed(before)
        return state
