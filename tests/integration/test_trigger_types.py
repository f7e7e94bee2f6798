"""Trigger types provided by workers (protocol §6), with the real Python SDK:
forwarding, firing, parking while the provider is away, replay with the
original id, and unregistering at the provider when the consumer leaves."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from iii import TriggerAction
from iii.triggers import TriggerConfig, TriggerHandler

from tests.harness import (
    ROOT,
    EngineProcess,
    call,
    engine_with,
    sdk_worker,
    wait_until,
)


class Provider(TriggerHandler[Any]):  # type: ignore[misc]
    def __init__(self) -> None:
        self.registered: list[TriggerConfig[Any]] = []
        self.unregistered: list[TriggerConfig[Any]] = []
        self.lock = threading.Lock()

    async def register_trigger(self, config: TriggerConfig[Any]) -> None:
        with self.lock:
            self.registered.append(config)

    async def unregister_trigger(self, config: TriggerConfig[Any]) -> None:
        with self.lock:
            self.unregistered.append(config)


def test_worker_trigger_type_round_trip(engine: EngineProcess, client: Any) -> None:
    first = Provider()
    hits: list[Any] = []
    with sdk_worker(engine.worker_url, "provider-1") as p:
        p.register_trigger_type({"id": "webhook", "description": "Webhook"}, first)
        wait_until(
            lambda: (
                "webhook"
                in [
                    t["id"]
                    for t in call(client, "engine::triggers::list", {})["triggers"]
                ]
            )
        )
        with sdk_worker(engine.worker_url, "consumer") as c:
            c.register_function("tt::hook", hits.append)
            c.register_trigger(
                {"type": "webhook", "function_id": "tt::hook", "config": {"path": "/a"}}
            )
            wait_until(lambda: len(first.registered) == 1)
            binding = first.registered[0]
            assert binding.function_id == "tt::hook"
            assert binding.config == {"path": "/a"}
            # The provider fires: an ordinary call from the provider worker.
            p.trigger(
                {
                    "function_id": "tt::hook",
                    "payload": {"event": 1},
                    "action": TriggerAction.Void(),
                }
            )
            wait_until(lambda: hits)
            assert hits[0]["event"] == 1
        # The consumer left: the provider is told, with the same id.
        wait_until(lambda: len(first.unregistered) == 1)
        assert first.unregistered[0].id == binding.id
    assert len(first.registered) == 1  # exactly one forward per binding


def test_bindings_wait_for_their_provider(engine: EngineProcess, client: Any) -> None:
    with sdk_worker(engine.worker_url, "early-consumer") as c:
        c.register_function("tt::early", lambda d: None)
        c.register_trigger(
            {"type": "later-type", "function_id": "tt::early", "config": {"x": 1}}
        )
        wait_until(
            lambda: any(
                t["function_id"] == "tt::early"
                for t in call(client, "engine::registered-triggers::list", {})[
                    "registered_triggers"
                ]
            )
        )
        gone = Provider()
        with sdk_worker(engine.worker_url, "provider-a") as p:
            p.register_trigger_type({"id": "later-type", "description": "d"}, gone)
            wait_until(lambda: len(gone.registered) == 1)
        original = gone.registered[0]
        back = Provider()
        with sdk_worker(engine.worker_url, "provider-b") as p2:
            p2.register_trigger_type({"id": "later-type", "description": "d"}, back)
            wait_until(lambda: len(back.registered) == 1)
            replayed = back.registered[0]
            assert (replayed.id, replayed.function_id, replayed.config) == (
                original.id,
                original.function_id,
                original.config,
            )


def test_a_pending_trigger_is_said_and_listed(tmp_path: Path) -> None:
    """A trigger of a type nobody provides is kept pending, logged with who
    provides the type, listed by ``iiilog::triggers::pending`` and ``iiilog
    status``, and handed over when a provider arrives."""
    engine = engine_with(tmp_path, "")  # no modules: not even cron
    try:
        with sdk_worker(engine.worker_url, "waiting") as w:
            w.register_function("wait::tick", lambda data: None)
            w.register_function("wait::hook", lambda data: None)
            w.register_trigger(
                {
                    "type": "cron",
                    "function_id": "wait::tick",
                    "config": {"expression": "* * * * * *"},
                }
            )
            w.register_trigger(
                {"type": "gh-hook", "function_id": "wait::hook", "config": {}}
            )

            def pending() -> dict[str, Any]:
                listed = call(w, "iiilog::triggers::pending", {})["pending"]
                return {p["trigger_type"]: p for p in listed}

            wait_until(lambda: set(pending()) == {"cron", "gh-hook"})
            assert "iii-cron module" in pending()["cron"]["provided_by"]
            assert "registertriggertype" in pending()["gh-hook"]["provided_by"]
            wait_until(lambda: "wait::tick) is pending" in engine.log())
            assert "provided by the iii-cron module" in engine.log()
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "api",
                    "status",
                    "--data-dir",
                    str(engine.data_dir),
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert out.returncode == 0, out.stderr
            assert "pending triggers (no provider yet): 2" in out.stdout
            assert "wait::hook" in out.stdout
            provider = Provider()
            with sdk_worker(engine.worker_url, "gh") as p:
                p.register_trigger_type({"id": "gh-hook", "description": "d"}, provider)
                wait_until(lambda: len(provider.registered) == 1)
                assert set(pending()) == {"cron"}
    finally:
        engine.stop()


def test_registered_triggers_list_rows(engine: EngineProcess, client: Any) -> None:
    """Each row carries iii's ``config_summary`` and a worker name."""
    long_config = {"path": "/" + "a" * 100, "secret": False}
    with sdk_worker(engine.worker_url, "summary-owner") as w:
        w.register_function("tt::summary", lambda d: None)
        for config in ({"path": "/short"}, long_config):
            w.register_trigger(
                {"type": "summary-type", "function_id": "tt::summary", "config": config}
            )

        def rows() -> list[dict[str, Any]]:
            listed = call(client, "engine::registered-triggers::list", {})
            return [
                t
                for t in listed["registered_triggers"]
                if t["function_id"] == "tt::summary"
            ]

        wait_until(lambda: len(rows()) == 2)
        by_path = {row["config"]["path"]: row for row in rows()}
        short = by_path["/short"]
        assert short["config_summary"] == '{"path":"/short"}'
        assert short["worker_name"] == "summary-owner"
        summary = by_path[long_config["path"]]["config_summary"]
        assert summary == '{"path":"/' + "a" * 70 + "…"
        assert len(summary) == 81
