"""The engine config: iii's ``config.yaml`` format, read on every start, with
per-worker files ``config/<id>.yaml`` beside it (iii's ``{id, name, value}``)
whose ``value`` is merged over that worker's block, the file winning.

``${VAR}`` / ``${VAR:default}`` are substituted in the raw text before YAML
parsing (a set variable wins, even if empty; unset without default is an error).
Each module we implement validates its ``config`` block with the pydantic model
that lives beside it: a bad key or value is refused by module and key path.
Settings iii documents that we do not implement (a model's
``iii_unimplemented``) are accepted with one warning. Modules we do not
implement are warned about and skipped, never fatal.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from engine.cluster import ClusterConfig
from engine.cron import CronConfig
from engine.http_functions import HttpFunctionsConfig
from engine.logs import LogsConfig
from engine.pubsub import PubSubConfig
from engine.queues import QueueModuleConfig
from engine.state import StateConfig
from engine.subscription_rules import TriggersConfig
from eventlog.config import EventLogConfig
from projections.runner import SnapshotConfig

from .console import ConsoleConfig
from .http_config import HttpConfig
from .rbac import WorkerManagerConfig
from .stream_ws import StreamConfig

log = logging.getLogger("iiilog.config")

DEFAULT_CONFIG = """\
# iiilog default config (iii config.yaml format).
workers:
  - name: iii-worker-manager
    config: {host: 0.0.0.0, port: ${IIILOG_WORKER_PORT:49134}}
  - name: iii-http
    config: {host: 0.0.0.0, port: ${IIILOG_HTTP_PORT:3111}}
  - name: iii-stream
    config: {host: 0.0.0.0, port: ${IIILOG_STREAM_PORT:3112}}
  - name: iii-state
  - name: iii-cron
  - name: iii-pubsub
  - name: iii-queue
  - name: iiilog-eventlog
    config: {data_dir: "${IIILOG_DATA_DIR:./data}", synchronous: full}
"""

_VAR = re.compile(r"\$\{([^}:]+)(?::([^}]*))?\}")

# The modules we implement, by canonical name: their model and the
# EngineConfig attribute it fills (listeners are placed by `_listener`).
MODULES: dict[str, tuple[type[BaseModel], str]] = {
    "iii-worker-manager": (WorkerManagerConfig, "worker"),
    "iii-http": (HttpConfig, "http"),
    "iii-stream": (StreamConfig, "stream"),
    "iii-state": (StateConfig, "state"),
    "iii-cron": (CronConfig, "cron"),
    "iii-pubsub": (PubSubConfig, "pubsub"),
    "iii-queue": (QueueModuleConfig, "queues"),
    "iii-http-functions": (HttpFunctionsConfig, "http_functions"),
    "iii-observability": (LogsConfig, "logs"),
    "iiilog-triggers": (TriggersConfig, "triggers"),
    "iiilog-projections": (SnapshotConfig, "snapshots"),
    "iiilog-eventlog": (EventLogConfig, "eventlog"),
    "iiilog-cluster": (ClusterConfig, "cluster"),
    "iiilog-console": (ConsoleConfig, "console"),
}
# iii's short names of the same modules.
ALIASES = {
    "http": "iii-http",
    "state": "iii-state",
    "cron": "iii-cron",
    "pubsub": "iii-pubsub",
    "queue": "iii-queue",
    "stream": "iii-stream",
}
# A module's configuration id (iii's short worker name) and back.
ENTRY_IDS = {canonical: short for short, canonical in ALIASES.items()}
# iii always starts these; iiilog has their functions built in or no use for them.
ALWAYS_ON = {"configuration", "iii-engine-functions", "iii-telemetry"}
NOT_YET = {"iii-exec", "iii-bridge"}
TOP_LEVEL = {"workers", "modules"}
TOP_LEVEL_UNIMPLEMENTED = {"registration_namespace_grace_ms"}
ENTRY_KEYS = {"name", "config"}
ENTRY_UNIMPLEMENTED = {"image"}


class ConfigError(ValueError):
    """The config file cannot be used; the engine does not start."""


def substitute(text: str, env: dict[str, str] | None = None) -> str:
    env = dict(os.environ) if env is None else env

    def repl(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in env:
            return env[name]
        if default is None:
            raise ConfigError(
                f"environment variable {name} is not set and has no default"
            )
        return default

    return _VAR.sub(repl, text)


@dataclass
class EngineConfig:
    """What a config file asks for; a module not listed is None (or off),
    except the ones the engine cannot run without."""

    worker: WorkerManagerConfig = field(default_factory=WorkerManagerConfig)
    rbac_listeners: list[WorkerManagerConfig] = field(default_factory=list)
    http: HttpConfig | None = None
    stream: StreamConfig | None = None
    state: StateConfig = field(default_factory=StateConfig)
    cron: CronConfig | None = None
    pubsub: PubSubConfig | None = None
    queues: QueueModuleConfig | None = None
    http_functions: HttpFunctionsConfig | None = None
    logs: LogsConfig = field(default_factory=LogsConfig)
    triggers: TriggersConfig = field(default_factory=TriggersConfig)
    snapshots: SnapshotConfig = field(default_factory=SnapshotConfig)
    eventlog: EventLogConfig = field(default_factory=EventLogConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)
    skipped: list[str] = field(default_factory=list)
    # configuration id -> (canonical module name, its block as merged)
    blocks: dict[str, tuple[str, dict[str, Any]]] = field(
        default_factory=dict, compare=False
    )
    source: Path | None = field(default=None, compare=False)  # config.yaml read
    config_dir: Path | None = field(default=None, compare=False)  # per-worker files


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``: mappings merged key by key, the rest
    replaced. Pure."""
    out = dict(base)
    for key, value in over.items():
        current = out.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            out[key] = merge(current, value)
        else:
            out[key] = value
    return out


def read_overrides(directory: Path) -> dict[str, dict[str, Any]]:
    """The ``value`` of each ``<id>.yaml`` in ``directory``, by id. A file that
    cannot be read or has no mapping ``value`` is warned about and skipped."""
    out: dict[str, dict[str, Any]] = {}
    if not directory.is_dir():
        return out
    for path in sorted(directory.glob("*.yaml")):
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            log.warning("config: %s skipped: %s", path.name, e)
            continue
        value = doc.get("value") if isinstance(doc, dict) else None
        if value is None:
            value = {}
        if not isinstance(value, dict):
            log.warning("config: %s skipped: `value` must be a mapping", path.name)
            continue
        named = doc.get("id") if isinstance(doc, dict) else None
        out[named if isinstance(named, str) else path.stem] = value
    return out


def describe(error: ValidationError) -> str:
    """The first problem of a validation error as ``key.path: message``."""
    first = error.errors()[0]
    path = [str(part) for part in first["loc"]]
    if first["type"] == "extra_forbidden":
        where = f"{'.'.join(path[:-1])}: " if len(path) > 1 else ""
        text = f"{where}unknown key '{path[-1]}'"
    else:
        message = first["msg"]
        if first["type"] == "value_error":
            message = str(first.get("ctx", {}).get("error", message))
        text = f"{'.'.join(path)}: {message}" if path else message
    more = len(error.errors()) - 1
    return text + (f" (and {more} more)" if more else "")


def _entries(doc: dict[str, Any]) -> list[Any]:
    entries: list[Any] = []
    for key in ("workers", "modules"):  # `modules`: iii's older name, appended
        value = doc.get(key)
        if value is None:
            continue
        if not isinstance(value, list):
            raise ConfigError(f"`{key}` must be a list of {{name, config}} entries")
        entries += value
    return entries


def _module(index: int, entry: Any) -> tuple[str, dict[str, Any]]:
    """One list entry's name and config block, its shape checked."""
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise ConfigError(f"workers[{index}]: each entry needs a `name`: {entry!r}")
    name: str = entry["name"]
    unknown = set(entry) - ENTRY_KEYS - ENTRY_UNIMPLEMENTED
    if unknown:
        raise ConfigError(f"{name}: unknown key '{sorted(unknown)[0]}' in the entry")
    if "image" in entry:
        log.warning("config: %s: `image` ignored (iiilog runs no containers)", name)
    conf = entry.get("config") or {}
    if not isinstance(conf, dict):
        raise ConfigError(f"{name}: `config` must be a mapping")
    return name, conf


def _validate(name: str, model: type[BaseModel], conf: dict[str, Any]) -> Any:
    unimplemented: frozenset[str] = getattr(model, "iii_unimplemented", frozenset())
    ignored = sorted(set(conf) & unimplemented)
    if ignored:
        log.warning(
            "config: %s: %s ignored (iii settings iiilog does not implement)",
            name,
            ", ".join(ignored),
        )
    try:
        return model.model_validate({k: v for k, v in conf.items() if k not in ignored})
    except ValidationError as e:
        raise ConfigError(f"{name}: {describe(e)}") from None


def _listener(cfg: EngineConfig, name: str, listener: WorkerManagerConfig) -> None:
    if listener.rbac is not None:
        cfg.rbac_listeners.append(listener)
        return
    if listener.middleware_function_id is not None:
        log.warning(
            "config: %s: middleware_function_id ignored (it applies to"
            " listeners with an rbac block)",
            name,
        )
    cfg.worker = listener


def parse(
    text: str,
    env: dict[str, str] | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> EngineConfig:
    try:
        doc = yaml.safe_load(substitute(text, env)) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"invalid YAML: {e}") from e
    if not isinstance(doc, dict):
        raise ConfigError("the config must be a mapping with a `workers` list")
    unknown = set(doc) - TOP_LEVEL - TOP_LEVEL_UNIMPLEMENTED
    if unknown:
        raise ConfigError(f"unknown top-level key '{sorted(unknown, key=str)[0]}'")
    for key in sorted(set(doc) & TOP_LEVEL_UNIMPLEMENTED):
        log.warning("config: %s ignored (an iii setting iiilog does not use)", key)
    cfg = EngineConfig()
    seen: dict[str, str] = {}  # canonical name -> the spelling listed
    main_listed = False
    for index, entry in enumerate(_entries(doc)):
        name, conf = _module(index, entry)
        canonical = ALIASES.get(name, name)
        known = MODULES.get(canonical)
        if known is None:
            if canonical in ALWAYS_ON:
                if conf:
                    log.warning("config: %s: its config is ignored by iiilog", name)
                continue
            reason = "not implemented yet" if name in NOT_YET else "unknown module"
            log.warning("config: module %r skipped (%s)", name, reason)
            cfg.skipped.append(name)
            continue
        if canonical in seen:
            first = seen[canonical]
            if first != name:  # iii refuses this too
                raise ConfigError(
                    f"{canonical}: listed twice (as '{first}' and '{name}')"
                )
            raise ConfigError(f"{name}: listed twice (iiilog runs one instance of it)")
        model, attribute = known
        entry_id = ENTRY_IDS.get(canonical, canonical)
        if model is not WorkerManagerConfig:
            if overrides and entry_id in overrides:
                conf = merge(conf, overrides[entry_id])
            cfg.blocks[entry_id] = (canonical, conf)
        parsed = _validate(name, model, conf)
        if isinstance(parsed, WorkerManagerConfig):
            if parsed.rbac is None:
                if main_listed:
                    raise ConfigError(
                        f"{name}: a second listener needs an rbac block"
                        " (iiilog has one main worker listener)"
                    )
                main_listed = True
            _listener(cfg, name, parsed)
            continue
        seen[canonical] = name
        setattr(cfg, attribute, parsed)
    return cfg


def load(path: Path | None, env: dict[str, str] | None = None) -> EngineConfig:
    if path is None:
        return parse(DEFAULT_CONFIG, env)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e}") from e
    directory = path.parent / "config"
    cfg = parse(text, env, read_overrides(directory))
    cfg.source, cfg.config_dir = path, directory
    return cfg
