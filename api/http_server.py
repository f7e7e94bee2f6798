"""The HTTP listener: routes registered by ``http`` triggers.

This module is the edge: it reads requests, builds iii's request object, runs
global middleware, the route's condition and middleware, then the handler, and
writes the response. Route matching and response shaping are pure
(``engine.http_routes``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from aiohttp import web

from engine.channels import Channel, ChannelRegistry, as_bytes
from engine.core import CallContext, Engine, TriggerBinding
from engine.errors import EngineError, TriggerRegistrationFailed
from engine.http_routes import (
    STANDARD_KEYS,
    Route,
    RouteTable,
    control_frame,
    error_envelope,
    parse_route,
    shape_response,
)
from engine.traces import HttpSpan, TraceStore
from eventlog import wait_event
from eventlog.codec import dumps_bytes, loads
from eventlog.directory import RemoteRoute
from projections.runner import ProjectionRunner

from .http_body import BODY_CHUNK, BodyTooLarge, pump_body, stream_response
from .http_config import HttpConfig

log = logging.getLogger("iiilog.http")
NULL_GRACE_S = 0.25  # a `null` result waits this long for a response writer
ADMIN_PREFIX = "/_iiilog"  # iiilog's own read-only routes; never routed to workers


def _too_large(e: BodyTooLarge) -> web.Response:
    return _json_response(413, error_envelope("PAYLOAD_TOO_LARGE", e.message))


def _json_response(
    status: int, body: bytes, extra: dict[str, str] | None = None
) -> web.Response:
    headers = {"content-type": "application/json", **(extra or {})}
    return web.Response(status=status, body=body, headers=headers)


class HttpModule:
    """The ``http`` trigger type and the request pipeline."""

    def __init__(
        self,
        engine: Engine,
        config: HttpConfig,
        projections: ProjectionRunner | None = None,
        channels: ChannelRegistry | None = None,
    ) -> None:
        self.engine = engine
        self.channels = channels or ChannelRegistry(engine)
        self.projections = projections
        self.config = config
        self.routes = RouteTable()
        # Routes bound on other nodes sharing the log: served here too, after
        # this node's own, their functions called where they live.
        self.remote_routes = RouteTable()
        self._slots = asyncio.Semaphore(config.concurrency_request_limit)
        self.spans: TraceStore | None = None  # where request spans go (if kept)
        # (route, status) -> requests answered (metrics); route "unmatched"
        # for paths no route serves, so stray paths add no labels.
        self.requests: dict[tuple[str, int], int] = {}
        engine.add_provider("http", self, "Expose a function as an HTTP endpoint")
        engine.cluster.on_routes(self._other_nodes)

    # -- trigger provider ----------------------------------------------------------

    async def register(self, binding: TriggerBinding) -> None:
        route = replace(
            parse_route(binding.id, binding.function_id, binding.config),
            namespace=binding.namespace,
        )
        if route.segments[:1] == (ADMIN_PREFIX.strip("/"),):
            raise TriggerRegistrationFailed(
                f"api_path {route.api_path!r} is reserved: paths under"
                f" {ADMIN_PREFIX}/ are iiilog's own and never routed to workers"
            )
        self.routes.add(route)
        self.engine.cluster.route_changed(
            [
                RemoteRoute(
                    self.engine.cluster.node_id,
                    binding.id,
                    binding.function_id,
                    binding.namespace,
                    binding.config,
                )
            ],
            [],
        )

    async def unregister(self, binding: TriggerBinding) -> None:
        self.routes.remove(binding.id)
        self.engine.cluster.route_changed([], [binding.id])

    def _other_nodes(self, routes: list[RemoteRoute]) -> None:
        table = RouteTable()
        for r in routes:
            try:
                parsed = parse_route(
                    f"{r.node_id}:{r.trigger_id}", r.function_id, r.config
                )
                table.add(replace(parsed, namespace=r.namespace))
            except TriggerRegistrationFailed as e:
                log.warning("route of node %s not served here: %s", r.node_id, e)
        self.remote_routes = table

    # -- aiohttp -------------------------------------------------------------------

    def make_app(
        self, admin: Callable[[web.Application], None] | None = None
    ) -> web.Application:
        """``admin`` adds the engine's own routes (console, ``/metrics``);
        they come before the workers' catch-all."""
        app = web.Application(client_max_size=self.config.max_body_bytes)
        app.router.add_get(f"{ADMIN_PREFIX}/projections/{{name}}", self.projection)
        if admin is not None:
            admin(app)
        app.router.add_route("*", f"{ADMIN_PREFIX}/{{tail:.*}}", self._not_ours)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def _not_ours(self, request: web.Request) -> web.Response:
        """The rest of ``/_iiilog/`` is the engine's too: never a worker's."""
        self.count("unmatched", 404)
        return _json_response(404, error_envelope("NOT_FOUND", "Not Found"))

    def count(self, route: str, status: int) -> None:
        key = (route, status)
        self.requests[key] = self.requests.get(key, 0) + 1

    async def projection(self, request: web.Request) -> web.Response:
        """``GET /_iiilog/projections/{name}``: a projection's state (extension)."""
        name = request.match_info["name"]
        found = self.projections.get(name) if self.projections else None
        if found is None:
            return _json_response(
                404, error_envelope("NOT_FOUND", f"no projection named {name!r}")
            )
        position, state = found
        body = dumps_bytes({"name": name, "position": position, "state": state})
        return _json_response(200, body, self._cors_headers(request))

    def _cors_headers(self, request: web.Request) -> dict[str, str] | None:
        origin = request.headers.get("Origin")
        cors = self.config.cors
        origins = cors.allowed_origins if cors is not None else ()
        methods = cors.allowed_methods if cors is not None else ()
        if origins and "*" not in origins and origin not in origins:
            return None
        headers = {"access-control-allow-origin": origin or "*"}
        if origin:
            headers["vary"] = "Origin"
        wanted = request.headers.get("Access-Control-Request-Method")
        if wanted is not None:
            allowed = (
                ", ".join(m.upper() for m in methods)
                if methods
                else (wanted or "GET, POST, PUT, DELETE, PATCH, HEAD, OPTIONS")
            )
            headers["access-control-allow-methods"] = allowed
            headers["access-control-allow-headers"] = request.headers.get(
                "Access-Control-Request-Headers", "*"
            )
            headers["access-control-max-age"] = "86400"
        return headers

    async def handle(self, request: web.Request) -> web.StreamResponse:
        cors = self._cors_headers(request)
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in (
            request.headers
        ):
            return web.Response(status=204, headers=cors or {})
        async with self._slots:
            response = await self._handle(request)
        if cors:
            for name, value in cors.items():
                if not name.startswith(
                    "access-control-allow-m"
                ) and not name.startswith("access-control-allow-h"):
                    response.headers.setdefault(name, value)
        return response

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.rel_url.raw_path
        if path.startswith(f"{ADMIN_PREFIX}/"):  # never a worker's, even by a :param
            return _json_response(404, error_envelope("NOT_FOUND", "Not Found"))
        route, path_exists, params = self.routes.match(request.method, path)
        if route is None:
            route, elsewhere, params = self.remote_routes.match(request.method, path)
            path_exists = path_exists or elsewhere
        if route is None:
            self.count("unmatched", 405 if path_exists else 404)
            if path_exists:
                allowed = self.routes.methods(path) | self.remote_routes.methods(path)
                return _json_response(
                    405,
                    error_envelope(
                        "METHOD_NOT_ALLOWED",
                        f"{request.method} is not allowed on this path",
                    ),
                    {"allow": ", ".join(sorted(allowed))},
                )
            return _json_response(404, error_envelope("NOT_FOUND", "Not Found"))
        response = await self._serve(request, route, params)
        self.count(f"{route.method} /{'/'.join(route.segments)}", response.status)
        return response

    async def _serve(
        self, request: web.Request, route: Route, params: dict[str, str]
    ) -> web.StreamResponse:
        limit = self.config.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return _too_large(BodyTooLarge(request.content_length, limit))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.default_timeout / 1000
        request_body = self.channels.create()
        response_body = self.channels.create()
        tasks: list[asyncio.Task[Any]] = []  # the body pump and the handler call
        span = HttpSpan(
            request.method, route.api_path, request.headers.get("traceparent")
        )
        status = 500
        try:
            # The timeout covers deciding the response head; a streamed body
            # may outlive it.
            async with asyncio.timeout_at(deadline):
                decided = await self._decide(
                    request, route, params, request_body, response_body, tasks, span
                )
            if isinstance(decided, web.StreamResponse):
                status = decided.status
                return decided
            status, headers, first = decided
            return await stream_response(request, response_body, status, headers, first)
        except TimeoutError:
            status = 504
            return web.Response(status=504)
        except BodyTooLarge as e:  # a body without a length, cut at the limit
            return _too_large(e)
        finally:
            if self.spans is not None:
                self.spans.record(span.finish(status, route.function_id))
            self.channels.drop(request_body)
            self.channels.drop(response_body)
            await _settle(tasks, route)

    async def _decide(
        self,
        request: web.Request,
        route: Route,
        params: dict[str, str],
        request_body: Channel,
        response_body: Channel,
        tasks: list[asyncio.Task[Any]],
        span: HttpSpan,
    ) -> web.StreamResponse | tuple[int, dict[str, str], bytes | None]:
        """Everything up to the response head: a whole response, or what a
        streamed one starts with (status, headers, first chunk). The tasks it
        starts go into ``tasks``, which the caller settles."""
        headers = {k.lower(): v for k, v in request.headers.items()}
        query = dict(request.query.items())
        meta = {
            "path_params": params,
            "query_params": query,
            "headers": headers,
            "method": request.method,
        }
        for mw in self.config.middleware:
            if mw.phase != "preHandler":
                continue
            early = await self._middleware(mw.function_id, meta)
            if early is not None:
                return early
        body: Any = None
        raw: bytes | None = None
        if "application/json" in request.headers.get("content-type", ""):
            try:
                raw = await request.read()
            except web.HTTPRequestEntityTooLarge:
                raise BodyTooLarge(None, self.config.max_body_bytes) from None
            if raw.strip():
                try:
                    body = loads(raw)
                except ValueError as e:
                    return _json_response(
                        400,
                        error_envelope(
                            "INVALID_JSON", f"Request body is not valid JSON: {e}"
                        ),
                    )
        # One event wakes the decision below: the handler answered, the
        # response channel got an item or a writer, the body pump ended.
        wake = asyncio.Event()
        pump: asyncio.Task[Any] | None = None
        if raw is None or not request_body.preload(
            [raw[i : i + BODY_CHUNK] for i in range(0, len(raw), BODY_CHUNK)]
        ):  # a streamed body (or one too big to hold): pumped as it comes
            pump = asyncio.get_running_loop().create_task(
                pump_body(request_body, request, raw, self.config.max_body_bytes),
                name="http-body-pump",
            )
            pump.add_done_callback(lambda _: wake.set())
            tasks.append(pump)
        payload: dict[str, Any] = {
            "query_params": query,
            "path_params": params,
            "headers": headers,
            "path": route.api_path,
            "method": request.method,
            "body": body,
            "trigger": {
                "type": "http",
                "path": route.api_path,
                "method": request.method,
            },
        }
        if self.config.body_fields_at_top_level and isinstance(body, dict):
            for name, value in body.items():
                if name not in STANDARD_KEYS:
                    payload[name] = value
        if route.condition_function_id:
            try:
                verdict = await self.engine.invoke(
                    route.condition_function_id,
                    payload,
                    CallContext(
                        function_id=route.condition_function_id,
                        namespace=route.namespace,
                    ),
                )
            except EngineError as e:
                return self._error(e, route)
            if verdict is False:
                return _json_response(
                    422,
                    dumps_bytes(
                        {
                            "error": {
                                "code": "CONDITION_NOT_MET",
                                "message": "Request condition not met",
                            },
                            "skipped": True,
                        }
                    ),
                )
        for mw_id in route.middleware_function_ids:
            early = await self._middleware(mw_id, meta)
            if early is not None:
                return early
        payload["request_body"] = request_body.ref("read")
        payload["response"] = response_body.ref("write")
        handler = asyncio.get_running_loop().create_task(
            self.engine.invoke(
                route.function_id,
                payload,
                CallContext(
                    function_id=route.function_id,
                    namespace=route.namespace,
                    traceparent=span.traceparent,
                ),
            ),
            name=f"http-handler:{route.function_id}",
        )
        handler.add_done_callback(lambda _: wake.set())
        response_body.on_activity = wake.set
        tasks.append(handler)
        status, out_headers = 200, dict[str, str]()
        while True:
            if (
                pump is not None
                and pump.done()
                and not pump.cancelled()
                and isinstance(pump.exception(), BodyTooLarge)
            ):
                raise pump.exception()  # type: ignore[misc]
            if response_body.has_items():  # the handler streams its answer
                item = response_body.items.get_nowait()
                if item is None:  # the writer closed without a body chunk
                    return status, out_headers, None
                kind, data = item
                if kind == "binary":
                    return status, out_headers, as_bytes(data)
                status = control_frame(data, out_headers, status)
                continue
            if handler.done():
                if handler.exception() is not None:
                    error = handler.exception()
                    if isinstance(error, EngineError):
                        return self._error(error, route)
                    raise error  # type: ignore[misc]
                result = handler.result()
                if result is not None:
                    return self._buffered(result)
                # null: a streamed body follows, unless no writer ever came.
                if not response_body.writer_taken:
                    if not await wait_event(response_body.attached, NULL_GRACE_S):
                        return self._buffered(None)
                    continue
            await wake.wait()
            wake.clear()

    def _buffered(self, result: Any) -> web.Response:
        status, out_headers, out_body = shape_response(
            result, plain_results=self.config.plain_results
        )
        response = web.Response(status=status, body=out_body)
        for name, value in out_headers:
            if name.lower() in ("content-length", "transfer-encoding"):
                continue
            response.headers[name] = value
        return response

    async def _middleware(
        self, function_id: str, meta: dict[str, Any]
    ) -> web.Response | None:
        payload = {"phase": "preHandler", "request": meta, "context": {}}
        timeout = self.config.default_timeout / 1000
        try:
            async with asyncio.timeout(timeout):
                result = await self.engine.invoke(
                    function_id, payload, CallContext(function_id=function_id)
                )
        except TimeoutError:
            return _json_response(
                504, error_envelope("MIDDLEWARE_TIMEOUT", "Middleware timeout")
            )
        except EngineError as e:
            return self._error(e, None)
        if isinstance(result, dict) and result.get("action") == "respond":
            resp = result.get("response") or {}
            status = resp.get("status_code", 200) if isinstance(resp, dict) else 200
            response = _json_response(
                status if isinstance(status, int) else 200,
                dumps_bytes(resp.get("body") if isinstance(resp, dict) else None),
            )
            headers = resp.get("headers") if isinstance(resp, dict) else None
            if isinstance(headers, dict):
                for name, value in headers.items():
                    if isinstance(value, str):
                        response.headers[name] = value
            return response
        return None

    def _error(self, error: EngineError, route: Route | None) -> web.Response:
        error_id = uuid.uuid4().hex[:12]
        log.error(
            "http %s failed [%s]: %s",
            route.display if route else "middleware",
            error_id,
            error,
        )
        return _json_response(500, error_envelope(error.code, error.message, error_id))


async def _settle(tasks: list[asyncio.Task[Any]], route: Route) -> None:
    """A request's tasks end with it: what still runs is cancelled, and what
    failed unexpectedly is logged (the response already went out)."""
    for task in tasks:
        if not task.done():
            task.cancel()
    for outcome in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(outcome, Exception) and not isinstance(
            outcome, EngineError | ConnectionResetError | BodyTooLarge
        ):
            log.error("http %s: a request task failed: %r", route.display, outcome)
