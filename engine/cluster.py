"""This node among the nodes sharing one log.

``SoloCluster`` is a node alone on its log (SQLite): every lease is its own,
nothing is elsewhere. ``SharedCluster`` joins the others through the cluster
directory (``eventlog.directory``): it beats its heartbeat, publishes the
functions and HTTP routes its workers serve, keeps a cache of what the live
nodes serve, forwards calls for functions it lacks (``NodeTransport``: the
worker protocol, node to node, provided by ``api/``), and holds leases, so a
trigger subscription, a queue or the snapshot writer runs on one node at a
time and moves to another when its node dies.

``keep(name, run)`` is how a module asks for one of those: ``run()`` runs while
this node holds lease ``name`` and is cancelled when it loses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from eventlog import EventLogError, wait_event
from eventlog.directory import Directory, NodeInfo, RemoteFunction, RemoteRoute

from .errors import EngineError, FunctionNotFound
from .solo import Kept, Runner, Saver, SoloCluster, role

__all__ = [
    "Cluster",
    "ClusterConfig",
    "ForwardedCall",
    "NodeUnreachable",
    "SharedCluster",
    "SoloCluster",
    "role",
]

if TYPE_CHECKING:
    from .core import CallContext, Engine

log = logging.getLogger("iiilog.cluster")

# Every this many heartbeats, nodes dead for this many TTLs are forgotten.
FORGET_EVERY = 10
FORGET_AFTER_TTLS = 10


class ClusterConfig(BaseModel):
    """Module ``iiilog-cluster``: only used when the log is shared (PostgreSQL)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    heartbeat_ms: int = Field(1000, ge=50)
    node_ttl_ms: int = Field(5000, ge=200)  # no heartbeat for this long: dead
    lease_ttl_ms: int = Field(5000, ge=200)  # a lease not renewed for this long moves
    refresh_ms: int = Field(1000, ge=50)  # directory cache, and lease attempts
    # How other nodes reach this one's worker port (default: the listener's
    # address, 127.0.0.1 when it listens on every interface).
    advertise_host: str | None = None


@dataclass(slots=True)
class ForwardedCall:
    """A call for a function that another node's worker serves."""

    function_id: str
    data: Any
    namespace: str | None
    metadata: Any
    traceparent: str | None
    baggage: str | None
    delivery: bool  # a trigger delivery: the writes it causes get tags


class NodeTransport(Protocol):
    """Calls into other nodes (``api/node_link.py``)."""

    async def call(self, node: NodeInfo, call: ForwardedCall) -> Any:
        """The function's result; ``EngineError`` as the other node answered,
        ``NodeUnreachable`` when the node cannot be reached at all."""
        ...

    async def close(self) -> None: ...


class NodeUnreachable(Exception):
    """The other node did not take the call (nothing was run there)."""


@dataclass
class _Cache:
    nodes: dict[str, NodeInfo] = field(default_factory=dict)
    functions: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    routes: list[RemoteRoute] = field(default_factory=list)


class SharedCluster:
    """A node of several on one PostgreSQL log."""

    shared = True

    def __init__(
        self,
        engine: Engine,
        directory: Directory,
        transport: NodeTransport,
        config: ClusterConfig,
        node_id: str,
    ) -> None:
        self.engine = engine
        self.directory = directory
        self.transport = transport
        self.config = config
        self.node_id = node_id
        self.node: NodeInfo | None = None
        self._cache = _Cache()
        self._published: dict[tuple[str, str], Any] = {}
        self._routes_out: dict[str, RemoteRoute] = {}  # this node's http bindings
        self._routes_sent: dict[str, RemoteRoute] = {}
        self._route_listeners: list[Callable[[list[RemoteRoute]], None]] = []
        self._kept: dict[str, Kept] = {}
        # leases this node holds -> until when (monotonic), counted from before
        # the renewal was sent, so never later than the database's own expiry
        self._held: dict[str, float] = {}
        # nodes that refused a connection, skipped until this (monotonic) time
        self._unreachable: dict[str, float] = {}
        self._dirty = asyncio.Event()
        self._lease_wake = asyncio.Event()
        self._turn = itertools.count()
        engine.listeners.append(self._on_engine_event)

    # -- lifecycle -----------------------------------------------------------------

    async def start(self, node: NodeInfo) -> None:
        """Join (the listeners are bound, so other nodes can call in)."""
        self.node = node
        await self.directory.join(node)
        await self._publish()
        await self._refresh()
        self.engine.spawn(self._heartbeat(), name="cluster-heartbeat")
        self.engine.spawn(self._sync(), name="cluster-sync")
        self.engine.spawn(self._leases(), name="cluster-leases")

    async def stop(self) -> None:
        """Leave: stop what this node held, and tell the others at once (its
        leases and its functions go with it)."""
        for kept in list(self._kept.values()):
            await kept.stop()
        self._held.clear()
        with contextlib.suppress(EventLogError):
            await self.directory.leave(self.node_id)
        await self.transport.close()

    async def _heartbeat(self) -> None:
        interval = self.config.heartbeat_ms / 1000
        for beat in itertools.count(1):
            await asyncio.sleep(interval)
            try:
                await self._beat()
                if beat % FORGET_EVERY == 0:
                    # Nodes killed long ago (ids are new at every start): their
                    # rows would pile up. Long after their TTL, so a node that
                    # was only cut off joins again (``_beat``) with all it has.
                    gone = await self.directory.forget(
                        self.config.node_ttl_ms * FORGET_AFTER_TTLS
                    )
                    if gone:
                        log.info("cluster: forgot %d dead node(s)", gone)
            except EventLogError as e:
                log.warning("cluster: heartbeat failed: %s", e)
            except Exception:  # a bug must not stop the heartbeat for good
                log.exception("cluster: heartbeat failed")

    async def _beat(self) -> None:
        if not await self.directory.heartbeat(self.node_id):
            # Declared gone while away (the database was down, say):
            # join again and announce everything anew.
            log.warning("cluster: this node was forgotten; joining again")
            assert self.node is not None
            await self.directory.join(self.node)
            self._published.clear()
            self._routes_sent.clear()
            self._dirty.set()

    async def _sync(self) -> None:
        """Publish what changed here; refresh what the others serve."""
        interval = self.config.refresh_ms / 1000
        while True:
            await wait_event(self._dirty, interval)
            self._dirty.clear()
            try:
                await self._publish()
                await self._refresh()
            except EventLogError as e:
                log.warning("cluster: directory sync failed: %s", e)
            except Exception:  # a bug must not stop the sync for good
                log.exception("cluster: directory sync failed")
            else:
                continue
            self._dirty.set()  # try again after a pause
            await asyncio.sleep(interval)

    def _on_engine_event(self, event: str, worker_id: str | None) -> None:
        if event in ("functions_changed", "worker_disconnected"):
            self._dirty.set()

    # -- functions -----------------------------------------------------------------

    def _served_here(self) -> dict[tuple[str, str], Any]:
        engine = self.engine
        out: dict[tuple[str, str], Any] = {}
        tables = [("default", engine.functions), *engine.namespaced.items()]
        for namespace, table in tables:
            for entry in table.entries():
                if entry.owner is None or getattr(entry.owner, "node_link", False):
                    continue  # built-ins are on every node
                out[(namespace, entry.id)] = {
                    "worker_name": entry.worker_name,
                    "description": entry.description,
                }
        return out

    async def _publish(self) -> None:
        now = self._served_here()
        added = [
            RemoteFunction(self.node_id, ns, fid, info)
            for (ns, fid), info in now.items()
            if self._published.get((ns, fid)) != info
        ]
        removed = [key for key in self._published if key not in now]
        if added or removed:
            await self.directory.set_functions(self.node_id, added, removed)
        self._published = now
        # By value: a trigger id bound again with another config (a worker
        # restarted with a changed route) is published again. Taken before the
        # await, so a route that changes meanwhile is sent next time.
        routes = dict(self._routes_out)
        routes_added = [
            r for tid, r in routes.items() if self._routes_sent.get(tid) != r
        ]
        routes_removed = [t for t in self._routes_sent if t not in routes]
        if routes_added or routes_removed:
            await self.directory.set_routes(self.node_id, routes_added, routes_removed)
        self._routes_sent = routes

    async def _refresh(self) -> None:
        ttl = self.config.node_ttl_ms
        nodes = {n.node_id: n for n in await self.directory.nodes(ttl)}
        functions: dict[tuple[str, str], list[str]] = {}
        for f in await self.directory.functions(ttl):
            if f.node_id != self.node_id:
                functions.setdefault((f.namespace, f.function_id), []).append(f.node_id)
        routes = [
            r for r in await self.directory.routes(ttl) if r.node_id != self.node_id
        ]
        changed = routes != self._cache.routes
        self._cache = _Cache(nodes, functions, routes)
        if changed:
            for listener in self._route_listeners:
                listener(routes)

    def route_changed(self, added: list[RemoteRoute], removed: list[str]) -> None:
        """This node's ``http`` bindings changed (the HTTP module tells)."""
        for route in added:
            self._routes_out[route.trigger_id] = route
        for trigger_id in removed:
            self._routes_out.pop(trigger_id, None)
        self._dirty.set()

    def on_routes(self, listener: Callable[[list[RemoteRoute]], None]) -> None:
        """``listener(routes)`` whenever the other nodes' routes change."""
        self._route_listeners.append(listener)
        listener(self._cache.routes)

    # -- forwarding ----------------------------------------------------------------

    async def invoke_remote(self, function_id: str, data: Any, ctx: CallContext) -> Any:
        namespace = ctx.namespace or "default"
        candidates = self._cache.functions.get((namespace, function_id), [])
        if not candidates:
            await self._refresh()  # just registered elsewhere? one fresh look
            candidates = self._cache.functions.get((namespace, function_id), [])
        start = next(self._turn)
        call = ForwardedCall(
            function_id,
            data,
            ctx.namespace,
            ctx.metadata,
            ctx.traceparent,
            ctx.baggage,
            ctx.delivery,
        )
        now = time.monotonic()
        live = [n for n in candidates if self._unreachable.get(n, 0.0) <= now]
        for i in range(len(live)):
            node = self._cache.nodes.get(live[(start + i) % len(live)])
            if node is None:
                continue
            try:
                return await self.transport.call(node, call)
            except NodeUnreachable as e:
                # Dead, most likely: its heartbeat will say so soon; meanwhile
                # its calls go to the other nodes serving the function.
                log.info("cluster: node %s unreachable: %s", node.node_id, e)
                self._unreachable[node.node_id] = (
                    time.monotonic() + self.config.node_ttl_ms / 1000
                )
        raise FunctionNotFound(function_id, namespace=namespace)

    # -- leases --------------------------------------------------------------------

    def keep(self, name: str, run: Runner) -> None:
        self._kept[name] = Kept(name, run)
        self._dirty_leases()

    async def drop(self, name: str, before_release: Saver | None = None) -> None:
        """Stop what lease ``name`` runs here; ``before_release()`` (saving
        where it got to) runs while the lease is still this node's, so the
        next holder starts from there."""
        kept = self._kept.pop(name, None)
        if kept is not None:
            await kept.stop()
            if before_release is not None and self.holds(name):
                try:
                    await before_release()
                except Exception as e:  # the next holder redelivers from before
                    log.warning("cluster: saving before releasing %s: %r", name, e)
            self._held.pop(name, None)
            with contextlib.suppress(EventLogError):
                await self.directory.release(name, self.node_id)

    def holds(self, name: str) -> bool:
        """This node holds lease ``name`` (its task may have just stopped:
        shutdown saves what it did before leaving)."""
        return self._held.get(name, 0.0) > time.monotonic()

    def _dirty_leases(self) -> None:
        self._lease_wake.set()

    async def _leases(self) -> None:
        """Take or renew every lease this node wants, start what it won, stop
        what it lost. A lease is renewed well before it expires."""
        interval = min(self.config.refresh_ms, self.config.lease_ttl_ms // 3) / 1000
        while True:
            for kept in list(self._kept.values()):
                try:
                    await self._renew(kept, interval)
                except Exception:  # a bug must not stop renewals for good
                    log.exception("cluster: lease %s", kept.name)
                    with contextlib.suppress(Exception):
                        await self._lose(kept)
            await wait_event(self._lease_wake, interval)
            self._lease_wake.clear()

    async def _renew(self, kept: Kept, interval: float) -> None:
        """Take or renew one lease; start or stop its task to match."""
        ttl = self.config.lease_ttl_ms
        sent = time.monotonic()
        # Past its local deadline a lease is not ours, whatever the database
        # may answer later: a renewal never waits beyond it.
        deadline = self._held.get(kept.name, 0.0)
        wait = max(deadline - sent - interval, interval)
        try:
            async with asyncio.timeout(wait):  # not wait_for: see eventlog/waiting.py
                held = bool(await self.directory.acquire(kept.name, self.node_id, ttl))
        except (EventLogError, TimeoutError) as e:
            log.warning("cluster: lease %s not renewed: %s", kept.name, e or "timeout")
            held = False  # cannot prove it is ours: stop, to be safe
        if self._kept.get(kept.name) is not kept:
            # Dropped meanwhile (and maybe kept anew: that one renews itself).
            # A lease taken after the drop released it would block the other
            # nodes until it expires: give it back.
            if held and kept.name not in self._kept:
                with contextlib.suppress(EventLogError):
                    await self.directory.release(kept.name, self.node_id)
            return
        if not held:
            await self._lose(kept)
            return
        self._held[kept.name] = sent + ttl / 1000
        running = kept.task is not None and not kept.task.done()
        if not running:
            if kept.task is not None and not kept.task.cancelled():
                error = kept.task.exception()
                if error is not None:  # it failed: start it again
                    log.warning("cluster: %s failed (%r); again", kept.name, error)
            log.info("cluster: this node now runs %s", kept.name)
            kept.task = self.engine.spawn(kept.run(), name=f"lease:{kept.name}")

    async def _lose(self, kept: Kept) -> None:
        running = kept.task is not None and not kept.task.done()
        if running:
            log.info("cluster: lease %s lost; stopping it here", kept.name)
            await kept.stop()
        self._held.pop(kept.name, None)

    async def claim_fire(self, job: str, scheduled_ms: int) -> bool:
        try:
            return await self.directory.claim_fire(job, scheduled_ms, self.node_id)
        except EventLogError as e:
            log.warning("cluster: cron fire %s not claimed: %s", job, e)
            return False

    # -- worker names --------------------------------------------------------------

    async def claim_worker_name(
        self, worker_id: str, namespace: str, name: str, *, force: bool
    ) -> str | None:
        try:
            return await self.directory.claim_worker_name(
                self.node_id,
                worker_id,
                namespace,
                name,
                self.config.node_ttl_ms,
                force=force,
            )
        except EventLogError as e:
            raise EngineError("cluster_unavailable", str(e)) from e

    async def release_worker_name(self, worker_id: str) -> None:
        with contextlib.suppress(EventLogError):
            await self.directory.release_worker_name(self.node_id, worker_id)

    # -- status --------------------------------------------------------------------

    async def describe(self) -> dict[str, Any]:
        leases = await self.directory.leases()
        return {
            "node_id": self.node_id,
            "shared": True,
            "nodes": [
                {
                    "node_id": n.node_id,
                    "worker_url": n.worker_url,
                    "http_url": n.http_url,
                    "heartbeat_ms": n.heartbeat_ms,
                }
                for n in self._cache.nodes.values()
            ],
            "leases": [
                {"name": le.name, "node_id": le.node_id, "expires_ms": le.expires_ms}
                for le in leases
            ],
        }


Cluster = SoloCluster | SharedCluster
