"""Traces: the spans SDKs send to ``/otel`` and the engine's own HTTP spans,
kept bounded and queryable (``engine::traces::list/tree/clear``), with iii's
``trace`` trigger type.

A span frame is stored as it arrived and decoded only when something reads
spans (a list, a tree, a log's function lookup, a ``trace`` trigger): the
arrival path is an append. Both the raw frames and the decoded spans count
against ``traces_max_bytes``; decoded spans also against ``memory_max_spans``;
the oldest go first. Traces live in memory (they are telemetry, not log records).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import OrderedDict, deque
from typing import Any

from eventlog.codec import loads

from .core import CallContext, Engine, TriggerBinding, now_ms, trace_id
from .errors import EngineError, TriggerRegistrationFailed
from .ids import random_bytes

log = logging.getLogger("iiilog.traces")
SERVICE = "iiilog"
STATUS = {0: "unset", 1: "ok", 2: "error"}
STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
TICK_S = 0.3  # a `trace` trigger fires at most this often, with every trace id


def any_value(value: Any) -> Any:
    """An OTLP/JSON AnyValue as a plain JSON value."""
    if not isinstance(value, dict):
        return value
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        try:
            return int(value["intValue"])
        except (TypeError, ValueError):
            return value["intValue"]
    if "doubleValue" in value:
        return value["doubleValue"]
    if "boolValue" in value:
        return value["boolValue"]
    if "arrayValue" in value:
        return [any_value(v) for v in value["arrayValue"].get("values", [])]
    if "kvlistValue" in value:
        return attributes(value["kvlistValue"].get("values", []))
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def attributes(items: Any) -> dict[str, Any]:
    """OTLP attributes as a mapping."""
    if not isinstance(items, list):
        return {}
    return {
        i["key"]: any_value(i.get("value"))
        for i in items
        if isinstance(i, dict) and "key" in i
    }


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _pairs(items: Any) -> list[list[str]]:
    """OTLP attributes as iii lists them: ``[[key, value as text], ...]``."""
    if not isinstance(items, list):
        return []
    return [
        [str(i["key"]), _text(any_value(i.get("value")))]
        for i in items
        if isinstance(i, dict) and "key" in i
    ]


def _status(span: dict[str, Any]) -> tuple[str, str | None]:
    status = span.get("status") or {}
    code = status.get("code", 0) if isinstance(status, dict) else 0
    if isinstance(code, str):
        code = STATUS_NAMES.get(code, 0)
    message = status.get("message") if isinstance(status, dict) else None
    return STATUS.get(code if isinstance(code, int) else 0, "unset"), message or None


def decode_frame(body: bytes) -> list[dict[str, Any]]:
    """An ExportTraceServiceRequest (OTLP/JSON) as iii's stored spans. Pure."""
    doc = loads(body)
    out = []
    for resource_spans in doc.get("resourceSpans", []) if isinstance(doc, dict) else []:
        resource = dict(_pairs(resource_spans.get("resource", {}).get("attributes")))
        service = resource.get("service.name", "")
        for scope_spans in resource_spans.get("scopeSpans", []):
            scope = scope_spans.get("scope") or {}
            for span in scope_spans.get("spans", []):
                status, message = _status(span)
                item: dict[str, Any] = {
                    "trace_id": span.get("traceId", ""),
                    "span_id": span.get("spanId", ""),
                    "parent_span_id": span.get("parentSpanId") or None,
                    "name": str(span.get("name") or ""),
                    "start_time_unix_nano": int(span.get("startTimeUnixNano") or 0),
                    "end_time_unix_nano": int(span.get("endTimeUnixNano") or 0),
                    "status": status,
                    "attributes": _pairs(span.get("attributes")),
                    "service_name": service,
                    "events": [
                        {
                            "name": e.get("name", ""),
                            "timestamp_unix_nano": int(e.get("timeUnixNano") or 0),
                            "attributes": _pairs(e.get("attributes")),
                        }
                        for e in span.get("events", [])
                        if isinstance(e, dict)
                    ],
                    "links": [
                        {
                            "trace_id": k.get("traceId", ""),
                            "span_id": k.get("spanId", ""),
                            "trace_state": k.get("traceState") or None,
                            "attributes": _pairs(k.get("attributes")),
                        }
                        for k in span.get("links", [])
                        if isinstance(k, dict)
                    ],
                }
                if message:
                    item["status_description"] = message
                if scope.get("name"):
                    item["instrumentation_scope_name"] = scope["name"]
                if scope.get("version"):
                    item["instrumentation_scope_version"] = scope["version"]
                out.append(item)
    return out


def span_function(span: dict[str, Any]) -> str | None:
    """The function a handler span ran (``call <fn>`` / ``execute <fn>``)."""
    name = span["name"]
    for prefix in ("call ", "execute "):
        if name.startswith(prefix):
            return str(name[len(prefix) :])
    return None


def duration_ms(span: dict[str, Any]) -> float:
    end = span["end_time_unix_nano"] or now_ms() * 1_000_000
    return float(max(0, end - span["start_time_unix_nano"]) / 1e6)


def _internal(span: dict[str, Any]) -> bool:
    return any(
        (k == "iii.function.kind" and v == "internal")
        or (k == "function_id" and v.startswith("engine::"))
        for k, v in span["attributes"]
    )


def build_tree(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Spans of one trace as nested ``{...span, children}``; a span whose parent
    is not stored is a root. Children in start order. Pure."""
    nodes = {s["span_id"]: {**s, "children": []} for s in spans}
    roots = []
    for node in sorted(nodes.values(), key=lambda n: n["start_time_unix_nano"]):
        parent = nodes.get(node["parent_span_id"] or "")
        if parent is not None and parent is not node:
            parent["children"].append(node)
        else:
            roots.append(node)
    return roots


class TraceStore:
    def __init__(self, engine: Engine, max_spans: int, max_bytes: int) -> None:
        self.engine = engine
        self.max_spans = max_spans
        self.max_bytes = max_bytes
        self.raw: deque[bytes] = deque()
        self.raw_bytes = 0
        # span id -> (span, its share of the frame's bytes), oldest first
        self.spans: OrderedDict[str, tuple[dict[str, Any], int]] = OrderedDict()
        self.span_bytes = 0
        self.dropped = 0
        self.watchers: dict[str, TriggerBinding] = {}
        self.own_traces: OrderedDict[str, None] = OrderedDict()  # trigger deliveries
        self._changed: set[str] = set()
        self._ticking = False
        for function_id, handler, about in (
            ("engine::traces::list", self.fn_list, "Root spans of stored traces"),
            ("engine::traces::tree", self.fn_tree, "One trace as a span tree"),
            ("engine::traces::clear", self.fn_clear, "Drop every stored span"),
        ):
            engine.add_builtin(function_id, handler, about)
        engine.add_provider("trace", self, "Stored spans changed (coalesced)")

    # -- intake (cheap) ----------------------------------------------------------------

    def frame(self, body: bytes) -> None:
        """An OTLP span frame from a worker: kept as is, decoded when read."""
        self.raw.append(body)
        self.raw_bytes += len(body)
        self._trim()
        if self.watchers:
            self._decode()
            self._tick()

    def record(self, span: dict[str, Any]) -> None:
        """A span the engine made itself (already in the stored shape)."""
        self._insert(span, 512)
        self._trim()
        if self.watchers:
            self._tick()

    def _insert(self, span: dict[str, Any], size: int) -> None:
        old = self.spans.pop(span["span_id"], None)
        if old is not None:
            self.span_bytes -= old[1]
        self.spans[span["span_id"]] = (span, size)
        self.span_bytes += size
        if self.watchers and span["trace_id"] not in self.own_traces:
            self._changed.add(span["trace_id"])

    def _trim(self) -> None:
        while self.spans and (
            len(self.spans) > self.max_spans
            or self.span_bytes + self.raw_bytes > self.max_bytes
        ):
            _, (_, size) = self.spans.popitem(last=False)
            self.span_bytes -= size
            self.dropped += 1
        while self.raw and self.raw_bytes > self.max_bytes:
            self.raw_bytes -= len(self.raw.popleft())
            self.dropped += 1

    def _decode(self) -> None:
        while self.raw:
            body = self.raw.popleft()
            self.raw_bytes -= len(body)
            try:
                spans = decode_frame(body)
            except (ValueError, TypeError, AttributeError, KeyError) as e:
                log.debug("undecodable span frame dropped: %s", e)
                continue
            share = len(body) // max(1, len(spans))
            for span in spans:
                self._insert(span, share)
        self._trim()

    def all(self) -> list[dict[str, Any]]:
        self._decode()
        return [span for span, _ in self.spans.values()]

    def function_of(self, span_id: str) -> str | None:
        """The function whose handler span is ``span_id`` or an ancestor of it."""
        self._decode()
        seen = 0
        while span_id and seen < 64:
            found = self.spans.get(span_id)
            if found is None:
                return None
            function_id = span_function(found[0])
            if function_id is not None:
                return function_id
            span_id = found[0]["parent_span_id"] or ""
            seen += 1
        return None

    # -- functions ---------------------------------------------------------------------

    @staticmethod
    def _opt(data: Any, name: str, kind: type | tuple[type, ...]) -> Any:
        value = data.get(name) if isinstance(data, dict) else None
        if value is not None and (
            (isinstance(value, bool) and kind is not bool)
            or not isinstance(value, kind)
        ):
            raise EngineError("INVALID_ARGUMENTS", f"`{name}` has the wrong type")
        return value

    def _storage(self) -> dict[str, Any]:
        return {"kind": "memory", "complete": self.dropped == 0}

    async def fn_list(self, data: Any, ctx: CallContext) -> Any:
        spans = self.all()
        present = {s["span_id"] for s in spans}
        if not self._opt(data, "search_all_spans", bool):
            spans = [s for s in spans if (s["parent_span_id"] or "") not in present]
        if not self._opt(data, "include_internal", bool):
            spans = [s for s in spans if not _internal(s)]
        trace_id = self._opt(data, "trace_id", str)
        for field in ("service_name", "name", "status"):
            wanted = self._opt(data, field, str)
            if wanted is not None:
                spans = [s for s in spans if wanted.lower() in s[field].lower()]
        if trace_id is not None:
            spans = [s for s in spans if s["trace_id"] == trace_id]
        low = self._opt(data, "min_duration_ms", (int, float))
        high = self._opt(data, "max_duration_ms", (int, float))
        if low is not None:
            spans = [s for s in spans if duration_ms(s) >= low]
        if high is not None:
            spans = [s for s in spans if duration_ms(s) <= high]
        start, end = (self._opt(data, n, int) for n in ("start_time", "end_time"))
        if start is not None:
            spans = [s for s in spans if s["end_time_unix_nano"] >= start * 10**6]
        if end is not None:
            spans = [s for s in spans if s["start_time_unix_nano"] <= end * 10**6]
        for pair in self._opt(data, "attributes", list) or []:
            if isinstance(pair, list) and len(pair) == 2:
                spans = [s for s in spans if list(pair) in s["attributes"]]
        order = self._opt(data, "sort_by", str) or "start_time"
        keys: dict[str, Any] = {
            "duration": duration_ms,
            "duration_ms": duration_ms,
            "service_name": lambda s: s["service_name"],
            "name": lambda s: s["name"],
        }
        descending = (self._opt(data, "sort_order", str) or "asc").lower() == "desc"
        spans.sort(
            key=keys.get(order, lambda s: s["start_time_unix_nano"]), reverse=descending
        )
        offset = self._opt(data, "offset", int) or 0
        limit = self._opt(data, "limit", int)
        limit = 100 if limit is None else limit
        return {
            "spans": spans[offset : offset + limit],
            "total": len(spans),
            "offset": offset,
            "limit": limit,
            "storage": self._storage(),
        }

    async def fn_tree(self, data: Any, ctx: CallContext) -> Any:
        trace_id = self._opt(data, "trace_id", str)
        if not trace_id:
            raise EngineError("INVALID_ARGUMENTS", "`trace_id` is required")
        spans = [s for s in self.all() if s["trace_id"] == trace_id]
        return {"roots": build_tree(spans), "storage": self._storage()}

    async def fn_clear(self, data: Any, ctx: CallContext) -> Any:
        self.raw.clear()
        self.spans.clear()
        self.raw_bytes = self.span_bytes = self.dropped = 0
        return {"success": True}

    def health(self) -> dict[str, Any]:
        return {
            "status": "healthy",
            "details": {
                "stored_spans": len(self.spans),
                "undecoded_frames": len(self.raw),
                "hot_bytes": self.raw_bytes + self.span_bytes,
                "dropped": self.dropped,
            },
        }

    # -- the `trace` trigger type ----------------------------------------------------

    async def register(self, binding: TriggerBinding) -> None:
        config = binding.config if isinstance(binding.config, dict) else {}
        for name in ("service_name", "status"):
            if config.get(name) is not None and not isinstance(config[name], str):
                raise TriggerRegistrationFailed(
                    f"Failed to parse trigger config: `{name}` must be a string"
                )
        self.watchers[binding.id] = binding

    async def unregister(self, binding: TriggerBinding) -> None:
        self.watchers.pop(binding.id, None)

    def _tick(self) -> None:
        if self._changed and not self._ticking:
            self._ticking = True
            self.engine.spawn(self._fire(), name="trace-trigger")

    async def _fire(self) -> None:
        await asyncio.sleep(TICK_S)  # coalesce a burst into one call
        self._ticking = False
        self._decode()
        changed, self._changed = self._changed, set()
        spans = [s for s, _ in self.spans.values() if s["trace_id"] in changed]
        for binding in list(self.watchers.values()):
            config = binding.config if isinstance(binding.config, dict) else {}
            service, status = config.get("service_name"), config.get("status")
            hits = sorted(
                {
                    s["trace_id"]
                    for s in spans
                    if (service is None or s["service_name"].lower() == service.lower())
                    and (status is None or s["status"] == status.lower())
                }
            )
            if hits:
                self.engine.spawn(self._deliver(binding, hits), name="trace-deliver")

    async def _deliver(self, binding: TriggerBinding, trace_ids: list[str]) -> None:
        trace = secrets.token_hex(16)  # its own spans must not fire it again
        self.own_traces[trace] = None
        if len(self.own_traces) > 1000:
            self.own_traces.popitem(last=False)
        config = binding.config if isinstance(binding.config, dict) else {}
        condition = config.get("condition_function_id")
        try:
            await self.engine.fire(
                binding.function_id,
                {"trace_ids": trace_ids},
                condition=condition if isinstance(condition, str) else None,
                metadata=binding.metadata,
                namespace=binding.namespace,
                traceparent=f"00-{trace}-{secrets.token_hex(8)}-01",
            )
        except EngineError as e:
            log.warning("trace trigger -> %s failed: %s", binding.function_id, e)


class HttpSpan:
    """The engine's span for one HTTP request. Its handler is called with
    ``traceparent`` (a child of the caller's trace when it sent one), so the
    worker's spans hang under it."""

    def __init__(self, method: str, route: str, incoming: str | None) -> None:
        self.started_ns = time.time_ns()
        self.method, self.route = method, f"/{route.lstrip('/')}"
        trace = trace_id(incoming)
        self.parent = incoming[36:52] if trace is not None and incoming else None
        ids = random_bytes(24).hex()  # the pooled source: no system call each
        self.trace_id = trace or ids[:32]
        self.span_id = ids[32:]
        self.traceparent = f"00-{self.trace_id}-{self.span_id}-01"

    def finish(self, status_code: int, function_id: str) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_span_id": self.parent,
            "name": f"{self.method} {self.route}",
            "start_time_unix_nano": self.started_ns,
            "end_time_unix_nano": time.time_ns(),
            "status": "error" if status_code >= 500 else "ok",
            "attributes": [
                ["http.request.method", self.method],
                ["http.route", self.route],
                ["http.response.status_code", str(status_code)],
                ["iii.function.id", function_id],
            ],
            "service_name": SERVICE,
            "events": [],
            "links": [],
        }
