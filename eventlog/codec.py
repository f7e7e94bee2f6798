"""JSON encoding used for the log, the views and the wire.

Compact UTF-8 (never ``\\uXXXX`` escapes), fast (orjson), and lenient on input:
what orjson refuses (``NaN``, huge integers) falls back to the stdlib decoder.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

_OPTS = orjson.OPT_NON_STR_KEYS


def dumps_bytes(value: Any) -> bytes:
    try:
        return orjson.dumps(value, option=_OPTS)
    except TypeError:
        # Integers beyond 64 bits and other oddities: the stdlib encoder copes.
        return json.dumps(
            value, ensure_ascii=False, separators=(",", ":"), default=str
        ).encode()


def dumps(value: Any) -> str:
    return dumps_bytes(value).decode()


def loads(text: str | bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        value = json.loads(text)
        return _scrub(value)


def _scrub(value: Any) -> Any:
    """NaN and Infinity have no JSON form: they are stored as ``null``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value
