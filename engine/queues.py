"""Named queues for ``TriggerAction.Enqueue`` (iii's queue module), on the log.

Every step of a message is a record (``queue.enqueue``, ``queue.retry``,
``queue.ack``, ``queue.dead``, ``queue.redrive``, ``queue.discard``), committed
before it takes effect; the queues' state is the pure fold ``QueueState`` of
those records, rebuilt from the log at start, so a restart loses no message.
A message is retried after ``backoff_ms * 2^(n-1)`` when attempt n fails and
dead-lettered once ``max_retries`` attempts have failed; the dead-letter list
can be listed, redriven or discarded. Standard queues run up to
``concurrency`` messages at once; FIFO queues one at a time, in order.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from eventlog import Kind, Mutation, Origin, Outcome, Record, wait_event
from eventlog.codec import dumps

from .core import CallContext, Engine
from .errors import EngineError
from .ids import random_uuid

log = logging.getLogger("iiilog.queues")
QUEUE_KINDS: tuple[Kind, ...] = (
    "queue.enqueue",
    "queue.retry",
    "queue.ack",
    "queue.dead",
    "queue.redrive",
    "queue.discard",
)


class QueueConfig(BaseModel):
    """One named queue (``queue_configs.<name>``)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    max_retries: int = Field(3, ge=1)  # attempts before the dead-letter list
    concurrency: int = Field(10, ge=1)  # standard queues: jobs in flight
    type: Literal["standard", "fifo"] = "standard"
    message_group_field: str | None = None  # required for fifo
    backoff_ms: int = Field(1000, ge=1)  # doubles per failed attempt
    poll_interval_ms: int = Field(100, ge=1)
    delivery_timeout_ms: int = Field(30_000, ge=1)  # iiilog

    @model_validator(mode="after")
    def _fifo_group(self) -> QueueConfig:
        if self.type == "fifo" and not self.message_group_field:
            raise ValueError("a fifo queue needs message_group_field")
        return self


class QueueModuleConfig(BaseModel):
    """Module ``iii-queue`` (alias ``queue``). A queue named ``default``
    always exists; listing it here tunes it."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    # iii settings this module does not implement: accepted, warned about.
    iii_unimplemented: ClassVar[frozenset[str]] = frozenset({"adapter"})

    queue_configs: dict[str, QueueConfig] = {}

    @field_validator("queue_configs", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        # YAML reads `2024:` as an int and `jobs:` (nothing after) as null.
        if value is None:
            return {}
        if isinstance(value, dict):
            return {str(k): {} if v is None else v for k, v in value.items()}
        return value


@dataclass
class Message:
    id: str
    queue: str
    function_id: str
    data: Any
    enqueued_at: int
    attempts: int = 0
    next_at: int = 0
    error: str | None = None
    failed_at: int = 0  # ms, when it was dead-lettered

    def view(self) -> dict[str, Any]:
        """iii's ``DlqMessage`` fields, then iiilog's own names for them."""
        return {
            "id": self.id,
            "payload": self.data,
            "error": self.error or "",
            "failed_at": self.failed_at // 1000,
            "retries": self.attempts,
            "size_bytes": len(dumps(self.data).encode()),
            "message_id": self.id,
            "queue": self.queue,
            "function_id": self.function_id,
            "data": self.data,
            "attempts": self.attempts,
            "enqueued_at": self.enqueued_at,
        }


@dataclass
class QueueState:
    """Pending and dead messages per queue, in enqueue order. Pure fold."""

    pending: dict[str, dict[str, Message]] = field(default_factory=dict)
    dead: dict[str, dict[str, Message]] = field(default_factory=dict)

    def apply(self, record: Record) -> None:
        queue, mid = record.scope, record.key or ""
        pending = self.pending.setdefault(queue, {})
        dead = self.dead.setdefault(queue, {})
        info = record.new_value if isinstance(record.new_value, dict) else {}
        verb = record.verb
        if verb == "enqueue":
            pending[mid] = Message(
                mid,
                queue,
                info["function_id"],
                info.get("data"),
                record.ts,
                next_at=record.ts,
            )
        elif verb == "ack":
            pending.pop(mid, None)
        elif verb == "retry" and mid in pending:
            message = pending[mid]
            message.attempts, message.error = info["attempts"], info.get("error")
            message.next_at = info["next_at"]
        elif verb == "dead" and mid in pending:
            message = pending.pop(mid)
            message.attempts, message.error = info["attempts"], info.get("error")
            message.failed_at = record.ts
            dead[mid] = message
        elif verb == "redrive" and mid in dead:
            message = dead.pop(mid)
            message.attempts, message.error, message.next_at = 0, None, record.ts
            pending[mid] = message
        elif verb == "discard":
            dead.pop(mid, None)


class QueueModule:
    def __init__(self, engine: Engine, config: QueueModuleConfig | None = None) -> None:
        self.engine = engine
        configs = config.queue_configs if config is not None else {}
        self.configs = {"default": QueueConfig(), **configs}
        self.state = QueueState()
        self.position = 0  # the state holds every queue record up to here
        self._folded = asyncio.Event()
        self._started = False
        self.inflight: dict[str, set[str]] = {q: set() for q in self.configs}
        self._wake: dict[str, asyncio.Event] = {
            q: asyncio.Event() for q in self.configs
        }
        engine.add_builtin("engine::queue::enqueue", self.fn_enqueue)

    def reconfigure(self, config: QueueModuleConfig) -> list[str]:
        """Apply a changed ``queue_configs`` live: new queues start delivering,
        changed ones use their new settings from the next message on. A queue
        that left the config keeps its messages and goes on delivering them
        until the next start. Returns the names of the queues added."""
        added = []
        for name, queue in config.queue_configs.items():
            if name not in self.configs:
                added.append(name)
            self.configs[name] = queue
        for name in added:
            self.inflight[name] = set()
            self._wake[name] = asyncio.Event()
            if self._started:
                self.engine.cluster.keep(
                    f"queue:{name}", functools.partial(self._run, name)
                )
        for wake in self._wake.values():
            wake.set()
        return added

    async def start(self) -> None:
        """Rebuild the queues from their records, follow the log for new ones
        (every node sharing the log folds them all), and deliver each queue
        from one node at a time (here, alone)."""
        head = self.engine.tail.head
        records = await self.engine.store.read_kinds(QUEUE_KINDS)
        for record in records:
            self.state.apply(record)
        self.position = max(head, records[-1].offset if records else 0)
        self._started = True
        self.engine.spawn(self._follow(), name="queues-fold")
        for queue in self.configs:
            self.engine.cluster.keep(
                f"queue:{queue}", functools.partial(self._run, queue)
            )

    async def _follow(self) -> None:
        tail = self.engine.tail
        while True:
            try:
                records = await tail.read_after(self.position, 1000)
            except Exception as e:
                # The database is away: every enqueue waits for this fold, so
                # it must not stop for good; try again.
                log.warning("queues: reading the log failed (%r); again", e)
                await asyncio.sleep(1.0)
                continue
            if not records:
                await tail.wait_beyond(self.position)
                continue
            woken = set()
            for record in records:
                if record.kind in QUEUE_KINDS:
                    self.state.apply(record)
                    woken.add(record.scope)
            self.position = records[-1].offset
            self._folded.set()
            self._folded = asyncio.Event()
            for queue in woken:
                wake = self._wake.get(queue)
                if wake is not None:
                    wake.set()

    async def _applied(self, offset: int) -> None:
        while self.position < offset:
            await self._folded.wait()

    # -- writes ------------------------------------------------------------------------

    async def _record(
        self, kind: Kind, queue: str, message_id: str, value: Any
    ) -> Record:
        record = await self.engine.writer.submit(
            Mutation(
                kind,
                queue,
                None,
                message_id,
                lambda _e, _o: Outcome(True, value, touches_view=False),
                Origin(function_id="iii::queue"),
            )
        )
        await self._applied(record.offset)  # folded, like every queue record
        return record

    def _config(self, queue: Any) -> QueueConfig:
        if not isinstance(queue, str) or queue not in self.configs:
            raise EngineError("enqueue_error", f"Queue '{queue}' not found")
        return self.configs[queue]

    async def enqueue(self, queue: Any, function_id: str, data: Any) -> str:
        config = self._config(queue)
        if config.type == "fifo":
            group = config.message_group_field or ""
            if not isinstance(data, dict) or data.get(group) is None:
                raise EngineError(
                    "enqueue_error",
                    f"FIFO queue '{queue}' needs the message group field '{group}'"
                    " in the payload",
                )
        message_id = random_uuid()
        await self._record(
            "queue.enqueue",
            queue,
            message_id,
            {"function_id": function_id, "data": data},
        )
        return message_id

    # -- delivery ----------------------------------------------------------------------

    async def _run(self, queue: str) -> None:
        inflight = self.inflight[queue]
        while True:
            config = self.configs[queue]  # live: a reload may replace it
            wake = self._wake[queue]
            wake.clear()
            now = int(time.time() * 1000)
            pending = self.state.pending.get(queue, {})
            if config.type == "fifo":
                slots = 0 if inflight else 1
            else:
                slots = config.concurrency - len(inflight)
            next_due: int | None = None
            for message in list(pending.values()):
                if slots <= 0:
                    break
                if message.id in inflight:
                    continue
                if message.next_at > now:
                    next_due = min(next_due or message.next_at, message.next_at)
                    if config.type == "fifo":
                        break  # strictly in order
                    continue
                inflight.add(message.id)
                slots -= 1
                self.engine.spawn(
                    self._deliver(config, message),
                    name=f"queue:{queue}:{message.id[:8]}",
                )
            timeout = config.poll_interval_ms / 1000
            if next_due is not None:
                timeout = min(timeout, max(0.0, (next_due - now) / 1000))
            await wait_event(wake, timeout)

    async def _deliver(self, config: QueueConfig, message: Message) -> None:
        queue = message.queue
        trace_id = hashlib.sha256(f"queue:{message.id}".encode()).hexdigest()[:32]
        self.engine.deliveries[trace_id] = 0
        error = None
        try:
            async with asyncio.timeout(config.delivery_timeout_ms / 1000):
                await self.engine.invoke(
                    message.function_id,
                    message.data,
                    CallContext(
                        function_id=message.function_id,
                        traceparent=f"00-{trace_id}-{secrets.token_hex(8)}-01",
                    ),
                )
        except EngineError as e:
            error = f"{e.code}: {e.message}"
        except TimeoutError:
            error = f"timeout: no answer within {config.delivery_timeout_ms} ms"
        except Exception as e:  # a bug: a failed attempt, retried like the others
            log.exception("queue %s: message %s failed", queue, message.id)
            error = f"internal_error: {e!r}"
        finally:
            self.engine.deliveries.pop(trace_id, None)
        try:
            await self._outcome(config, message, error)
        except Exception as e:
            # Not recorded (the database is away): the message is still
            # pending and runs again, after a pause rather than at once.
            log.warning(
                "queue %s: message %s: outcome not recorded: %r", queue, message.id, e
            )
            await asyncio.sleep(config.backoff_ms / 1000)
        finally:
            self.inflight[queue].discard(message.id)
            self._wake[queue].set()

    async def _outcome(
        self, config: QueueConfig, message: Message, error: str | None
    ) -> None:
        """Record the attempt: ack, retry later, or dead-letter."""
        queue = message.queue
        if error is None:
            await self._record("queue.ack", queue, message.id, {})
            return
        attempts = message.attempts + 1
        log.warning(
            "queue %s: message %s attempt %d failed: %s",
            queue,
            message.id,
            attempts,
            error,
        )
        if attempts >= config.max_retries:
            await self._record(
                "queue.dead",
                queue,
                message.id,
                {"attempts": attempts, "error": error},
            )
        else:
            delay = config.backoff_ms * 2 ** (attempts - 1)
            await self._record(
                "queue.retry",
                queue,
                message.id,
                {
                    "attempts": attempts,
                    "error": error,
                    "next_at": int(time.time() * 1000) + delay,
                },
            )

    # -- functions ---------------------------------------------------------------------

    @staticmethod
    def _arg(data: Any, name: str) -> str:
        value = data.get(name) if isinstance(data, dict) else None
        if not isinstance(value, str) or not value:
            raise EngineError("INVALID_ARGUMENTS", f"`{name}` is required")
        return value

    async def fn_enqueue(self, data: Any, ctx: CallContext) -> Any:
        queue = self._arg(data, "queue")
        function_id = self._arg(data, "function_id")
        return {
            "messageReceiptId": await self.enqueue(queue, function_id, data.get("data"))
        }

    def stats(self, queue: str) -> dict[str, Any]:
        """iii's ``TopicStats`` for a named queue, with iiilog's counts beside."""
        pending = len(self.state.pending.get(queue, {}))
        dead = len(self.state.dead.get(queue, {}))
        return {
            "depth": pending,
            "consumer_count": self.configs[queue].concurrency,
            "dlq_depth": dead,
            "config": self.configs[queue].model_dump(),
            "queue": queue,
            "type": self.configs[queue].type,
            "pending": pending,
            "inflight": len(self.inflight[queue]),
            "dead": dead,
        }

    async def redrive(self, queue: str, message_id: str | None = None) -> int:
        dead = list(self.state.dead.get(queue, {}))
        if message_id is not None:
            dead = [m for m in dead if m == message_id]
        for mid in dead:
            await self._record("queue.redrive", queue, mid, {})
        return len(dead)

    async def discard(self, queue: str, message_id: str) -> int:
        if message_id not in self.state.dead.get(queue, {}):
            return 0
        await self._record("queue.discard", queue, message_id, {})
        return 1
