"""Queue ``concurrency``, measured: a standard named queue (``queue_configs``)
and a durable topic subscriber (``queue_config``) run at most ``concurrency``
handlers at once and do reach it; fifo ones run one at a time, in order,
whatever ``concurrency`` says.

The handler is async, so the SDK's thread pool (a few threads) puts no limit
of its own on how many calls run at once: whatever bounds them is the engine.
Every call waits while the test holds the gate shut, so the deliveries pile up
to the engine's limit and stay there while the test looks; then they run to
the end, each holding a little, so later waves overlap too.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from iii import TriggerAction

from tests.harness import (
    EngineProcess,
    call,
    engine_with,
    never_within,
    sdk_worker,
    trigger_bound,
    wait_until,
)

CONCURRENCY = 3
MESSAGES = 12
# 5x the queues' poll interval (100 ms): a queue that did not stop at its limit
# would start more deliveries well within it (it starts them as soon as it
# wakes, and every enqueue wakes it).
WINDOW_S = 0.5
HOLD_S = 0.03

QUEUES = (
    "  - name: iii-queue\n"
    "    config:\n"
    "      queue_configs:\n"
    f"        pool: {{concurrency: {CONCURRENCY}}}\n"
    "        line: {type: fifo, message_group_field: group,"
    f" concurrency: {CONCURRENCY}}}\n"
)


@pytest.fixture
def queue_engine(tmp_path: Path) -> Iterator[EngineProcess]:
    proc = engine_with(tmp_path, QUEUES)
    try:
        yield proc
    finally:
        if proc.alive():
            proc.stop()


class Gauge:
    """Counts how many of its calls are running, and the most at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.done: list[Any] = []
        self.gate = threading.Event()

    async def handle(self, data: Any) -> Any:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            # The test opens the gate from its own thread, not the SDK's loop.
            while not self.gate.is_set():  # noqa: ASYNC110
                await asyncio.sleep(0.005)
            await asyncio.sleep(HOLD_S)
        finally:
            with self.lock:
                self.running -= 1
                self.done.append(data)
        return {"ok": True}

    def over(self, limit: int) -> int | None:
        """The most calls seen at once, when that exceeds ``limit``."""
        return self.most if self.most > limit else None


def holds_the_limit(gauge: Gauge, limit: int, total: int) -> None:
    """With the gate shut: the calls reach ``limit`` and no more start; then,
    released, every message is handled and ``limit`` was never exceeded."""
    try:
        wait_until(
            lambda: gauge.running >= limit,
            timeout=20,
            message=f"{limit} deliveries in flight (running: {gauge.running})",
        )
        never_within(
            lambda: gauge.over(limit), WINDOW_S, message=f"more than {limit} at once"
        )
        assert len(gauge.done) == 0
    finally:
        # Pass or fail, every message is handled before the worker shuts down.
        gauge.gate.set()
        wait_until(lambda: len(gauge.done) == total, timeout=30)
    assert gauge.most == limit


def enqueue(client: Any, function_id: str, data: Any, queue: str) -> Any:
    return client.trigger(
        {
            "function_id": function_id,
            "payload": data,
            "action": TriggerAction.Enqueue(queue=queue),
        }
    )


def test_named_queue_runs_at_most_concurrency_at_once(
    queue_engine: EngineProcess,
) -> None:
    gauge = Gauge()
    with sdk_worker(queue_engine.worker_url, "pool") as w:
        w.register_function("cc::pool", gauge.handle)
        for i in range(MESSAGES):
            enqueue(w, "cc::pool", {"i": i}, "pool")
        holds_the_limit(gauge, CONCURRENCY, MESSAGES)
        wait_until(
            lambda: (
                call(w, "engine::queue::topic_stats", {"queue": "pool"})["pending"] == 0
            )
        )
        stats = call(w, "engine::queue::topic_stats", {"queue": "pool"})
    assert stats["inflight"] == 0 and stats["consumer_count"] == CONCURRENCY
    assert sorted(d["i"] for d in gauge.done) == list(range(MESSAGES))


def test_fifo_queue_runs_one_at_a_time_in_order(queue_engine: EngineProcess) -> None:
    """``concurrency`` is for standard queues: a fifo one delivers one message
    at a time, in enqueue order."""
    gauge = Gauge()
    with sdk_worker(queue_engine.worker_url, "line") as w:
        w.register_function("cc::line", gauge.handle)
        for i in range(6):
            enqueue(w, "cc::line", {"group": "g", "i": i}, "line")
        holds_the_limit(gauge, 1, 6)
    assert [d["i"] for d in gauge.done] == list(range(6))


@pytest.mark.parametrize(
    ("queue_config", "limit"),
    [
        ({"concurrency": CONCURRENCY}, CONCURRENCY),
        ({"type": "fifo", "concurrency": CONCURRENCY}, 1),
    ],
    ids=["concurrent", "fifo"],
)
def test_topic_subscriber_runs_at_most_concurrency_at_once(
    queue_engine: EngineProcess, queue_config: dict[str, Any], limit: int
) -> None:
    """``durable:subscriber`` with ``queue_config.concurrency``: the same bound
    per subscriber; a fifo subscriber takes one message at a time, in order."""
    gauge = Gauge()
    topic = f"cc.{queue_config.get('type', 'concurrent')}"
    with sdk_worker(queue_engine.worker_url, "subscriber") as w:
        w.register_function("cc::sub", gauge.handle)
        w.register_trigger(
            {
                "type": "durable:subscriber",
                "function_id": "cc::sub",
                "config": {"topic": topic, "queue_config": queue_config},
            }
        )
        wait_until(lambda: trigger_bound(w, "cc::sub"))
        for i in range(MESSAGES):
            call(w, "iii::durable::publish", {"topic": topic, "data": {"i": i}})
        holds_the_limit(gauge, limit, MESSAGES)
    got = [d["i"] for d in gauge.done]
    assert sorted(got) == list(range(MESSAGES))
    if limit == 1:
        assert got == list(range(MESSAGES))
