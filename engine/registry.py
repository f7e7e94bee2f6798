"""The functions of one namespace, with replicas.

Several live workers may register the same function id (replicas of one
worker, scaled out): the id is served while any of them lives, and calls are
spread across them in turn (round robin). Reading it as a mapping gives one
entry per id, the latest registration (what introspection lists); ``entries``
gives every registration. A built-in function has a single entry that no
worker can replace. Pure bookkeeping: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .core import FunctionEntry
    from .peer import Peer


class FunctionTable(Mapping[str, "FunctionEntry"]):
    def __init__(self) -> None:
        self._served: dict[str, list[FunctionEntry]] = {}
        self._turn: dict[str, int] = {}

    # -- Mapping: the latest registration per id ---------------------------------

    def __getitem__(self, function_id: str) -> FunctionEntry:
        return self._served[function_id][-1]

    def __iter__(self) -> Iterator[str]:
        return iter(self._served)

    def __len__(self) -> int:
        return len(self._served)

    def __contains__(self, function_id: object) -> bool:
        return function_id in self._served

    # -- changes -----------------------------------------------------------------

    def add(self, entry: FunctionEntry) -> bool:
        """Register ``entry`` (replacing its owner's earlier one). False when
        the id belongs to a built-in."""
        served = self._served.setdefault(entry.id, [])
        if entry.owner is None:  # a built-in: the only one
            served[:] = [entry]
            return True
        if served and served[0].owner is None:
            return False
        served[:] = [e for e in served if e.owner is not entry.owner]
        served.append(entry)
        return True

    def remove(self, function_id: str, owner: Peer | None) -> FunctionEntry | None:
        """Drop ``owner``'s registration of ``function_id``; returns it."""
        served = self._served.get(function_id)
        if not served:
            return None
        for i, entry in enumerate(served):
            if entry.owner is owner:
                del served[i]
                if not served:
                    del self._served[function_id]
                    self._turn.pop(function_id, None)
                return entry
        return None

    def remove_owner(self, owner: Peer) -> list[FunctionEntry]:
        """Drop every registration of ``owner``; returns them."""
        gone = []
        for function_id in [f for f, s in self._served.items() if _owns(s, owner)]:
            entry = self.remove(function_id, owner)
            if entry is not None:
                gone.append(entry)
        return gone

    # -- reading -----------------------------------------------------------------

    def pick(self, function_id: str) -> FunctionEntry | None:
        """The registration to serve the next call: replicas in turn."""
        served = self._served.get(function_id)
        if not served:
            return None
        if len(served) == 1:
            return served[0]
        turn = self._turn.get(function_id, 0) % len(served)
        self._turn[function_id] = turn + 1
        return served[turn]

    def served(self, function_id: str) -> list[FunctionEntry]:
        """Every registration of ``function_id`` (replicas), oldest first."""
        return list(self._served.get(function_id, ()))

    def entries(self) -> Iterator[FunctionEntry]:
        """Every registration, replicas included."""
        for served in self._served.values():
            yield from served

    def owned_by(self, owner: Peer) -> list[FunctionEntry]:
        return [e for e in self.entries() if e.owner is owner]


def _owns(served: list[FunctionEntry], owner: Peer) -> bool:
    return any(e.owner is owner for e in served)
