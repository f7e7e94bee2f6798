"""Durable topics (``iii::durable::publish``, ``durable:subscriber``), on the log.

A publish is one ``topic.publish`` record, committed before the call answers,
so an accepted message survives ``kill -9``. Each subscriber (function, topic,
``queue_config``, namespace) is a durable trigger subscription with a cursor of
its own over those records (engine/durable.py): every subscribed function gets
every message, replicas of one function share its cursor, and a subscriber that
was away resumes from its cursor instead of failing what it missed. A message
that keeps failing is retried with exponential backoff and then parked; the
parked rows of a topic's subscriptions are that topic's dead-letter queue.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from eventlog import Mutation, Origin, Outcome, Record, Unpark
from eventlog.codec import dumps

from .core import CallContext, Engine, TriggerBinding
from .durable import DurableTriggers
from .errors import (
    DeserializationError,
    EngineError,
    TriggerRegistrationFailed,
    trigger_condition,
)
from .ids import random_uuid
from .subscription_rules import Policy

log = logging.getLogger("iiilog.topics")
SUBSCRIBER = "durable:subscriber"
PUBLISH = "iii::durable::publish"
# iii's defaults for a subscriber: 3 attempts, 1 s then 2 s apart, 10 at once.
ATTEMPTS, BACKOFF_MS, CONCURRENCY = 3, 1000, 10


def _int(config: dict[str, Any], *names: str) -> int | None:
    for name in names:
        value = config.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise TriggerRegistrationFailed(
                f"Failed to parse trigger config: `queue_config.{name}` must be a"
                " non-negative integer"
            )
        return value
    return None


def subscriber_policy(queue_config: Any) -> Policy:
    """A subscriber's ``queue_config`` as a delivery policy. ``maxRetries``
    counts retries after the first attempt, as in iii. Pure."""
    if queue_config is None:
        queue_config = {}
    if not isinstance(queue_config, dict):
        raise TriggerRegistrationFailed(
            "Failed to parse trigger config: `queue_config` must be an object"
        )
    mode = queue_config.get("type", "concurrent")
    if mode not in ("concurrent", "standard", "fifo"):
        raise TriggerRegistrationFailed(
            "Failed to parse trigger config: `queue_config.type` must be"
            " concurrent, standard or fifo"
        )
    retries = _int(queue_config, "maxRetries", "max_retries")
    backoff = _int(queue_config, "backoffDelayMs", "backoff_ms")
    concurrency = _int(queue_config, "concurrency")
    return Policy(
        max_attempts=ATTEMPTS if retries is None else retries + 1,
        backoff_ms=max(1, BACKOFF_MS if backoff is None else backoff),
        backoff_max_ms=3_600_000,
        max_in_flight=1
        if mode == "fifo"
        else (CONCURRENCY if concurrency is None else min(concurrency, 10_000)),
        await_function=True,
    )


def topic_of(config: Any) -> str:
    """The topic a subscriber's config names (``queue`` is iii's alias)."""
    topic = None
    if isinstance(config, dict):
        topic = config.get("topic") or config.get("queue")
    if not isinstance(topic, str) or not topic:
        raise TriggerRegistrationFailed(
            "Failed to parse trigger config: `topic` is required"
        )
    return topic


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One parked message of one subscriber."""

    key: str
    function_id: str
    offset: int
    record: Record
    attempts: int
    error: str
    ts: int

    def view(self, topic: str) -> dict[str, Any]:
        data = (self.record.new_value or {}).get("data")
        return {
            "id": self.record.key,
            "payload": data,
            "error": self.error,
            "failed_at": self.ts // 1000,
            "retries": self.attempts,
            "size_bytes": len(dumps(data).encode()),
            # iiilog's names and extras
            "message_id": self.record.key,
            "data": data,
            "attempts": self.attempts,
            "topic": topic,
            "queue": topic,
            "function_id": self.function_id,
            "offset": self.offset,
            "failed_at_ms": self.ts,
        }


class DurableTopics:
    def __init__(self, engine: Engine, durable: DurableTriggers) -> None:
        self.engine = engine
        self.durable = durable
        self.redriving: set[tuple[str, int]] = set()
        engine.add_builtin(PUBLISH, self.fn_publish, "Publish to a durable topic")
        engine.add_provider(SUBSCRIBER, self, "Durable topic subscriber (queue)")

    # -- publish -----------------------------------------------------------------------

    async def fn_publish(self, data: Any, ctx: CallContext) -> Any:
        if not isinstance(data, dict):
            raise DeserializationError(PUBLISH, "expected an object {topic, data}")
        topic = data.get("topic")
        if topic is None or topic == "":
            raise EngineError("topic_not_set", "Topic is not set")
        if not isinstance(topic, str):
            raise DeserializationError(PUBLISH, "invalid type for `topic`")
        if "data" not in data:
            raise DeserializationError(PUBLISH, "missing field `data`")
        value = {"data": data["data"]}
        origin = ctx.origin()
        mutation = Mutation(
            "topic.publish",
            topic,
            None,
            random_uuid(),
            lambda _e, _o: Outcome(True, value, touches_view=False),
            origin if origin.trace_id else Origin(function_id=PUBLISH),
        )
        mutation.dedupe = self.engine.delivery_tag(mutation.origin)
        await self.engine.writer.submit(mutation)  # committed: survives a crash
        return None

    # -- the trigger type --------------------------------------------------------------

    async def register(self, binding: TriggerBinding) -> None:
        topic = topic_of(binding.config)
        config = binding.config if isinstance(binding.config, dict) else {}
        policy = subscriber_policy(config.get("queue_config"))
        condition = trigger_condition(config)

        def match(record: Record) -> bool:
            return record.kind == "topic.publish" and record.scope == topic

        def payload(record: Record) -> Any:
            return (record.new_value or {}).get("data")

        namespace = binding.namespace
        await self.durable.attach(
            binding,
            match,
            payload,
            condition,
            policy,
            scope=namespace if namespace not in (None, "default") else None,
        )

    async def unregister(self, binding: TriggerBinding) -> None:
        await self.durable.detach(binding)

    # -- what the admin functions read -------------------------------------------------

    async def subscriptions(self, topic: str | None = None) -> list[dict[str, Any]]:
        """Every subscription ever made to a topic (this one, or all), live or
        away: {key, topic, function_id, position, active, parked}."""
        out = []
        for row in await self.engine.store.cursors():
            if row.trigger_type != SUBSCRIBER:
                continue
            try:
                name = topic_of(row.config)
            except TriggerRegistrationFailed:
                continue
            if topic is not None and name != topic:
                continue
            live = self.durable.subs.get(row.key)
            out.append(
                {
                    "key": row.key,
                    "topic": name,
                    "function_id": row.function_id,
                    "position": live.cursor if live is not None else row.position,
                    "active": live is not None,
                    "parked": row.parked,
                }
            )
        return out

    async def topics(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for sub in await self.subscriptions():
            out.setdefault(sub["topic"], []).append(sub)
        return out

    async def depth(self, topic: str, subs: list[dict[str, Any]]) -> int:
        """Messages published to ``topic`` that a subscriber has not handled yet
        (summed over subscribers); reads the log after the oldest cursor."""
        if not subs:
            return 0
        positions = sorted(s["position"] for s in subs)
        after, head, total = positions[0], self.engine.tail.head, 0
        while after < head:
            records = await self.engine.store.read(after, 1000)
            if not records:
                break
            for r in records:
                if r.kind == "topic.publish" and r.scope == topic:
                    total += sum(1 for p in positions if p < r.offset)
            after = records[-1].offset
        return total

    async def dead_letters(self, topic: str) -> list[DeadLetter]:
        out = []
        for sub in await self.subscriptions(topic):
            if not sub["parked"]:
                continue
            for row in await self.engine.store.parked(sub["key"]):
                if (row.key, row.offset) in self.redriving:
                    continue  # on its way back to the subscriber
                record = await self.engine.store.read_one(row.offset)
                if record is None:
                    continue
                out.append(
                    DeadLetter(
                        row.key,
                        sub["function_id"],
                        row.offset,
                        record,
                        row.attempts,
                        row.error,
                        row.ts,
                    )
                )
        out.sort(key=lambda d: (-d.ts, d.offset))  # newest failure first, as iii
        return out

    # -- dead-letter operations -------------------------------------------------------

    async def redrive(self, topic: str, message_id: str | None = None) -> int:
        """Deliver dead letters again (all of a topic, or one message id) to
        their subscriber, in the background; each stays parked until delivered,
        so a crash in between loses none."""
        count = 0
        for dead in await self.dead_letters(topic):
            if message_id is not None and dead.record.key != message_id:
                continue
            self.redriving.add((dead.key, dead.offset))
            self.engine.spawn(
                self._redeliver(dead.key, dead.offset),
                name=f"redrive:{dead.key[:8]}:{dead.offset}",
            )
            count += 1
        return count

    async def _active(self, key: str) -> None:
        for _ in iter(lambda: key in self.durable.subs, True):
            await asyncio.sleep(0.5)

    async def _redeliver(self, key: str, offset: int) -> None:
        try:
            await self._active(key)  # the subscriber may be away
            await self.durable.redeliver(key, offset)
        except EngineError as e:  # discarded meanwhile
            log.info("redrive of %s at %d skipped: %s", key, offset, e.message)
        finally:
            self.redriving.discard((key, offset))

    async def discard(self, topic: str, message_id: str) -> int:
        count = 0
        for dead in await self.dead_letters(topic):
            if dead.record.key == message_id:
                await self.engine.writer.keep(Unpark(dead.key, dead.offset))
                count += 1
        return count
