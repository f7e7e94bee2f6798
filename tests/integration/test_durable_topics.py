"""Durable topics through the real Python SDK: ``iii::durable::publish`` and
``durable:subscriber`` as iii's queue docs use them (fan-out, retries, the
dead-letter queue and redrive), and what the log adds: a subscriber that was
away catches up, and an accepted publish survives ``kill -9``."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from iii import InvocationError

from tests.harness import EngineProcess, call, sdk_worker, trigger_bound, wait_until


class Handler:
    """Records what it got; fails while ``broken``; waits while ``gate`` is shut."""

    def __init__(self) -> None:
        self.got: list[Any] = []
        self.broken = False
        self.gate = threading.Event()
        self.gate.set()
        self.lock = threading.Lock()

    def __call__(self, data: Any) -> Any:
        self.gate.wait(30)
        with self.lock:
            self.got.append(data)
        if self.broken:
            raise RuntimeError("forced failure")
        return {"ok": True}


def subscribe(
    worker: Any, function_id: str, handler: Handler, config: dict[str, Any]
) -> None:
    worker.register_function(function_id, handler)
    worker.register_trigger(
        {"type": "durable:subscriber", "function_id": function_id, "config": config}
    )
    wait_until(lambda: trigger_bound(worker, function_id), message="trigger bound")


def publish(client: Any, topic: str, data: Any) -> Any:
    return call(client, "iii::durable::publish", {"topic": topic, "data": data})


def test_one_publish_fans_out_to_every_subscribed_function(
    engine: EngineProcess, client: Any
) -> None:
    emails, audit = Handler(), Handler()
    with sdk_worker(engine.worker_url, "fanout") as w:
        subscribe(w, "fan::email", emails, {"topic": "fan.orders"})
        # `queue` is iii's alias of `topic`
        subscribe(w, "fan::audit", audit, {"queue": "fan.orders"})
        assert publish(client, "fan.orders", {"n": 1}) is None
        publish(client, "fan.orders", {"n": 2})
        wait_until(lambda: len(emails.got) == 2 and len(audit.got) == 2)
        assert emails.got == [{"n": 1}, {"n": 2}]
        assert sorted(a["n"] for a in audit.got) == [1, 2]
        topics = call(client, "engine::queue::list_topics", {})
        mine = [t for t in topics if t["name"] == "fan.orders"]
        assert mine == [
            {
                "name": "fan.orders",
                "broker_type": "builtin",
                "subscriber_count": 2,
                "queue": "fan.orders",
                "type": "topic",
                "dead": 0,
            }
        ]
        stats = call(client, "engine::queue::topic_stats", {"topic": "fan.orders"})
        assert stats["depth"] == 0 and stats["consumer_count"] == 2
        assert stats["dlq_depth"] == 0 and stats["config"] is None
    with pytest.raises(InvocationError) as err:
        call(client, "iii::durable::publish", {"topic": "", "data": 1})
    assert err.value.code == "topic_not_set"
    with pytest.raises(InvocationError) as err:
        call(client, "iii::durable::publish", {"topic": "t"})
    assert err.value.code == "deserialization_error"


def test_retries_then_dead_letters_then_redrive(
    engine: EngineProcess, client: Any
) -> None:
    job = Handler()
    job.broken = True
    config = {"topic": "dlq.emails", "queue_config": {"maxRetries": 1}}
    with sdk_worker(engine.worker_url, "dlq") as w:
        subscribe(w, "dlq::send", job, config)
        publish(client, "dlq.emails", {"to": "a@b.com"})
        publish(client, "dlq.emails", {"to": "c@d.com"})

        def dead() -> list[dict[str, Any]]:
            found = call(client, "engine::queue::dlq_messages", {"topic": "dlq.emails"})
            return list(found)

        wait_until(lambda: len(dead()) == 2, timeout=20, message="two dead letters")
        assert len(job.got) == 4  # 1 attempt + 1 retry each
        first = next(m for m in dead() if m["payload"] == {"to": "a@b.com"})
        assert first["retries"] == 2 and "forced failure" in first["error"]
        assert first["size_bytes"] > 0 and isinstance(first["failed_at"], int)
        assert first["message_id"] == first["id"] and first["data"] == first["payload"]
        dlq_topics = call(client, "engine::queue::dlq_topics", {})
        assert {
            "topic": "dlq.emails",
            "broker_type": "builtin",
            "message_count": 2,
        } in dlq_topics
        stats = call(client, "engine::queue::topic_stats", {"queue": "dlq.emails"})
        assert stats["dlq_depth"] == 2

        job.broken = False
        # one message by the id dlq_messages gave (`topic` as the docs pass it)
        answer = call(
            client,
            "iii::queue::redrive_message",
            {"topic": "dlq.emails", "message_id": first["id"]},
        )
        assert answer == {
            "queue": "dlq.emails",
            "message_id": first["id"],
            "redriven": 1,
        }
        wait_until(lambda: {"to": "a@b.com"} in job.got[4:])
        wait_until(lambda: len(dead()) == 1)
        # the rest of the topic
        assert call(client, "iii::queue::redrive", {"topic": "dlq.emails"}) == {
            "queue": "dlq.emails",
            "redriven": 1,
        }
        wait_until(lambda: {"to": "c@d.com"} in job.got[4:])
        wait_until(lambda: dead() == [])
        missing = call(
            client,
            "iii::queue::redrive_message",
            {"queue": "dlq.emails", "message_id": "no-such-id"},
        )
        assert missing["redriven"] == 0

        # discard: gone for good
        job.broken = True
        publish(client, "dlq.emails", {"to": "x@y.com"})
        wait_until(lambda: len(dead()) == 1, timeout=20)
        gone = dead()[0]["id"]
        answer = call(
            client,
            "iii::queue::discard_message",
            {"topic": "dlq.emails", "message_id": gone},
        )
        assert answer["redriven"] == 1 and answer["discarded"] == 1
        assert dead() == []
    for function_id, payload, code in (
        ("iii::queue::redrive", {}, "queue_not_set"),
        ("iii::queue::redrive_message", {"queue": "q"}, "message_id_not_set"),
        ("engine::queue::dlq_messages", {}, "topic_required"),
        ("engine::queue::topic_stats", {}, "topic_required"),
    ):
        with pytest.raises(InvocationError) as err:
            call(client, function_id, payload)
        assert err.value.code == code


def test_a_subscriber_that_was_away_catches_up(
    engine: EngineProcess, client: Any
) -> None:
    first = Handler()
    config = {"topic": "away.links"}
    with sdk_worker(engine.worker_url, "away-1") as w:
        subscribe(w, "away::refresh", first, config)
        publish(client, "away.links", {"n": 1})
        wait_until(lambda: first.got == [{"n": 1}])
    # The subscriber is gone: what is published now waits for it.
    for n in (2, 3, 4):
        publish(client, "away.links", {"n": n})

    def stats() -> dict[str, Any]:
        return dict(call(client, "engine::queue::topic_stats", {"topic": "away.links"}))

    wait_until(lambda: stats()["consumer_count"] == 0)
    assert stats()["depth"] == 3
    back = Handler()
    with sdk_worker(engine.worker_url, "away-2") as w:
        subscribe(w, "away::refresh", back, config)
        wait_until(lambda: len(back.got) == 3)
        assert back.got == [{"n": 2}, {"n": 3}, {"n": 4}]
        assert (
            call(client, "engine::queue::dlq_messages", {"topic": "away.links"}) == []
        )
        assert stats()["depth"] == 0


def test_accepted_publishes_survive_kill_9(fresh_engine: EngineProcess) -> None:
    slow = Handler()
    slow.gate.clear()  # accepts nothing until the engine is gone
    config = {"topic": "crash.events", "queue_config": {"type": "fifo"}}
    with sdk_worker(fresh_engine.worker_url, "crash-sub") as w:
        subscribe(w, "crash::handle", slow, config)
        with sdk_worker(fresh_engine.worker_url, "crash-pub") as pub:
            for n in range(20):
                assert publish(pub, "crash.events", {"n": n}) is None
        fresh_engine.kill()
        slow.gate.set()
    fresh_engine.start()
    after = Handler()
    with sdk_worker(fresh_engine.worker_url, "crash-sub-2") as w:
        subscribe(w, "crash::handle", after, config)
        wait_until(
            lambda: {d["n"] for d in after.got} >= set(range(20)),
            timeout=30,
            message="every accepted publish delivered after the crash",
        )
        # fifo: in publish order, each at least once
        seen = [d["n"] for d in after.got]
        assert seen == sorted(seen)
