"""Pub/sub and the engine's availability trigger types, through the real SDK."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from iii import InvocationError

from tests.harness import (
    EngineProcess,
    call,
    sdk_worker,
    wait_until,
)
from tests.harness import (
    trigger_bound as bound,
)


class Inbox:
    def __init__(self) -> None:
        self.items: list[Any] = []
        self.lock = threading.Lock()

    def __call__(self, data: Any) -> None:
        with self.lock:
            self.items.append(data)


def test_fan_out_isolation_and_unsubscribe(engine: EngineProcess, client: Any) -> None:
    one, two, other = Inbox(), Inbox(), Inbox()
    with sdk_worker(engine.worker_url, "subscribers") as w:
        for fid, inbox in (("p::one", one), ("p::two", two), ("p::other", other)):
            w.register_function(fid, inbox)
        t1 = w.register_trigger(
            {
                "type": "subscribe",
                "function_id": "p::one",
                "config": {"topic": "orders"},
            }
        )
        w.register_trigger(
            {
                "type": "subscribe",
                "function_id": "p::two",
                "config": {"topic": "orders"},
            }
        )
        w.register_trigger(
            {
                "type": "subscribe",
                "function_id": "p::other",
                "config": {"topic": "invoices"},
            }
        )
        wait_until(lambda: bound(client, "p::other"))
        assert call(client, "publish", {"topic": "orders", "data": {"n": 1}}) is None
        wait_until(lambda: one.items and two.items)
        call(client, "publish", {"topic": "invoices", "data": "i"})
        wait_until(lambda: other.items)
        assert one.items == [{"n": 1}] and two.items == [{"n": 1}]
        assert other.items == ["i"]
        t1.unregister()
        wait_until(lambda: not bound(client, "p::one"))
        call(client, "publish", {"topic": "orders", "data": {"n": 2}})
        wait_until(lambda: len(two.items) == 2)
        assert one.items == [{"n": 1}]  # the other subscription survived
    with pytest.raises(InvocationError) as err:
        call(client, "publish", {"topic": "", "data": 1})
    assert (err.value.code, err.value.message) == ("topic_not_set", "Topic is not set")
    assert call(client, "publish", {"topic": "nobody-listens", "data": 1}) is None


def test_workers_and_functions_available(engine: EngineProcess, client: Any) -> None:
    workers, functions = Inbox(), Inbox()
    with sdk_worker(engine.worker_url, "watcher") as w:
        w.register_function("p::workers", workers)
        w.register_function("p::functions", functions)
        w.register_trigger(
            {"type": "engine::workers-available", "function_id": "p::workers"}
        )
        w.register_trigger(
            {"type": "engine::functions-available", "function_id": "p::functions"}
        )
        wait_until(lambda: bound(client, "p::functions"))
        with sdk_worker(engine.worker_url, "visitor") as v:
            v.register_function("p::visiting", lambda d: None)
            wait_until(
                lambda: any(
                    "p::visiting" in [f["function_id"] for f in e["functions"]]
                    for e in functions.items
                )
            )
            visitor_id = v.worker_id
        wait_until(
            lambda: (
                {"event": "worker_disconnected", "worker_id": visitor_id}
                in workers.items
            )
        )
    events = [e["event"] for e in workers.items if e["worker_id"] == visitor_id]
    assert events[0] == "worker_connected"
    assert "worker_metadata_updated" in events
    assert events[-1] == "worker_disconnected"
    assert functions.items[-1]["event"] == "functions_changed"
