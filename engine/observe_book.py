"""The observers the engine holds, and their lifecycle. Pure: no I/O, no clock.

``ObserverBook`` keeps every live observer, which owner connections of each
observed function were told about it, who acknowledged it, and the activations
waiting for a slot. Each method takes what happened (and ``now`` when time
matters) and returns ``Effect``s for the driver (``engine/observers.py``) to
carry out: a state to report, an owner to tell, an activation to run. The
registry of functions is read through ``World``; the book never changes it.
"""

from __future__ import annotations

from typing import Any

from .ids import random_uuid
from .observe_effects import (
    Activation,
    Added,
    Effect,
    Observer,
    Refused,
    Removed,
    Run,
    Source,
    Status,
    World,
)
from .observe_rules import (
    GRACE_MS,
    MAX_OBSERVE_DEPTH,
    QUEUE_LIMIT,
    Event,
    FnKey,
    ObserveError,
    ObserverSpec,
    activation_caller,
    check_source,
    payload,
)

TERMINAL = frozenset({"error", "disposed"})
_ENVELOPE: Any = object()  # an activation's payload is built from the event


def _reason(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


def _not_active(observer_id: str) -> ObserveError:
    return ObserveError("OBSERVER_NOT_ACTIVE", f"observer {observer_id} is not active")


class ObserverBook:
    def __init__(self, grace_ms: int = GRACE_MS) -> None:
        self.grace_ms = grace_ms
        self.observers: dict[str, Observer] = {}
        self.by_source: dict[FnKey, dict[str, Observer]] = {}
        self.confirmed: dict[FnKey, set[str]] = {}  # owners told (functionregistered)
        self._revision = 0

    def revision(self) -> int:
        self._revision += 1
        return self._revision

    def observed(self, key: FnKey) -> bool:
        return key in self.by_source

    def live(self) -> list[Observer]:
        return list(self.observers.values())

    # -- observers come and go ------

    def observe(
        self, spec: ObserverSpec, peer: str | None, world: World, now: int
    ) -> list[Effect]:
        """An ``observe`` (or the legacy shim's). A replay of the same
        definition by id takes the observer over, fires and expiry kept."""
        effects: list[Effect] = []
        obs = self.observers.get(spec.id)
        if obs is not None and obs.spec.definition() != spec.definition():
            effects += self._end(
                obs, "disposed", _reason("REPLACED", "replaced"), notify=False
            )
            obs = None
        if obs is None:
            expires = (
                now + spec.expires_in_ms if spec.expires_in_ms is not None else None
            )
            obs = Observer(spec, peer, expires)
            self.observers[spec.id] = obs
            self.by_source.setdefault(spec.source, {})[spec.id] = obs
        obs.peer, obs.away_until = peer, None
        effects += self._update(obs, world, notify=False)
        if peer is not None and not obs.legacy:
            effects.append(
                Status(peer, spec.id, obs.state, obs.reason, obs.fires, reply=True)
            )
        return effects

    def unobserve(self, observer_id: str, peer: str | None) -> list[Effect]:
        """By its own connection, or by any while that one is away (an
        ``unobserve`` queued by a worker that reconnected)."""
        obs = self.observers.get(observer_id)
        if obs is None or obs.peer not in (peer, None):
            return []
        return self._end(
            obs, "disposed", _reason("UNOBSERVED", "unobserved"), notify=False
        )

    def refused(self, observer_id: str, error: dict[str, str]) -> list[Effect]:
        obs = self.observers.get(observer_id)
        return [] if obs is None else self._end(obs, "error", error, notify=True)

    def peer_left(self, peer: str, world: World, now: int) -> list[Effect]:
        """The observing connection is gone: its observers wait for it (a
        replay by id) for the grace period."""
        effects: list[Effect] = []
        for obs in self.live():
            if obs.peer == peer:
                obs.peer, obs.away_until = None, now + self.grace_ms
                effects += self._update(obs, world)
        return effects

    def tick(self, now: int) -> list[Effect]:
        effects: list[Effect] = []
        for obs in self.live():
            if obs.expires_at is not None and now >= obs.expires_at:
                effects += self._end(
                    obs, "disposed", _reason("EXPIRED", "expires_in_ms elapsed")
                )
            elif obs.away_until is not None and now >= obs.away_until:
                gone = _reason("OBSERVER_GONE", "its worker did not come back")
                effects += self._end(obs, "disposed", gone, notify=False)
        return effects

    def next_deadline(self) -> int | None:
        times = [
            t
            for o in self.observers.values()
            for t in (o.expires_at, o.away_until)
            if t is not None
        ]
        return min(times, default=None)

    # -- the observed functions' owners --------------------------------------------

    def function_confirmed(
        self, key: FnKey, owner: str, world: World
    ) -> tuple[int, list[dict[str, Any]], list[Effect]]:
        """``owner`` is told it serves ``key`` (``functionregistered``): the
        revision and the observers it must acknowledge."""
        effects = self.refresh(world, key)
        self.confirmed.setdefault(key, set()).add(owner)
        revision = self.revision()
        offered = [o for o in self.by_source.get(key, {}).values() if o.offered]
        for obs in offered:
            obs.acked_by.discard(owner)
        effects += self.refresh(world, key)
        return revision, [o.spec.info() for o in offered], effects

    def function_left(self, key: FnKey, owner: str, world: World) -> list[Effect]:
        owners = self.confirmed.get(key)
        if owners is None or owner not in owners:
            return []
        owners.discard(owner)
        if not owners:
            del self.confirmed[key]
        return self.refresh(world, key)

    def ack(
        self,
        key: FnKey,
        owner: str,
        observer_id: str,
        error: dict[str, str] | None,
        world: World,
    ) -> list[Effect]:
        obs = self.observers.get(observer_id)
        if (
            obs is None
            or obs.spec.source != key
            or owner not in self.confirmed.get(key, ())
        ):
            return []
        if error is not None:
            return self._end(obs, "error", error)
        obs.acked_by.add(owner)
        return self._update(obs, world)

    def refresh(self, world: World, key: FnKey | None = None) -> list[Effect]:
        """Recompute states after the registry changed (of ``key``'s
        observers, or of all)."""
        observers = (
            self.live() if key is None else list(self.by_source.get(key, {}).values())
        )
        effects: list[Effect] = []
        for obs in observers:
            effects += self._update(obs, world)
        return effects

    # -- events ------

    def routed(self, key: FnKey, event: Event, now: int) -> list[Effect]:
        """An invocation of an auto-delivered function that went through the
        engine: the engine evaluates each observer's ``on`` and filters."""
        effects: list[Effect] = []
        for obs in list(self.by_source.get(key, {}).values()):
            checked = obs.checked
            if (
                obs.state != "active"
                or checked is None
                or checked.delivery != "auto"
                or obs.legacy
            ):
                continue
            if event.accepted_by(obs.spec):
                effects += self._fire(obs, event, now)
        return effects

    def reported(
        self, key: FnKey, owner: str, matched: list[str], event: Event, now: int
    ) -> list[Effect]:
        """An owner's ``invocationsobserved`` item: the owner evaluated its
        active observers (a local call) or chose them (``obs.emit``)."""
        if owner not in self.confirmed.get(key, ()):
            return []
        effects: list[Effect] = []
        for observer_id in dict.fromkeys(matched):
            obs = self.observers.get(observer_id)
            if obs is None or obs.spec.source != key:
                continue
            if obs.state != "active":
                obs.dropped["INACTIVE"] += 1
                continue
            effects += self._fire(obs, event, now)
        return effects

    def owner_call(
        self,
        observer_id: str,
        owner: str,
        body: Any,
        caller: dict[str, Any] | None,
        observe_depth: int,
        now: int,
    ) -> tuple[Activation | ObserveError, list[Effect]]:
        """``obs.call``: the owner hands ``body`` to the target itself and
        waits for its result, so the call takes no queue slot."""
        obs = self.observers.get(observer_id)
        if obs is None or obs.state != "active":
            return _not_active(observer_id), []
        spec = obs.spec
        if owner not in self.confirmed.get(spec.source, ()):
            message = f"observer {observer_id} is not on a function this worker serves"
            return ObserveError("FORBIDDEN", message), []
        if obs.expires_at is not None and now >= obs.expires_at:
            expired = _reason("EXPIRED", "expires_in_ms elapsed")
            return _not_active(observer_id), self._end(obs, "disposed", expired)
        parts: dict[str, Any] = {"input": body}
        if caller is not None:
            parts["caller"] = caller
        invocation_id = (caller or {}).get("invocation_id") or random_uuid()
        event = Event(
            spec.source[1], spec.source[0], invocation_id, "success", parts, now, 0.0,
            observe_depth,
        )  # fmt: skip
        act = self._activation(obs, event, body)
        if act is None:
            guard = f"observe depth over {MAX_OBSERVE_DEPTH}"
            return ObserveError("LOOP_GUARD", guard), []
        obs.in_flight += 1
        return act, self._count_fire(obs)

    def done(self, act: Activation, ok: bool) -> list[Effect]:
        """An activation ended: its slot goes to the next one waiting."""
        obs = act.observer
        obs.in_flight -= 1
        if not ok:
            obs.failures += 1
        if obs.queue and obs.in_flight < obs.spec.max_in_flight:
            obs.in_flight += 1
            return [Run(obs.queue.popleft())]
        return []

    # -- internals ------

    def _activation(
        self, obs: Observer, event: Event, body: Any = _ENVELOPE
    ) -> Activation | None:
        depth = event.observe_depth + 1
        if depth > MAX_OBSERVE_DEPTH:
            obs.dropped["LOOP_GUARD"] += 1
            return None
        activation_id = random_uuid()
        if body is _ENVELOPE:
            body = payload(obs.spec, event, activation_id)
        return Activation(obs, activation_id, body, depth, activation_caller(event))

    def _count_fire(self, obs: Observer) -> list[Effect]:
        obs.fires += 1
        if obs.spec.max_fires is not None and obs.fires >= obs.spec.max_fires:
            return self._end(
                obs, "disposed", _reason("MAX_FIRES", f"fired {obs.fires} times")
            )
        return []

    def _fire(self, obs: Observer, event: Event, now: int) -> list[Effect]:
        if obs.expires_at is not None and now >= obs.expires_at:
            return self._end(
                obs, "disposed", _reason("EXPIRED", "expires_in_ms elapsed")
            )
        if obs.in_flight >= obs.spec.max_in_flight and len(obs.queue) >= QUEUE_LIMIT:
            obs.dropped["QUEUE_FULL"] += 1
            return []
        act = self._activation(obs, event)
        if act is None:
            return []
        effects: list[Effect] = []
        if obs.in_flight < obs.spec.max_in_flight:
            obs.in_flight += 1
            effects.append(Run(act))
        else:
            obs.queue.append(act)
        return effects + self._count_fire(obs)

    def _ready(
        self, obs: Observer, source: Source | None, world: World
    ) -> dict[str, str] | None:
        """Why ``obs`` cannot be active now, or None."""
        spec = obs.spec
        if source is None or not obs.offered:
            return _reason("SOURCE_NOT_FOUND", f"{spec.source[1]} is not registered")
        if source.needs_ack and not obs.acked_by & self.confirmed.get(
            spec.source, set()
        ):
            return _reason(
                "OWNER_PENDING", f"waiting for the owner of {spec.source[1]}"
            )
        if not world.target_exists(spec.target):
            return _reason("TARGET_NOT_FOUND", f"{spec.target[1]} is not registered")
        if obs.peer is None and not obs.legacy:
            return _reason("OBSERVER_AWAY", "its worker is disconnected")
        return None

    def _update(self, obs: Observer, world: World, notify: bool = True) -> list[Effect]:
        if obs.state in TERMINAL:
            return []
        effects: list[Effect] = []
        source = world.source(obs.spec.source)
        if source is not None and obs.checked is not source.descriptor:
            try:
                check_source(obs.spec, source.descriptor)
            except ObserveError as e:
                return self._end(obs, "error", e.body(), notify)
            obs.checked = source.descriptor
            if not obs.offered:
                obs.offered = True
                effects += self._tell_owners(obs, added=True)
        why = self._ready(obs, source, world)
        state = (
            "active" if why is None else ("suspended" if obs.ever_active else "pending")
        )
        obs.ever_active = obs.ever_active or why is None
        if state != obs.state or why != obs.reason:
            changed = state != obs.state
            obs.state, obs.reason = state, why
            if changed and notify and obs.peer is not None and not obs.legacy:
                effects.append(Status(obs.peer, obs.spec.id, state, why, obs.fires))
        if state == "active" and obs.queue and obs.in_flight < obs.spec.max_in_flight:
            obs.in_flight += 1
            effects.append(Run(obs.queue.popleft()))
        return effects

    def _tell_owners(self, obs: Observer, added: bool) -> list[Effect]:
        key = obs.spec.source
        effects: list[Effect] = []
        for owner in sorted(self.confirmed.get(key, ())):
            if added:
                obs.acked_by.discard(owner)
                effects.append(Added(owner, key, self.revision(), obs.spec.info()))
            else:
                effects.append(Removed(owner, key, self.revision(), obs.spec.id))
        return effects

    def _end(
        self, obs: Observer, state: str, reason: dict[str, str], notify: bool = True
    ) -> list[Effect]:
        """error or disposed: it leaves the book and its owners' sets. The
        activations already counted (``max_fires``) still run; others are
        dropped."""
        if obs.state in TERMINAL:
            return []
        obs.state, obs.reason = state, reason
        if reason["code"] != "MAX_FIRES":
            obs.queue.clear()
        spec = obs.spec
        if self.observers.get(spec.id) is obs:
            del self.observers[spec.id]
        fns = self.by_source.get(spec.source, {})
        fns.pop(spec.id, None)
        if not fns:
            self.by_source.pop(spec.source, None)
        effects = self._tell_owners(obs, added=False) if obs.offered else []
        if obs.legacy and state == "error":
            effects.append(Refused(spec.id, reason))
        elif notify and obs.peer is not None and not obs.legacy:
            effects.append(Status(obs.peer, spec.id, state, reason, obs.fires))
        return effects
