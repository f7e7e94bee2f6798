"""Live configuration: the engine's modules as configuration entries, their
``config/<id>.yaml`` files, and edits applied without a restart.

At start each configured module registers an entry (``http``, ``queue``,
``iii-observability``, ...) whose value is its block as merged from
``config.yaml`` and its file. ``config.yaml`` and ``config/*.yaml`` are then
polled (mtime, every ``POLL_S``): a changed value is a ``config.set`` record,
checked by the module's model and applied where the module can apply it live
(queues added or retuned, HTTP CORS, timeout and middleware, log and trace
limits); anything else is recorded, logged, and used from the next start.
A file of an id no module owns is a worker's entry, checked by its schema.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from engine.configuration import Configuration, Entry, Module
from engine.errors import EngineError

from .config import MODULES, ConfigError, EngineConfig, _validate, parse, read_overrides

if TYPE_CHECKING:
    from .app import Server

log = logging.getLogger("iiilog.live-config")
POLL_S = 0.5
HTTP_LIVE = ("cors", "default_timeout", "middleware", "body_fields_at_top_level")


def _mtimes(paths: list[Path]) -> dict[Path, int]:
    out = {}
    for path in paths:
        try:
            out[path] = os.stat(path).st_mtime_ns
        except OSError:
            continue
    return out


class LiveConfig:
    def __init__(self, server: Server, registry: Configuration, cfg: EngineConfig):
        self.server = server
        self.registry = registry
        self.cfg = cfg
        self.seen: dict[Path, int] = {}
        self.appliers: dict[str, Callable[[Any], None]] = {
            "iii-queue": self._queues,
            "iii-http": self._http,
            "iii-observability": self._logs,
        }
        if cfg.config_dir is not None:
            registry.persist = self._write

    async def start(self) -> None:
        for entry_id, (canonical, block) in self.cfg.blocks.items():
            model = MODULES[canonical][0]
            self.registry.modules[entry_id] = Module(
                self._checker(canonical), self._applier(canonical)
            )
            doc = (model.__doc__ or "").strip().split("\n\n")[0]
            persist, self.registry.persist = self.registry.persist, None
            try:  # the files stay the user's: registering writes none
                await self.registry.register_entry(
                    Entry(
                        entry_id,
                        canonical,
                        " ".join(doc.split()),
                        model.model_json_schema(),
                        block,
                    ),
                    True,
                    "config",
                )
            finally:
                self.registry.persist = persist
        if self.cfg.source is not None:
            self.seen = _mtimes(self._paths())
            engine = self.server.engine
            assert engine is not None
            engine.spawn(self._watch(), name="config-watch")

    def _checker(self, canonical: str) -> Callable[[Any], Any]:
        model = MODULES[canonical][0]

        def check(value: Any) -> Any:
            if not isinstance(value, dict):
                raise ValueError(f"{canonical}: the value must be a mapping")
            return _validate(canonical, model, value)  # ConfigError is a ValueError

        return check

    def _applier(self, canonical: str) -> Callable[[Any], None]:
        def apply(parsed: Any) -> None:
            live = self.appliers.get(canonical)
            if live is not None:
                live(parsed)
            else:
                log.warning(
                    "configuration of %s changed: recorded; it applies at the next"
                    " start",
                    canonical,
                )

        return apply

    # -- what applies live ---------------------------------------------------------

    def _queues(self, parsed: Any) -> None:
        if self.server.queues is not None:
            added = self.server.queues.reconfigure(parsed)
            log.info("queues reconfigured live (added: %s)", ", ".join(added) or "-")

    def _http(self, parsed: Any) -> None:
        http = self.server.http
        if http is None:
            return
        update = {name: getattr(parsed, name) for name in HTTP_LIVE}
        restart = [
            name
            for name in ("host", "port", "concurrency_request_limit")
            if getattr(parsed, name) != getattr(http.config, name)
        ]
        http.config = http.config.model_copy(update=update)
        log.info("http settings applied live (%s)", ", ".join(HTTP_LIVE))
        if restart:
            log.warning("http: %s apply at the next start", ", ".join(restart))

    def _logs(self, parsed: Any) -> None:
        if self.server.logs is not None:
            self.server.logs.resize(parsed)

    # -- files -----------------------------------------------------------------------

    def _paths(self) -> list[Path]:
        paths = [self.cfg.source] if self.cfg.source is not None else []
        directory = self.cfg.config_dir
        if directory is not None and directory.is_dir():
            paths += sorted(directory.glob("*.yaml"))
        return paths

    def _write(self, entry: Entry) -> None:
        """The fs side of the registry: ``<id>.yaml`` as iii lays it out."""
        directory = self.cfg.config_dir
        if directory is None:
            return
        directory.mkdir(parents=True, exist_ok=True)
        doc = {"id": entry.id, "name": entry.name}
        if entry.description:
            doc["description"] = entry.description
        doc["value"] = entry.value
        path = directory / f"{entry.id}.yaml"
        tmp = path.with_suffix(".yaml.tmp")
        tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
        tmp.replace(path)
        self.seen[path] = os.stat(path).st_mtime_ns

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(POLL_S)
            now = _mtimes(self._paths())
            if now == self.seen:
                continue
            changed = {
                p
                for p in now.keys() | self.seen.keys()
                if now.get(p) != self.seen.get(p)
            }
            self.seen = now
            try:
                await self.reload(changed)
            except Exception:
                log.exception("applying configuration changes failed")

    async def reload(self, changed: set[Path]) -> None:
        source = self.cfg.source
        if source is None:
            return
        try:
            fresh = parse(
                source.read_text(), None, read_overrides(source.parent / "config")
            )
        except (ConfigError, OSError) as e:
            log.warning("config change not applied (the previous one stays): %s", e)
            return
        for entry_id, (canonical, block) in fresh.blocks.items():
            if entry_id not in self.registry.modules:
                log.warning(
                    "%s was added to the config: it starts with the next start",
                    canonical,
                )
                continue
            await self._set(entry_id, block)
        for entry_id in self.registry.modules.keys() - fresh.blocks.keys():
            log.warning("%s left the config: it stops with the next start", entry_id)
        directory = self.cfg.config_dir
        for path in changed:
            if (
                directory is None
                or path.parent != directory
                or path.stem in self.registry.modules
            ):
                continue
            await self._worker_file(path)

    async def _set(self, entry_id: str, value: Any) -> None:
        current = self.registry.entries.get(entry_id)
        if current is not None and current.value == value:
            return
        try:
            await self.registry.set(entry_id, value, "file")
            log.info("configuration %s updated from its files", entry_id)
        except EngineError as e:
            log.warning(
                "configuration %s: edit rejected, previous kept: %s",
                entry_id,
                e.message,
            )

    async def _worker_file(self, path: Path) -> None:
        entry_id = path.stem
        try:
            doc = _read(path)
        except (OSError, yaml.YAMLError) as e:
            log.warning("configuration %s: unreadable, previous kept: %s", entry_id, e)
            return
        if doc is None:  # removed
            await self.registry.delete(entry_id, "file")
            return
        value = doc.get("value")
        if entry_id in self.registry.entries:
            await self._set(entry_id, value)
            return
        entry = Entry(
            entry_id,
            str(doc.get("name") or ""),
            str(doc.get("description") or ""),
            None,
            value,
        )
        try:
            await self.registry.register_entry(entry, True, "file")
        except EngineError as e:
            log.warning("configuration %s: file not loaded: %s", entry_id, e.message)


def _read(path: Path) -> dict[str, Any] | None:
    """A per-worker file's document; None when the file is gone."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    doc = yaml.safe_load(text)
    return doc if isinstance(doc, dict) else {}
