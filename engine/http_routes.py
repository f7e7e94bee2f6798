"""HTTP trigger routes and response shaping, as iii's HTTP module does them.

Pure: no I/O. ``RouteTable`` matches (method, path) to a binding; ``shape_response``
turns a handler's result into (status, headers, body bytes); ``control_frame``
reads a streamed response's status and headers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eventlog.codec import dumps_bytes, loads

from .errors import TriggerRegistrationFailed, trigger_condition

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")
STANDARD_KEYS = frozenset(
    {
        "query_params",
        "path_params",
        "headers",
        "path",
        "method",
        "body",
        "trigger",
        "request_body",
        "response",
    }
)
RESPONSE_KEYS = frozenset({"status_code", "statusCode", "headers", "body"})


@dataclass(frozen=True, slots=True)
class Route:
    trigger_id: str
    function_id: str
    method: str
    api_path: str  # as registered
    segments: tuple[str, ...]
    condition_function_id: str | None = None
    middleware_function_ids: tuple[str, ...] = ()
    namespace: str | None = None  # where the functions resolve

    @property
    def shape(self) -> tuple[str, ...]:
        return tuple(":" if s.startswith(":") else s for s in self.segments)

    @property
    def display(self) -> str:
        return f"{self.method} {'/'.join(self.segments)}"


def split_path(path: str) -> tuple[str, ...]:
    path = path[1:] if path.startswith("/") else path
    return tuple(path.split("/")) if path else ()


def parse_route(trigger_id: str, function_id: str, config: Any) -> Route:
    if not isinstance(config, dict):
        raise TriggerRegistrationFailed("api_path is required for http triggers")
    api_path = config.get("api_path")
    if not isinstance(api_path, str) or (api_path.strip("/") == "" and api_path != "/"):
        raise TriggerRegistrationFailed("api_path is required for http triggers")
    method = config.get("http_method") or "GET"
    if not isinstance(method, str):
        raise TriggerRegistrationFailed("http_method must be a string")
    condition = trigger_condition(config)
    middleware = config.get("middleware_function_ids") or []
    if not isinstance(middleware, list) or not all(
        isinstance(m, str) for m in middleware
    ):
        raise TriggerRegistrationFailed(
            "middleware_function_ids must be a list of strings"
        )
    return Route(
        trigger_id=trigger_id,
        function_id=function_id,
        method=method.upper(),
        api_path=api_path,
        segments=split_path(api_path),
        condition_function_id=condition,
        middleware_function_ids=tuple(middleware),
    )


@dataclass
class RouteTable:
    """Routes by (method, path). Several bindings of one route (replicas of a
    worker, or nodes of a cluster) stack up: the latest serves, and the route
    stays while any of them is registered."""

    stacks: dict[tuple[str, tuple[str, ...]], list[Route]] = field(default_factory=dict)

    @property
    def routes(self) -> dict[tuple[str, tuple[str, ...]], Route]:
        return {key: stack[-1] for key, stack in self.stacks.items()}

    def add(self, route: Route) -> None:
        key = (route.method, route.segments)
        for other in self.routes.values():
            if (
                other.method == route.method
                and other.shape == route.shape
                and other.segments != route.segments
            ):
                raise TriggerRegistrationFailed(
                    f"Route '{route.display}' conflicts with already-registered route"
                    f" '{other.display}': routes with identical structure but"
                    " different path-parameter names are not supported"
                )
        stack = self.stacks.setdefault(key, [])
        stack[:] = [r for r in stack if r.trigger_id != route.trigger_id]
        stack.append(route)

    def remove(self, trigger_id: str) -> None:
        for key, stack in list(self.stacks.items()):
            stack[:] = [r for r in stack if r.trigger_id != trigger_id]
            if not stack:
                del self.stacks[key]

    def methods(self, path: str) -> set[str]:
        """The methods some route serves ``path`` with (HEAD with GET): a
        405's ``Allow``."""
        segments = split_path(path)
        found: set[str] = set()
        for stack in self.stacks.values():
            route = stack[-1]
            if len(route.segments) == len(segments) and all(
                pattern.startswith(":") or pattern == actual
                for pattern, actual in zip(route.segments, segments, strict=True)
            ):
                found.add(route.method)
        if "GET" in found:
            found.add("HEAD")
        return found

    def match(
        self, method: str, path: str
    ) -> tuple[Route | None, bool, dict[str, str]]:
        """Returns (route, path_exists, path_params)."""
        segments = split_path(path)
        best: tuple[int, Route, dict[str, str]] | None = None
        path_exists = False
        wanted = ("GET", "HEAD") if method == "HEAD" else (method,)
        for stack in self.stacks.values():
            route = stack[-1]
            if len(route.segments) != len(segments):
                continue
            params: dict[str, str] = {}
            statics = 0
            for pattern, actual in zip(route.segments, segments, strict=True):
                if pattern.startswith(":"):
                    params[pattern[1:]] = actual
                elif pattern == actual:
                    statics += 1
                else:
                    break
            else:
                path_exists = True
                if route.method not in wanted:
                    continue
                # Static segments win; an exact HEAD route beats the GET fallback.
                score = statics * 2 + (route.method == method)
                if best is None or score > best[0]:
                    best = (score, route, params)
        if best is None:
            return None, path_exists, {}
        return best[1], True, best[2]


def is_response_shaped(result: Any) -> bool:
    if not isinstance(result, dict):
        return False
    if "status_code" in result or "statusCode" in result:
        return True
    keys = set(result)
    return bool(keys) and keys <= RESPONSE_KEYS and "body" in keys


def _status(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return value
    return 200


def _headers(value: Any) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if isinstance(value, dict):
        out = [(k, v) for k, v in value.items() if isinstance(v, str)]
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, str) and ":" in item:
                name, _, val = item.partition(":")
                out.append((name.strip(), val.strip()))
    return out


def shape_response(
    result: Any, *, plain_results: bool = True
) -> tuple[int, list[tuple[str, str]], bytes]:
    """A buffered handler result as (status, headers, body)."""
    if not is_response_shaped(result):
        if plain_results:
            return 200, [("content-type", "application/json")], dumps_bytes(result)
        result = {}
    status = _status(result.get("status_code", result.get("statusCode")))
    headers = _headers(result.get("headers"))
    body = result.get("body", {})
    content_type = next((v for k, v in headers if k.lower() == "content-type"), None)
    if content_type is None:
        headers.append(("content-type", "application/json"))
        return status, headers, dumps_bytes(body)
    if isinstance(body, str):
        return status, headers, body.encode()
    if body is None:
        return status, headers, b""
    return status, headers, dumps_bytes(body)


def error_envelope(code: str, message: str, error_id: str | None = None) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message}
    if error_id:
        error["error_id"] = error_id
    return dumps_bytes({"error": error})


def control_frame(text: Any, headers: dict[str, str], status: int) -> int:
    """A text frame before the first body chunk: set_status / set_headers."""
    try:
        msg = loads(text)
    except ValueError:
        return status
    if not isinstance(msg, dict):
        return status
    if msg.get("type") == "set_status":
        code = msg.get("status_code")
        if isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599:
            return code
    elif msg.get("type") == "set_headers" and isinstance(msg.get("headers"), dict):
        for name, value in msg["headers"].items():
            if isinstance(value, str):
                headers[name] = value
    return status
