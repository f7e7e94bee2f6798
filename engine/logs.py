"""Worker logs: SDK ``Logger`` output arriving over ``/otel`` becomes structured
engine log lines that carry the function id, the last ``logs_max_count`` stay
queryable (``engine::logs::list``) and fire ``log`` triggers.
``engine::log::{info,warn,error,debug,trace}`` write to the same sink.

Which function logged: every invocation the engine delivers carries a
traceparent (a fresh trace when the caller had none), remembered as trace id ->
function id; when logs are read, the worker's handler spans (``call <fn>``,
kept undecoded by engine/traces.py until then) give the exact span's function.
``RecentLines`` keeps the engine's own last log lines (bounded) for the console.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from importlib import metadata
from typing import Any, ClassVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from eventlog.codec import loads

from .core import CallContext, Engine, TriggerBinding, now_ms
from .errors import EngineError, TriggerRegistrationFailed
from .traces import TraceStore, any_value, attributes

log = logging.getLogger("iiilog.worker-log")
SEVERITY = {"trace": 1, "debug": 5, "info": 9, "warn": 13, "error": 17}
_LEVELS = {
    1: logging.DEBUG,
    5: logging.DEBUG,
    9: logging.INFO,
    13: logging.WARNING,
    17: logging.ERROR,
}


def decode_logs(body: bytes) -> list[dict[str, Any]]:
    """An ExportLogsServiceRequest (OTLP/JSON) as flat log entries. Pure."""
    doc = loads(body)
    out = []
    for resource_logs in doc.get("resourceLogs", []) if isinstance(doc, dict) else []:
        resource = attributes(resource_logs.get("resource", {}).get("attributes"))
        for scope_logs in resource_logs.get("scopeLogs", []):
            scope = scope_logs.get("scope") or {}
            for rec in scope_logs.get("logRecords", []):
                attrs = attributes(rec.get("attributes"))
                number = int(rec.get("severityNumber") or 0)
                when = int(rec.get("timeUnixNano") or 0)
                entry = {
                    "timestamp_unix_nano": when,
                    "observed_timestamp_unix_nano": int(
                        rec.get("observedTimeUnixNano") or when
                    ),
                    "severity_number": number,
                    "severity_text": rec.get("severityText") or "",
                    "body": any_value(rec.get("body")),
                    "attributes": attrs,
                    "data": attrs.get("log.data"),  # iiilog: the Logger's data
                    "trace_id": rec.get("traceId") or attrs.get("trace_id"),
                    "span_id": rec.get("spanId") or attrs.get("span_id"),
                    "resource": {k: str(v) for k, v in resource.items()},
                    "service_name": attrs.get("service.name")
                    or resource.get("service.name")
                    or "",
                }
                if scope.get("name"):
                    entry["instrumentation_scope_name"] = scope["name"]
                if scope.get("version"):
                    entry["instrumentation_scope_version"] = scope["version"]
                out.append(entry)
    return out


class LogsConfig(BaseModel):
    """Module ``iii-observability``: iiilog keeps the last ``logs_max_count``
    log entries (its earlier name ``logs_max`` is accepted too) and always
    prints them as engine log lines, and keeps spans in memory within
    ``memory_max_spans`` and ``traces_max_bytes``; iii's exporters, sampling,
    metrics and alerts are not implemented."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    # iii settings this module does not implement: accepted, warned about.
    iii_unimplemented: ClassVar[frozenset[str]] = frozenset(
        {
            "enabled",
            "service_name",
            "service_version",
            "service_namespace",
            "exporter",
            "endpoint",
            "sampling_ratio",
            "sampling",
            "trace_storage",
            "live_spans",
            "metrics_enabled",
            "metrics_exporter",
            "metrics_retention_seconds",
            "metrics_max_count",
            "logs_enabled",
            "logs_exporter",
            "logs_retention_seconds",
            "logs_batch_size",
            "logs_flush_interval_ms",
            "logs_sampling_ratio",
            "logs_console_output",
            "alerts",
            "level",
            "format",
            "collapse_spans",
        }
    )

    logs_max: int = Field(
        1000, ge=1, validation_alias=AliasChoices("logs_max_count", "logs_max")
    )
    memory_max_spans: int = Field(
        10_000,
        ge=1,
        validation_alias=AliasChoices("memory_max_spans", "traces_max_spans"),
    )
    traces_max_bytes: int = Field(16 * 1024 * 1024, ge=1024)  # iiilog


def _severity_at_least(entry: dict[str, Any], level: str | None) -> bool:
    return level in (None, "all") or entry["severity_number"] >= SEVERITY.get(
        str(level), 1
    )


class LogSink:
    def __init__(self, engine: Engine, config: LogsConfig | None = None) -> None:
        self.engine = engine
        self.config = config or LogsConfig()
        self.entries: deque[dict[str, Any]] = deque(maxlen=self.config.logs_max)
        self.by_trace: OrderedDict[str, str] = OrderedDict()
        self.traces = TraceStore(
            engine, self.config.memory_max_spans, self.config.traces_max_bytes
        )
        self.watchers: dict[str, TriggerBinding] = {}
        engine.trace_listeners.append(self.invocation)
        for level in SEVERITY:
            engine.add_builtin(f"engine::log::{level}", self._log_fn(level))
        for function_id, handler, about in (
            ("engine::logs::list", self.list_logs, "Stored log entries"),
            ("engine::logs::clear", self.clear_logs, "Drop every stored log entry"),
            ("engine::health::check", self.health, "Observability health"),
        ):
            engine.add_builtin(function_id, handler, about)
        engine.add_provider("log", self, "A log entry was stored")

    def resize(self, config: LogsConfig) -> None:
        """Apply changed limits live (oldest entries and spans go first)."""
        self.config = config
        if config.logs_max != self.entries.maxlen:
            self.entries = deque(self.entries, maxlen=config.logs_max)
        self.traces.max_spans = config.memory_max_spans
        self.traces.max_bytes = config.traces_max_bytes
        self.traces._trim()

    def invocation(self, trace_id: str, function_id: str) -> None:
        """The engine delivered a call to ``function_id`` under ``trace_id``."""
        if trace_id in self.by_trace:
            return
        self.by_trace[trace_id] = function_id
        if len(self.by_trace) > 20_000:
            self.by_trace.popitem(last=False)

    def frame(self, frame: bytes, worker_id: str | None) -> None:
        """One binary ``/otel`` frame: ``OTLP`` spans stored as they came,
        ``LOGS`` decoded, ``MTRC`` ignored."""
        kind, body = frame[:4], frame[4:]
        if kind == b"OTLP":
            self.traces.frame(body)
            return
        if kind != b"LOGS":
            return
        try:
            for entry in decode_logs(body):
                self.add(entry, worker_id)
        except (ValueError, TypeError, AttributeError, KeyError) as e:
            log.debug("undecodable /otel frame dropped: %s", e)

    def add(self, entry: dict[str, Any], worker_id: str | None) -> None:
        function_id = entry.get("function_id") or self.by_trace.get(
            entry.get("trace_id") or ""
        )
        entry = {**entry, "function_id": function_id, "worker_id": worker_id}
        self.entries.append(entry)
        bucket = (max(entry["severity_number"], 1) - 1) // 4 * 4 + 1
        level = _LEVELS.get(bucket, logging.ERROR if bucket > 17 else logging.INFO)
        data = f" data={entry['data']!r}" if entry.get("data") is not None else ""
        log.log(level, "[%s] %s%s", function_id or "-", entry["body"], data)
        for binding in list(self.watchers.values()):
            config = binding.config if isinstance(binding.config, dict) else {}
            wanted = config.get("level")
            if wanted is None or SEVERITY.get(str(wanted)) == bucket:
                self.engine.spawn(self._deliver(binding, entry), name="log-trigger")

    async def _deliver(self, binding: TriggerBinding, entry: dict[str, Any]) -> None:
        config = binding.config if isinstance(binding.config, dict) else {}
        condition = config.get("condition_function_id")
        try:
            await self.engine.fire(
                binding.function_id,
                entry,
                condition=condition if isinstance(condition, str) else None,
                metadata=binding.metadata,
                namespace=binding.namespace,
            )
        except EngineError as e:
            log.debug("log trigger -> %s failed: %s", binding.function_id, e)

    # -- the `log` trigger type ------------------------------------------------------

    async def register(self, binding: TriggerBinding) -> None:
        config = binding.config if isinstance(binding.config, dict) else {}
        level = config.get("level")
        if level is not None and level != "all" and level not in SEVERITY:
            raise TriggerRegistrationFailed(
                "Failed to parse trigger config: `level` must be one of"
                " info, warn, error, debug, trace"
            )
        self.watchers[binding.id] = binding

    async def unregister(self, binding: TriggerBinding) -> None:
        self.watchers.pop(binding.id, None)

    # -- functions -------------------------------------------------------------------

    def _log_fn(self, level: str) -> Any:
        async def handler(data: Any, ctx: CallContext) -> Any:
            if not isinstance(data, dict) or not isinstance(data.get("message"), str):
                raise EngineError("INVALID_ARGUMENTS", "`message` is required")
            when = now_ms() * 1_000_000
            extra = data.get("data")
            self.add(
                {
                    "timestamp_unix_nano": when,
                    "observed_timestamp_unix_nano": when,
                    "severity_number": SEVERITY[level],
                    "severity_text": level.upper(),
                    "body": data["message"],
                    "attributes": {} if extra is None else {"log.data": extra},
                    "data": extra,
                    "trace_id": data.get("trace_id"),
                    "span_id": data.get("span_id"),
                    "resource": {},
                    "service_name": data.get("service_name") or "",
                    "function_id": None,
                },
                ctx.caller.id if ctx.caller else None,
            )
            return None

        return handler

    def _exact_function(self, entry: dict[str, Any]) -> None:
        """Name the function by the span the entry was logged in, when that
        span (or an ancestor) is a stored handler span."""
        span_id = entry.get("span_id")
        if span_id and not entry.get("exact_function"):
            found = self.traces.function_of(span_id)
            if found is not None:
                entry["function_id"], entry["exact_function"] = found, True

    async def list_logs(self, data: Any, ctx: CallContext) -> Any:
        opts = data if isinstance(data, dict) else {}
        limit = opts.get("limit", 100)
        offset = opts.get("offset", 0)
        for name, value in (("limit", limit), ("offset", offset)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise EngineError(
                    "INVALID_ARGUMENTS", f"`{name}` must be a non-negative integer"
                )
        for entry in self.entries:
            self._exact_function(entry)
        function_id = opts.get("function_id")
        minimum = opts.get("severity_min")
        text = opts.get("severity_text")
        start, end = opts.get("start_time"), opts.get("end_time")
        entries = [
            e
            for e in self.entries
            if (function_id is None or e["function_id"] == function_id)
            and _severity_at_least(e, opts.get("level"))
            and (minimum is None or e["severity_number"] >= minimum)
            and (text is None or str(e["severity_text"]).lower() == str(text).lower())
            and (opts.get("trace_id") is None or e["trace_id"] == opts["trace_id"])
            and (opts.get("span_id") is None or e["span_id"] == opts["span_id"])
            and (start is None or e["timestamp_unix_nano"] >= start * 10**6)
            and (end is None or e["timestamp_unix_nano"] <= end * 10**6)
        ]
        # the newest `limit` after skipping the `offset` newest, oldest first
        stop = len(entries) - offset
        page = entries[max(0, stop - limit) : max(0, stop)]
        return {"logs": page, "total": len(entries), "timestamp": now_ms()}

    async def clear_logs(self, data: Any, ctx: CallContext) -> Any:
        self.entries.clear()
        return {"success": True}

    async def health(self, data: Any, ctx: CallContext) -> Any:
        disabled = {"status": "disabled", "details": None}
        return {
            "status": "healthy",
            "components": {
                "otel": disabled,  # iiilog exports nothing over OTLP
                "metrics": disabled,
                "logs": {
                    "status": "healthy",
                    "details": {"stored_logs": len(self.entries)},
                },
                "spans": self.traces.health(),
                "log": {  # iiilog: the event log itself
                    "status": "healthy",
                    "details": {
                        "head": self.engine.tail.head,
                        "location": self.engine.store.location,
                    },
                },
            },
            "timestamp": now_ms(),
            "version": _version(),
        }


def _version() -> str:
    try:
        return metadata.version("iiilog")
    except metadata.PackageNotFoundError:
        return "unknown"


_FORMATTER = logging.Formatter()


class RecentLines(logging.Handler):
    """The engine's own last ``capacity`` log lines, oldest first. Worker log
    entries are left out (``LogSink`` keeps those, with their fields). One
    append per line; formatting an exception only when a line carries one."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.lines: deque[dict[str, Any]] = deque(maxlen=capacity)

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == log.name:
            return
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a bad format string: keep the raw text
            message = str(record.msg)
        if record.exc_info:
            message = f"{message}\n{_FORMATTER.formatException(record.exc_info)}"
        self.lines.append(
            {
                "ts_ms": int(record.created * 1000),
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": message,
            }
        )
