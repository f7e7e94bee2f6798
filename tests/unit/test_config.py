"""Config parsing: iii's format, env substitution, one pydantic model per module.

Tables: every model's defaults; module values and listeners; the shipped
configs load (refusals and warnings: ``test_config_refusals.py``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from api.config import (
    DEFAULT_CONFIG,
    ConfigError,
    EngineConfig,
    load,
    parse,
    substitute,
)
from api.console import ConsoleConfig
from api.http_config import HttpConfig
from api.rbac import RbacConfig, WorkerManagerConfig
from api.stream_ws import StreamConfig
from engine.cron import CronConfig
from engine.http_functions import HttpFunctionsConfig
from engine.logs import LogsConfig
from engine.pubsub import PubSubConfig
from engine.queues import QueueConfig, QueueModuleConfig
from engine.state import StateConfig
from engine.subscription_rules import TriggersConfig
from eventlog.config import EventLogConfig
from projections.runner import SnapshotConfig

ROOT = Path(__file__).resolve().parents[2]


# -- substitution ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "env", "out"),
    [
        ("port: ${P:3112}", {}, "port: 3112"),
        ("port: ${P:3112}", {"P": "9"}, "port: 9"),
        ("v: '${P:}'", {}, "v: ''"),
        ("v: '${P:x}'", {"P": ""}, "v: ''"),
        ("# ${P:c} in comments too", {}, "# c in comments too"),
    ],
)
def test_substitute(text: str, env: dict[str, str], out: str) -> None:
    assert substitute(text, env) == out


def test_unset_without_default_is_fatal() -> None:
    with pytest.raises(ConfigError, match="NOPE"):
        substitute("${NOPE}", {})


# -- defaults ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "defaults"),
    [
        (
            WorkerManagerConfig,
            {
                "host": "0.0.0.0",
                "port": 49134,
                "middleware_function_id": None,
                "max_outbound_bytes": 4 * 1024 * 1024,
                "slow_peer_timeout_ms": 30_000,
                "max_message_bytes": 64 * 1024 * 1024,
                "rbac": None,
            },
        ),
        (
            RbacConfig,
            {
                "auth_function_id": None,
                "on_function_registration_function_id": None,
                "on_trigger_registration_function_id": None,
                "on_trigger_type_registration_function_id": None,
                "expose_functions": [],
                "middleware_function_id": None,
            },
        ),
        (
            HttpConfig,
            {
                "host": "0.0.0.0",
                "port": 3111,
                "default_timeout": 30_000,
                "concurrency_request_limit": 1024,
                "cors": None,
                "middleware": [],
                "body_fields_at_top_level": True,
                "plain_results": True,
                "max_body_bytes": 16 * 1024 * 1024,
            },
        ),
        (
            StreamConfig,
            {
                "host": "0.0.0.0",
                "port": 3112,
                "auth_function": None,
                "send_retention_ms": 7 * 24 * 3600 * 1000,
                "prune_interval_ms": 60_000,
                "max_subscriptions": 256,
            },
        ),
        (
            StateConfig,
            {"max_value_bytes": 4 * 1024 * 1024, "triggers_enabled": True},
        ),
        (CronConfig, {}),
        (PubSubConfig, {}),
        (QueueModuleConfig, {"queue_configs": {}}),
        (
            QueueConfig,
            {
                "max_retries": 3,
                "concurrency": 10,
                "type": "standard",
                "message_group_field": None,
                "backoff_ms": 1000,
                "poll_interval_ms": 100,
                "delivery_timeout_ms": 30_000,
            },
        ),
        (
            HttpFunctionsConfig,
            {
                "security": {
                    "url_allowlist": ["*"],
                    "block_private_ips": True,
                    "require_https": True,
                }
            },
        ),
        (
            LogsConfig,
            {
                "logs_max": 1000,
                "memory_max_spans": 10_000,
                "traces_max_bytes": 16 * 1024 * 1024,
            },
        ),
        (
            TriggersConfig,
            {
                "max_attempts": 5,
                "backoff_ms": 200,
                "backoff_max_ms": 10_000,
                "delivery_timeout_ms": 30_000,
                "flush_interval_ms": 200,
                "max_in_flight": 64,
                "dedupe_retention_ms": 7 * 24 * 3600 * 1000,
            },
        ),
        (SnapshotConfig, {"enabled": True, "interval_s": 5.0}),
        (ConsoleConfig, {"token": None, "allow_remote": False, "log_lines": 500}),
        (
            EventLogConfig,
            {
                "data_dir": Path("./data"),
                "database_url": None,
                "synchronous": "full",
                "max_batch": 512,
            },
        ),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else "",
)
def test_model_defaults(model: type[BaseModel], defaults: dict[str, Any]) -> None:
    assert model().model_dump() == defaults
    assert model.model_validate({}).model_dump() == defaults  # an empty block


def test_listed_module_without_config_gets_its_defaults() -> None:
    cfg = parse(
        "workers:\n"
        + "".join(
            f"  - name: {name}\n"
            for name in (
                "iii-worker-manager",
                "iii-http",
                "iii-stream",
                "iii-state",
                "iii-cron",
                "iii-pubsub",
                "iii-queue",
                "iii-http-functions",
                "iii-observability",
                "iiilog-triggers",
                "iiilog-projections",
                "iiilog-eventlog",
                "iiilog-console",
            )
        ),
        {},
    )
    assert cfg == EngineConfig(
        http=HttpConfig(),
        stream=StreamConfig(),
        cron=CronConfig(),
        pubsub=PubSubConfig(),
        queues=QueueModuleConfig(),
        http_functions=HttpFunctionsConfig(),
    )


def test_unlisted_modules_are_off() -> None:
    cfg = parse("workers:\n  - name: iii-worker-manager\n", {})
    # ... except the console, which is on and serves loopback clients only.
    assert cfg.console == ConsoleConfig()
    assert cfg.http is None and cfg.stream is None and cfg.cron is None
    assert cfg.pubsub is None and cfg.queues is None and cfg.http_functions is None
    assert cfg.state == StateConfig() and cfg.eventlog == EventLogConfig()


def test_default_config_reads_env() -> None:
    cfg = parse(
        DEFAULT_CONFIG,
        {"IIILOG_WORKER_PORT": "1", "IIILOG_HTTP_PORT": "2", "IIILOG_DATA_DIR": "/x"},
    )
    assert cfg.worker.port == 1 and cfg.http is not None and cfg.http.port == 2
    assert cfg.eventlog == EventLogConfig(data_dir=Path("/x"), synchronous="full")
    cfg = parse(DEFAULT_CONFIG, {})
    assert cfg.worker.port == 49134 and cfg.http is not None
    assert cfg.http.port == 3111 and cfg.stream is not None
    assert cfg.cron is not None and cfg.pubsub is not None and cfg.queues is not None


# -- values land where the modules read them ---------------------------------------


def test_module_values() -> None:
    cfg = parse(
        "workers:\n"
        "  - name: iii-http\n"
        "    config:\n"
        "      port: 0\n"
        "      cors: {allowed_origins: ['https://a.example']}\n"
        "      middleware:\n"
        "        - {function_id: mw::late, priority: 20}\n"
        "        - {function_id: mw::early, priority: -1, phase: preHandler}\n"
        "        - {function_id: mw::mid}\n"
        "  - name: iii-queue\n"
        "    config:\n"
        "      queue_configs:\n"
        "        jobs:\n"
        "        2024: {type: fifo, message_group_field: customer}\n"
        "  - name: iii-observability\n"
        "    config: {logs_max_count: 7}\n"
        "  - name: iiilog-projections\n"
        "    config: {snapshots: false, snapshot_interval_s: 1}\n"
        "  - name: iiilog-eventlog\n"
        "    config: {synchronous: NORMAL, data_dir: ./elsewhere}\n"
        "  - name: iiilog-console\n"
        "    config: {token: '${CONSOLE_TOKEN}', log_lines: 20}\n",
        {"CONSOLE_TOKEN": "t" * 32},
    )
    assert cfg.http is not None and cfg.http.cors is not None
    assert cfg.http.cors.allowed_origins == ["https://a.example"]
    assert cfg.http.cors.allowed_methods == []
    assert [m.function_id for m in cfg.http.middleware] == [
        "mw::early",
        "mw::mid",
        "mw::late",
    ]
    assert cfg.queues is not None
    assert cfg.queues.queue_configs == {
        "jobs": QueueConfig(),
        "2024": QueueConfig(type="fifo", message_group_field="customer"),
    }
    assert cfg.logs.logs_max == 7
    assert cfg.snapshots == SnapshotConfig(snapshots=False, snapshot_interval_s=1.0)
    assert cfg.eventlog.synchronous == "normal"
    assert cfg.eventlog.data_dir == Path("elsewhere")
    assert cfg.console == ConsoleConfig(token="t" * 32, log_lines=20)


def test_listeners() -> None:
    cfg = parse(
        "workers:\n"
        "  - name: iii-worker-manager\n"
        "    config: {host: 127.0.0.1, port: 0}\n"
        "  - name: iii-worker-manager\n"
        "    config:\n"
        "      middleware_function_id: rbac::mw\n"
        "      rbac:\n"
        "        auth_function_id: rbac::auth\n"
        "        expose_functions: ['match(\"pub::*\")', {metadata: {public: true}}]\n"
        "  - name: iii-worker-manager\n"
        "    config: {port: 5, rbac: {}}\n",
        {},
    )
    assert cfg.worker == WorkerManagerConfig(host="127.0.0.1", port=0)
    first, second = cfg.rbac_listeners
    assert first.port == 49135 and second.port == 5  # an RBAC listener's default
    assert first.rbac is not None and second.rbac is not None
    assert first.rbac.auth_function_id == "rbac::auth"
    assert first.rbac.expose_functions == [
        'match("pub::*")',
        {"metadata": {"public": True}},
    ]
    # The session reads the listener's middleware from its rbac config.
    assert first.rbac.middleware_function_id == "rbac::mw"
    assert second.rbac.middleware_function_id is None


@pytest.mark.parametrize("path", ["config.yaml", "tests/sdk_suite/config.yaml"])
def test_shipped_configs_load(path: str, caplog: pytest.LogCaptureFixture) -> None:
    cfg = load(ROOT / path, {})
    assert cfg.skipped == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_sdk_suite_config() -> None:
    cfg = load(ROOT / "tests/sdk_suite/config.yaml", {})
    assert cfg.worker == WorkerManagerConfig(host="127.0.0.1", port=49199)
    (rbac,) = cfg.rbac_listeners
    assert (rbac.host, rbac.port) == ("127.0.0.1", 49135)
    assert rbac.rbac is not None
    assert rbac.rbac.middleware_function_id == "test::rbac-worker::middleware"
    assert len(rbac.rbac.expose_functions) == 3
    assert cfg.http_functions is not None
    assert cfg.http_functions.security.url_allowlist == ["localhost", "127.0.0.1"]
    assert cfg.queues == QueueModuleConfig()
