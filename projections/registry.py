"""The projections this engine maintains. Adding one: write its module (a class
with ``name``, ``accepts``, ``initial``, ``apply``) and list it here; on the next
start it builds itself from the whole history."""

from __future__ import annotations

from .base import Projection
from .todo_metrics import TodoMetrics
from .todos import Todos


def builtin() -> list[Projection]:
    return [Todos(), TodoMetrics()]
