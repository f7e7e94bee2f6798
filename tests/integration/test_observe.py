"""observe.v1 and local-dispatch.v1 against the real engine: on the wire with a
raw socket (who gets the family, and who does not), and with the real 0.25
SDK (activations, owner delivery, the legacy shim, ``register_trigger``)."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
from iii import ObserveHooks, Observer

from tests.harness import EngineProcess, call, sdk_worker, wait_until
from tests.wsclients import RawWorker

FEATURES = ["observe.v1", "local-dispatch.v1", "large-messages.v1"]


def unique(name: str) -> str:
    head, _, tail = name.partition("::")
    return f"{head}-{uuid.uuid4().hex[:8]}::{tail}"


async def metadata(w: RawWorker, name: str, features: list[str] | None) -> None:
    data: dict[str, Any] = {"runtime": "python", "name": name, "pid": 1}
    if features is not None:
        data["features"] = features
    await w.send(
        {
            "type": "invokefunction",
            "function_id": "engine::workers::register",
            "data": data,
            "action": {"type": "void"},
        }
    )


async def test_the_family_only_for_connections_that_declare_it(
    engine: EngineProcess, session: aiohttp.ClientSession
) -> None:
    fid = unique("obs-wire::echo")
    old = RawWorker(await session.ws_connect(engine.worker_url))
    new = RawWorker(await session.ws_connect(engine.worker_url))
    try:
        names = {}
        for w, features in ((old, None), (new, FEATURES)):
            w.registered = await w.recv_type("workerregistered")
            assert w.registered["features"] == ["observe.v1", "local-dispatch.v1"]
            names[id(w)] = f"wire-{uuid.uuid4().hex[:6]}"
            await metadata(w, names[id(w)], features)
        # A declaring connection gets the registration acknowledged, with its
        # observers and local dispatch; functions registered before it said
        # who it is are acknowledged once it has.
        await new.send({"type": "registerfunction", "id": fid})
        ack = await new.recv_type("functionregistered")
        assert ack["id"] == fid and ack["namespace"] == "default"
        assert ack["local_dispatch"] is True and ack["observers"] == []
        # Calls to it carry who made them, stamped by the engine.
        await old.send(
            {
                "type": "invokefunction",
                "invocation_id": "c-1",
                "function_id": fid,
                "data": {"n": 1},
                "caller": {"function_id": "forged::x", "worker_id": "forged"},
            }
        )
        delivered = await new.recv_type("invokefunction")
        # (the old connection declared nothing: what it asserts is ignored)
        assert delivered["caller"] == {
            "worker_id": old.registered["worker_id"],
            "worker_name": names[id(old)],
        }
        assert "observe_depth" not in delivered  # 0 is left out
        await new.send(
            {
                "type": "invocationresult",
                "invocation_id": delivered["invocation_id"],
                "function_id": fid,
                "result": 2,
            }
        )
        assert (await old.recv_type("invocationresult"))["result"] == 2
        # The old connection's own function: no acknowledgement, no caller.
        old_fid = unique("obs-wire::legacy")
        await old.send({"type": "registerfunction", "id": old_fid})
        await new.send(
            {
                "type": "invokefunction",
                "invocation_id": "c-2",
                "function_id": old_fid,
                "data": {},
            }
        )
        delivered = await old.recv_type("invokefunction")
        assert "caller" not in delivered and "activation" not in delivered
        # ... and an observe from it is refused, by name.
        await old.send(
            {
                "type": "observe",
                "id": "o-old",
                "source": {"function_id": fid},
                "target": {"function_id": old_fid},
            }
        )
        result = await old.recv_type("observeresult")
        assert (result["state"], result["error"]["code"]) == ("error", "UNSUPPORTED")
    finally:
        await old.ws.close()
        await new.ws.close()


async def test_a_malformed_observe_is_answered(
    engine: EngineProcess, session: aiohttp.ClientSession
) -> None:
    w = RawWorker(await session.ws_connect(engine.worker_url))
    try:
        await w.recv_type("workerregistered")
        await metadata(w, f"wire-{uuid.uuid4().hex[:6]}", FEATURES)
        await w.alive()
        for observe, code in (
            ({"source": {}, "target": {"function_id": "a::b"}}, "INVALID_ARGUMENTS"),
            (
                {
                    "source": {"function_id": "a::b", "filters": {"input.x": 1}},
                    "target": {"function_id": "c::d"},
                },
                "INVALID_FILTER",
            ),
            (
                {"source": {"function_id": "a::b"}, "target": {"function_id": "a::b"}},
                "SELF_TARGET",
            ),
            (
                {
                    "source": {"function_id": "a::b"},
                    "target": {"function_id": "c::d"},
                    "max_fires": "x",
                },
                "INVALID_ARGUMENTS",
            ),
        ):
            await w.send({"type": "observe", "id": code, **observe})
            result = await w.recv_type("observeresult")
            assert (result["id"], result["state"], result["error"]["code"]) == (
                code,
                "error",
                code,
            )
        await w.alive()  # the connection goes on
    finally:
        await w.ws.close()


def test_routed_activations_and_introspection(engine: EngineProcess) -> None:
    charge, on_big = unique("obs::charge"), unique("obs::on-big")
    got: list[tuple[Any, Any]] = []
    with (
        sdk_worker(engine.worker_url, "obs-owner") as owner,
        sdk_worker(engine.worker_url, "obs-watcher") as watcher,
    ):
        owner.register_function(charge, lambda data: {"charged": data["amount"]})
        watcher.register_function(
            on_big, lambda data, metadata=None: got.append((data, metadata))
        )
        handle = watcher.observe(
            {
                "function_id": charge,
                "filters": {"input.amount": {"$gte": 500}},
                "capture": ["input", "output"],
            },
            on_big,
            {"metadata": {"team": "payments"}, "max_fires": 2},
        )
        handle.ready(timeout=10)
        for amount in (10, 700, 900, 800):
            watcher.trigger({"function_id": charge, "payload": {"amount": amount}})
        wait_until(lambda: len(got) == 2)
        envelope, sidecar = got[0]
        assert envelope["observer_id"] == handle.id and envelope["status"] == "success"
        assert envelope["input"] == {"amount": 700} and envelope["output"] == {
            "charged": 700
        }
        assert "caller" not in envelope  # not captured
        assert sidecar == {"team": "payments"}
        wait_until(lambda: handle.state == "disposed")  # max_fires
        assert handle.reason is not None and handle.reason["code"] == "MAX_FIRES"
        listed = call(watcher, "engine::observers::list", {"function_id": charge})
        assert listed["observers"] == []
        again = watcher.observe({"function_id": charge}, on_big, {"id": "obs-kept"})
        again.ready(timeout=10)
        view = call(watcher, "engine::observers::get", {"id": "obs-kept"})["observer"]
        assert view["state"] == "active" and view["source"]["function_id"] == charge
        assert view["capture"] == ["input", "output", "caller"] and view["fires"] == 0
    assert len(got) == 2


def test_owner_delivery_and_the_legacy_shim(engine: EngineProcess) -> None:
    """An observable function that takes over an old trigger type: the
    bindings made with ``register_trigger`` become its observers, and what the
    owner emits reaches their functions."""
    tick = unique("obs-cron::tick")
    target = unique("obs-app::on-tick")
    index: dict[str, list[Observer]] = {}
    fired: list[Any] = []

    def on_tick(event: dict[str, Any]) -> None:
        for obs in index.get(event["expression"], []):
            obs.emit(event)

    hooks = ObserveHooks(
        delivery="owner",
        legacy_trigger_type="obs-cron",
        args_format={
            "type": "object",
            "required": ["expression"],
            "properties": {"expression": {"type": "string"}},
        },
        on_observer_added=lambda obs: index.setdefault(
            obs.args["expression"], []
        ).append(obs),
        on_observer_removed=lambda obs: index[obs.args["expression"]].remove(obs),
    )
    with sdk_worker(engine.worker_url, "obs-app") as app:
        app.register_function(target, fired.append)
        app.register_trigger(
            {"type": "obs-cron", "function_id": target, "config": {"expression": "*/5"}}
        )
        with sdk_worker(engine.worker_url, "obs-cron-owner") as owner:
            owner.register_function(tick, on_tick, observe=hooks)
            wait_until(lambda: index.get("*/5"), timeout=10)
            [obs] = index["*/5"]
            assert obs.legacy == {
                "trigger_type": "obs-cron",
                "config": {"expression": "*/5"},
            }
            owner.trigger(
                {"function_id": tick, "payload": {"expression": "*/5", "n": 1}}
            )
            owner.trigger(
                {"function_id": tick, "payload": {"expression": "0 9", "n": 2}}
            )
            wait_until(lambda: fired)
            assert fired == [
                {"expression": "*/5", "n": 1}
            ]  # the event itself (deliver input)
        # The owner left: the binding waits, as for any provider that left.
        listed = call(app, "engine::registered-triggers::list", {})[
            "registered_triggers"
        ]
        assert [t["trigger_type"] for t in listed if t["function_id"] == target] == [
            "obs-cron"
        ]
        index.clear()
        with sdk_worker(engine.worker_url, "obs-cron-owner") as owner:
            owner.register_function(tick, on_tick, observe=hooks)
            wait_until(lambda: index.get("*/5"), timeout=10)
            owner.trigger(
                {"function_id": tick, "payload": {"expression": "*/5", "n": 3}}
            )
            wait_until(lambda: len(fired) == 2)
    assert fired[-1]["n"] == 3


def test_register_trigger_keeps_working_on_observe_workers(
    engine: EngineProcess,
) -> None:
    """State, the trigger types the 0.25 SDK says to keep ``register_trigger``
    for, on a worker that speaks observe.v1."""
    scope = f"obs-state-{uuid.uuid4().hex[:6]}"
    fn = unique("obs-state::changed")
    events: list[Any] = []
    with sdk_worker(engine.worker_url, "obs-state") as w:
        w.register_function(fn, events.append)
        w.register_trigger(
            {"type": "state", "function_id": fn, "config": {"scope": scope}}
        )
        wait_until(
            lambda: any(
                t["function_id"] == fn
                for t in call(w, "engine::registered-triggers::list", {})[
                    "registered_triggers"
                ]
            )
        )
        call(w, "state::set", {"scope": scope, "key": "k", "value": 1})
        wait_until(lambda: events)
    assert events[0]["event_type"] == "state:created" and events[0]["new_value"] == 1
