"""The update-op engine shared by ``state::update`` and ``stream::update``.

Pure: no I/O, no clock, no randomness. ``parse_ops`` turns the wire list into typed
ops (or raises ``OpsDecodeError``, which the caller maps to ``deserialization_error``);
``apply_ops`` folds them over a start value, best effort, and never mutates its input.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

DOC_URL = "https://iii.dev/docs/workers/iii-state#error-codes"
MAX_PATH_DEPTH = 32
MAX_SEGMENT_BYTES = 256
MAX_MERGE_KEYS = 1024
MAX_MERGE_DEPTH = 16
PROTO_KEYS = frozenset({"__proto__", "constructor", "prototype"})
I64_MIN, I64_MAX = -(2**63), 2**63 - 1

OpType = Literal["set", "merge", "increment", "decrement", "append", "remove"]
_MISSING: Any = object()


class OpsDecodeError(ValueError):
    """The ops list does not have the wire shape (wrong JSON type, unknown op)."""


@dataclass(frozen=True, slots=True)
class Op:
    type: OpType
    # ``None`` = no path given; a str is one literal key; a tuple lists nested segments.
    path: str | tuple[str, ...] | None
    value: Any = None
    by: int = 0


def _need_str(op: dict[str, Any], field: str, index: int) -> str:
    if field not in op:
        raise OpsDecodeError(f"ops[{index}]: missing field `{field}`")
    value = op[field]
    if not isinstance(value, str):
        raise OpsDecodeError(f"ops[{index}].{field}: expected a string")
    return value


def _opt_path(op: dict[str, Any], index: int) -> str | tuple[str, ...] | None:
    path = op.get("path")
    if path is None or isinstance(path, str):
        return path
    if isinstance(path, list) and all(isinstance(s, str) for s in path):
        return tuple(path)
    raise OpsDecodeError(f"ops[{index}].path: expected a string or a list of strings")


def _need_int(op: dict[str, Any], index: int) -> int:
    if "by" not in op:
        raise OpsDecodeError(f"ops[{index}]: missing field `by`")
    by = op["by"]
    if isinstance(by, bool) or not isinstance(by, int):
        raise OpsDecodeError(f"ops[{index}].by: expected an integer")
    if not I64_MIN <= by <= I64_MAX:
        raise OpsDecodeError(f"ops[{index}].by: integer out of range")
    return by


def parse_ops(raw: Any) -> list[Op]:
    """Decode the wire ``ops`` list; any shape error rejects the whole call."""
    if not isinstance(raw, list):
        raise OpsDecodeError("`ops`: expected an array")
    ops: list[Op] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise OpsDecodeError(f"ops[{i}]: expected an object")
        kind = item.get("type")
        if kind == "set":
            ops.append(Op("set", _need_str(item, "path", i), item.get("value")))
        elif kind in ("merge", "append"):
            ops.append(Op(kind, _opt_path(item, i), item.get("value")))
        elif kind in ("increment", "decrement"):
            ops.append(Op(kind, _need_str(item, "path", i), by=_need_int(item, i)))
        elif kind == "remove":
            ops.append(Op("remove", _need_str(item, "path", i)))
        else:
            raise OpsDecodeError(
                f"ops[{i}].type: unknown variant {kind!r}, expected one of "
                "set, merge, increment, decrement, append, remove"
            )
    return ops


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _OpError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _segments(path: str | tuple[str, ...] | None) -> tuple[str, ...]:
    if path is None or path == "":
        return ()
    if isinstance(path, str):
        return (path,)
    return path


def _render(path: str | tuple[str, ...] | None) -> str:
    segs = _segments(path)
    if not segs:
        return "root"
    if len(segs) == 1:
        return segs[0]
    return "[" + ", ".join(segs) + "]"


def _check_path(kind: str, path: str | tuple[str, ...] | None) -> None:
    segs = _segments(path)
    if len(segs) > MAX_PATH_DEPTH:
        raise _OpError(
            f"{kind}.path.too_deep",
            f"Path depth {len(segs)} exceeds maximum of {MAX_PATH_DEPTH}",
        )
    for seg in segs:
        if seg == "":
            raise _OpError(
                f"{kind}.path.empty_segment", "Path contains an empty segment"
            )
        if len(seg.encode()) > MAX_SEGMENT_BYTES:
            raise _OpError(
                f"{kind}.path.segment_too_long",
                f"Path segment exceeds maximum length of {MAX_SEGMENT_BYTES} bytes",
            )
        if seg in PROTO_KEYS:
            raise _OpError(
                f"{kind}.path.proto_polluted",
                f"Path segment '{seg}' is not allowed",
            )


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _check_merge_value(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _OpError("merge.value.not_an_object", "Merge value must be a JSON object")
    if len(value) > MAX_MERGE_KEYS:
        raise _OpError(
            "merge.value.too_many_keys",
            f"Merge value has {len(value)} keys, exceeding maximum of {MAX_MERGE_KEYS}",
        )
    for key in value:
        if key in PROTO_KEYS:
            raise _OpError(
                "merge.value.proto_polluted", f"Merge value key '{key}' is not allowed"
            )
    depth = _depth(value)
    if depth > MAX_MERGE_DEPTH:
        raise _OpError(
            "merge.value.too_deep",
            f"Merge value depth {depth} exceeds maximum of {MAX_MERGE_DEPTH}",
        )
    return value


def _walk(cur: dict[str, Any], segs: tuple[str, ...]) -> dict[str, Any]:
    """Descend through ``segs``, creating or replacing non-objects with ``{}``."""
    node = cur
    for seg in segs:
        child = node.get(seg)
        if not isinstance(child, dict):
            child = {}
            node[seg] = child
        node = child
    return node


def _target_not_object(kind: str, path: str, cur: Any) -> _OpError:
    verb = {"set": "set", "append": "append", "remove": "remove"}.get(kind, kind)
    return _OpError(
        f"{kind}.target_not_object",
        f"Cannot {verb} at path '{path}': target is {type_name(cur)}, expected object.",
    )


def _leaf_append(target: Any, value: Any, rendered: str) -> Any:
    if isinstance(target, list):
        target.append(value)
        return target
    if isinstance(target, str):
        if isinstance(value, str):
            return target + value
        raise _OpError(
            "append.type_mismatch",
            f"Expected string append value at path '{rendered}', "
            f"got {type_name(value)}.",
        )
    if target is None:
        return value if isinstance(value, str) else [value]
    raise _OpError(
        "append.type_mismatch",
        f"Cannot append at path '{rendered}': target is {type_name(target)}, "
        "expected array, string, null, or missing field.",
    )


def _add(kind: str, current: Any, by: int, rendered: str) -> Any:
    if not _is_number(current):
        raise _OpError(
            f"{kind}.not_number",
            f"Expected number at path '{rendered}', got {type_name(current)}.",
        )
    delta = by if kind == "increment" else -by
    result = current + delta
    if isinstance(result, int) and not I64_MIN <= result <= I64_MAX:
        raise _OpError(
            f"{kind}.not_number",
            f"Expected number at path '{rendered}', got number.",
        )
    return result


def _apply_one(op: Op, cur: Any, missing: bool) -> Any:
    """Apply one op to the working value; returns the new working value."""
    _check_path(op.type, op.path)
    segs = _segments(op.path)
    rendered = _render(op.path)
    if op.type == "set":
        if not segs:
            return op.value
        if not isinstance(cur, dict):
            raise _target_not_object("set", rendered, cur)
        cur[segs[0]] = op.value
        return cur
    if op.type == "merge":
        value = _check_merge_value(op.value)
        if not segs:
            if isinstance(cur, dict):
                cur.update(copy.deepcopy(value))
            return cur
        if not isinstance(cur, dict):
            cur = {}
        _walk(cur, segs).update(copy.deepcopy(value))
        return cur
    if op.type in ("increment", "decrement"):
        if not segs:
            if missing:
                return op.by if op.type == "increment" else -op.by
            return _add(op.type, cur, op.by, rendered)
        if not isinstance(cur, dict):
            raise _OpError(
                f"{op.type}.target_not_object",
                f"Cannot {op.type} at path '{rendered}': target is {type_name(cur)}, "
                "expected object.",
            )
        field = segs[0]
        if field not in cur:
            cur[field] = op.by if op.type == "increment" else -op.by
        else:
            cur[field] = _add(op.type, cur[field], op.by, rendered)
        return cur
    if op.type == "append":
        value = copy.deepcopy(op.value)
        if not segs:
            return _leaf_append(None if missing else cur, value, rendered)
        if not isinstance(cur, dict):
            raise _target_not_object("append", rendered, cur)
        parent = _walk(cur, segs[:-1]) if len(segs) > 1 else cur
        leaf = segs[-1]
        if leaf not in parent:
            single = len(segs) == 1 and isinstance(value, str)
            parent[leaf] = value if single else [value]
        else:
            parent[leaf] = _leaf_append(parent[leaf], value, rendered)
        return cur
    # remove
    if not segs:
        return None
    if not isinstance(cur, dict):
        raise _target_not_object("remove", rendered, cur)
    cur.pop(segs[0], None)
    return cur


def apply_ops(
    old_value: Any, exists: bool, ops: list[Op]
) -> tuple[Any, list[dict[str, Any]]]:
    """Fold ``ops`` over the stored value (``exists=False``: start from ``{}``).

    Returns ``(new_value, errors)``. A failing op leaves the working value untouched
    and adds one error entry; later ops still run.
    """
    cur: Any = copy.deepcopy(old_value) if exists else {}
    missing = not exists
    errors: list[dict[str, Any]] = []
    for index, op in enumerate(ops):
        try:
            # Every op validates before it mutates, so a failed op leaves ``cur`` as is.
            cur = _apply_one(op, cur, missing)
        except _OpError as err:
            errors.append(
                {
                    "op_index": index,
                    "code": err.code,
                    "message": err.message,
                    "doc_url": DOC_URL,
                }
            )
            continue
        missing = False
    return cur, errors
