"""Queues through the real SDK (``TriggerAction.Enqueue``): delivery, retries
with backoff, the dead-letter list and redrive, FIFO order, and durability
across a restart and ``kill -9``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from iii import InvocationError, TriggerAction

from tests.harness import EngineProcess, call, sdk_worker, wait_until

CONFIG = """\
workers:
  - name: iii-worker-manager
    config: {port: 0, host: 127.0.0.1}
  - name: iii-queue
    config:
      queue_configs:
        jobs: {max_retries: 2, backoff_ms: 50}
        orders: {type: fifo, message_group_field: customer, backoff_ms: 50}
"""


@pytest.fixture
def queue_engine(tmp_path: Path) -> Iterator[EngineProcess]:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    proc = EngineProcess(tmp_path / "data", config=config).start()
    try:
        yield proc
    finally:
        if proc.alive():
            proc.stop()


class Job:
    """A handler that fails while ``broken`` is set."""

    def __init__(self) -> None:
        self.calls: list[Any] = []
        self.broken = False
        self.lock = threading.Lock()

    def __call__(self, data: Any) -> Any:
        with self.lock:
            self.calls.append(data)
        if self.broken:
            raise RuntimeError("job failed")
        return {"done": True}


def enqueue(client: Any, function_id: str, data: Any, queue: str) -> Any:
    return client.trigger(
        {
            "function_id": function_id,
            "payload": data,
            "action": TriggerAction.Enqueue(queue=queue),
        }
    )


def test_enqueue_delivers_the_raw_payload(engine: EngineProcess, client: Any) -> None:
    job = Job()
    with sdk_worker(engine.worker_url, "q-worker") as w:
        w.register_function("q::job", job)
        receipt = enqueue(client, "q::job", {"n": 1}, "default")
        assert set(receipt) == {"messageReceiptId"}
        wait_until(lambda: job.calls)
    assert job.calls == [{"n": 1}]
    with pytest.raises(InvocationError) as err:
        enqueue(client, "q::job", {}, "nope")
    assert err.value.code == "enqueue_error"
    assert "Queue 'nope' not found" in str(err.value)


def test_retry_dead_letter_and_redrive_across_restart(
    queue_engine: EngineProcess,
) -> None:
    job = Job()
    job.broken = True
    with sdk_worker(queue_engine.worker_url, "q-1") as w:
        w.register_function("q::flaky", job)
        enqueue(w, "q::flaky", {"n": 7}, "jobs")
        wait_until(lambda: call(w, "engine::queue::dlq_messages", {"topic": "jobs"}))
        dead = call(w, "engine::queue::dlq_messages", {"topic": "jobs"})
    assert len(job.calls) == 2  # max_retries attempts, then dead-lettered
    assert dead[0]["attempts"] == 2 and "job failed" in dead[0]["error"]
    assert dead[0]["data"] == {"n": 7}
    # iii's DlqMessage fields beside iiilog's names
    assert dead[0]["id"] == dead[0]["message_id"] and dead[0]["retries"] == 2
    assert dead[0]["payload"] == {"n": 7} and dead[0]["size_bytes"] == 7
    queue_engine.stop()
    queue_engine.start()
    job.broken = False
    with sdk_worker(queue_engine.worker_url, "q-2") as w:
        w.register_function("q::flaky", job)
        still = call(w, "engine::queue::dlq_messages", {"queue": "jobs"})
        assert [m["message_id"] for m in still] == [dead[0]["message_id"]]
        assert call(w, "iii::queue::redrive", {"queue": "jobs"}) == {
            "queue": "jobs",
            "redriven": 1,
        }
        wait_until(lambda: len(job.calls) == 3)
        wait_until(
            lambda: (
                call(w, "engine::queue::topic_stats", {"queue": "jobs"})["pending"] == 0
            )
        )
        assert call(w, "engine::queue::dlq_messages", {"queue": "jobs"}) == []
        # like iii: an id that is not dead-lettered is answered with a zero count
        assert call(
            w, "iii::queue::discard_message", {"queue": "jobs", "message_id": "nope"}
        ) == {"queue": "jobs", "message_id": "nope", "redriven": 0, "discarded": 0}


def test_queued_messages_survive_kill_9(queue_engine: EngineProcess) -> None:
    with sdk_worker(queue_engine.worker_url, "producer") as w:
        for i in range(5):  # nobody serves q::later yet: every attempt fails
            enqueue(w, "q::later", {"i": i}, "default")
    queue_engine.kill()
    queue_engine.start()
    job = Job()
    with sdk_worker(queue_engine.worker_url, "consumer") as w:
        w.register_function("q::later", job)
        wait_until(lambda: len(job.calls) == 5, timeout=30)
    assert sorted(c["i"] for c in job.calls) == list(range(5))


def test_fifo_order_and_group_field(queue_engine: EngineProcess) -> None:
    job = Job()
    with sdk_worker(queue_engine.worker_url, "fifo") as w:
        w.register_function("q::order", job)
        for i in range(10):
            enqueue(w, "q::order", {"customer": "c1", "i": i}, "orders")
        wait_until(lambda: len(job.calls) == 10)
        with pytest.raises(InvocationError) as err:
            enqueue(w, "q::order", {"i": 1}, "orders")
        assert err.value.code == "enqueue_error" and "customer" in str(err.value)
    assert [c["i"] for c in job.calls] == list(range(10))
