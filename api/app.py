"""Assembly: open the log, build the engine and its modules, start the listeners.

``Server.start`` returns once every listener is bound (ports known, port 0 allowed);
``Server.stop`` shuts down in order: close worker connections (§1.7 cleanup,
GOING_AWAY) and every other WebSocket on our listeners (telemetry, channel ends,
stream clients), stop the listeners, cancel the engine's tasks, let the writer
drain, close the database. Sockets are closed before the listeners stop because
aiohttp stops reading a connection once its runner shuts down: a close
handshake begun later never completes, and each such socket would hold the
shutdown for twice the shutdown timeout (and its client waiting as long).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from engine import introspection
from engine.admin import install_admin
from engine.channels import ChannelRegistry
from engine.cluster import SharedCluster, role
from engine.configuration import Configuration
from engine.core import Engine, now_ms
from engine.cron import CronModule
from engine.durable import DurableTriggers
from engine.http_functions import HttpFunctions
from engine.ids import random_uuid
from engine.logs import LogSink, RecentLines
from engine.observers import install as install_observers
from engine.pubsub import Availability, PubSubModule
from engine.queue_admin import QueueAdmin
from engine.queues import QueueModule
from engine.state import StateModule
from engine.streams import StreamModule
from engine.topics import DurableTopics
from eventlog import LogStore, LogTail, LogWriter, SqliteStore
from eventlog.directory import NodeInfo
from eventlog.postgres import PostgresStore
from projections.registry import builtin as builtin_projections
from projections.runner import ProjectionRunner

from . import client_errors
from .config import EngineConfig
from .console import Console
from .http_server import HttpModule
from .live_config import LiveConfig
from .metrics import CommitStats
from .node_link import NodeLinks
from .protocol import CloseCode
from .stream_ws import StreamClient, StreamServer
from .worker_listener import make_worker_app
from .worker_ws import WorkerConnection

log = logging.getLogger("iiilog.app")


async def _all(closes: Iterable[Awaitable[Any]]) -> None:
    """Await every close; a peer that fails to close is logged, not raised
    (shutdown goes on)."""
    for result in await asyncio.gather(*closes, return_exceptions=True):
        if isinstance(result, Exception):
            log.debug("closing a socket failed: %r", result)


@dataclass
class Server:
    config: EngineConfig
    engine: Engine | None = None
    ports: dict[str, int] = field(default_factory=dict)
    _runners: list[web.AppRunner] = field(default_factory=list)
    _writer_task: asyncio.Task[Any] | None = None
    _streams: StreamServer | None = None
    _sockets: weakref.WeakSet[web.WebSocketResponse] = field(
        default_factory=weakref.WeakSet
    )
    _durable: DurableTriggers | None = None
    projections: ProjectionRunner | None = None
    _http_functions: HttpFunctions | None = None
    queues: QueueModule | None = None
    http: HttpModule | None = None
    logs: LogSink | None = None
    _lines: RecentLines | None = None

    async def start(self) -> None:
        cfg = self.config
        url = cfg.eventlog.database_url
        store: LogStore
        if url is None:
            store = await SqliteStore.open(
                cfg.eventlog.data_dir, synchronous=cfg.eventlog.synchronous
            )
        else:
            store = await PostgresStore.open(url)
        writer = LogWriter(store, max_batch=cfg.eventlog.max_batch)
        commits = CommitStats()
        writer.on_batch(commits.observe)
        self._lines = RecentLines(cfg.console.log_lines)
        logging.getLogger("iiilog").addHandler(self._lines)
        tail = LogTail(store)
        engine = Engine(store=store, writer=writer, tail=tail)
        self.engine = engine
        if isinstance(store, PostgresStore):
            # One log, several nodes: the others' commits come in through the
            # follower (notified, and polled as the truth).
            node_id = random_uuid()
            engine.cluster = SharedCluster(
                engine, store.directory(), NodeLinks(node_id), cfg.cluster, node_id
            )
            writer.on_commit(tail.offer)
            engine.spawn(tail.follow(cfg.cluster.refresh_ms / 1000), name="log-follow")
            engine.spawn(store.watch(tail.poke), name="log-watch")
        else:
            writer.on_commit(tail.publish)
        self._writer_task = asyncio.get_running_loop().create_task(
            writer.run(), name="log-writer"
        )
        introspection.install(engine)
        observers = install_observers(engine)
        observers.start()
        durable = DurableTriggers(engine, cfg.triggers)
        self._durable = durable
        durable.start()
        engine.cluster.keep("snapshots", role)  # one node saves them
        runner = ProjectionRunner(
            store,
            writer,
            tail,
            builtin_projections(),
            cfg.snapshots,
            may_save=lambda: engine.cluster.holds("snapshots"),
        )
        await runner.start()
        self.projections = runner
        install_admin(engine, durable, runner)
        StateModule(engine, durable, cfg.state)
        channels = ChannelRegistry(engine)
        logs = LogSink(engine, cfg.logs)
        self.logs = logs
        http_functions = (
            HttpFunctions(engine, cfg.http_functions) if cfg.http_functions else None
        )
        self._http_functions = http_functions
        streams = StreamModule(engine, durable)
        if cfg.pubsub is not None:
            PubSubModule(engine)
        if cfg.queues is not None:
            self.queues = QueueModule(engine, cfg.queues)
            await self.queues.start()
            QueueAdmin(engine, self.queues, DurableTopics(engine, durable))
        Availability(engine)
        configuration = Configuration(engine, durable)
        await configuration.start()
        if cfg.cron is not None:
            CronModule(engine)
        self.ports["worker"] = await self._listen(
            make_worker_app(
                engine, logs, channels, http_functions, cfg.worker, observers=observers
            ),
            cfg.worker.host,
            cfg.worker.port,
        )
        for index, listener in enumerate(cfg.rbac_listeners):
            name = "rbac" if index == 0 else f"rbac{index}"
            self.ports[name] = await self._listen(
                make_worker_app(engine, logs, channels, http_functions, listener),
                listener.host,
                listener.port,
            )
        if cfg.stream is not None:
            self._streams = StreamServer(engine, streams, cfg.stream)
        if cfg.http is not None:
            http = HttpModule(engine, cfg.http, runner, channels)
            http.spans = logs.traces
            self.http = http
            console = Console(
                cfg.console,
                engine,
                durable,
                runner,
                logs,
                self._lines,
                commits,
                http.requests,
                self._stream_clients,
            )
            self.ports["http"] = await self._listen(
                http.make_app(console.routes), cfg.http.host, cfg.http.port
            )
        if self._streams is not None and cfg.stream is not None:
            await self._streams.start_retention()
            self.ports["stream"] = await self._listen(
                self._streams.make_app(), cfg.stream.host, cfg.stream.port
            )
        await LiveConfig(self, configuration, cfg).start()
        await engine.cluster.start(self._node(engine.cluster.node_id))
        log.info("log head at offset %d", store.head)

    def _stream_clients(self) -> list[StreamClient]:
        return list(self._streams.clients) if self._streams is not None else []

    def _node(self, node_id: str) -> NodeInfo:
        """How the other nodes reach this one (only used when sharing a log)."""
        cfg = self.config

        def host(listening: str) -> str:
            if cfg.cluster.advertise_host:
                return cfg.cluster.advertise_host
            return "127.0.0.1" if listening in ("0.0.0.0", "::", "") else listening

        http = stream = None
        if "http" in self.ports and cfg.http is not None:
            http = f"http://{host(cfg.http.host)}:{self.ports['http']}"
        if "stream" in self.ports and cfg.stream is not None:
            stream = f"ws://{host(cfg.stream.host)}:{self.ports['stream']}"
        return NodeInfo(
            node_id,
            f"ws://{host(cfg.worker.host)}:{self.ports['worker']}",
            http,
            stream,
            now_ms(),
        )

    async def _listen(self, app: web.Application, host: str, port: int) -> int:
        # Shutdown closes the sockets first; handlers still running after 5 s
        # are cancelled rather than waited for (aiohttp's default is 60 s).
        app.on_response_prepare.append(self._track)
        client_errors.install()  # a client's bad request: a line, not a stack
        runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=5.0
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        self._runners.append(runner)
        return int(runner.addresses[0][1])

    async def _track(self, request: web.Request, response: web.StreamResponse) -> None:
        if isinstance(response, web.WebSocketResponse):
            self._sockets.add(response)

    async def _close_sockets(self) -> None:
        """Close worker connections, then every other socket still open, each
        group concurrently (a socket's close waits for its peer's reply)."""
        engine = self.engine
        if self._streams is not None:
            self._streams.abort_stalled()  # no close handshake behind unread data
        peers = list(engine.workers.values()) if engine is not None else []
        await _all(p.close() for p in peers if isinstance(p, WorkerConnection))
        await _all(
            ws.close(code=CloseCode.GOING_AWAY, message=b"engine shutting down")
            for ws in list(self._sockets)
            if not ws.closed
        )

    async def stop(self) -> None:
        engine = self.engine
        await self._close_sockets()
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        if engine is not None:
            await engine.stop()
            if self.projections is not None:
                await self.projections.stop()
            if self._http_functions is not None:
                await self._http_functions.close()
            if self._durable is not None:
                await self._durable.flush()  # cursors as far as handlers answered
            await engine.cluster.stop()  # leases and functions leave with us
            writer_task = self._writer_task
            if writer_task is not None:
                await engine.writer.close()  # queued writes still commit
                with contextlib.suppress(asyncio.CancelledError):
                    await writer_task
            await engine.store.close()
            self.engine = None
        if self._lines is not None:
            logging.getLogger("iiilog").removeHandler(self._lines)
