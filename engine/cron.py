"""The ``cron`` trigger type, as iii documents it.

Expressions are Quartz style, as iii's Rust ``cron`` crate reads them: 6 or 7
fields (``sec min hour day-of-month month day-of-week [year]``), evaluated in
UTC, day-of-week 1-7 with 1 = Sunday (names work too). APScheduler's
``CronTrigger`` computes the fire times. Each job waits for its next time,
fires, awaits the handler and only then computes the following time from the
new "now": runs never overlap, and times that pass during a long run are
skipped, not caught up.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel, ConfigDict

from eventlog.codec import dumps

from .core import Engine, TriggerBinding
from .errors import EngineError, TriggerRegistrationFailed, trigger_condition

log = logging.getLogger("iiilog.cron")
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]  # crate: 1 = sun


def _day(token: str) -> int:
    token = token.strip().lower()
    if token.isdigit():
        number = int(token)
        if not 1 <= number <= 7:
            raise ValueError(f"day of week {number} is out of range 1-7")
        return number - 1
    if token[:3] in _DAYS:
        return _DAYS.index(token[:3])
    raise ValueError(f"unknown day of week {token!r}")


def _days_field(field: str) -> str:
    """A crate day-of-week field as an explicit list of APScheduler day names."""
    if field in ("*", "?"):
        return "*"
    days: set[int] = set()
    for part in field.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError("a step must be positive")
        if base in ("*", "?"):
            first, last = 0, 6
        elif "-" in base:
            a, b = base.split("-", 1)
            first, last = _day(a), _day(b)
            if last < first:
                raise ValueError(f"day range {base!r} runs backwards")
        else:
            first = _day(base)
            last = 6 if step_text else first
        days.update(range(first, last + 1, step))
    return ",".join(_DAYS[d] for d in sorted(days))


def parse_expression(expression: Any) -> CronTrigger:
    if not isinstance(expression, str) or not expression.strip():
        raise TriggerRegistrationFailed("Cron expression is required")
    fields = expression.split()
    try:
        if len(fields) not in (6, 7):
            raise ValueError(
                f"expected 6 or 7 fields (sec min hour day month weekday [year]),"
                f" got {len(fields)}"
            )
        second, minute, hour, day, month, weekday = fields[:6]
        year = fields[6] if len(fields) == 7 else "*"
        return CronTrigger(
            second=second,
            minute=minute,
            hour=hour,
            day="*" if day == "?" else day,
            month=month.lower(),
            day_of_week=_days_field(weekday),
            year=year,
            timezone=UTC,
        )
    except ValueError as e:
        raise TriggerRegistrationFailed(
            f"Invalid cron expression '{expression}': {e}"
        ) from e


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


class CronConfig(BaseModel):
    """Module ``iii-cron`` (alias ``cron``): no settings of its own. One
    process needs no job locks, so iii's adapter (lock store) does not apply."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    # iii settings this module does not implement: accepted, warned about.
    iii_unimplemented: ClassVar[frozenset[str]] = frozenset({"adapter"})


class CronModule:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        engine.add_provider("cron", self, "Run a function on a schedule (UTC)")

    async def register(self, binding: TriggerBinding) -> None:
        config = binding.config if isinstance(binding.config, dict) else {}
        trigger = parse_expression(config.get("expression"))
        condition = trigger_condition(config)
        binding.state = self.engine.spawn(
            self._run(binding, trigger, condition), name=f"cron:{binding.id}"
        )

    async def unregister(self, binding: TriggerBinding) -> None:
        if isinstance(binding.state, asyncio.Task):
            binding.state.cancel()

    async def _run(
        self, binding: TriggerBinding, trigger: CronTrigger, condition: str | None
    ) -> None:
        # What the job *is*: bindings of it from replicas of a worker, on this
        # node or another one sharing the log, fire once per scheduled time.
        job = (
            "cron:"
            + hashlib.sha256(
                dumps([binding.function_id, binding.namespace, binding.config]).encode()
            ).hexdigest()[:32]
        )
        last: datetime | None = None
        while True:
            now = datetime.now(UTC)
            if last is not None and now <= last:  # never the same time twice
                now = last + timedelta(milliseconds=1)
            scheduled = trigger.get_next_fire_time(None, now)
            if scheduled is None:
                log.info("cron %s: no further fire times", binding.id)
                return
            # A loop's timers may wake a little early (uvloop's count whole
            # milliseconds): never fire before the scheduled time.
            remaining = (scheduled - datetime.now(UTC)).total_seconds()
            while remaining > 0:
                await asyncio.sleep(remaining)
                remaining = (scheduled - datetime.now(UTC)).total_seconds()
            last = scheduled
            try:
                await self._fire(binding, job, scheduled, condition)
            except EngineError as e:
                log.warning(
                    "cron %s -> %s failed: %s", binding.id, binding.function_id, e
                )
            except Exception:  # a bug must not end the job: the next time fires
                log.exception("cron %s -> %s failed", binding.id, binding.function_id)

    async def _fire(
        self,
        binding: TriggerBinding,
        job: str,
        scheduled: datetime,
        condition: str | None,
    ) -> None:
        scheduled_ms = int(scheduled.timestamp() * 1000)
        if not await self.engine.cluster.claim_fire(job, scheduled_ms):
            return  # another binding of the job fires this time
        payload = {
            "trigger": "cron",
            "job_id": binding.id,
            "scheduled_time": _rfc3339(scheduled),
            "actual_time": _rfc3339(datetime.now(UTC)),
        }
        await self.engine.fire(
            binding.function_id,
            payload,
            condition=condition,
            metadata=binding.metadata,
            namespace=binding.namespace,
        )
