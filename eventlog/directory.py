"""The cluster directory: what the nodes sharing one log tell each other.

Nodes and their heartbeats, the functions and HTTP routes their workers serve,
worker names, leases (one holder at a time for a trigger subscription, a
queue, the snapshot writer) and cron fire claims. A node is alive while its
heartbeat is younger than the TTL the reader passes; everything a dead node
held is ignored from then on, so its calls fail over and its leases move.
Times are the directory's own clock (PostgreSQL: the database server's), so
the nodes' clocks need not agree. Only backends that several nodes can share
implement it (PostgreSQL). Pure data and a protocol, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class NodeInfo:
    node_id: str
    worker_url: str  # where other nodes reach it (the worker protocol)
    http_url: str | None
    stream_url: str | None
    started_ms: int
    heartbeat_ms: int = 0


@dataclass(frozen=True, slots=True)
class RemoteFunction:
    node_id: str
    namespace: str
    function_id: str
    info: Any  # description, metadata, worker name: as the node published it


@dataclass(frozen=True, slots=True)
class RemoteRoute:
    node_id: str
    trigger_id: str
    function_id: str
    namespace: str | None
    config: Any


@dataclass(frozen=True, slots=True)
class Lease:
    name: str
    node_id: str
    expires_ms: int


class Directory(Protocol):
    async def join(self, node: NodeInfo) -> None:
        """Announce (or re-announce) a node; its old entries are dropped."""
        ...

    async def heartbeat(self, node_id: str) -> bool:
        """False when the node is no longer known (declared gone: join again)."""
        ...

    async def leave(self, node_id: str) -> None:
        """A clean shutdown: the node and everything it held are removed."""
        ...

    async def forget(self, dead_for_ms: int) -> int:
        """Remove the nodes without a heartbeat for ``dead_for_ms`` (killed,
        never left) and what they held: their functions, routes and worker
        names, and rows of nodes no longer known. The number of nodes removed."""
        ...

    async def nodes(self, ttl_ms: int) -> list[NodeInfo]:
        """Live nodes."""
        ...

    async def set_functions(
        self, node_id: str, added: list[RemoteFunction], removed: list[tuple[str, str]]
    ) -> None:
        """Functions (namespace, id) a node now serves or no longer serves."""
        ...

    async def functions(self, ttl_ms: int) -> list[RemoteFunction]:
        """Every function served by a live node."""
        ...

    async def set_routes(
        self, node_id: str, added: list[RemoteRoute], removed: list[str]
    ) -> None: ...

    async def routes(self, ttl_ms: int) -> list[RemoteRoute]: ...

    async def claim_worker_name(
        self,
        node_id: str,
        worker_id: str,
        namespace: str,
        name: str,
        ttl_ms: int,
        *,
        force: bool = False,
    ) -> str | None:
        """Take (namespace, name) for ``worker_id``; returns the live worker
        that holds it already (on any node), or None when taken. ``force``
        takes it over from a live holder."""
        ...

    async def release_worker_name(self, node_id: str, worker_id: str) -> None: ...

    async def acquire(self, name: str, node_id: str, ttl_ms: int) -> bool:
        """Take or renew lease ``name`` for ``ttl_ms``; False while another
        node holds it unexpired."""
        ...

    async def release(self, name: str, node_id: str) -> None: ...

    async def leases(self) -> list[Lease]: ...

    async def claim_fire(self, job: str, scheduled_ms: int, node_id: str) -> bool:
        """True for exactly one caller per (job, scheduled time); claims older
        than a day are forgotten."""
        ...
