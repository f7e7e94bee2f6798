"""The reactive todo app (README.md) as an iii worker, Python SDK.

Run it against a running engine:  python examples/todo/worker.py
The engine URL comes from III_URL (default ws://127.0.0.1:49134). It also
serves the web app (``web/``) on the engine's HTTP port: ``GET /`` and
``GET /app.js``; the page learns the stream port from TODO_STREAM_PORT
(default 3112) or a whole URL from TODO_STREAM_URL.
"""

from __future__ import annotations

import html
import logging
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

from iii import InitOptions, InvocationError, TriggerAction, register_worker

log = logging.getLogger("todo")
SCOPE = "todos"
METRICS = ("todo-metrics", "global")
WEB = Path(__file__).resolve().with_name("web")


def web_app(stream: str) -> tuple[str, str]:
    """The page (told where the stream server is) and its module."""
    page = (WEB / "index.html").read_text().replace("{{STREAM}}", html.escape(stream))
    return page, (WEB / "app.js").read_text()


def offset_param(req: dict[str, Any]) -> int | None:
    """``?offset=N``: the list as of that log offset (None: now)."""
    raw = (req.get("query_params") or {}).get("offset")
    if isinstance(raw, list):  # some SDKs hand repeated parameters as lists
        raw = raw[0] if raw else None
    if raw is None or raw == "":
        return None
    if not str(raw).isdigit():
        raise ValueError("offset must be a non-negative integer")
    return int(raw)


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z"


def error(status: int, code: str, message: str) -> dict[str, Any]:
    """An HTTP answer in the engine's error envelope."""
    return {
        "status_code": status,
        "body": {"error": {"code": code, "message": message}},
    }


def todo_id_of(req: dict[str, Any]) -> str | None:
    body = req.get("body")
    todo_id = body.get("id") if isinstance(body, dict) else None
    return todo_id if isinstance(todo_id, str) and todo_id else None


def classify(event: dict[str, Any]) -> str:
    if event.get("event_type") == "state:deleted" or event.get("new_value") is None:
        return "deleted"
    if event.get("old_value") is None:
        return "created"
    return "updated"


def metric_ops(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The counter changes one todo change implies (pure)."""
    old, new = event.get("old_value"), event.get("new_value")
    action = classify(event)
    if action == "created":
        ops = [{"type": "increment", "path": "total", "by": 1}]
        if isinstance(new, dict) and new.get("completed"):
            ops.append({"type": "increment", "path": "completed", "by": 1})
        return ops
    if action == "deleted":
        if old is None:
            return []
        ops = [{"type": "decrement", "path": "total", "by": 1}]
        if isinstance(old, dict) and old.get("completed"):
            ops.append({"type": "decrement", "path": "completed", "by": 1})
        return ops
    was = bool(isinstance(old, dict) and old.get("completed"))
    now = bool(isinstance(new, dict) and new.get("completed"))
    if was == now:
        return []
    kind = "increment" if now else "decrement"
    return [{"type": kind, "path": "completed", "by": 1}]


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s todo: %(message)s")
    url = os.environ.get("III_URL", "ws://127.0.0.1:49134")
    iii = register_worker(url, InitOptions(worker_name="reactive-backend"))

    async def create(req: dict[str, Any]) -> dict[str, Any]:
        body = req.get("body") or {}
        title = body.get("title") if isinstance(body, dict) else None
        if not isinstance(title, str) or not title.strip():
            return error(400, "BAD_REQUEST", "`title` is required")
        todo_id = f"todo-{int(time.time() * 1000)}-{uuid.uuid4().hex[:6]}"
        todo = {
            "_key": todo_id,
            "id": todo_id,
            "title": title.strip(),
            "completed": False,
            "created_at": now_iso(),
        }
        try:
            await iii.trigger_async(
                {
                    "function_id": "state::set",
                    "payload": {"scope": SCOPE, "key": todo_id, "value": todo},
                }
            )
        except InvocationError as e:
            if e.code == "VALUE_TOO_LARGE":  # the engine's max_value_bytes
                return error(413, e.code, e.message)
            raise
        return {"status_code": 201, "body": todo}

    async def list_todos(req: dict[str, Any]) -> dict[str, Any]:
        try:
            offset = offset_param(req)
        except ValueError as e:
            return {
                "status_code": 400,
                "body": {"error": {"code": "BAD_REQUEST", "message": str(e)}},
            }
        payload: dict[str, Any] = {"scope": SCOPE}
        if offset is not None:
            payload["offset"] = offset  # iiilog: state::list as of an offset
        todos = await iii.trigger_async(
            {"function_id": "state::list", "payload": payload}
        )
        return {"status_code": 200, "body": todos}

    stream = os.environ.get("TODO_STREAM_URL") or os.environ.get(
        "TODO_STREAM_PORT", "3112"
    )
    page, module = web_app(stream)

    async def index(req: dict[str, Any]) -> dict[str, Any]:
        return {
            "status_code": 200,
            "headers": {"content-type": "text/html; charset=utf-8"},
            "body": page,
        }

    async def app_js(req: dict[str, Any]) -> dict[str, Any]:
        return {
            "status_code": 200,
            "headers": {"content-type": "text/javascript; charset=utf-8"},
            "body": module,
        }

    async def find(req: dict[str, Any]) -> tuple[str, Any] | dict[str, Any]:
        """(id, todo), or the error answer: 400 without an id, 404 unknown."""
        todo_id = todo_id_of(req)
        if todo_id is None:
            return error(400, "BAD_REQUEST", "`id` is required")
        current = await iii.trigger_async(
            {"function_id": "state::get", "payload": {"scope": SCOPE, "key": todo_id}}
        )
        if current is None:
            return error(404, "NOT_FOUND", f"Todo {todo_id} not found")
        return todo_id, current

    async def toggle(req: dict[str, Any]) -> dict[str, Any]:
        found = await find(req)
        if isinstance(found, dict):
            return found
        todo_id, current = found
        completed = not current.get("completed", False)
        await iii.trigger_async(
            {
                "function_id": "state::update",
                "payload": {
                    "scope": SCOPE,
                    "key": todo_id,
                    "ops": [
                        {"type": "set", "path": "completed", "value": completed},
                        {"type": "set", "path": "updated_at", "value": now_iso()},
                    ],
                },
            }
        )
        return {"status_code": 200, "body": {"id": todo_id, "completed": completed}}

    async def delete(req: dict[str, Any]) -> dict[str, Any]:
        found = await find(req)
        if isinstance(found, dict):
            return found
        todo_id, _ = found
        old = await iii.trigger_async(
            {
                "function_id": "state::delete",
                "payload": {"scope": SCOPE, "key": todo_id},
            }
        )
        if old is None:  # deleted meanwhile by another request
            return error(404, "NOT_FOUND", f"Todo {todo_id} not found")
        return {"status_code": 200, "body": {"deleted": todo_id}}

    async def get_metrics(req: dict[str, Any]) -> dict[str, Any]:
        metrics = await iii.trigger_async(
            {
                "function_id": "state::get",
                "payload": {"scope": METRICS[0], "key": METRICS[1]},
            }
        )
        return {"status_code": 200, "body": metrics or {"total": 0, "completed": 0}}

    async def on_change(event: dict[str, Any]) -> None:
        action = classify(event)
        log.debug("todo %s: %s", event.get("key"), action)
        await iii.trigger_async(
            {
                "function_id": "stream::send",
                "payload": {
                    "stream_name": "todos-live",
                    "group_id": "all",
                    "type": "todo_changed",
                    "data": {
                        "action": action,
                        "key": event.get("key"),
                        "todo": event.get("new_value"),
                        # the state change's log offset (iiilog): lets the page
                        # skip what the list it read already holds
                        "offset": event.get("offset"),
                    },
                },
                "action": TriggerAction.Void(),
            }
        )

    async def update_metrics(event: dict[str, Any]) -> None:
        ops = metric_ops(event)
        if ops:
            await iii.trigger_async(
                {
                    "function_id": "state::update",
                    "payload": {"scope": METRICS[0], "key": METRICS[1], "ops": ops},
                }
            )

    routes = [
        ("todos::create", create, "todos", "POST"),
        ("todos::list", list_todos, "todos", "GET"),
        ("todos::toggle", toggle, "todos/toggle", "POST"),
        ("todos::delete", delete, "todos/delete", "POST"),
        ("todos::get-metrics", get_metrics, "todos/metrics", "GET"),
        ("todos::web-page", index, "/", "GET"),
        ("todos::web-module", app_js, "app.js", "GET"),
    ]
    for function_id, handler, path, method in routes:
        iii.register_function(function_id, handler)
        iii.register_trigger(
            {
                "type": "http",
                "function_id": function_id,
                "config": {"api_path": path, "http_method": method},
            }
        )
    iii.register_function("todos::on-change", on_change)
    iii.register_function("todos::update-metrics", update_metrics)
    # iiilog keeps each todo's changes in order and handles different todos
    # concurrently: all both handlers need (pushes per todo, commutative
    # counter updates).
    for function_id in ("todos::on-change", "todos::update-metrics"):
        iii.register_trigger(
            {"type": "state", "function_id": function_id, "config": {"scope": SCOPE}}
        )
    log.info("todo worker connected to %s", url)

    # A signal handler must not take a lock: ``Event.set`` in one deadlocks
    # when the signal lands while this thread holds the event's lock (Ctrl-C
    # and run_dev's SIGTERM arrive together). A flag and a short sleep do not.
    stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _: stop.append(signum))
    signal.signal(signal.SIGINT, lambda signum, _: stop.append(signum))
    while not stop:
        time.sleep(0.1)
    iii.shutdown()


if __name__ == "__main__":
    main()
