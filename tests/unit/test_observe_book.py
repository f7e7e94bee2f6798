"""``engine.observe_book``: observers' states and transitions, acks, the
owners' sets, activations and their limits. Pure: a dict stands in for the
registry, and time is a number."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.observe_book import ObserverBook
from engine.observe_effects import Added, Removed, Run, Source, Status
from engine.observe_rules import PLAIN, Descriptor, Event, FnKey, parse_observe

SRC: FnKey = ("default", "orders::create")
DST: FnKey = ("default", "audit::record")


@dataclass
class Registry:
    sources: dict[FnKey, Source] = field(default_factory=dict)
    targets: set[FnKey] = field(default_factory=set)

    def source(self, key: FnKey) -> Source | None:
        return self.sources.get(key)

    def target_exists(self, key: FnKey) -> bool:
        return key in self.targets or key in self.sources


def spec(observer_id: str = "o-1", **source: Any) -> Any:
    options = {
        k: source.pop(k)
        for k in ("max_fires", "expires_in_ms", "max_in_flight", "metadata")
        if k in source
    }
    return parse_observe(
        observer_id,
        {"function_id": SRC[1], **source},
        {"function_id": DST[1]},
        home="default",
        **options,
    )


def states(effects: list[Any]) -> list[tuple[str, str, bool]]:
    return [(e.observer_id, e.state, e.reply) for e in effects if isinstance(e, Status)]


def statuses(effects: list[Any]) -> list[Status]:
    return [e for e in effects if isinstance(e, Status)]


def code(book: ObserverBook, observer_id: str) -> str:
    reason = book.observers[observer_id].reason
    assert reason is not None
    return reason["code"]


def reason_code(status: Status) -> str:
    assert status.reason is not None
    return status.reason["code"]


def runs(effects: list[Any]) -> list[Any]:
    return [e.activation for e in effects if isinstance(e, Run)]


def event(depth: int = 0, **parts: Any) -> Event:
    return Event(
        SRC[1],
        SRC[0],
        "inv-1",
        "success",
        {"input": 1, "output": 2, **parts},
        100,
        1.0,
        depth,
    )


def plain_world() -> Registry:
    """orders::create served by a worker without observe.v1; the target up."""
    return Registry({SRC: Source(PLAIN, needs_ack=False)}, {DST})


def test_pending_until_source_and_target_then_active() -> None:
    book, world = ObserverBook(), Registry()
    assert states(book.observe(spec(), "w", world, 0)) == [("o-1", "pending", True)]
    assert code(book, "o-1") == "SOURCE_NOT_FOUND"
    world.sources[SRC] = Source(PLAIN, needs_ack=False)
    assert book.refresh(world) == []  # still no target: no change to report
    assert code(book, "o-1") == "TARGET_NOT_FOUND"
    world.targets.add(DST)
    assert states(book.refresh(world)) == [("o-1", "active", False)]


def test_an_owner_with_observe_acknowledges_first() -> None:
    book = ObserverBook()
    world = Registry({SRC: Source(PLAIN, needs_ack=True)}, {DST})
    revision, infos, _ = book.function_confirmed(SRC, "owner", world)
    assert infos == []
    effects = book.observe(spec(), "w", world, 0)
    [added] = [e for e in effects if isinstance(e, Added)]
    assert (added.peer, added.key, added.info["id"]) == ("owner", SRC, "o-1")
    assert added.revision > revision
    assert states(effects) == [("o-1", "pending", True)]
    assert states(book.ack(SRC, "stranger", "o-1", None, world)) == []  # not an owner
    assert states(book.ack(SRC, "owner", "o-1", None, world)) == [
        ("o-1", "active", False)
    ]


def test_an_owner_rejection_is_the_observers_error() -> None:
    book = ObserverBook()
    world = Registry({SRC: Source(PLAIN, needs_ack=True)}, {DST})
    book.function_confirmed(SRC, "owner", world)
    book.observe(spec(), "w", world, 0)
    effects = book.ack(
        SRC, "owner", "o-1", {"code": "BAD_EXPRESSION", "message": "no"}, world
    )
    assert states(effects) == [("o-1", "error", False)]
    assert [(e.peer, e.observer_id) for e in effects if isinstance(e, Removed)] == [
        ("owner", "o-1")
    ]
    assert "o-1" not in book.observers and not book.observed(SRC)


def test_source_checks_happen_when_the_source_appears() -> None:
    book, world = ObserverBook(), Registry(targets={DST})
    book.observe(spec(args={"expression": "* * *"}), "w", world, 0)
    world.sources[SRC] = Source(PLAIN, needs_ack=False)  # auto: takes no args
    [status] = statuses(book.refresh(world))
    assert (status.state, reason_code(status)) == ("error", "INVALID_ARGS")
    book.observe(spec("o-2"), "w", world, 0)
    world.sources[SRC] = Source(Descriptor(allow=False), needs_ack=False)
    [status] = statuses(book.refresh(world))
    assert (status.observer_id, reason_code(status)) == ("o-2", "NOT_OBSERVABLE")


def test_routed_events_activate_the_target() -> None:
    book, world = ObserverBook(), plain_world()
    book.observe(
        spec(filters={"input": {"$gt": 0}}, metadata={"team": "a"}), "w", world, 0
    )
    book.observe(spec("o-err", on="error"), "w", world, 0)
    [act] = runs(book.routed(SRC, event(caller={"worker_id": "c"}), 5))
    assert act.target == DST and act.observe_depth == 1
    assert act.payload["observer_id"] == "o-1" and act.payload["input"] == 1
    assert act.payload["caller"] == {"worker_id": "c"}
    assert act.marker() == {"observer_id": "o-1", "activation_id": act.activation_id}
    assert (
        act.caller["worker_name"] == "iii-engine"
        and act.caller["invocation_id"] == "inv-1"
    )
    assert runs(book.routed(SRC, event(input=0), 5)) == []  # filtered out
    assert book.observers["o-1"].fires == 1


def test_owner_delivered_functions_are_not_evaluated_by_the_engine() -> None:
    book = ObserverBook()
    world = Registry({SRC: Source(Descriptor(delivery="owner"), needs_ack=True)}, {DST})
    book.function_confirmed(SRC, "owner", world)
    book.observe(spec(), "w", world, 0)
    book.ack(SRC, "owner", "o-1", None, world)
    assert runs(book.routed(SRC, event(), 0)) == []
    assert (
        runs(book.reported(SRC, "someone", ["o-1"], event(), 0)) == []
    )  # not the owner
    [act] = runs(book.reported(SRC, "owner", ["o-1", "o-1", "unknown"], event(), 0))
    assert act.payload["function_id"] == SRC[1]


def test_loop_guard() -> None:
    book, world = ObserverBook(), plain_world()
    book.observe(spec(), "w", world, 0)
    assert len(runs(book.routed(SRC, event(depth=7), 0))) == 1  # depth 8 delivered
    assert runs(book.routed(SRC, event(depth=8), 0)) == []
    assert book.observers["o-1"].dropped["LOOP_GUARD"] == 1


def test_max_fires_disposes_after_the_last_one() -> None:
    book, world = ObserverBook(), plain_world()
    book.observe(spec(max_fires=2), "w", world, 0)
    assert len(runs(book.routed(SRC, event(), 0))) == 1
    effects = book.routed(SRC, event(), 0)
    assert len(runs(effects)) == 1  # the second still runs
    assert states(effects) == [("o-1", "disposed", False)]
    assert [reason_code(s) for s in statuses(effects)] == ["MAX_FIRES"]
    assert runs(book.routed(SRC, event(), 0)) == []


def test_expiry() -> None:
    book, world = ObserverBook(), plain_world()
    book.observe(spec(expires_in_ms=300), "w", world, 1000)
    assert book.next_deadline() == 1300
    assert book.tick(1299) == []
    [status] = statuses(book.tick(1300))
    assert (status.state, reason_code(status)) == ("disposed", "EXPIRED")
    assert book.next_deadline() is None


def test_in_flight_limit_queues_the_rest() -> None:
    book, world = ObserverBook(), plain_world()
    book.observe(spec(max_in_flight=2), "w", world, 0)
    first = runs(book.routed(SRC, event(), 0)) + runs(book.routed(SRC, event(), 0))
    assert len(first) == 2
    assert runs(book.routed(SRC, event(), 0)) == []  # queued
    obs = book.observers["o-1"]
    assert (obs.in_flight, len(obs.queue), obs.fires) == (2, 1, 3)
    [third] = runs(book.done(first[0], ok=False))
    assert obs.failures == 1 and len(obs.queue) == 0
    assert book.done(third, ok=True) == [] and obs.in_flight == 1


def test_the_observing_worker_away_then_back_within_grace() -> None:
    book, world = ObserverBook(grace_ms=30_000), plain_world()
    book.observe(spec(max_fires=5), "w-1", world, 0)
    book.routed(SRC, event(), 0)
    assert book.peer_left("w-1", world, 1000) == []  # nobody to tell
    obs = book.observers["o-1"]
    assert (obs.state, code(book, "o-1")) == ("suspended", "OBSERVER_AWAY")
    assert runs(book.routed(SRC, event(), 0)) == []
    # the same observer replayed by id, on the worker's new connection
    assert states(book.observe(spec(max_fires=5), "w-2", world, 2000)) == [
        ("o-1", "active", True)
    ]
    assert book.observers["o-1"].fires == 1  # kept across the replay


def test_the_observing_worker_that_does_not_come_back() -> None:
    book = ObserverBook(grace_ms=30_000)
    world = Registry({SRC: Source(PLAIN, needs_ack=True)}, {DST})
    book.function_confirmed(SRC, "owner", world)
    book.observe(spec(), "w-1", world, 0)
    book.peer_left("w-1", world, 1000)
    assert book.next_deadline() == 31_000
    effects = book.tick(31_000)
    assert [(e.peer, e.observer_id) for e in effects if isinstance(e, Removed)] == [
        ("owner", "o-1")
    ]
    assert "o-1" not in book.observers


def test_a_different_definition_under_the_same_id_replaces_it() -> None:
    book, world = ObserverBook(), plain_world()
    book.observe(spec(), "w", world, 0)
    book.routed(SRC, event(), 0)
    book.observe(spec(on="complete"), "w", world, 0)
    assert (
        book.observers["o-1"].fires == 0 and book.observers["o-1"].spec.on == "complete"
    )


def test_the_owner_reconnects_and_gets_the_current_set() -> None:
    book = ObserverBook()
    world = Registry({SRC: Source(PLAIN, needs_ack=True)}, {DST})
    book.function_confirmed(SRC, "owner-1", world)
    for name in ("gone", "stays"):
        book.observe(spec(name), "w", world, 0)
        book.ack(SRC, "owner-1", name, None, world)
    assert states(book.function_left(SRC, "owner-1", world)) == [
        ("gone", "suspended", False),
        ("stays", "suspended", False),
    ]
    book.unobserve("gone", "w")  # while the owner is away
    _, infos, effects = book.function_confirmed(SRC, "owner-2", world)
    assert [i["id"] for i in infos] == ["stays"]
    assert states(effects) == []  # still waiting for the new connection's ack
    assert states(book.ack(SRC, "owner-2", "stays", None, world)) == [
        ("stays", "active", False)
    ]


def test_unobserve_only_by_its_worker_unless_away() -> None:
    book, world = ObserverBook(), plain_world()
    book.observe(spec(), "w-1", world, 0)
    assert book.unobserve("o-1", "w-2") == [] and "o-1" in book.observers
    book.peer_left("w-1", world, 0)
    book.unobserve("o-1", "w-2")  # queued by the worker that came back
    assert "o-1" not in book.observers


def test_owner_call() -> None:
    book = ObserverBook()
    world = Registry({SRC: Source(Descriptor(delivery="owner"), needs_ack=True)}, {DST})
    book.function_confirmed(SRC, "owner", world)
    book.observe(spec(metadata={"route": "users"}), "w", world, 0)
    outcome, _ = book.owner_call("o-1", "owner", {"path": "/u"}, None, 0, 0)
    assert (
        isinstance(outcome, Exception) and outcome.code == "OBSERVER_NOT_ACTIVE"
    )  # not acked
    book.ack(SRC, "owner", "o-1", None, world)
    outcome, _ = book.owner_call("o-1", "stranger", {}, None, 0, 0)
    assert isinstance(outcome, Exception) and outcome.code == "FORBIDDEN"
    outcome, _ = book.owner_call("o-1", "owner", {}, None, 8, 0)
    assert isinstance(outcome, Exception) and outcome.code == "LOOP_GUARD"
    caller = {
        "worker_id": "owner",
        "function_id": "http::on-request",
        "invocation_id": "i-9",
    }
    act, _ = book.owner_call("o-1", "owner", {"path": "/u"}, caller, 0, 0)
    assert not isinstance(act, Exception)
    assert act.payload == {"path": "/u"} and act.observe_depth == 1
    assert act.caller["invocation_id"] == "i-9"
    assert book.observers["o-1"].fires == 1 and book.observers["o-1"].in_flight == 1
