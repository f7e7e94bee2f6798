"""The stream module: ``stream::*`` functions and the ``stream``,
``stream:join`` and ``stream:leave`` trigger types, as iii documents them.

Every set/update/delete/send is a log record; items live in the inline stream
view. A stream named by a registered ``stream::<op>(<name>)`` function is
delegated to it (custom streams); its changes are still logged, as records that
touch no view, so triggers and subscribers see them like any other.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from eventlog import Mutation, Outcome, PruneSends, Record, StoreError
from eventlog.codec import dumps_bytes

from .core import CallContext, Engine, TriggerBinding, now_ms
from .durable import DurableTriggers
from .errors import DeserializationError, EngineError, TriggerRegistrationFailed
from .state import _obj, _str, ops_field, update_compute, update_result
from .subscription_rules import start_position

log = logging.getLogger("iiilog.stream")
ENCODED_CACHE = 8192


def envelope(record: Record) -> dict[str, Any]:
    """The one change message for WebSocket clients and ``stream`` triggers.

    Pure. ``offset`` is iiilog's extension: where the change sits in the log.
    """
    if record.verb == "send":
        event: dict[str, Any] = {
            "type": "event",
            "event": {"type": record.event_type, "data": record.new_value},
        }
    elif record.verb == "delete":
        event = {"type": "delete", "data": record.old_value}
    else:
        event = {
            "type": "update" if record.existed else "create",
            "data": record.new_value,
        }
    return {
        "type": "stream",
        "timestamp": record.ts,
        "streamName": record.scope,
        "groupId": record.group,
        "id": record.key,
        "event": event,
        "offset": record.offset,
    }


def control(
    stream: str,
    group: str,
    item: str | None,
    event: dict[str, Any],
    offset: int,
    **extra: Any,
) -> dict[str, Any]:
    """A message of the same envelope that is not a record (sync, unauthorized)."""
    return {
        "type": "stream",
        "timestamp": now_ms(),
        "streamName": stream,
        "groupId": group,
        "id": item,
        "event": event,
        "offset": offset,
        **extra,
    }


def _opt_str(config: dict[str, Any], name: str) -> str | None:
    value = config.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise TriggerRegistrationFailed(
            f"Failed to parse trigger config: invalid type for `{name}`:"
            " expected a string"
        )
    return value


class StreamModule:
    def __init__(self, engine: Engine, durable: DurableTriggers) -> None:
        self.engine = engine
        self.durable = durable
        self._encoded: OrderedDict[int, bytes] = OrderedDict()
        self.pruned_through = 0
        for name in (
            "set",
            "get",
            "delete",
            "update",
            "list",
            "list_groups",
            "list_all",
            "send",
        ):
            engine.add_builtin(f"stream::{name}", getattr(self, f"fn_{name}"))
        engine.add_provider("stream", self, "React to stream changes")
        engine.add_provider("stream:join", _Passive(), "A client joins a stream")
        engine.add_provider("stream:leave", _Passive(), "A client leaves a stream")

    # -- shared helpers --------------------------------------------------------------

    def encoded(self, record: Record) -> bytes:
        """The record's envelope as UTF-8 JSON, encoded once for every subscriber."""
        text = self._encoded.get(record.offset)
        if text is None:
            text = dumps_bytes(envelope(record))
            self._encoded[record.offset] = text
            if len(self._encoded) > ENCODED_CACHE:
                self._encoded.popitem(last=False)
        return text

    def custom(self, op: str, stream: str) -> str | None:
        function_id = f"stream::{op}({stream})"
        return function_id if function_id in self.engine.functions else None

    async def _write(self, mutation: Mutation, code: str, verb: str) -> Record:
        mutation.dedupe = self.engine.delivery_tag(mutation.origin)
        try:
            return await self.engine.writer.submit(mutation)
        except StoreError as e:  # the log refused: the caller's error, not a bug
            raise EngineError(code, f"Failed to {verb} value: {e}") from e

    @staticmethod
    def _address(fid: str, data: Any) -> tuple[dict[str, Any], str, str, str]:
        data = _obj(fid, data)
        return (
            data,
            _str(fid, data, "stream_name"),
            _str(fid, data, "group_id"),
            _str(fid, data, "item_id"),
        )

    async def _delegated(
        self, function_id: str, data: Any, ctx: CallContext, code: str, verb: str
    ) -> dict[str, Any]:
        result = await self.engine.invoke(function_id, data, ctx)
        if result is None:
            raise EngineError(
                code, f"Failed to {verb} value: Function returned no result"
            )
        if not isinstance(result, dict):
            raise EngineError(
                "JSON_ERROR", f"{function_id} returned {result!r}, expected an object"
            )
        return result

    # -- functions -------------------------------------------------------------------

    async def fn_set(self, data: Any, ctx: CallContext) -> Any:
        data, stream, group, item = self._address("stream::set", data)
        value = data.get("data")
        custom = self.custom("set", stream)
        if custom is not None:
            result = await self._delegated(custom, data, ctx, "STREAM_SET_ERROR", "set")
            if "new_value" not in result:
                raise EngineError("JSON_ERROR", f"{custom} returned no new_value")
            old, new = result.get("old_value"), result["new_value"]
            await self._write(
                Mutation(
                    "stream.set",
                    stream,
                    group,
                    item,
                    lambda _e, _o: Outcome(
                        True, new, touches_view=False, old=(old is not None, old)
                    ),
                    ctx.origin(),
                ),
                "STREAM_SET_ERROR",
                "set",
            )
            return result
        record = await self._write(
            Mutation(
                "stream.set",
                stream,
                group,
                item,
                lambda _e, _o: Outcome(True, value),
                ctx.origin(),
            ),
            "STREAM_SET_ERROR",
            "set",
        )
        return {"old_value": record.old_value, "new_value": record.new_value}

    async def fn_get(self, data: Any, ctx: CallContext) -> Any:
        data, stream, group, item = self._address("stream::get", data)
        custom = self.custom("get", stream)
        if custom is not None:
            return await self.engine.invoke(custom, data, ctx)
        return (await self.engine.store.view_get("stream", stream, group, item))[1]

    async def fn_delete(self, data: Any, ctx: CallContext) -> Any:
        data, stream, group, item = self._address("stream::delete", data)
        custom = self.custom("delete", stream)
        if custom is not None:
            result = await self._delegated(
                custom, data, ctx, "STREAM_DELETE_ERROR", "delete"
            )
            old = result.get("old_value")
            if old is not None:
                await self._write(
                    Mutation(
                        "stream.delete",
                        stream,
                        group,
                        item,
                        lambda _e, _o: Outcome(
                            False, touches_view=False, old=(True, old)
                        ),
                        ctx.origin(),
                    ),
                    "STREAM_DELETE_ERROR",
                    "delete",
                )
            return {"old_value": old}
        record = await self._write(
            Mutation(
                "stream.delete",
                stream,
                group,
                item,
                lambda existed, _o: Outcome(False, record=existed),
                ctx.origin(),
            ),
            "STREAM_DELETE_ERROR",
            "delete",
        )
        return {"old_value": record.old_value}

    async def fn_update(self, data: Any, ctx: CallContext) -> Any:
        fid = "stream::update"
        data, stream, group, item = self._address(fid, data)
        ops, raw_ops = ops_field(fid, data)
        custom = self.custom("update", stream)
        if custom is not None:
            result = await self._delegated(
                custom, data, ctx, "STREAM_UPDATE_ERROR", "update"
            )
            if "new_value" not in result:
                raise EngineError("JSON_ERROR", f"{custom} returned no new_value")
            old, new = result.get("old_value"), result["new_value"]
            await self._write(
                Mutation(
                    "stream.update",
                    stream,
                    group,
                    item,
                    lambda _e, _o: Outcome(
                        True,
                        new,
                        ops=raw_ops,
                        touches_view=False,
                        old=(old is not None, old),
                    ),
                    ctx.origin(),
                ),
                "STREAM_UPDATE_ERROR",
                "update",
            )
            return result

        record = await self._write(
            Mutation(
                "stream.update",
                stream,
                group,
                item,
                update_compute(ops, raw_ops),
                ctx.origin(),
            ),
            "STREAM_UPDATE_ERROR",
            "update",
        )
        return update_result(record)

    async def fn_list(self, data: Any, ctx: CallContext) -> Any:
        fid = "stream::list"
        data = _obj(fid, data)
        stream, group = _str(fid, data, "stream_name"), _str(fid, data, "group_id")
        custom = self.custom("list", stream)
        if custom is not None:
            return await self.engine.invoke(custom, data, ctx)
        return await self.engine.store.view_list("stream", stream, group)

    async def fn_list_groups(self, data: Any, ctx: CallContext) -> Any:
        fid = "stream::list_groups"
        data = _obj(fid, data)
        stream = _str(fid, data, "stream_name")
        custom = self.custom("list_groups", stream)
        if custom is not None:
            return await self.engine.invoke(custom, data, ctx)
        return await self.engine.store.view_groups("stream", stream)

    async def fn_list_all(self, data: Any, ctx: CallContext) -> Any:
        pairs = await self.engine.store.view_scope_groups("stream")
        streams: dict[str, list[str]] = {}
        for stream, group in pairs:
            streams.setdefault(stream, []).append(group)
        out = [{"id": s, "groups": sorted(g)} for s, g in sorted(streams.items())]
        return {"stream": out, "count": len(out)}

    async def fn_send(self, data: Any, ctx: CallContext) -> Any:
        fid = "stream::send"
        data = _obj(fid, data)
        stream, group = _str(fid, data, "stream_name"), _str(fid, data, "group_id")
        kind = data.get("type", data.get("event_type"))
        if kind is None:
            raise DeserializationError(fid, "missing field `type`")
        if not isinstance(kind, str):
            raise DeserializationError(
                fid, "invalid type for `type`: expected a string"
            )
        item = data.get("id")
        if item is not None and not isinstance(item, str):
            raise DeserializationError(fid, "invalid type for `id`: expected a string")
        payload = data.get("data")
        await self._write(
            Mutation(
                "stream.send",
                stream,
                group,
                item,
                lambda _e, _o: Outcome(
                    True, payload, event_type=kind, touches_view=False
                ),
                ctx.origin(),
            ),
            "STREAM_SEND_ERROR",
            "send",
        )
        return None

    # -- trigger type ``stream`` -------------------------------------------------------

    async def register(self, binding: TriggerBinding) -> None:
        config = binding.config if binding.config is not None else {}
        if not isinstance(config, dict):
            raise TriggerRegistrationFailed(
                "Failed to parse trigger config: expected an object"
            )
        stream = _opt_str(config, "stream_name")
        if stream is None:
            raise TriggerRegistrationFailed(
                "stream_name is required for stream triggers"
            )
        start_position(config, 0)  # validates `from` before anything starts
        group = _opt_str(config, "group_id")
        item = _opt_str(config, "item_id")
        condition = _opt_str(config, "condition_function_id")

        def match(record: Record) -> bool:
            return (
                record.space == "stream"
                and record.scope == stream
                and (group is None or record.group == group)
                and (item is None or record.key == item)
            )

        await self.durable.attach(binding, match, envelope, condition)

    async def unregister(self, binding: TriggerBinding) -> None:
        await self.durable.detach(binding)

    # -- join / leave ----------------------------------------------------------------

    async def run_membership(self, trigger_type: str, payload: dict[str, Any]) -> bool:
        """Invoke every ``stream:join``/``stream:leave`` binding in turn.

        Returns False when a join handler answered ``{"unauthorized": true}``.
        A binding whose config names a ``stream_name`` only sees that stream
        (iiilog extension; iii ignores the config).
        """
        allowed = True
        bindings = [
            b for b in self.engine.triggers.values() if b.trigger_type == trigger_type
        ]
        for binding in bindings:
            config = binding.config if isinstance(binding.config, dict) else {}
            wanted = config.get("stream_name")
            if isinstance(wanted, str) and wanted and wanted != payload["stream_name"]:
                continue
            try:
                result = await self.engine.call_binding(binding, payload)
            except EngineError as e:
                log.warning(
                    "%s handler %s failed: %s", trigger_type, binding.function_id, e
                )
                continue
            if isinstance(result, dict) and result.get("unauthorized") is True:
                allowed = False
        return allowed

    async def prune(self, retention_ms: int) -> int:
        removed: int = await self.engine.writer.keep(
            PruneSends(now_ms() - retention_ms)
        )
        self.pruned_through = await self.engine.store.sends_pruned_through()
        if removed:
            log.info(
                "retention: removed %d stream.send records (through offset %d)",
                removed,
                self.pruned_through,
            )
        return removed


class _Passive:
    """``stream:join`` / ``stream:leave``: bindings are looked up when a client
    joins or leaves; there is nothing to start."""

    async def register(self, binding: TriggerBinding) -> None:
        if binding.config is not None and not isinstance(binding.config, dict):
            raise TriggerRegistrationFailed(
                "Failed to parse trigger config: expected an object"
            )

    async def unregister(self, binding: TriggerBinding) -> None:
        return None
