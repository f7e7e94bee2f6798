"""The log's row shape, shared by every backend: one tuple per record.

``(offset, ts, kind, scope, grp, key, old_value, new_value, extra)``, values as
compact JSON text (``codec``; text, not a JSON column type, so a value comes
back byte for byte, key order included). ``extra`` holds what most records lack
(ops, errors, event type, ``in_view: false``, origin). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .codec import loads
from .records import Origin, Record

# offset, ts, kind, scope, grp, key, old_value, new_value, extra
LogRow = tuple[
    int, int, str, str, str | None, str | None, str | None, str | None, str | None
]


def row_to_record(row: Sequence[Any]) -> Record:
    """The hot loop of every replay and catch-up: positional arguments, no
    decoding of what is absent (most records have no ``extra``)."""
    seq, ts, kind, scope, grp, key, old, new, extra = row
    ops = errors = event_type = origin = None
    in_view = True
    if extra is not None:
        info = loads(extra)
        ops, errors = info.get("ops"), info.get("errors")
        event_type, in_view = info.get("event_type"), info.get("in_view", True)
        if info.get("origin"):
            origin = Origin(**info["origin"])
    return Record(
        seq,
        ts,
        kind,
        scope,
        grp,
        key,
        old is not None,
        None if old is None else loads(old),
        new is not None,
        None if new is None else loads(new),
        ops,
        errors,
        event_type,
        in_view,
        origin,
    )
