"""Observe rules: what an observer is, the checks it must pass, what it sends.

Pure. An ``observe`` request becomes an ``ObserverSpec`` with every default
applied and its filters parsed, or an ``ObserveError`` carrying the protocol's
code; ``check_source`` holds a spec against the observed function's descriptor
(``registerfunction.observe``); an observed invocation (``Event``) becomes the
payload an activation hands the target. docs/observe.md states each rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jsonschema

from .filters import MATCH_ALL, Filter, FilterError, parse_filter

CAPTURE_PARTS = ("input", "output", "error", "caller", "metadata")
DEFAULT_CAPTURE = ("input", "output", "caller")
ON = ("success", "error", "complete")
DELIVER = ("envelope", "input", "output")
MAX_OBSERVE_DEPTH = 8  # an activation one level deeper is dropped (LOOP_GUARD)
DEFAULT_MAX_IN_FLIGHT = 64
MAX_IN_FLIGHT = 10_000
QUEUE_LIMIT = 10_000  # activations waiting for a slot, per observer
GRACE_MS = 30_000  # how long an observer outlives its observing worker
ENGINE_WORKER_NAME = "iii-engine"  # the caller of an activation
_CALLER_FIELDS = ("worker_id", "worker_name", "function_id", "invocation_id")

FnKey = tuple[str, str]  # (namespace, function id)


class ObserveError(Exception):
    """A refused observer, with the protocol's code (``INVALID_FILTER``, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def body(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True, slots=True)
class Descriptor:
    """``registerfunction.observe``: how a function is observed."""

    delivery: str = "auto"  # or "owner": the handler emits events itself
    args_format: Any = None  # owner only: JSON Schema of the observers' args
    legacy_trigger_type: str | None = None
    allow: bool = True

    @classmethod
    def parse(cls, raw: Any) -> Descriptor:
        """Lenient, like every optional field: what is malformed is default."""
        if not isinstance(raw, dict):
            return PLAIN
        delivery = raw.get("delivery")
        legacy = raw.get("legacy_trigger_type")
        return cls(
            delivery="owner" if delivery == "owner" else "auto",
            args_format=raw.get("args_format"),
            legacy_trigger_type=legacy if isinstance(legacy, str) and legacy else None,
            allow=raw.get("allow") is not False,
        )


PLAIN = Descriptor()  # a function registered without a descriptor


@dataclass(frozen=True, slots=True)
class ObserverSpec:
    """An observer as asked for, defaults applied. Two specs with the same id
    and ``definition`` are the same observer (a replay)."""

    id: str
    source: FnKey
    target: FnKey
    args: dict[str, Any] = field(default_factory=dict)
    filter: Filter = MATCH_ALL
    capture: tuple[str, ...] = DEFAULT_CAPTURE
    on: str = "success"
    deliver: str = "envelope"
    metadata: Any = None
    max_fires: int | None = None
    expires_in_ms: int | None = None
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    legacy: dict[str, Any] | None = None  # {trigger_type, config}: the shim's

    def definition(self) -> tuple[Any, ...]:
        return (
            self.source,
            self.target,
            self.args,
            self.filter.normal,
            self.capture,
            self.on,
            self.deliver,
            self.metadata,
            self.max_fires,
            self.expires_in_ms,
            self.max_in_flight,
            self.legacy,
        )

    def info(self) -> dict[str, Any]:
        """``ObserverInfo``, what the function's owner sees: never the
        observer's metadata, policy or worker."""
        out: dict[str, Any] = {
            "id": self.id,
            "args": self.args,
            "filters": self.filter.normal,
            "target": self.target[1],
            "capture": list(self.capture),
            "on": self.on,
        }
        if self.legacy is not None:
            out["legacy"] = self.legacy
        return out


def resolve_namespace(explicit: Any, function_id: str, home: str) -> str:
    """An unqualified id lives in the observing worker's namespace, except
    the engine's own ``engine::*`` functions, which live in ``default``."""
    if isinstance(explicit, str) and explicit:
        return explicit
    return "default" if function_id.startswith("engine::") else home


def _positive(name: str, value: Any, upper: int | None = None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ObserveError("INVALID_ARGUMENTS", f"{name} must be a positive integer")
    if upper is not None and value > upper:
        raise ObserveError("INVALID_ARGUMENTS", f"{name} must be at most {upper}")
    return value


def _choice(name: str, value: Any, allowed: tuple[str, ...], default: str) -> str:
    if value is None:
        return default
    if value not in allowed:
        raise ObserveError(
            "INVALID_ARGUMENTS", f"{name} must be one of {', '.join(allowed)}"
        )
    return str(value)


def _capture(value: Any, deliver: str) -> tuple[str, ...]:
    if value is None:
        parts = list(DEFAULT_CAPTURE)
    elif isinstance(value, list) and all(p in CAPTURE_PARTS for p in value):
        parts = list(value)
    else:
        raise ObserveError(
            "INVALID_ARGUMENTS",
            f"capture must be a list of {', '.join(CAPTURE_PARTS)}",
        )
    if deliver in ("input", "output"):
        parts.append(deliver)  # what is delivered has to travel
    return tuple(p for p in CAPTURE_PARTS if p in parts)


def parse_observe(
    observer_id: str,
    source: Any,
    target: Any,
    *,
    home: str,
    metadata: Any = None,
    max_fires: Any = None,
    expires_in_ms: Any = None,
    max_in_flight: Any = None,
) -> ObserverSpec:
    """The spec of an ``observe`` message from a worker in namespace ``home``."""
    if not observer_id:
        raise ObserveError("INVALID_ARGUMENTS", "id must be a non-empty string")
    if not isinstance(source, dict) or not _text(source.get("function_id")):
        raise ObserveError("INVALID_ARGUMENTS", "source.function_id is required")
    if not isinstance(target, dict) or not _text(target.get("function_id")):
        raise ObserveError("INVALID_ARGUMENTS", "target.function_id is required")
    src_id, dst_id = source["function_id"], target["function_id"]
    args = source.get("args")
    if args is None:
        args = {}
    elif not isinstance(args, dict):
        raise ObserveError("INVALID_ARGS", "source.args must be an object")
    try:
        flt = parse_filter(source.get("filters"))
    except FilterError as e:
        raise ObserveError(e.code, str(e)) from None
    deliver = _choice("source.deliver", source.get("deliver"), DELIVER, "envelope")
    spec = ObserverSpec(
        id=observer_id,
        source=(resolve_namespace(source.get("namespace"), src_id, home), src_id),
        target=(resolve_namespace(target.get("namespace"), dst_id, home), dst_id),
        args=args,
        filter=flt,
        capture=_capture(source.get("capture"), deliver),
        on=_choice("source.on", source.get("on"), ON, "success"),
        deliver=deliver,
        metadata=metadata,
        max_fires=_positive("max_fires", max_fires),
        expires_in_ms=_positive("expires_in_ms", expires_in_ms),
        max_in_flight=_positive("max_in_flight", max_in_flight, MAX_IN_FLIGHT)
        or DEFAULT_MAX_IN_FLIGHT,
    )
    if spec.source == spec.target:
        raise ObserveError("SELF_TARGET", f"{src_id} cannot be its own target")
    return spec


def legacy_spec(
    binding_id: str,
    trigger_type: str,
    source: FnKey,
    target: FnKey,
    config: Any,
    metadata: Any,
) -> ObserverSpec:
    """The observer the legacy shim makes of ``registertrigger``: the config
    is the args, the target receives what the owner emits (``deliver:
    input``), and the binding's metadata rides along."""
    return ObserverSpec(
        id=binding_id,
        source=source,
        target=target,
        args=config if isinstance(config, dict) else {},
        capture=("input",),
        deliver="input",
        metadata=metadata,
        legacy={"trigger_type": trigger_type, "config": config},
    )


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def check_source(spec: ObserverSpec, descriptor: Descriptor) -> None:
    """Can ``spec`` observe a function with ``descriptor``? Raises
    ``NOT_OBSERVABLE`` or ``INVALID_ARGS``."""
    name = spec.source[1]
    if not descriptor.allow:
        raise ObserveError("NOT_OBSERVABLE", f"{name} does not allow observers")
    if descriptor.delivery != "owner":
        if spec.args:
            raise ObserveError(
                "INVALID_ARGS",
                f"{name} is auto-delivered: its observers take no args",
            )
        return
    if descriptor.args_format is None:
        return
    try:
        jsonschema.validate(spec.args, descriptor.args_format)
    except jsonschema.ValidationError as e:
        where = "/".join(str(p) for p in e.absolute_path) or "args"
        raise ObserveError("INVALID_ARGS", f"{where}: {e.message}") from None
    except jsonschema.SchemaError as e:
        raise ObserveError(
            "INVALID_ARGS", f"{name} has an invalid args_format: {e.message}"
        ) from None


# -- observed invocations --------------------------------------------------------


@dataclass(slots=True)
class Event:
    """One observed invocation (or an event an owner emitted). ``parts`` holds
    what is known of ``input``, ``output``, ``error``, ``caller`` and
    ``metadata``; a missing key is an absent part, ``None`` is null."""

    function_id: str
    namespace: str
    invocation_id: str
    status: str  # "success" or "error"
    parts: dict[str, Any]
    started_at_ms: int
    duration_ms: float
    observe_depth: int = 0

    def accepted_by(self, spec: ObserverSpec) -> bool:
        """Does an auto observer want it: ``on``, then the filters."""
        if spec.on != "complete" and spec.on != self.status:
            return False
        return spec.filter.match_all or spec.filter.matches(self.parts)


def payload(spec: ObserverSpec, event: Event, activation_id: str) -> Any:
    """What the target receives: the envelope, or the input / output alone."""
    if spec.deliver != "envelope":
        return event.parts.get(spec.deliver)
    out: dict[str, Any] = {
        "observer_id": spec.id,
        "activation_id": activation_id,
        "function_id": event.function_id,
        "namespace": event.namespace,
        "invocation_id": event.invocation_id,
        "status": event.status,
    }
    for part in spec.capture:
        if part in event.parts:
            out[part] = event.parts[part]
    out["started_at_ms"] = event.started_at_ms
    out["duration_ms"] = event.duration_ms
    return out


def clean_caller(raw: Any, *, nested: bool = True) -> dict[str, Any] | None:
    """A caller as a worker asserts it: string fields only, ``parent`` one
    level deep; None when it is not an object."""
    if not isinstance(raw, dict):
        return None
    out = {k: raw[k] for k in _CALLER_FIELDS if isinstance(raw.get(k), str)}
    if nested:
        parent = clean_caller(raw.get("parent"), nested=False)
        if parent:
            out["parent"] = parent
    return out


def stamp_caller(
    worker_id: str | None, worker_name: str | None, asserted: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Who started an invocation: the calling connection (stamped by the
    engine, never taken from the worker), then the handler it was made from."""
    if worker_id is None and asserted is None:
        return None
    out: dict[str, Any] = {}
    if worker_id is not None:
        out["worker_id"] = worker_id
        if worker_name:
            out["worker_name"] = worker_name
    else:
        out["worker_name"] = ENGINE_WORKER_NAME
    if asserted:
        for key in ("function_id", "invocation_id", "parent"):
            if key in asserted:
                out[key] = asserted[key]
    return out


def activation_caller(event: Event) -> dict[str, Any]:
    """An activation's caller: the engine, on behalf of the observed
    invocation, whose own caller is the parent."""
    out: dict[str, Any] = {
        "worker_name": ENGINE_WORKER_NAME,
        "function_id": event.function_id,
        "invocation_id": event.invocation_id,
    }
    parent = clean_caller(event.parts.get("caller"), nested=False)
    if parent:
        out["parent"] = parent
    return out


def observed_item(
    function_id: str,
    namespace: str | None,
    invocation_id: str,
    status: str,
    parts: dict[str, Any],
    started_at_ms: float,
    duration_ms: float,
    observe_depth: int,
) -> Event:
    """An ``invocationsobserved`` item as an ``Event``."""
    caller = clean_caller(parts.get("caller"))
    if caller is None:
        parts.pop("caller", None)
    else:
        parts["caller"] = caller
    return Event(
        function_id,
        namespace or "default",
        invocation_id,
        "error" if status == "error" else "success",
        parts,
        int(started_at_ms),
        float(duration_ms),
        max(0, observe_depth),
    )
