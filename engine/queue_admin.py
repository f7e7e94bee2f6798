"""Queue administration as iii documents it, over both kinds of queue.

A name listed in ``queue_configs`` is a named queue (engine/queues.py); any
other name is a durable topic (engine/topics.py), as in iii, where an unknown
name reads as an empty topic. Inputs take iii's field (``topic`` for the
inspection functions, ``queue`` for redrive and discard) and accept the other
as an alias; results have iii's shape, with iiilog's earlier field names kept
beside iii's (``message_id`` beside ``id``, ``pending`` beside ``depth``, ...).
"""

from __future__ import annotations

from typing import Any

from .core import CallContext, Engine
from .errors import EngineError
from .queues import QueueModule
from .topics import DurableTopics


def _name(data: Any, code: str, message: str, *fields: str) -> str:
    opts = data if isinstance(data, dict) else {}
    for field in fields:
        value = opts.get(field)
        if value is None:
            continue
        if not isinstance(value, str):
            raise EngineError("INVALID_ARGUMENTS", f"`{field}` must be a string")
        if value:
            return value
    raise EngineError(code, message)


def _page(data: Any, name: str, default: int) -> int:
    value = data.get(name, default) if isinstance(data, dict) else default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise EngineError("INVALID_ARGUMENTS", f"`{name}` must be a non-negative int")
    return value


class QueueAdmin:
    def __init__(
        self, engine: Engine, queues: QueueModule, topics: DurableTopics
    ) -> None:
        self.engine = engine
        self.queues = queues
        self.topics = topics
        for function_id, handler in (
            ("engine::queue::list_topics", self.list_topics),
            ("engine::queue::topic_stats", self.topic_stats),
            ("engine::queue::dlq_topics", self.dlq_topics),
            ("engine::queue::dlq_messages", self.dlq_messages),
            ("iii::queue::redrive", self.redrive),
            ("iii::queue::redrive_message", self.redrive_message),
            ("iii::queue::discard_message", self.discard_message),
        ):
            engine.add_builtin(function_id, handler)

    def _named(self, name: str) -> bool:
        return name in self.queues.configs

    async def _topic_stats(self, topic: str) -> dict[str, Any]:
        subs = await self.topics.subscriptions(topic)
        depth = await self.topics.depth(topic, subs)
        dead = sum(s["parked"] for s in subs)
        return {
            "depth": depth,
            "consumer_count": sum(1 for s in subs if s["active"]),
            "dlq_depth": dead,
            "config": None,
            "queue": topic,
            "type": "topic",
            "pending": depth,
            "inflight": 0,
            "dead": dead,
            "subscribers": [
                {k: s[k] for k in ("function_id", "position", "active", "parked")}
                for s in subs
            ],
        }

    async def list_topics(self, data: Any, ctx: CallContext) -> Any:
        out = []
        for topic, subs in sorted((await self.topics.topics()).items()):
            if self._named(topic):
                continue
            out.append(
                {
                    "name": topic,
                    "broker_type": "builtin",
                    "subscriber_count": len(subs),
                    "queue": topic,
                    "type": "topic",
                    "dead": sum(s["parked"] for s in subs),
                }
            )
        for name in sorted(self.queues.configs):
            stats = self.queues.stats(name)
            out.append(
                {
                    "name": name,
                    "broker_type": "function_queue",
                    "subscriber_count": stats["consumer_count"],
                    **{k: stats[k] for k in ("queue", "type", "pending", "inflight")},
                    "dead": stats["dead"],
                }
            )
        return out

    async def topic_stats(self, data: Any, ctx: CallContext) -> Any:
        name = _name(data, "topic_required", "topic is required", "topic", "queue")
        if self._named(name):
            return self.queues.stats(name)
        return await self._topic_stats(name)

    async def dlq_topics(self, data: Any, ctx: CallContext) -> Any:
        out = [
            {
                "topic": topic,
                "broker_type": "builtin",
                "message_count": sum(s["parked"] for s in subs),
            }
            for topic, subs in sorted((await self.topics.topics()).items())
            if not self._named(topic)
        ]
        out += [
            {
                "topic": name,
                "broker_type": "function_queue",
                "message_count": self.queues.stats(name)["dead"],
            }
            for name in sorted(self.queues.configs)
        ]
        return out

    async def dlq_messages(self, data: Any, ctx: CallContext) -> Any:
        name = _name(data, "topic_required", "topic is required", "topic", "queue")
        offset, limit = _page(data, "offset", 0), _page(data, "limit", 50)
        if self._named(name):
            dead = self.queues.state.dead.get(name, {}).values()
            messages = sorted(
                (m.view() for m in dead), key=lambda m: -int(m["failed_at"])
            )
        else:
            messages = [d.view(name) for d in await self.topics.dead_letters(name)]
        return messages[offset : offset + limit]

    async def redrive(self, data: Any, ctx: CallContext) -> Any:
        name = _name(data, "queue_not_set", "Queue name is required", "queue", "topic")
        if self._named(name):
            count = await self.queues.redrive(name)
        else:
            count = await self.topics.redrive(name)
        return {"queue": name, "redriven": count}

    def _message(self, data: Any) -> tuple[str, str]:
        name = _name(data, "queue_not_set", "Queue name is required", "queue", "topic")
        message_id = _name(
            data, "message_id_not_set", "Message ID is required", "message_id", "id"
        )
        return name, message_id

    async def redrive_message(self, data: Any, ctx: CallContext) -> Any:
        name, message_id = self._message(data)
        if self._named(name):
            count = await self.queues.redrive(name, message_id)
        else:
            count = await self.topics.redrive(name, message_id)
        return {"queue": name, "message_id": message_id, "redriven": count}

    async def discard_message(self, data: Any, ctx: CallContext) -> Any:
        name, message_id = self._message(data)
        if self._named(name):
            count = await self.queues.discard(name, message_id)
        else:
            count = await self.topics.discard(name, message_id)
        # iii answers a discard in the redrive shape; `discarded` says it plainly.
        return {
            "queue": name,
            "message_id": message_id,
            "redriven": count,
            "discarded": count,
        }
