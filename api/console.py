"""The operator console and ``/metrics`` on the HTTP port (module ``iiilog-console``).

``/_iiilog/console`` is a static page (HTML + an ES module, read once at
start) that reads ``/_iiilog/api/...``: workers, functions and triggers,
durable subscriptions (with redelivery), projections, stream clients, the
log itself (filtered, paged), the engine's and the workers' log lines, and a
scope as of any offset. Every route here passes ``console_access.decide``
first and is counted like any HTTP request; nothing here runs on the paths
workers serve.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.core import CallContext, Engine, now_ms
from engine.durable import DurableTriggers
from engine.errors import EngineError
from engine.logs import SEVERITY, LogSink, RecentLines
from eventlog import StoreError
from eventlog.codec import dumps_bytes, loads
from projections.runner import ProjectionRunner

from . import console_access as access
from . import console_views as views
from .http_server import ADMIN_PREFIX
from .metrics import CommitStats, Snapshot, render

log = logging.getLogger("iiilog.console")
WEB = Path(__file__).with_name("console_web")
ASSETS = {
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Python's level names as the worker logs' severities (engine::logs::list).
_SEVERITY_OF = {"debug": 5, "info": 9, "warning": 13, "error": 17, "critical": 21}


class ConsoleConfig(BaseModel):
    """Module ``iiilog-console``: who may reach the console, its API and
    ``/metrics`` besides loopback clients, and how many of the engine's own
    log lines it keeps."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    token: str | None = Field(None, min_length=16)
    allow_remote: bool = False  # true: anyone who reaches the port, no token
    log_lines: int = Field(500, ge=1, le=100_000)

    @model_validator(mode="after")
    def _one_way_in(self) -> ConsoleConfig:
        if self.token is not None and self.allow_remote:
            raise ValueError(
                "set `token` (remote requests need it) or `allow_remote` (they"
                " do not), not both"
            )
        return self


def _json(status: int, body: Any) -> web.Response:
    return web.Response(
        status=status,
        body=dumps_bytes(body),
        headers={"content-type": "application/json", "cache-control": "no-store"},
    )


def _error(status: int, code: str, message: str) -> web.Response:
    return _json(status, {"error": {"code": code, "message": message}})


@dataclass
class Console:
    config: ConsoleConfig
    engine: Engine
    durable: DurableTriggers
    projections: ProjectionRunner
    worker_logs: LogSink
    lines: RecentLines
    commits: CommitStats
    requests: dict[tuple[str, int], int]  # the HTTP module's, shared
    stream_clients: Callable[[], list[Any]] = list
    _files: dict[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("index.html", *ASSETS):
            self._files[name] = (WEB / name).read_bytes()

    def routes(self, app: web.Application) -> None:
        """The console's routes, guarded; added before the workers' catch-all."""
        api = f"{ADMIN_PREFIX}/api"
        for method, path, handler in (
            ("GET", "/metrics", self.metrics),
            ("GET", f"{ADMIN_PREFIX}/console", self.page),
            ("GET", f"{ADMIN_PREFIX}/console/{{name}}", self.asset),
            ("GET", f"{api}/overview", self.overview),
            ("GET", f"{api}/log", self.log_page),
            ("GET", f"{api}/state", self.state),
            ("GET", f"{api}/logs", self.logs),
            ("POST", f"{api}/redeliver", self.redeliver),
        ):
            app.router.add_route(
                method, path, self._guarded(f"{method} {path}", handler)
            )

    def _guarded(self, label: str, handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            response = await self._serve(request, handler)
            key = (label, response.status)
            self.requests[key] = self.requests.get(key, 0) + 1
            return response

        return guarded

    async def _serve(
        self, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        headers = {k.lower(): v for k, v in request.headers.items()}
        query = dict(request.query.items())
        verdict = access.decide(
            remote=request.remote,
            headers=headers,
            token=self.config.token,
            presented=access.presented_token(headers, request.cookies, query),
            allow_remote=self.config.allow_remote,
        )
        if not verdict.allowed:
            code = "UNAUTHORIZED" if verdict.status == 401 else "FORBIDDEN"
            refusal = _error(verdict.status, code, verdict.reason)
            if verdict.status == 401:
                refusal.headers["www-authenticate"] = 'Bearer realm="iiilog"'
            return refusal
        if request.method != "GET" and not access.same_origin(
            headers.get("origin"), headers.get("host")
        ):
            return _error(403, "FORBIDDEN", "cross-origin requests may not change")
        try:
            response = await handler(request)
        except ValueError as e:
            return _error(400, "INVALID_ARGUMENTS", str(e))
        except StoreError as e:
            return _error(503, "STORE_UNAVAILABLE", str(e))
        if verdict.via_token and query.get("token") and self.config.token:
            # A browser given ?token= keeps it for the page's API calls.
            response.set_cookie(
                access.COOKIE,
                self.config.token,
                httponly=True,
                samesite="Strict",
                path="/",
            )
        return response

    # -- the page --------------------------------------------------------------------

    async def page(self, request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=self._files["index.html"],
            headers={
                "content-type": "text/html; charset=utf-8",
                "cache-control": "no-store",
                # The page only talks to this origin and loads nothing else.
                "content-security-policy": "default-src 'self'; frame-ancestors 'none'",
            },
        )

    async def asset(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in ASSETS:
            return _error(404, "NOT_FOUND", f"no console file {name!r}")
        return web.Response(
            body=self._files[name],
            headers={"content-type": ASSETS[name], "cache-control": "no-store"},
        )

    # -- the API -----------------------------------------------------------------------

    async def overview(self, request: web.Request) -> web.StreamResponse:
        engine = self.engine
        status = await self.durable.status()
        head = status["head"]
        projections = []
        for name in sorted(self.projections.running):
            position = self.projections.running[name].position
            start = self.projections.started(name)
            projections.append(
                {
                    "name": name,
                    "position": position,
                    "lag": head - position,
                    "start": start.view() if start is not None else None,
                }
            )
        return _json(
            200,
            {
                "now_ms": now_ms(),
                "head": head,
                "appended": self.commits.appended,
                "node_id": engine.cluster.node_id,
                "workers": views.worker_rows(engine),
                "functions": views.function_rows(engine),
                "subscriptions": status["subscriptions"],
                "projections": projections,
                "stream_clients": views.stream_client_rows(self.stream_clients()),
            },
        )

    async def log_page(self, request: web.Request) -> web.StreamResponse:
        query = views.log_query(request.query)
        records = await self.engine.store.read_matching(query)
        return _json(
            200,
            {
                "head": self.engine.tail.head,
                "records": [views.record_row(r) for r in records],
            },
        )

    async def state(self, request: web.Request) -> web.StreamResponse:
        """A scope (or one key) now, or as of an offset: ``state::list`` and
        ``state::get`` answer, as any caller would see them."""
        scope, key, offset = views.state_query(request.query)
        args: dict[str, Any] = {"scope": scope}
        if key is not None:
            args["key"] = key
        if offset is not None:
            args["offset"] = offset
        function_id = "state::get" if key is not None else "state::list"
        try:
            value = await self.engine.invoke(
                function_id, args, CallContext(function_id=function_id)
            )
        except EngineError as e:
            return _error(400, e.code, e.message)
        scopes = await self.engine.store.view_scopes("state")
        return _json(
            200,
            {
                "scope": scope,
                "key": key,
                "offset": offset,
                "head": self.engine.tail.head,
                "value": value,
                "scopes": scopes,
            },
        )

    async def logs(self, request: web.Request) -> web.StreamResponse:
        """The last worker log entries and the engine's own lines."""
        level = request.query.get("level", "trace")
        if level not in SEVERITY:
            raise ValueError(f"`level` must be one of {', '.join(SEVERITY)}")
        limit = views.positive(request.query, "limit", 200)
        minimum = SEVERITY[level]
        worker = [
            e for e in self.worker_logs.entries if e["severity_number"] >= minimum
        ]
        engine = [
            line
            for line in self.lines.lines
            if _SEVERITY_OF.get(line["level"], 9) >= minimum
        ]
        return _json(200, {"worker": worker[-limit:], "engine": engine[-limit:]})

    async def redeliver(self, request: web.Request) -> web.StreamResponse:
        try:
            body = loads(await request.read())
        except ValueError as e:
            raise ValueError(f"the body must be JSON: {e}") from e
        function_id = "iiilog::triggers::redeliver"
        try:
            result = await self.engine.invoke(
                function_id, body, CallContext(function_id=function_id)
            )
        except EngineError as e:
            return _error(404 if e.code == "NOT_FOUND" else 400, e.code, e.message)
        return _json(200, result)

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        status = await self.durable.status()
        clients = self.stream_clients()
        snapshot = Snapshot(
            head=status["head"],
            commits=self.commits,
            subscriptions=status["subscriptions"],
            projections={
                n: run.position for n, run in self.projections.running.items()
            },
            workers=len(self.engine.workers),
            stream_clients=len(clients),
            stream_subscriptions=sum(len(c.subs) for c in clients),
            calls=dict(self.engine.calls),
            requests=dict(self.requests),
        )
        return web.Response(
            body=render(snapshot).encode(),
            headers={"content-type": "text/plain; version=0.0.4; charset=utf-8"},
        )
