"""What the observer book holds and what it asks for. Pure data, no I/O.

``Observer`` and ``Activation`` are the book's records; ``Status``, ``Added``,
``Removed``, ``Refused`` and ``Run`` are the ``Effect``s its methods return for
the driver (``engine/observers.py``) to carry out. ``World`` is how the book
reads the registry.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from .observe_rules import Descriptor, FnKey, ObserverSpec


@dataclass(frozen=True, slots=True)
class Source:
    """An observed function as the registry has it right now."""

    descriptor: Descriptor
    needs_ack: bool  # served by a connection that speaks observe.v1


class World(Protocol):
    def source(self, key: FnKey) -> Source | None:
        """The function ``key``, or None while nobody serves it."""

    def target_exists(self, key: FnKey) -> bool:
        """Can ``key`` be invoked right now?"""


@dataclass(eq=False)
class Observer:
    spec: ObserverSpec
    peer: str | None  # the observing connection; None while it is away
    expires_at: int | None
    state: str = "pending"
    reason: dict[str, str] | None = None
    fires: int = 0
    checked: Descriptor | None = None  # the descriptor it passed check_source with
    offered: bool = False  # its source's owners were told about it
    acked_by: set[str] = field(default_factory=set)
    ever_active: bool = False
    away_until: int | None = None
    in_flight: int = 0
    queue: deque[Activation] = field(default_factory=deque)
    dropped: Counter[str] = field(default_factory=Counter)
    failures: int = 0

    @property
    def legacy(self) -> bool:
        return self.spec.legacy is not None


@dataclass(eq=False)
class Activation:
    """One call of an observer's target."""

    observer: Observer
    activation_id: str
    payload: Any
    observe_depth: int
    caller: dict[str, Any]

    @property
    def target(self) -> FnKey:
        return self.observer.spec.target

    def marker(self) -> dict[str, str]:
        """``invokefunction.activation``."""
        return {
            "observer_id": self.observer.spec.id,
            "activation_id": self.activation_id,
        }


# -- effects -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Status:
    """Tell the observing connection the observer's state; ``reply`` answers
    its ``observe`` (``observeresult``), else it is a change."""

    peer: str
    observer_id: str
    state: str
    reason: dict[str, str] | None
    fires: int
    reply: bool = False


@dataclass(frozen=True, slots=True)
class Added:
    peer: str
    key: FnKey
    revision: int
    info: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Removed:
    peer: str
    key: FnKey
    revision: int
    observer_id: str


@dataclass(frozen=True, slots=True)
class Refused:
    """A legacy observer failed: its ``registertrigger`` owner is told."""

    binding_id: str
    error: dict[str, str]


@dataclass(frozen=True, slots=True)
class Run:
    activation: Activation


Effect = Status | Added | Removed | Refused | Run
