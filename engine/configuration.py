"""The configuration registry (``configuration::*`` and the ``configuration``
trigger type), on the log.

Every change is a ``config.register``/``config.set``/``config.delete`` record
whose value carries the whole entry, the event type and the old and new value:
the registry is the fold of those records (rebuilt at start), a change is
replayable, ``configuration::get`` can read an entry as of any offset, and a
``configuration`` trigger is a durable subscription over the records. The
engine's own modules register entries too (``http``, ``queue``, ...), checked
by their config model and applied live where the module can (api/live_config.py).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from eventlog import Mutation, Origin, Outcome, Record

from .config_schema import violations
from .core import CallContext, Engine, TriggerBinding
from .durable import DurableTriggers
from .errors import EngineError, TriggerRegistrationFailed, trigger_condition

log = logging.getLogger("iiilog.configuration")
KINDS = ("config.register", "config.set", "config.delete")
EVENTS = (
    "configuration:registered",
    "configuration:updated",
    "configuration:deleted",
)
_ID = re.compile(r"^[a-z0-9_-]{1,64}$")
_VAR = re.compile(r"\$\{([^}:]+)(?::([^}]*))?\}")


@dataclass
class Entry:
    id: str
    name: str = ""
    description: str = ""
    schema: Any = None
    value: Any = None
    metadata: Any = None

    def public(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "value"}
        if self.metadata is None:
            out.pop("metadata")
        return out


def expand(value: Any, env: dict[str, str] | None = None) -> Any:
    """``${VAR:default}`` in string fields, against the environment now. A
    field that is one placeholder becomes a number or boolean when it reads as
    one. Pure given ``env``."""
    env = dict(os.environ) if env is None else env
    if isinstance(value, dict):
        return {k: expand(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, env) for v in value]
    if not isinstance(value, str) or "${" not in value:
        return value

    def repl(m: re.Match[str]) -> str:
        return env.get(m.group(1), m.group(2) or "")

    text = _VAR.sub(repl, value)
    if _VAR.fullmatch(value):
        try:
            scalar = json.loads(text)
        except ValueError:
            return text
        if isinstance(scalar, bool | int | float):
            return scalar
    return text


def fold(records: list[Record], until: int | None = None) -> dict[str, Entry]:
    """The registry as of offset ``until`` (all records: None). Pure."""
    entries: dict[str, Entry] = {}
    for record in records:
        if until is not None and record.offset > until:
            break
        info = record.new_value if isinstance(record.new_value, dict) else {}
        if record.kind == "config.delete":
            entries.pop(record.key or "", None)
        elif isinstance(info.get("entry"), dict):
            entries[record.key or ""] = Entry(**info["entry"])
    return entries


@dataclass
class Module:
    """An engine module's entry: checked by its config model, applied live."""

    check: Callable[[Any], Any]  # value -> parsed config; raises ValueError
    apply: Callable[[Any], None] | None = None


class Configuration:
    def __init__(self, engine: Engine, durable: DurableTriggers) -> None:
        self.engine = engine
        self.durable = durable
        self.entries: dict[str, Entry] = {}
        self.modules: dict[str, Module] = {}
        # The fs side (api/live_config.py): writes <id>.yaml after a change.
        self.persist: Callable[[Entry], None] | None = None
        for name, handler in (
            ("register", self.fn_register),
            ("set", self.fn_set),
            ("get", self.fn_get),
            ("list", self.fn_list),
            ("schema", self.fn_schema),
        ):
            engine.add_builtin(f"configuration::{name}", handler)
        engine.add_provider("configuration", self, "A configuration entry changed")

    async def start(self) -> None:
        self.entries = fold(await self.engine.store.read_kinds(KINDS))

    # -- changes ---------------------------------------------------------------------

    async def _record(
        self, kind: str, entry: Entry, event: str, old: Any, source: str
    ) -> None:
        value = {
            "event_type": event,
            "entry": asdict(entry),
            "old_value": old,
            "new_value": None if kind == "config.delete" else entry.value,
            "source": source,
        }
        await self.engine.writer.submit(
            Mutation(
                kind,  # type: ignore[arg-type]
                "configuration",
                None,
                entry.id,
                lambda _e, _o: Outcome(True, value, touches_view=False),
                Origin(function_id=f"configuration::{source}"),
            )
        )
        if kind == "config.delete":
            self.entries.pop(entry.id, None)
        else:
            self.entries[entry.id] = entry

    def check(self, entry_id: str, schema: Any, value: Any) -> Any:
        """The value as its module parses it, or as its schema allows it;
        raises ``SCHEMA_INVALID`` listing what is wrong."""
        module = self.modules.get(entry_id)
        if module is not None:
            try:
                return module.check(expand(value))
            except ValueError as e:
                raise EngineError("SCHEMA_INVALID", str(e)) from None
        problems = violations(schema, expand(value))
        if problems:
            raise EngineError("SCHEMA_INVALID", "; ".join(problems))
        return value

    async def register_entry(self, entry: Entry, initial: bool, source: str) -> Entry:
        if not _ID.match(entry.id):
            raise EngineError(
                "INVALID_ID", f"id '{entry.id}' must match [a-z0-9_-]{{1,64}}"
            )
        current = self.entries.get(entry.id)
        if not initial and current is not None:
            entry.value = current.value
        if initial or current is None:
            self.check(entry.id, entry.schema, entry.value)
        if current is not None and asdict(current) == asdict(entry):
            return current  # nothing changed: no record, no event
        event = EVENTS[0] if current is None else EVENTS[1]
        old = None if current is None else current.value
        await self._record("config.register", entry, event, old, source)
        self._persist(entry)
        return entry

    async def set(self, entry_id: str, value: Any, source: str) -> tuple[Any, Any]:
        current = self.entries.get(entry_id)
        if current is None:
            raise EngineError(
                "NOT_REGISTERED", f"configuration '{entry_id}' is not registered"
            )
        if current.schema is None and entry_id not in self.modules:
            raise EngineError(
                "SCHEMA_UNAVAILABLE", f"no schema is known for '{entry_id}'"
            )
        parsed = self.check(entry_id, current.schema, value)
        old = current.value
        if old == value:
            return old, value
        entry = Entry(**{**asdict(current), "value": value})
        await self._record("config.set", entry, EVENTS[1], old, source)
        module = self.modules.get(entry_id)
        if module is not None and module.apply is not None:
            module.apply(parsed)
        if source != "file":
            self._persist(entry)
        return old, value

    async def delete(self, entry_id: str, source: str) -> None:
        current = self.entries.get(entry_id)
        if current is not None:
            await self._record(
                "config.delete", current, EVENTS[2], current.value, source
            )

    def _persist(self, entry: Entry) -> None:
        if self.persist is not None:
            try:
                self.persist(entry)
            except OSError as e:
                log.warning("configuration %s: file not written: %s", entry.id, e)

    # -- functions -------------------------------------------------------------------

    @staticmethod
    def _id(data: Any) -> str:
        value = data.get("id") if isinstance(data, dict) else None
        if not isinstance(value, str) or not value:
            raise EngineError("INVALID_ID", "`id` is required")
        return value

    def _entry(self, entry_id: str) -> Entry:
        entry = self.entries.get(entry_id)
        if entry is None:
            raise EngineError(
                "NOT_FOUND", f"configuration '{entry_id}' is not registered"
            )
        return entry

    async def fn_register(self, data: Any, ctx: CallContext) -> Any:
        entry_id = self._id(data)
        if entry_id in self.modules:
            raise EngineError("INVALID_ID", f"'{entry_id}' is the engine's own entry")
        schema = data.get("schema")
        if not isinstance(schema, dict):
            raise EngineError("SCHEMA_INVALID", "`schema` must be a JSON Schema object")
        entry = Entry(
            entry_id,
            str(data.get("name") or ""),
            str(data.get("description") or ""),
            schema,
            data.get("initial_value"),
            data.get("metadata"),
        )
        stored = await self.register_entry(entry, "initial_value" in data, "register")
        return asdict(stored)

    async def fn_set(self, data: Any, ctx: CallContext) -> Any:
        entry_id = self._id(data)
        if not isinstance(data, dict) or "value" not in data:
            raise EngineError("SCHEMA_INVALID", "`value` is required")
        old, new = await self.set(entry_id, data["value"], "set")
        return {"old_value": old, "new_value": new}

    async def fn_get(self, data: Any, ctx: CallContext) -> Any:
        entry_id = self._id(data)
        offset = data.get("offset") if isinstance(data, dict) else None
        if offset is not None:  # iiilog: as of a log offset
            if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
                raise EngineError("INVALID_ARGUMENTS", "`offset` must be >= 0")
            past = fold(await self.engine.store.read_kinds(KINDS), offset)
            entry = past.get(entry_id)
            if entry is None:
                raise EngineError("NOT_FOUND", f"'{entry_id}' did not exist then")
        else:
            entry = self._entry(entry_id)
        raw = isinstance(data, dict) and data.get("raw") is True
        return {"id": entry.id, "value": entry.value if raw else expand(entry.value)}

    async def fn_list(self, data: Any, ctx: CallContext) -> Any:
        return {
            "configurations": [self.entries[k].public() for k in sorted(self.entries)]
        }

    async def fn_schema(self, data: Any, ctx: CallContext) -> Any:
        return self._entry(self._id(data)).public()

    # -- the `configuration` trigger type ------------------------------------------

    async def register(self, binding: TriggerBinding) -> None:
        config = binding.config if isinstance(binding.config, dict) else {}
        wanted_id = config.get("configuration_id")
        events = config.get("event_types")
        if wanted_id is not None and not isinstance(wanted_id, str):
            raise TriggerRegistrationFailed(
                "Failed to parse trigger config: `configuration_id` must be a string"
            )
        if events is not None and (
            not isinstance(events, list) or any(e not in EVENTS for e in events)
        ):
            raise TriggerRegistrationFailed(
                "Failed to parse trigger config: `event_types` must list"
                f" {', '.join(EVENTS)}"
            )
        condition = trigger_condition(config)

        def match(record: Record) -> bool:
            if record.kind not in KINDS:
                return False
            info = record.new_value if isinstance(record.new_value, dict) else {}
            return (wanted_id is None or record.key == wanted_id) and (
                events is None or info.get("event_type") in events
            )

        await self.durable.attach(
            binding,
            match,
            event_payload,
            condition,
        )

    async def unregister(self, binding: TriggerBinding) -> None:
        await self.durable.detach(binding)


def event_payload(record: Record) -> dict[str, Any]:
    """A change record as iii's configuration event."""
    info = record.new_value if isinstance(record.new_value, dict) else {}
    entry = info.get("entry") or {}
    out = {
        "type": "configuration",
        "event_type": info.get("event_type"),
        "id": record.key,
        "name": entry.get("name"),
        "description": entry.get("description"),
        "schema": entry.get("schema"),
        "old_value": expand(info.get("old_value")),
        "new_value": expand(info.get("new_value")),
    }
    if entry.get("metadata") is not None:
        out["metadata"] = entry["metadata"]
    return out
