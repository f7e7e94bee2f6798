"""The engine config: iii's ``config.yaml`` format, read on every start.

``${VAR}`` / ``${VAR:default}`` are substituted in the raw text before YAML
parsing (a set variable wins, even if empty; unset without default is an error).
Modules we do not implement are warned about and skipped, never fatal.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.durable import RetryPolicy
from engine.http_functions import HttpFunctionsConfig
from engine.queues import QueueConfig
from projections.runner import SnapshotConfig

from .http_server import HttpConfig
from .rbac import RbacConfig
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
ALWAYS_ON = {
    "iii-worker-manager",
    "iii-observability",
    "configuration",
    "iii-engine-functions",
    "iii-telemetry",
}
NOT_YET = {
    "iii-exec",
    "iii-bridge",
}


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
    worker_host: str = "0.0.0.0"
    worker_port: int = 49134
    http: HttpConfig | None = field(default_factory=HttpConfig)
    stream: StreamConfig | None = field(default_factory=StreamConfig)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    cron: bool = True
    logs_keep: int = 1000
    http_functions: HttpFunctionsConfig | None = None
    rbac_listeners: list[RbacConfig] = field(default_factory=list)
    pubsub: bool = True
    queues: dict[str, QueueConfig] | None = field(default_factory=dict)
    snapshots: SnapshotConfig = field(default_factory=SnapshotConfig)
    state_max_value_bytes: int | None = None
    state_triggers_enabled: bool = True
    data_dir: Path = Path("./data")
    synchronous: str = "full"
    max_batch: int = 512
    skipped: list[str] = field(default_factory=list)


def _int(cfg: dict[str, Any], name: str, default: int | None) -> int | None:
    value = cfg.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    return value


def _positive(cfg: dict[str, Any], name: str, default: int) -> int:
    value = _int(cfg, name, default)
    if value is None or value < 1:
        raise ConfigError(f"{name} must be a positive integer")
    return value


def _queues(raw: Any) -> dict[str, QueueConfig]:
    if not isinstance(raw, dict):
        raise ConfigError("iii-queue: queue_configs must be a mapping")
    out = {}
    for name, conf in raw.items():
        conf = conf or {}
        if not isinstance(conf, dict):
            raise ConfigError(f"iii-queue: queue {name!r} must be a mapping")
        kind = conf.get("type", "standard")
        if kind not in ("standard", "fifo"):
            raise ConfigError(f"iii-queue: queue {name!r}: type is standard or fifo")
        group = conf.get("message_group_field")
        if kind == "fifo" and not isinstance(group, str):
            raise ConfigError(
                f"iii-queue: fifo queue {name!r} needs message_group_field"
            )
        defaults = QueueConfig()
        out[str(name)] = QueueConfig(
            type=kind,
            message_group_field=group,
            **{
                f: _positive(conf, f, getattr(defaults, f))
                for f in (
                    "max_retries",
                    "concurrency",
                    "backoff_ms",
                    "poll_interval_ms",
                    "delivery_timeout_ms",
                )
            },
        )
    return out


def parse(text: str, env: dict[str, str] | None = None) -> EngineConfig:
    try:
        doc = yaml.safe_load(substitute(text, env)) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"invalid YAML: {e}") from e
    if not isinstance(doc, dict):
        raise ConfigError("the config must be a mapping with a `workers` list")
    unknown = set(doc) - {"workers", "modules", "registration_namespace_grace_ms"}
    if unknown:
        raise ConfigError(f"unknown top-level keys: {', '.join(sorted(unknown))}")
    entries = list(doc.get("workers") or []) + list(doc.get("modules") or [])
    cfg = EngineConfig(http=None, stream=None, cron=False, pubsub=False, queues=None)
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ConfigError(f"each worker entry needs a `name`: {entry!r}")
        name = entry["name"]
        conf = entry.get("config") or {}
        if not isinstance(conf, dict):
            raise ConfigError(f"{name}: `config` must be a mapping")
        if name == "iii-worker-manager" and "rbac" in conf:
            try:
                cfg.rbac_listeners.append(RbacConfig.parse(conf))
            except (ValueError, TypeError) as e:
                raise ConfigError(f"iii-worker-manager rbac: {e}") from e
        elif name == "iii-worker-manager":
            cfg.worker_host = str(conf.get("host", "0.0.0.0"))
            cfg.worker_port = _int(conf, "port", 49134) or 0
        elif name in ("iii-http", "http"):
            cfg.http = HttpConfig(
                host=str(conf.get("host", "0.0.0.0")),
                port=_int(conf, "port", 3111) or 0,
                default_timeout=_int(conf, "default_timeout", 30_000) or 30_000,
                concurrency_request_limit=_int(conf, "concurrency_request_limit", 1024)
                or 1024,
                cors=conf.get("cors"),
                middleware=list(conf.get("middleware") or []),
                body_fields_at_top_level=bool(
                    conf.get("body_fields_at_top_level", True)
                ),
            )
        elif name in ("iii-stream", "stream"):
            auth = conf.get("auth_function")
            if auth is not None and not isinstance(auth, str):
                raise ConfigError("iii-stream: auth_function must be a function id")
            cfg.stream = StreamConfig(
                host=str(conf.get("host", "0.0.0.0")),
                port=_int(conf, "port", 3112) or 0,
                auth_function=auth,
                send_retention_ms=_int(
                    conf, "send_retention_ms", StreamConfig.send_retention_ms
                )
                or 1,
                prune_interval_ms=_int(
                    conf, "prune_interval_ms", StreamConfig.prune_interval_ms
                )
                or 60_000,
            )
        elif name in ("iii-state", "state"):
            cfg.state_max_value_bytes = _int(conf, "max_value_bytes", None)
            if cfg.state_max_value_bytes is not None and cfg.state_max_value_bytes < 1:
                raise ConfigError("iii-state: max_value_bytes must be >= 1")
            cfg.state_triggers_enabled = bool(conf.get("triggers_enabled", True))
        elif name == "iii-http-functions":
            security = conf.get("security") or {}
            if not isinstance(security, dict):
                raise ConfigError("iii-http-functions: security must be a mapping")
            allow = security.get("url_allowlist", ["*"])
            if not isinstance(allow, list) or not all(
                isinstance(a, str) for a in allow
            ):
                raise ConfigError(
                    "iii-http-functions: url_allowlist is a list of host patterns"
                )
            cfg.http_functions = HttpFunctionsConfig(
                url_allowlist=allow,
                block_private_ips=bool(security.get("block_private_ips", True)),
                require_https=bool(security.get("require_https", True)),
            )
        elif name == "iii-observability":
            cfg.logs_keep = _positive(conf, "logs_max", 1000)
        elif name in ("iii-cron", "cron"):
            cfg.cron = True
        elif name in ("iii-pubsub", "pubsub"):
            cfg.pubsub = True
        elif name in ("iii-queue", "queue"):
            cfg.queues = _queues(conf.get("queue_configs") or {})
        elif name == "iiilog-triggers":
            defaults = RetryPolicy()
            cfg.retry = RetryPolicy(
                **{
                    f: _positive(conf, f, getattr(defaults, f))
                    for f in (
                        "max_in_flight",
                        "dedupe_retention_ms",
                        "max_attempts",
                        "backoff_ms",
                        "backoff_max_ms",
                        "delivery_timeout_ms",
                        "flush_interval_ms",
                    )
                }
            )
        elif name == "iiilog-projections":
            interval = conf.get("snapshot_interval_s", 5)
            if (
                isinstance(interval, bool)
                or not isinstance(interval, int | float)
                or (interval <= 0)
            ):
                raise ConfigError("snapshot_interval_s must be a positive number")
            cfg.snapshots = SnapshotConfig(
                enabled=bool(conf.get("snapshots", True)), interval_s=float(interval)
            )
        elif name == "iiilog-eventlog":
            cfg.data_dir = Path(str(conf.get("data_dir", "./data")))
            sync = str(conf.get("synchronous", "full")).lower()
            if sync not in ("off", "normal", "full", "extra"):
                raise ConfigError(
                    "iiilog-eventlog: synchronous must be one of"
                    " off, normal, full, extra"
                )
            cfg.synchronous = sync
            cfg.max_batch = _int(conf, "max_batch", 512) or 512
        elif name in ALWAYS_ON:
            continue
        else:
            reason = "not implemented yet" if name in NOT_YET else "unknown module"
            log.warning("config: module %r skipped (%s)", name, reason)
            cfg.skipped.append(name)
    return cfg


def load(path: Path | None, env: dict[str, str] | None = None) -> EngineConfig:
    if path is None:
        return parse(DEFAULT_CONFIG, env)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e}") from e
    return parse(text, env)
