"""The rules of a durable trigger subscription, without I/O: its settings
(module ``iiilog-triggers``), its key, where a new one starts, how many
deliveries it runs at once, and the names of its lease and delivery traces.

``engine/durable.py`` runs subscriptions by these rules.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from eventlog.codec import dumps

from .errors import TriggerRegistrationFailed


class TriggersConfig(BaseModel):
    """Module ``iiilog-triggers``: delivery, retry and dedupe of durable
    trigger subscriptions."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    max_attempts: int = Field(5, ge=1)  # then the record is parked
    backoff_ms: int = Field(200, ge=1)  # doubles per attempt ...
    backoff_max_ms: int = Field(10_000, ge=1)  # ... up to this
    delivery_timeout_ms: int = Field(30_000, ge=1)
    flush_interval_ms: int = Field(200, ge=1)  # cursor saves
    # Deliveries of one subscription at once: records of one key (scope + key,
    # or stream + group + item) stay in offset order, different keys run
    # concurrently. 64 keeps a subscription ahead of what the engine commits
    # (~10-15k records/s here) with handlers of a few ms each; 1 is strict
    # total order, one record at a time: the slower choice (a 2 ms handler caps
    # it near 500 records/s).
    max_in_flight: int = Field(64, ge=1)
    dedupe_retention_ms: int = Field(7 * 24 * 3600 * 1000, ge=1)


# Fields of a trigger's config that tune its delivery, not what it is: replicas
# of a worker that differ only in these share one subscription and one cursor.
DELIVERY_FIELDS = ("from", "max_in_flight")


def subscription_key(
    function_id: str, trigger_type: str, config: Any, scope: str | None = None
) -> str:
    """What a trigger *is*: its function, its type and its config without the
    delivery-tuning fields (and, for types that ask, the binding's namespace)."""
    cfg = dict(config) if isinstance(config, dict) else {"value": config}
    for name in DELIVERY_FIELDS:
        cfg.pop(name, None)
    parts: list[Any] = [function_id, trigger_type, cfg]
    if scope is not None:
        parts.append(scope)
    text = dumps(parts)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def start_position(config: Any, head: int) -> int:
    """Where a brand-new subscription starts: the head, unless ``from`` asks."""
    wanted = config.get("from") if isinstance(config, dict) else None
    if wanted is None:
        return head
    if wanted == "earliest":
        return 0
    if isinstance(wanted, int) and not isinstance(wanted, bool) and wanted >= 0:
        return min(wanted, head)
    raise TriggerRegistrationFailed(
        'Failed to parse trigger config: `from` must be "earliest" or an offset'
    )


def delivery_limit(config: Any, default: int) -> int:
    """Deliveries in flight for one subscription: the trigger's own
    ``max_in_flight`` if it sets one, else the engine's default."""
    wanted = config.get("max_in_flight") if isinstance(config, dict) else None
    if wanted is None:
        return default
    if (
        isinstance(wanted, int)
        and not isinstance(wanted, bool)
        and 1 <= wanted <= 10_000
    ):
        return wanted
    raise TriggerRegistrationFailed(
        "Failed to parse trigger config: `max_in_flight` must be an integer"
        " from 1 to 10000"
    )


@dataclass(frozen=True, slots=True)
class Policy:
    """How one subscription retries, when its trigger type does not follow the
    module's defaults (durable topics: per-subscriber ``queue_config``)."""

    max_attempts: int
    backoff_ms: int
    backoff_max_ms: int
    max_in_flight: int  # 0: paused (nothing is delivered)
    # ``function_not_found`` spends no attempt: the subscription waits for its
    # function to come back instead of parking what it missed.
    await_function: bool = False


def lease_name(key: str) -> str:
    return f"trigger:{key}"


def delivery_trace(key: str, offset: int) -> str:
    return hashlib.sha256(f"{key}:{offset}".encode()).hexdigest()[:32]
