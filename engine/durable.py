"""Durable trigger subscriptions: log consumers with a cursor that survives
workers and the engine.

A subscription is keyed by what the trigger *is* (function id + trigger type +
config, without ``from``), not by the socket that registered it. Bindings with
the same key share one subscription. Records are delivered one at a time, in
offset order; the cursor moves only after the handler answered (or the record
was parked), and is saved in the background, so delivery is at least once.

Each delivery gets a trace id derived from (key, offset). Writes the handler
makes under it are numbered and recorded; when the same record is delivered
again, those writes return their first result instead of applying twice. For a
deterministic handler whose effects are engine writes, that is exactly once.

A handler that keeps failing is retried with exponential backoff, then the
record is parked (listed by ``iiilog::triggers::parked``) and the subscription
moves on: a poison record never stalls it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from eventlog import Park, PruneTags, Record, SaveCursor, Unpark

from .core import Engine, TriggerBinding, now_ms
from .errors import EngineError
from .subscription_rules import (
    Policy,
    TriggersConfig,
    delivery_limit,
    delivery_trace,
    lease_name,
    start_position,
    subscription_key,
)

log = logging.getLogger("iiilog.durable")
RETRY_S = 1.0  # a delivery whose park failed is tried again after this

Match = Callable[[Record], bool]
Payload = Callable[[Record], Any]


def _cursor(sub: Subscription) -> SaveCursor:
    return SaveCursor(
        sub.key, sub.function_id, sub.trigger_type, sub.config, sub.cursor, now_ms()
    )


@dataclass(eq=False)
class Subscription:
    key: str
    function_id: str
    trigger_type: str
    config: Any
    match: Match
    payload: Payload
    condition: str | None
    cursor: int
    max_in_flight: int = 1
    policy: Policy | None = None
    bindings: dict[str, TriggerBinding] = field(default_factory=dict)
    saved: int = -1
    delivered: int = 0
    failures: int = 0
    last_error: str | None = None

    @property
    def metadata(self) -> Any:
        binding = next(reversed(self.bindings.values()), None)
        return binding.metadata if binding is not None else None

    @property
    def namespace(self) -> str | None:
        binding = next(reversed(self.bindings.values()), None)
        return binding.namespace if binding is not None else None


class DurableTriggers:
    def __init__(self, engine: Engine, config: TriggersConfig | None = None) -> None:
        self.engine = engine
        self.config = config or TriggersConfig()
        self.subs: dict[str, Subscription] = {}
        self._flusher: asyncio.Task[Any] | None = None
        # Attach and detach of one key run one at a time: both await (the
        # saved cursor, the lease), and two bindings of a key arriving
        # together must share one subscription and one lease.
        self._changing: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def _one_at_a_time(self, key: str) -> AsyncIterator[None]:
        lock, users = self._changing.get(key, (asyncio.Lock(), 0))
        self._changing[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._changing[key]
            if users == 1:
                del self._changing[key]
            else:
                self._changing[key] = (lock, users - 1)

    def start(self) -> None:
        self._flusher = self.engine.spawn(self._flush_loop(), name="cursor-flusher")

    async def attach(
        self,
        binding: TriggerBinding,
        match: Match,
        payload: Payload,
        condition: str | None,
        policy: Policy | None = None,
        scope: str | None = None,
    ) -> str:
        """Deliver matching records to the binding's function; returns the
        subscription key (bindings with the same key share it)."""
        key = subscription_key(
            binding.function_id, binding.trigger_type, binding.config, scope
        )
        binding.state = key
        async with self._one_at_a_time(key):
            return await self._attach(binding, key, match, payload, condition, policy)

    async def _attach(
        self,
        binding: TriggerBinding,
        key: str,
        match: Match,
        payload: Payload,
        condition: str | None,
        policy: Policy | None,
    ) -> str:
        sub = self.subs.get(key)
        if sub is None:
            limit = (
                policy.max_in_flight
                if policy is not None
                else delivery_limit(binding.config, self.config.max_in_flight)
            )
            saved = await self.engine.store.cursor(key)
            cursor = (
                saved
                if saved is not None
                else start_position(binding.config, self.engine.tail.head)
            )
            sub = Subscription(
                key,
                binding.function_id,
                binding.trigger_type,
                binding.config,
                match,
                payload,
                condition,
                cursor,
                limit,
                policy,
                saved=saved if saved is not None else -1,
            )
            if saved is None:
                await self.engine.writer.keep(_cursor(sub))
                sub.saved = sub.cursor
            self.subs[key] = sub
            # One node at a time delivers a subscription (alone: this one).
            self.engine.cluster.keep(
                lease_name(key), functools.partial(self._lead, sub)
            )
        sub.bindings[binding.id] = binding
        return key

    async def detach(self, binding: TriggerBinding) -> None:
        key = binding.state
        if not isinstance(key, str):
            return
        async with self._one_at_a_time(key):  # after an attach still under way
            sub = self.subs.get(key)
            if sub is None:
                return
            sub.bindings.pop(binding.id, None)
            if sub.bindings:
                return
            del self.subs[sub.key]

            async def save() -> None:
                # Stopped now: its cursor covers what its handlers answered.
                # Saved before the lease goes, so the next holder starts there.
                await self._write_cursors([sub])

            await self.engine.cluster.drop(lease_name(sub.key), before_release=save)

    # -- delivery ----------------------------------------------------------------------

    async def _lead(self, sub: Subscription) -> None:
        """Deliver while this node holds the subscription's lease. The cursor is
        shared: another node may have moved it since this one last led."""
        saved = await self.engine.store.cursor(sub.key)
        if saved is not None and saved > sub.cursor:
            sub.cursor = sub.saved = saved
        await self._run(sub)

    async def _run(self, sub: Subscription) -> None:
        if sub.max_in_flight == 0:  # paused: the cursor stays where it is
            await asyncio.Event().wait()
        if sub.max_in_flight > 1:
            await self._run_keyed(sub)
            return
        tail = self.engine.tail
        while True:
            records = await tail.read_after(sub.cursor, 500)
            if not records:
                await tail.wait_beyond(sub.cursor)
                continue
            for record in records:
                if sub.match(record):
                    await self._deliver(sub, record)
                sub.cursor = record.offset

    async def _run_keyed(self, sub: Subscription) -> None:
        """Up to ``max_in_flight`` deliveries at once; per key, in offset order.

        The cursor is the watermark below the oldest delivery still running, so
        it still only covers records whose handler answered.
        """
        tail = self.engine.tail
        slots = asyncio.Semaphore(sub.max_in_flight)
        running: dict[int, asyncio.Task[Any]] = {}
        last_of_key: dict[tuple[str, str | None, str | None], asyncio.Task[Any]] = {}
        read = sub.cursor

        def settle() -> None:
            sub.cursor = min(running) - 1 if running else read

        async def one(record: Record, before: asyncio.Task[Any] | None) -> None:
            try:
                if before is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.shield(before)  # same key: keep the order
                while True:
                    try:
                        await self._deliver(sub, record)
                        break
                    except Exception as e:
                        # Not a handler failure (those are retried and parked):
                        # the park itself failed (the database is away, say).
                        # The record stays below the watermark and is tried
                        # again, never left behind for good.
                        log.warning(
                            "trigger %s: delivery of offset %d failed (%r); again",
                            sub.function_id,
                            record.offset,
                            e,
                        )
                        await asyncio.sleep(RETRY_S)
            finally:
                slots.release()
            running.pop(record.offset, None)  # answered or parked: covered now
            settle()

        def forget(
            task: asyncio.Task[Any], key: tuple[str, str | None, str | None]
        ) -> None:
            if last_of_key.get(key) is task:
                del last_of_key[key]

        try:
            while True:
                records = await tail.read_after(read, 500)
                if not records:
                    await tail.wait_beyond(read)
                    continue
                for record in records:
                    if sub.match(record):
                        await slots.acquire()
                        key = (record.scope, record.group, record.key)
                        task = asyncio.get_running_loop().create_task(
                            one(record, last_of_key.get(key))
                        )
                        running[record.offset] = task
                        last_of_key[key] = task
                        task.add_done_callback(functools.partial(forget, key=key))
                    read = record.offset
                    settle()
        finally:
            tasks = list(running.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _deliver(self, sub: Subscription, record: Record) -> bool:
        """Deliver with retries; False when the record ended up parked."""
        config = self.config
        policy = sub.policy or Policy(
            config.max_attempts, config.backoff_ms, config.backoff_max_ms, 1
        )
        trace_id = delivery_trace(sub.key, record.offset)
        error = ""
        attempt = 0
        while attempt < policy.max_attempts:
            attempt += 1
            self.engine.deliveries[trace_id] = 0
            try:
                async with asyncio.timeout(config.delivery_timeout_ms / 1000):
                    await self._fire(sub, sub.payload(record), trace_id)
                sub.delivered += 1
                return True
            except EngineError as e:
                if policy.await_function and e.code == "function_not_found":
                    attempt -= 1  # away, not failing: wait for it to return
                    sub.last_error = f"{e.code}: {e.message}"
                    await asyncio.sleep(0.2)
                    continue
                error = f"{e.code}: {e.message}"
            except TimeoutError:
                error = f"timeout: no answer within {config.delivery_timeout_ms} ms"
            except Exception as e:  # a bug: a failed attempt, not the end of it all
                log.exception("trigger %s: delivery failed", sub.function_id)
                error = f"internal_error: {e!r}"
            finally:
                self.engine.deliveries.pop(trace_id, None)
            sub.failures += 1
            sub.last_error = error
            log.warning(
                "trigger %s -> %s: offset %d, attempt %d/%d failed: %s",
                sub.trigger_type,
                sub.function_id,
                record.offset,
                attempt,
                policy.max_attempts,
                error,
            )
            if attempt < policy.max_attempts:
                delay = min(
                    policy.backoff_ms * 2 ** (attempt - 1), policy.backoff_max_ms
                )
                await asyncio.sleep(delay / 1000)
        await self.engine.writer.keep(
            Park(sub.key, record.offset, policy.max_attempts, error, now_ms())
        )
        log.error(
            "trigger %s -> %s: offset %d parked after %d attempts: %s",
            sub.trigger_type,
            sub.function_id,
            record.offset,
            policy.max_attempts,
            error,
        )
        return False

    async def _fire(self, sub: Subscription, payload: Any, trace_id: str) -> None:
        await self.engine.fire(
            sub.function_id,
            payload,
            condition=sub.condition,
            metadata=sub.metadata,
            namespace=sub.namespace,
            traceparent=f"00-{trace_id}-{secrets.token_hex(8)}-01",
            delivery=True,
        )

    # -- cursors -----------------------------------------------------------------------

    async def _save(self, subs: list[Subscription]) -> None:
        """Save the cursors this node moved (only the leader moves one)."""
        cluster = self.engine.cluster
        await self._write_cursors([s for s in subs if cluster.holds(lease_name(s.key))])

    async def _write_cursors(self, subs: list[Subscription]) -> None:
        ops = [(s, _cursor(s)) for s in subs if s.cursor != s.saved]
        await asyncio.gather(*(self.engine.writer.keep(op) for _, op in ops))
        for s, op in ops:
            s.saved = op.position

    async def flush(self) -> None:
        await self._save(list(self.subs.values()))

    async def _flush_loop(self) -> None:
        next_prune = 0.0
        while True:
            await asyncio.sleep(self.config.flush_interval_ms / 1000)
            try:
                await self.flush()
                if time.monotonic() >= next_prune:
                    await self.prune_dedupe()
                    next_prune = time.monotonic() + min(
                        3600.0, self.config.dedupe_retention_ms / 2000
                    )
            except Exception:
                log.exception("saving trigger cursors failed")

    async def prune_dedupe(self) -> None:
        """Forget write tags older than ``dedupe_retention_ms``: a redelivery can
        only come from a position its cursor has not passed yet."""
        await self.engine.writer.keep(
            PruneTags(now_ms() - self.config.dedupe_retention_ms)
        )

    async def redeliver(self, key: str, offset: int | None) -> dict[str, Any]:
        """Deliver parked records of subscription ``key`` again (all, or one).

        A record that now succeeds leaves the parked list; one that fails again
        stays there with its new error.
        """
        sub = self.subs.get(key)
        if sub is None:
            raise EngineError("NOT_FOUND", f"subscription {key} is not active")
        rows = await self.engine.store.parked(key)
        if offset is not None:
            rows = [r for r in rows if r.offset == offset]
            if not rows:
                raise EngineError("NOT_FOUND", f"offset {offset} is not parked")
        delivered = 0
        for row in rows:
            record = await self.engine.store.read_one(row.offset)
            if record is None:
                continue
            if await self._deliver(sub, record):
                delivered += 1
                await self.engine.writer.keep(Unpark(key, row.offset))
        return {
            "key": key,
            "redelivered": delivered,
            "still_parked": len(rows) - delivered,
        }

    async def status(self) -> dict[str, Any]:
        head = self.engine.tail.head
        out = []
        for row in await self.engine.store.cursors():
            live = self.subs.get(row.key)
            position = live.cursor if live is not None else row.position
            item = {
                "key": row.key,
                "function_id": row.function_id,
                "trigger_type": row.trigger_type,
                "config": row.config,
                "position": position,
                "lag": max(0, head - position),
                "active": live is not None,
                "delivering": live is not None
                and self.engine.cluster.holds(lease_name(row.key)),
                "parked": row.parked,
            }
            if live is not None:
                item.update(
                    delivered=live.delivered,
                    failures=live.failures,
                    last_error=live.last_error,
                )
            out.append(item)
        return {"head": head, "subscriptions": out}
