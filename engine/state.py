"""The state module: ``state::*`` functions and the ``state`` trigger type.

Every write becomes a log record through the single writer; the ack carries the
committed outcome. Reads come from the inline state view (read-your-writes).
Triggers are log consumers that start at the head when they are registered.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from eventlog import Compute, Mutation, Outcome, Record, StoreError
from eventlog.codec import dumps_bytes
from projections.views import fold, rows

from .core import CallContext, Engine, TriggerBinding
from .durable import DurableTriggers
from .errors import DeserializationError, EngineError, TriggerRegistrationFailed
from .ops import Op, OpsDecodeError, apply_ops, parse_ops
from .subscription_rules import start_position

log = logging.getLogger("iiilog.state")


def _obj(function_id: str, data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise DeserializationError(function_id, "expected an object")
    return data


def _str(function_id: str, data: dict[str, Any], name: str) -> str:
    if name not in data or data[name] is None:
        raise DeserializationError(function_id, f"missing field `{name}`")
    value = data[name]
    if not isinstance(value, str):
        raise DeserializationError(
            function_id, f"invalid type for `{name}`: expected a string"
        )
    return value


def _offset(function_id: str, data: dict[str, Any]) -> int | None:
    """iiilog extension: read as of a log offset (time travel)."""
    offset = data.get("offset")
    if offset is None:
        return None
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise DeserializationError(
            function_id, "invalid value for `offset`: expected a non-negative integer"
        )
    return offset


def ops_field(function_id: str, data: dict[str, Any]) -> tuple[list[Op], Any]:
    """An update's ``ops``: parsed, and as given (the record keeps both)."""
    if "ops" not in data:
        raise DeserializationError(function_id, "missing field `ops`")
    raw_ops = data["ops"]
    try:
        return parse_ops(raw_ops), raw_ops
    except OpsDecodeError as e:
        raise DeserializationError(function_id, str(e)) from e


def update_compute(ops: list[Op], raw_ops: Any) -> Compute:
    """The pure mutation of ``state::update`` and ``stream::update``."""

    def compute(existed: bool, old: Any) -> Outcome:
        new, errors = apply_ops(old, existed, ops)
        return Outcome(True, new, ops=raw_ops, errors=errors)

    return compute


def update_result(record: Record) -> dict[str, Any]:
    """``{old_value, new_value, errors?}``: ``errors`` only when an op failed."""
    result: dict[str, Any] = {
        "old_value": record.old_value,
        "new_value": record.new_value,
    }
    if record.errors:
        result["errors"] = record.errors
    return result


def state_event(record: Record) -> dict[str, Any]:
    if record.verb == "delete":
        event_type = "state:deleted"
    elif record.existed:
        event_type = "state:updated"
    else:
        event_type = "state:created"
    return {
        "type": "state",
        "event_type": event_type,
        "scope": record.scope,
        "key": record.key,
        "old_value": record.old_value,
        "new_value": record.new_value if record.exists else None,
        "offset": record.offset,  # iiilog extension: the change's log position
    }


class StateConfig(BaseModel):
    """Module ``iii-state`` (alias ``state``). The state view lives in the
    event log, so iii's storage adapter settings do not apply."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    # iii settings this module does not implement: accepted, warned about.
    iii_unimplemented: ClassVar[frozenset[str]] = frozenset(
        {"adapter", "save_interval_ms"}
    )

    # iii: unlimited unless set. iiilog: 4 MiB. A state value is read whole on
    # every get, sent whole to every trigger and kept in the log once per
    # version; bigger payloads belong in a channel. null: no limit.
    max_value_bytes: int | None = Field(4 * 1024 * 1024, ge=1)
    triggers_enabled: bool = True  # false: `state` triggers never fire


class StateModule:
    def __init__(
        self,
        engine: Engine,
        durable: DurableTriggers,
        config: StateConfig | None = None,
    ) -> None:
        self.engine = engine
        self.durable = durable
        self.config = config or StateConfig()
        for name in ("set", "get", "delete", "update", "list", "list_groups"):
            engine.add_builtin(f"state::{name}", getattr(self, name))
        engine.add_provider("state", self, "React to state changes")

    async def _write(self, mutation: Mutation, error_code: str) -> Record:
        mutation.dedupe = self.engine.delivery_tag(mutation.origin)
        try:
            return await self.engine.writer.submit(mutation)
        except StoreError as e:  # the log refused: the caller's error, not a bug
            verb = error_code.split("_")[0].lower()
            raise EngineError(error_code, f"Failed to {verb} value: {e}") from e

    async def set(self, data: Any, ctx: CallContext) -> Any:
        fid = "state::set"
        data = _obj(fid, data)
        scope, key = _str(fid, data, "scope"), _str(fid, data, "key")
        value = data["value"] if "value" in data else data.get("data")
        limit = self.config.max_value_bytes
        if limit is not None:
            size = len(dumps_bytes(value))
            if size > limit:
                raise EngineError(
                    "VALUE_TOO_LARGE",
                    f"value of {size} bytes exceeds the configured max_value_bytes"
                    f" limit of {limit}",
                )
        record = await self._write(
            Mutation(
                "state.set",
                scope,
                None,
                key,
                lambda _e, _o: Outcome(True, value),
                ctx.origin(),
            ),
            "SET_ERROR",
        )
        return {"old_value": record.old_value, "new_value": record.new_value}

    async def get(self, data: Any, ctx: CallContext) -> Any:
        fid = "state::get"
        data = _obj(fid, data)
        scope, key = _str(fid, data, "scope"), _str(fid, data, "key")
        offset = _offset(fid, data)
        if offset is not None:
            return await self.engine.store.value_at("state", scope, key, offset)
        _, value = await self.engine.store.view_get("state", scope, "", key)
        return value

    async def delete(self, data: Any, ctx: CallContext) -> Any:
        fid = "state::delete"
        data = _obj(fid, data)
        scope, key = _str(fid, data, "scope"), _str(fid, data, "key")
        record = await self._write(
            Mutation(
                "state.delete",
                scope,
                None,
                key,
                lambda _e, _o: Outcome(False),
                ctx.origin(),
            ),
            "DELETE_ERROR",
        )
        return record.old_value

    async def update(self, data: Any, ctx: CallContext) -> Any:
        fid = "state::update"
        data = _obj(fid, data)
        scope, key = _str(fid, data, "scope"), _str(fid, data, "key")
        ops, raw_ops = ops_field(fid, data)

        record = await self._write(
            Mutation(
                "state.update",
                scope,
                None,
                key,
                update_compute(ops, raw_ops),
                ctx.origin(),
            ),
            "UPDATE_ERROR",
        )
        return update_result(record)

    async def list(self, data: Any, ctx: CallContext) -> Any:
        fid = "state::list"
        data = _obj(fid, data)
        scope = _str(fid, data, "scope")
        offset = _offset(fid, data)
        if offset is not None:
            history = await self.engine.store.history("state", scope, offset)
            return [row[3] for row in rows(fold(history), "state")]
        return await self.engine.store.view_list("state", scope, "")

    async def list_groups(self, data: Any, ctx: CallContext) -> Any:
        return {"groups": await self.engine.store.view_scopes("state")}

    # -- trigger type ``state`` ------------------------------------------------------

    async def register(self, binding: TriggerBinding) -> None:
        config = binding.config if binding.config is not None else {}
        if not isinstance(config, dict):
            raise TriggerRegistrationFailed(
                "Failed to parse trigger config: expected an object"
            )
        start_position(config, 0)  # validates `from` before anything starts
        for name in ("scope", "key", "condition_function_id"):
            value = config.get(name)
            if value is not None and not isinstance(value, str):
                raise TriggerRegistrationFailed(
                    f"Failed to parse trigger config: invalid type for `{name}`:"
                    " expected a string"
                )
        scope, key = config.get("scope"), config.get("key")
        condition = config.get("condition_function_id")
        enabled = self.config.triggers_enabled

        def match(record: Record) -> bool:
            return (
                enabled
                and record.space == "state"
                and (scope is None or record.scope == scope)
                and (key is None or record.key == key)
            )

        await self.durable.attach(binding, match, state_event, condition)

    async def unregister(self, binding: TriggerBinding) -> None:
        await self.durable.detach(binding)
