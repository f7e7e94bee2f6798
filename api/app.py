"""Assembly: open the log, build the engine and its modules, start the listeners.

``Server.start`` returns once every listener is bound (ports known, port 0 allowed);
``Server.stop`` shuts down in order: close worker sockets (GOING_AWAY), stop the
listeners, cancel the engine's tasks, let the writer drain, close the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from engine import builtins
from engine.admin import install_admin
from engine.channels import ChannelRegistry
from engine.core import Engine
from engine.cron import CronModule
from engine.durable import DurableTriggers
from engine.http_functions import HttpFunctions
from engine.logs import LogSink
from engine.pubsub import Availability, PubSubModule
from engine.queues import QueueModule
from engine.state import StateModule
from engine.streams import StreamModule
from eventlog import LogTail, LogWriter, SqliteStore
from projections.registry import builtin as builtin_projections
from projections.runner import ProjectionRunner

from .config import EngineConfig
from .http_server import HttpModule
from .stream_ws import StreamServer
from .worker_ws import WorkerConnection, make_worker_app

log = logging.getLogger("iiilog.app")


@dataclass
class Server:
    config: EngineConfig
    engine: Engine | None = None
    ports: dict[str, int] = field(default_factory=dict)
    _runners: list[web.AppRunner] = field(default_factory=list)
    _writer_task: asyncio.Task[Any] | None = None
    _streams: StreamServer | None = None
    _durable: DurableTriggers | None = None
    projections: ProjectionRunner | None = None
    _http_functions: HttpFunctions | None = None

    async def start(self) -> None:
        cfg = self.config
        store = await SqliteStore.open(
            cfg.eventlog.data_dir, synchronous=cfg.eventlog.synchronous
        )
        writer = LogWriter(store, max_batch=cfg.eventlog.max_batch)
        tail = LogTail(store)
        writer.on_commit(tail.publish)
        engine = Engine(store=store, writer=writer, tail=tail)
        self.engine = engine
        self._writer_task = asyncio.get_running_loop().create_task(
            writer.run(), name="log-writer"
        )
        builtins.install(engine)
        durable = DurableTriggers(engine, cfg.triggers)
        self._durable = durable
        durable.start()
        runner = ProjectionRunner(
            store, writer, tail, builtin_projections(), cfg.snapshots
        )
        await runner.start()
        self.projections = runner
        install_admin(engine, durable, runner)
        StateModule(engine, durable, cfg.state)
        channels = ChannelRegistry(engine)
        logs = LogSink(engine, cfg.logs)
        http_functions = (
            HttpFunctions(engine, cfg.http_functions) if cfg.http_functions else None
        )
        self._http_functions = http_functions
        streams = StreamModule(engine, durable)
        if cfg.pubsub is not None:
            PubSubModule(engine)
        if cfg.queues is not None:
            await QueueModule(engine, cfg.queues).start()
        Availability(engine)
        if cfg.cron is not None:
            CronModule(engine)
        self.ports["worker"] = await self._listen(
            make_worker_app(engine, logs, channels, http_functions),
            cfg.worker.host,
            cfg.worker.port,
        )
        for index, listener in enumerate(cfg.rbac_listeners):
            name = "rbac" if index == 0 else f"rbac{index}"
            self.ports[name] = await self._listen(
                make_worker_app(engine, logs, channels, http_functions, listener.rbac),
                listener.host,
                listener.port,
            )
        if cfg.http is not None:
            http = HttpModule(engine, cfg.http, runner, channels)
            self.ports["http"] = await self._listen(
                http.make_app(), cfg.http.host, cfg.http.port
            )
        if cfg.stream is not None:
            self._streams = StreamServer(engine, streams, cfg.stream)
            await self._streams.start_retention()
            self.ports["stream"] = await self._listen(
                self._streams.make_app(), cfg.stream.host, cfg.stream.port
            )
        log.info("log head at offset %d", store.head)

    async def _listen(self, app: web.Application, host: str, port: int) -> int:
        # Shutdown closes the sockets first; handlers still running after 5 s
        # are cancelled rather than waited for (aiohttp's default is 60 s).
        runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=5.0
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        self._runners.append(runner)
        server: Any = site._server  # asyncio's or uvloop's Server
        return int(server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        engine = self.engine
        if engine is not None:
            for peer in list(engine.workers.values()):
                if isinstance(peer, WorkerConnection):
                    await peer.close()
        if self._streams is not None:
            await self._streams.close_all()
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
            writer_task = self._writer_task
            if writer_task is not None:
                await engine.writer.close()  # queued writes still commit
                with contextlib.suppress(asyncio.CancelledError):
                    await writer_task
            await engine.store.close()
            self.engine = None
