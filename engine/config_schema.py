"""The JSON Schema subset configuration values are checked against: ``type``,
``properties``, ``required``, ``additionalProperties``, ``items``, ``enum``,
``const``, ``minimum``/``maximum``, ``minLength``/``maxLength``, ``anyOf``/
``oneOf`` and local ``$ref`` (``#/$defs/...``). Keywords outside it are not
checked. Pure: ``violations(schema, value)`` lists every problem by path.
"""

from __future__ import annotations

from typing import Any

_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def _is(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    expected = _TYPES.get(kind)
    return expected is None or isinstance(value, expected)


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return schema
    node: Any = root
    for part in ref[2:].split("/"):
        node = node.get(part) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else {}


def violations(schema: Any, value: Any, path: str = "$", root: Any = None) -> list[str]:
    if not isinstance(schema, dict):
        return []
    root = schema if root is None else root
    schema = _resolve(schema, root)
    out: list[str] = []
    kinds = schema.get("type")
    if kinds is not None:
        names = kinds if isinstance(kinds, list) else [kinds]
        if not any(_is(value, str(k)) for k in names):
            return [f"{path}: expected {' or '.join(map(str, names))}"]
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{path}: must be one of {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        out.append(f"{path}: must be {schema['const']!r}")
    if _is(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            out.append(f"{path}: must be >= {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            out.append(f"{path}: must be <= {schema['maximum']}")
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            out.append(f"{path}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            out.append(f"{path}: longer than {schema['maxLength']}")
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for name in schema.get("required") or []:
            if name not in value:
                out.append(f"{path}: missing required property '{name}'")
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in props:
                out += violations(props[name], item, f"{path}.{name}", root)
            elif extra is False:
                out.append(f"{path}: unknown property '{name}'")
            elif isinstance(extra, dict):
                out += violations(extra, item, f"{path}.{name}", root)
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            out += violations(schema["items"], item, f"{path}[{index}]", root)
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if (
            isinstance(options, list)
            and options
            and all(violations(o, value, path, root) for o in options)
        ):
            out.append(f"{path}: matches none of the {key} alternatives")
    return out
