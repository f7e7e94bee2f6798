"""Observer filters: the declarative language of ``observe.source.filters``.

Pure. ``parse_filter`` checks a filter against the language's rules and limits
and turns it into a tree; ``Filter.matches`` evaluates the tree on a document
``{input?, output?, error?, caller?, metadata?}`` of decoded JSON values and
never raises. The rules are the ones the 0.25 SDKs apply to the same filter, so
a filter the engine accepts is one every owner accepts and reads alike; the
engine keeps the normal form (``normal_form``) that it pushes to owners.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from eventlog.codec import dumps_bytes

MAX_DEPTH = 8  # filter nesting ($or, $not and $any go one level down; $and does not)
MAX_NODES = 64  # each operator, $or and $not counts one
MAX_SET_ITEMS = 256  # items of one $in / $nin
MAX_SEGMENTS = 16  # path segments after the root
MAX_BYTES = 8192  # the filter's compact UTF-8 JSON
MAX_LITERAL = 2**53  # |n| of every number in a filter
MAX_LITERAL_NESTING = 32  # arrays / objects inside one literal
MAX_JSON_NESTING = 120  # arrays / objects in the whole filter

ROOTS = frozenset({"input", "output", "error", "caller", "metadata"})
VALUE_OPS = frozenset(
    {"$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte"}
    | {"$exists", "$prefix", "$any"}
)
_INDEX = re.compile(r"0|[1-9][0-9]{0,14}")
_MISSING = object()  # a path that leads nowhere


class FilterError(ValueError):
    """A filter the language refuses; the protocol code is ``INVALID_FILTER``."""

    code = "INVALID_FILTER"


# -- the tree ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Path:
    root: str  # one of ROOTS, or "@" (the current $any element)
    steps: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Op:
    name: str
    operand: Any
    inner: Node | tuple[Op, ...] | None = None  # $any: a filter or operators


@dataclass(frozen=True, slots=True)
class Clause:
    path: Path
    ops: tuple[Op, ...]


@dataclass(frozen=True, slots=True)
class All:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Node


Node = Clause | All | AnyOf | Not


@dataclass(frozen=True, slots=True)
class Filter:
    """A valid filter: its tree and the normal form owners receive."""

    tree: All
    normal: dict[str, Any]

    @property
    def match_all(self) -> bool:
        return not self.tree.items

    def matches(self, doc: dict[str, Any]) -> bool:
        return _eval(self.tree, doc, _MISSING)


MATCH_ALL = Filter(All(()), {})


# -- parsing -------------------------------------------------------------------


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    return "an array" if isinstance(v, list) else "an object"


def _check_json(src: Any) -> None:
    """Numbers within ±2^53, no non-finite numbers, bounded nesting."""
    stack: list[tuple[Any, int]] = [(src, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, bool) or value is None or isinstance(value, str):
            continue
        if isinstance(value, (int, float)):
            if value != value or abs(value) > MAX_LITERAL:
                raise FilterError(f"the number {value} is outside ±2^53")
            continue
        if level > MAX_JSON_NESTING:
            raise FilterError(f"the filter nests more than {MAX_JSON_NESTING} levels")
        members = value.values() if isinstance(value, dict) else value
        stack.extend((m, level + 1) for m in members)


def _nesting(value: Any) -> int:
    """Arrays / objects nested in a literal (a scalar is 0)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, level = stack.pop()
        if isinstance(v, (dict, list)):
            deepest = max(deepest, level)
            members = v.values() if isinstance(v, dict) else v
            stack.extend((m, level + 1) for m in members)
    return deepest


def parse_path(text: str, inside_any: bool) -> Path:
    """``root(.segment)*``; ``\\.`` and ``\\\\`` escape inside a segment."""
    segments: list[str] = []
    buf: list[str] = []
    chars = iter(text)
    for c in chars:
        if c == "\\":
            nxt = next(chars, None)
            if nxt not in (".", "\\"):
                raise FilterError(f"path `{text}`: bad escape (only \\. and \\\\)")
            buf.append(nxt)
        elif c == ".":
            if not buf:
                raise FilterError(f"path `{text}`: empty segment")
            segments.append("".join(buf))
            buf = []
        else:
            buf.append(c)
    if not buf:
        raise FilterError("empty path" if not text else f"path `{text}`: empty segment")
    segments.append("".join(buf))
    root, steps = segments[0], tuple(segments[1:])
    if inside_any and root != "@":
        raise FilterError(f"path `{text}`: inside $any, paths start at @")
    if not inside_any and root not in ROOTS:
        raise FilterError(
            f"path `{text}`: unknown root `{root}`"
            " (input, output, error, caller or metadata)"
        )
    if len(steps) > MAX_SEGMENTS:
        raise FilterError(f"path `{text}`: more than {MAX_SEGMENTS} segments")
    return Path(root, steps)


class _Parser:
    def __init__(self) -> None:
        self.nodes = 0

    def count(self) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise FilterError(f"more than {MAX_NODES} operator nodes")

    def filter(self, src: Any, depth: int, inside_any: bool) -> All:
        if depth > MAX_DEPTH:
            raise FilterError(f"filters nested deeper than {MAX_DEPTH} levels")
        out: list[Node] = []
        todo = [src]
        while todo:
            current = todo.pop(0)
            if not isinstance(current, dict):
                raise FilterError(f"a filter is an object, not {_kind(current)}")
            for key, value in current.items():
                out.extend(self.entry(key, value, depth, inside_any, todo))
        return All(tuple(out))

    def entry(
        self, key: str, value: Any, depth: int, inside_any: bool, todo: list[Any]
    ) -> list[Node]:
        if key == "$and":
            todo.extend(_filters(key, value))  # same level: flattened
            return []
        if key == "$or":
            self.count()
            items = _filters(key, value)
            return [AnyOf(tuple(self.filter(i, depth + 1, inside_any) for i in items))]
        if key == "$not":
            self.count()
            if not isinstance(value, dict):
                raise FilterError(f"$not takes a filter, not {_kind(value)}")
            return [Not(self.filter(value, depth + 1, inside_any))]
        if key in VALUE_OPS:
            raise FilterError(f"{key} needs a path: {{<path>: {{{key}: ...}}}}")
        if key.startswith("$"):
            raise FilterError(f"unknown operator {key}")
        path = parse_path(key, inside_any)
        if not isinstance(value, dict) or any(not k.startswith("$") for k in value):
            raise FilterError(
                f"`{key}`: expected an operator object such as {{$eq: ...}};"
                " literal values are not allowed"
            )
        if not value:
            raise FilterError(f"`{key}`: empty operator object")
        return [Clause(path, self.operators(key, value, depth))]

    def operators(self, path: str, ops: dict[str, Any], depth: int) -> tuple[Op, ...]:
        out = []
        for name, operand in ops.items():
            self.count()
            out.append(self.operator(path, name, operand, depth))
        return tuple(out)

    def operator(self, path: str, name: str, operand: Any, depth: int) -> Op:
        where = f"`{path}`: {name}"
        if name in ("$eq", "$ne"):
            _literal(where, operand)
        elif name in ("$in", "$nin"):
            if not isinstance(operand, list):
                raise FilterError(f"{where} takes an array, not {_kind(operand)}")
            if len(operand) > MAX_SET_ITEMS:
                raise FilterError(f"{where} has more than {MAX_SET_ITEMS} items")
            for item in operand:
                _literal(where, item)
        elif name in ("$gt", "$gte", "$lt", "$lte"):
            if isinstance(operand, bool) or not isinstance(operand, (int, float, str)):
                raise FilterError(f"{where} takes a number or a string")
        elif name == "$exists":
            if not isinstance(operand, bool):
                raise FilterError(f"{where} takes a boolean, not {_kind(operand)}")
        elif name == "$prefix":
            if not isinstance(operand, str):
                raise FilterError(f"{where} takes a string, not {_kind(operand)}")
        elif name == "$any":
            return self.any_op(where, operand, depth)
        elif name in ("$and", "$or", "$not"):
            raise FilterError(f"{where} combines filters; it is not a value operator")
        else:
            raise FilterError(f"`{path}`: unknown operator {name}")
        return Op(name, operand)

    def any_op(self, where: str, operand: Any, depth: int) -> Op:
        if not isinstance(operand, dict):
            raise FilterError(f"{where} takes an object, not {_kind(operand)}")
        if depth + 1 > MAX_DEPTH:
            raise FilterError(f"filters nested deeper than {MAX_DEPTH} levels")
        if operand and all(k in VALUE_OPS for k in operand):
            return Op("$any", None, self.operators(where, operand, depth + 1))
        return Op("$any", None, self.filter(operand, depth + 1, True))


def _filters(name: str, value: Any) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise FilterError(f"{name} takes a non-empty array of filters")
    return value


def _literal(where: str, value: Any) -> None:
    if _nesting(value) > MAX_LITERAL_NESTING:
        raise FilterError(f"{where}: a literal nests over {MAX_LITERAL_NESTING} levels")


def parse_filter(src: Any) -> Filter:
    """A filter as sent (``None`` reads as ``{}``); raises ``FilterError``."""
    if src is None:
        return MATCH_ALL
    if not isinstance(src, dict):
        raise FilterError(f"a filter is an object, not {_kind(src)}")
    _check_json(src)
    if len(dumps_bytes(src)) > MAX_BYTES:
        raise FilterError(f"the filter encodes to more than {MAX_BYTES} bytes")
    tree = _Parser().filter(src, 1, False)
    return Filter(tree, normal_form(src))


def normal_form(src: dict[str, Any]) -> dict[str, Any]:
    """``{}`` for the empty filter, else ``{"$and": [...]}`` with one single-key
    object per top-level clause, the top-level ``$and``s flattened in order.
    Same meaning as ``src``; nested filters are kept as written."""
    clauses: list[dict[str, Any]] = []
    todo = [src]
    while todo:
        current = todo.pop(0)
        for key, value in current.items():
            if key == "$and":
                todo[:0] = value
            else:
                clauses.append({key: value})
    return {"$and": clauses} if clauses else {}


# -- evaluation ----------------------------------------------------------------


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _same(a: Any, b: Any) -> bool:
    """JSON equality: numbers as doubles, object key order ignored, no coercion."""
    if _number(a) and _number(b):
        return float(a) == float(b)
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return a is b
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return False


def _resolve(path: Path, doc: dict[str, Any], element: Any) -> Any:
    if path.root == "@":
        current = element
    else:
        current = doc.get(path.root, _MISSING) if isinstance(doc, dict) else _MISSING
    for step in path.steps:
        if isinstance(current, dict):
            current = current.get(step, _MISSING)
        elif isinstance(current, list) and _INDEX.fullmatch(step):
            i = int(step)
            current = current[i] if i < len(current) else _MISSING
        else:
            return _MISSING
    return current


def _order(v: Any, bound: Any) -> int | None:
    """-1 / 0 / 1 when ``v`` and ``bound`` are both numbers or both strings
    (strings in code point order, which is UTF-8 byte order)."""
    if _number(bound):
        if not _number(v):
            return None
        x, y = float(v), float(bound)
        return -1 if x < y else (1 if x > y else 0)
    if not isinstance(v, str):
        return None
    return -1 if v < bound else (1 if v > bound else 0)


def _apply(op: Op, v: Any, doc: dict[str, Any]) -> bool:
    name, operand = op.name, op.operand
    present = v is not _MISSING
    match name:
        case "$eq":
            return present and _same(v, operand)
        case "$ne":
            return not present or not _same(v, operand)
        case "$in":
            return present and any(_same(v, item) for item in operand)
        case "$nin":
            return not present or not any(_same(v, item) for item in operand)
        case "$exists":
            return present is operand
        case "$prefix":
            return isinstance(v, str) and v.startswith(operand)
        case "$any":
            if not isinstance(v, list):
                return False
            inner = op.inner
            if isinstance(inner, tuple):
                return any(all(_apply(o, item, doc) for o in inner) for item in v)
            assert inner is not None
            return any(_eval(inner, doc, item) for item in v)
    c = _order(v, operand) if present else None
    if c is None:
        return False
    return {"$gt": c > 0, "$gte": c >= 0, "$lt": c < 0, "$lte": c <= 0}[name]


def _eval(node: Node, doc: dict[str, Any], element: Any) -> bool:
    match node:
        case Clause(path, ops):
            v = _resolve(path, doc, element)
            return all(_apply(op, v, doc) for op in ops)
        case All(items):
            return all(_eval(n, doc, element) for n in items)
        case AnyOf(items):
            return any(_eval(n, doc, element) for n in items)
        case Not(item):
            return not _eval(item, doc, element)
    return False
