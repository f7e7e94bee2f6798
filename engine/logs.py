"""Worker logs: SDK ``Logger`` output arriving over ``/otel`` becomes structured
engine log lines that carry the function id, and the last N stay queryable
(``engine::logs::list``). ``engine::log::{info,warn,error,debug,trace}`` write to
the same sink.

Which function logged: every invocation the engine delivers carries a
traceparent (a fresh trace when the caller had none), remembered as trace id ->
function id; the worker's handler spans, exported on ``/otel`` as
``call <fn>`` / ``execute <fn>``, then give the exact span -> function map.
Decoding the OTLP/JSON bodies is pure (``decode_logs``, ``decode_spans``).
``RecentLines`` keeps the engine's own last log lines (bounded) for the console.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from typing import Any, ClassVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from eventlog.codec import loads

from .core import CallContext, Engine, now_ms
from .errors import EngineError

log = logging.getLogger("iiilog.worker-log")
SEVERITY = {"trace": 1, "debug": 5, "info": 9, "warn": 13, "error": 17}
_LEVELS = {
    1: logging.DEBUG,
    5: logging.DEBUG,
    9: logging.INFO,
    13: logging.WARNING,
    17: logging.ERROR,
}


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
    if not isinstance(items, list):
        return {}
    return {
        i["key"]: any_value(i.get("value"))
        for i in items
        if isinstance(i, dict) and "key" in i
    }


def decode_logs(body: bytes) -> list[dict[str, Any]]:
    """An ExportLogsServiceRequest (OTLP/JSON) as flat log entries. Pure."""
    doc = loads(body)
    out = []
    for resource_logs in doc.get("resourceLogs", []) if isinstance(doc, dict) else []:
        resource = attributes(resource_logs.get("resource", {}).get("attributes"))
        for scope_logs in resource_logs.get("scopeLogs", []):
            for rec in scope_logs.get("logRecords", []):
                attrs = attributes(rec.get("attributes"))
                number = int(rec.get("severityNumber") or 0)
                out.append(
                    {
                        "timestamp_unix_nano": int(rec.get("timeUnixNano") or 0),
                        "severity_number": number,
                        "severity_text": rec.get("severityText") or "",
                        "body": any_value(rec.get("body")),
                        "data": attrs.pop("log.data", None),
                        "attributes": attrs,
                        "trace_id": rec.get("traceId") or attrs.get("trace_id"),
                        "span_id": rec.get("spanId") or attrs.get("span_id"),
                        "service_name": attrs.get("service.name")
                        or resource.get("service.name"),
                    }
                )
    return out


def decode_spans(body: bytes) -> list[tuple[str, str, str]]:
    """(trace id, span id, function id) of the handler spans in an
    ExportTraceServiceRequest. Pure."""
    doc = loads(body)
    out = []
    for resource_spans in doc.get("resourceSpans", []) if isinstance(doc, dict) else []:
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                name = str(span.get("name") or "")
                for prefix in ("call ", "execute "):
                    if name.startswith(prefix):
                        out.append(
                            (
                                span.get("traceId", ""),
                                span.get("spanId", ""),
                                name[len(prefix) :],
                            )
                        )
    return out


class LogsConfig(BaseModel):
    """Module ``iii-observability``: iiilog keeps the last ``logs_max`` log
    entries (iii's name ``logs_max_count`` is accepted too) and always prints
    them as engine log lines; iii's exporters, sampling, metrics, alerts and
    trace storage are not implemented."""

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
            "memory_max_spans",
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
        1000, ge=1, validation_alias=AliasChoices("logs_max", "logs_max_count")
    )


class LogSink:
    def __init__(self, engine: Engine, config: LogsConfig | None = None) -> None:
        self.engine = engine
        self.config = config or LogsConfig()
        self.entries: deque[dict[str, Any]] = deque(maxlen=self.config.logs_max)
        self.by_trace: OrderedDict[str, str] = OrderedDict()
        self.by_span: OrderedDict[str, str] = OrderedDict()
        engine.trace_listeners.append(self.invocation)
        for level in SEVERITY:
            engine.add_builtin(f"engine::log::{level}", self._log_fn(level))
        engine.add_builtin(
            "engine::logs::list",
            self.list_logs,
            "The last worker and engine log entries",
        )

    @staticmethod
    def _remember(index: OrderedDict[str, str], key: str, value: str) -> None:
        if key in index:
            return
        index[key] = value
        if len(index) > 20_000:
            index.popitem(last=False)

    def invocation(self, trace_id: str, function_id: str) -> None:
        """The engine delivered a call to ``function_id`` under ``trace_id``."""
        self._remember(self.by_trace, trace_id, function_id)

    def frame(self, frame: bytes, worker_id: str | None) -> None:
        """One binary ``/otel`` frame: ``LOGS``/``OTLP`` decoded, ``MTRC`` ignored."""
        kind, body = frame[:4], frame[4:]
        try:
            if kind == b"OTLP":
                for trace_id, span_id, function_id in decode_spans(body):
                    self._remember(self.by_span, span_id, function_id)
                    self._remember(self.by_trace, trace_id, function_id)
                    for entry in self.entries:  # late spans fill in earlier logs
                        if entry["span_id"] == span_id:
                            entry["function_id"] = function_id
            elif kind == b"LOGS":
                for entry in decode_logs(body):
                    self.add(entry, worker_id)
        except (ValueError, TypeError, AttributeError, KeyError) as e:
            log.debug("undecodable /otel frame dropped: %s", e)

    def add(self, entry: dict[str, Any], worker_id: str | None) -> None:
        function_id = (
            entry.get("function_id")
            or self.by_span.get(entry.get("span_id") or "")
            or self.by_trace.get(entry.get("trace_id") or "")
        )
        entry = {**entry, "function_id": function_id, "worker_id": worker_id}
        self.entries.append(entry)
        bucket = (max(entry["severity_number"], 1) - 1) // 4 * 4 + 1
        level = _LEVELS.get(bucket, logging.ERROR if bucket > 17 else logging.INFO)
        data = f" data={entry['data']!r}" if entry.get("data") is not None else ""
        log.log(level, "[%s] %s%s", function_id or "-", entry["body"], data)

    def _log_fn(self, level: str) -> Any:
        async def handler(data: Any, ctx: CallContext) -> Any:
            if not isinstance(data, dict) or not isinstance(data.get("message"), str):
                raise EngineError("INVALID_ARGUMENTS", "`message` is required")
            self.add(
                {
                    "timestamp_unix_nano": now_ms() * 1_000_000,
                    "severity_number": SEVERITY[level],
                    "severity_text": level.upper(),
                    "body": data["message"],
                    "data": data.get("data"),
                    "attributes": {},
                    "trace_id": data.get("trace_id"),
                    "span_id": data.get("span_id"),
                    "service_name": data.get("service_name"),
                    "function_id": None,
                },
                ctx.caller.id if ctx.caller else None,
            )
            return None

        return handler

    async def list_logs(self, data: Any, ctx: CallContext) -> Any:
        opts = data if isinstance(data, dict) else {}
        limit = opts.get("limit", 100)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise EngineError("INVALID_ARGUMENTS", "`limit` must be a positive integer")
        function_id = opts.get("function_id")
        minimum = SEVERITY.get(str(opts.get("level", "trace")), 1)
        entries = [
            e
            for e in self.entries
            if (function_id is None or e["function_id"] == function_id)
            and e["severity_number"] >= minimum
        ]
        return {"logs": entries[-limit:]}


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
