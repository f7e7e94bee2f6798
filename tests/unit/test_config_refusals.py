"""Config refusals and warnings: each refusal names the module and the key
path; each setting iii documents that iiilog does not implement is accepted
with a warning; unknown modules are skipped; the models are frozen.
"""

from __future__ import annotations

import logging

import pytest

from api.config import (
    DEFAULT_CONFIG,
    ConfigError,
    parse,
)


def one(name: str, config: str) -> str:
    """A config file listing one module with a flow-style config block."""
    return f"workers:\n  - name: {name}\n    config: {config}\n"


# -- refusals ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "error"),
    [
        # file shape
        ("nonsense: 1", "unknown top-level key 'nonsense'"),
        ("- a", "the config must be a mapping with a `workers` list"),
        ("workers: {name: iii-http}", "`workers` must be a list"),
        ("workers: [{config: {}}]", "workers[0]: each entry needs a `name`"),
        ("workers:\n  - name: iii-http\n    conf: {}", "iii-http: unknown key 'conf'"),
        (
            "workers:\n  - name: iii-http\n    config: [1]",
            "iii-http: `config` must be a mapping",
        ),
        ("workers:\n  - name: [x", "invalid YAML"),
        (
            "workers:\n  - name: iii-http\nmodules:\n  - name: http\n",
            "iii-http: listed twice (as 'iii-http' and 'http')",
        ),
        (
            "workers:\n  - name: queue\n  - name: iii-queue\n",
            "iii-queue: listed twice (as 'queue' and 'iii-queue')",
        ),
        (
            "workers:\n  - name: iii-state\n  - name: iii-state\n",
            "iii-state: listed twice",
        ),
        (
            "workers:\n  - name: iii-worker-manager\n  - name: iii-worker-manager\n",
            "iii-worker-manager: a second listener needs an rbac block",
        ),
        # iii-worker-manager
        (
            one("iii-worker-manager", "{port: '49134'}"),
            "iii-worker-manager: port: Input should be a valid integer",
        ),
        (
            one("iii-worker-manager", "{max_outbound_bytes: 1000}"),
            "iii-worker-manager: max_outbound_bytes: Input should be greater than"
            " or equal to 262144",
        ),
        (
            one("iii-worker-manager", "{slow_peer_timeout_ms: 0}"),
            "iii-worker-manager: slow_peer_timeout_ms: Input should be greater than"
            " or equal to 1",
        ),
        (
            one("iii-worker-manager", "{hots: x}"),
            "iii-worker-manager: unknown key 'hots'",
        ),
        (
            one("iii-worker-manager", "{rbac: {auth_function: a}}"),
            "iii-worker-manager: rbac: unknown key 'auth_function'",
        ),
        (
            one("iii-worker-manager", "{rbac: {middleware_function_id: mw}}"),
            "iii-worker-manager: rbac: unknown key 'middleware_function_id'",
        ),
        (
            one("iii-worker-manager", "{rbac: [a]}"),
            "iii-worker-manager: rbac: Input should be a valid dictionary",
        ),
        (
            one("iii-worker-manager", "{rbac: {expose_functions: 'match(\"*\")'}}"),
            "iii-worker-manager: rbac.expose_functions: Input should be a valid list",
        ),
        (
            one("iii-worker-manager", "{rbac: {expose_functions: [{match: x}]}}"),
            "iii-worker-manager: rbac.expose_functions: rule 0: a rule is",
        ),
        # iii-http
        (one("iii-http", "{prot: 1}"), "iii-http: unknown key 'prot'"),
        (
            one("iii-http", "{cors: {allowed_origins: '*'}}"),
            "iii-http: cors.allowed_origins: Input should be a valid list",
        ),
        (
            one("iii-http", "{cors: {allow_credentials: true}}"),
            "iii-http: cors: unknown key 'allow_credentials'",
        ),
        (
            one("iii-http", "{middleware: [{priority: 1}]}"),
            "iii-http: middleware.0.function_id: Field required",
        ),
        (one("http", "{port: abc}"), "http: port: Input should be a valid integer"),
        (
            one("iii-http", "{port: 70000}"),
            "iii-http: port: Input should be less than or equal to 65535",
        ),
        (
            one("iii-http", "{default_timeout: 0}"),
            "iii-http: default_timeout: Input should be greater than or equal to 1",
        ),
        (
            one("iii-http", "{concurrency_request_limit: 0}"),
            "iii-http: concurrency_request_limit: Input should be greater than",
        ),
        (
            one("iii-http", "{body_fields_at_top_level: 'no'}"),
            "iii-http: body_fields_at_top_level: Input should be a valid boolean",
        ),
        # iii-stream
        (
            one("iii-stream", "{auth_function: 5}"),
            "iii-stream: auth_function: Input should be a valid string",
        ),
        (one("stream", "{channel_size: 5}"), "stream: unknown key 'channel_size'"),
        (
            one("iii-stream", "{send_retention_ms: 0}"),
            "iii-stream: send_retention_ms: Input should be greater than or equal to 1",
        ),
        # iii-state
        (
            one("iii-state", "{max_value_bytes: 0}"),
            "iii-state: max_value_bytes: Input should be greater than or equal to 1",
        ),
        (
            one("state", "{triggers_enabled: 'yes'}"),
            "state: triggers_enabled: Input should be a valid boolean",
        ),
        (one("iii-state", "{store: kv}"), "iii-state: unknown key 'store'"),
        # iii-cron, iii-pubsub
        (one("iii-cron", "{lock_ttl_ms: 1}"), "iii-cron: unknown key 'lock_ttl_ms'"),
        (one("pubsub", "{topics: []}"), "pubsub: unknown key 'topics'"),
        # iii-queue
        (
            one("iii-queue", "{queue_configs: {o: {type: fifo}}}"),
            "iii-queue: queue_configs.o: a fifo queue needs message_group_field",
        ),
        (
            one("iii-queue", "{queue_configs: {o: {type: lifo}}}"),
            "iii-queue: queue_configs.o.type: Input should be 'standard' or 'fifo'",
        ),
        (
            one("queue", "{queue_configs: {o: {max_retries: 0}}}"),
            "queue: queue_configs.o.max_retries: Input should be greater than",
        ),
        (
            one("iii-queue", "{queue_configs: {o: {retries: 2}}}"),
            "iii-queue: queue_configs.o: unknown key 'retries'",
        ),
        (
            one("iii-queue", "{queue_configs: [a]}"),
            "iii-queue: queue_configs: Input should be a valid dictionary",
        ),
        # iii-http-functions
        (
            one("iii-http-functions", "{security: {url_allowlist: localhost}}"),
            "iii-http-functions: security.url_allowlist: Input should be a valid list",
        ),
        (
            one("iii-http-functions", "{url_allowlist: ['*']}"),
            "iii-http-functions: unknown key 'url_allowlist'",
        ),
        (
            one("iii-http-functions", "{security: {allow_http: true}}"),
            "iii-http-functions: security: unknown key 'allow_http'",
        ),
        # iii-observability
        (
            one("iii-observability", "{logs_max: 0}"),
            "iii-observability: logs_max: Input should be greater than or equal to 1",
        ),
        (
            one("iii-observability", "{log_max: 5}"),
            "iii-observability: unknown key 'log_max'",
        ),
        # iiilog-triggers
        (
            one("iiilog-triggers", "{max_attempts: 0}"),
            "iiilog-triggers: max_attempts: Input should be greater than or equal to 1",
        ),
        (
            one("iiilog-triggers", "{max_inflight: 2}"),
            "iiilog-triggers: unknown key 'max_inflight'",
        ),
        (
            one("iiilog-triggers", "{backoff_ms: true}"),
            "iiilog-triggers: backoff_ms: Input should be a valid integer",
        ),
        # iiilog-projections
        (
            one("iiilog-projections", "{snapshot_interval_s: 0}"),
            "iiilog-projections: snapshot_interval_s: Input should be greater than 0",
        ),
        (
            one("iiilog-projections", "{snapshot_interval_s: true}"),
            "iiilog-projections: snapshot_interval_s: Input should be a valid number",
        ),
        (
            one("iiilog-projections", "{interval_s: 2}"),
            "iiilog-projections: unknown key 'interval_s'",
        ),
        # iiilog-eventlog
        (
            one("iiilog-eventlog", "{synchronous: sometimes}"),
            "iiilog-eventlog: synchronous: Input should be 'off', 'normal', 'full'",
        ),
        (
            one("iiilog-eventlog", "{max_batch: 0}"),
            "iiilog-eventlog: max_batch: Input should be greater than or equal to 1",
        ),
        (
            one("iiilog-eventlog", "{data_dir: 5}"),
            "iiilog-eventlog: data_dir: Input is not a valid path",
        ),
        (one("iiilog-eventlog", "{dir: ./d}"), "iiilog-eventlog: unknown key 'dir'"),
        (
            one("iiilog-eventlog", "{database_url: 'mysql://x'}"),
            "iiilog-eventlog: database_url: must be a postgresql:// URL",
        ),
        # iiilog-console
        (
            one("iiilog-console", "{token: short}"),
            "iiilog-console: token: String should have at least 16 characters",
        ),
        (
            one("iiilog-console", "{token: 1234567890123456789}"),
            "iiilog-console: token: Input should be a valid string",
        ),
        (
            one("iiilog-console", "{token: abcdefghijklmnopq, allow_remote: true}"),
            "iiilog-console: set `token` (remote requests need it) or"
            " `allow_remote` (they do not), not both",
        ),
        (
            one("iiilog-console", "{log_lines: 0}"),
            "iiilog-console: log_lines: Input should be greater than or equal to 1",
        ),
        (
            one("iiilog-console", "{password: abcdefghijklmnopq}"),
            "iiilog-console: unknown key 'password'",
        ),
        # iiilog-cluster
        (
            one("iiilog-cluster", "{heartbeat_ms: 10}"),
            "iiilog-cluster: heartbeat_ms: Input should be greater than or equal to 50",
        ),
        (one("iiilog-cluster", "{lease: 1}"), "iiilog-cluster: unknown key 'lease'"),
    ],
)
def test_refused(text: str, error: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(text, {})
    assert str(caught.value).startswith(error), str(caught.value)


def test_many_problems_report_the_first_and_a_count() -> None:
    with pytest.raises(ConfigError) as caught:
        parse(one("iii-http", "{port: x, host: 1, prot: 2}"), {})
    assert str(caught.value) == (
        "iii-http: host: Input should be a valid string (and 2 more)"
    )


# -- iii settings accepted and ignored, with a warning -----------------------------

OBSERVABILITY = [
    ("enabled", "true"),
    ("service_name", "svc"),
    ("service_version", "'1.0'"),
    ("service_namespace", "ns"),
    ("exporter", "memory"),
    ("endpoint", "'http://collector:4317'"),
    ("sampling_ratio", "0.5"),
    ("sampling", "{default: 0.5}"),
    ("trace_storage", "{enabled: false}"),
    ("live_spans", "true"),
    ("metrics_enabled", "true"),
    ("metrics_exporter", "memory"),
    ("metrics_retention_seconds", "60"),
    ("metrics_max_count", "10"),
    ("logs_enabled", "true"),
    ("logs_exporter", "memory"),
    ("logs_retention_seconds", "60"),
    ("logs_batch_size", "10"),
    ("logs_flush_interval_ms", "500"),
    ("logs_sampling_ratio", "1.0"),
    ("logs_console_output", "false"),
    ("alerts", "[]"),
    ("level", "info"),
    ("format", "json"),
    ("collapse_spans", "[]"),
]
ADAPTER = "{adapter: {name: kv, config: {store_method: file_based}}}"


@pytest.mark.parametrize(
    ("name", "config", "key"),
    [
        ("iii-state", ADAPTER, "adapter"),
        ("state", ADAPTER, "adapter"),
        ("iii-state", "{save_interval_ms: 5000}", "save_interval_ms"),
        ("iii-stream", ADAPTER, "adapter"),
        ("iii-pubsub", "{adapter: {name: local}}", "adapter"),
        ("iii-queue", "{adapter: {name: builtin}}", "adapter"),
        ("iii-cron", "{adapter: {name: kv, config: {lock_ttl_ms: 30000}}}", "adapter"),
        *[
            ("iii-observability", f"{{{key}: {value}}}", key)
            for key, value in OBSERVABILITY
        ],
    ],
)
def test_iii_setting_ignored_with_a_warning(
    name: str, config: str, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    parse(one(name, config), {})
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert name in warnings[0] and key in warnings[0]


def test_ignored_settings_leave_the_rest_checked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cfg = parse(one("iii-state", f"{{max_value_bytes: 9, {ADAPTER[1:-1]}}}"), {})
    assert cfg.state.max_value_bytes == 9
    unlimited = parse(one("iii-state", "{max_value_bytes: null}"), {})
    assert unlimited.state.max_value_bytes is None
    with pytest.raises(ConfigError, match="iii-state: unknown key 'adaptor'"):
        parse(one("iii-state", "{adapter: {}, adaptor: {}}"), {})


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (
            "registration_namespace_grace_ms: 5000\nworkers: []\n",
            ["registration_namespace_grace_ms"],
        ),
        (
            "workers:\n  - name: iii-state\n    image: iii/state:1\n",
            ["iii-state", "image"],
        ),
        (
            one("configuration", "{adapter: {name: fs}}"),
            ["configuration", "config"],
        ),
        (
            one("iii-worker-manager", "{middleware_function_id: mw}"),
            ["iii-worker-manager", "middleware_function_id"],
        ),
    ],
)
def test_other_iii_settings_warned(
    text: str, words: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    parse(text, {})
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert all(word in warnings[0] for word in words)


def test_unknown_modules_are_skipped(caplog: pytest.LogCaptureFixture) -> None:
    cfg = parse(
        "workers:\n  - name: iii-made-up\n  - name: iii-exec\n"
        "  - name: iii-engine-functions\n"
        "modules:\n  - name: http\n    config: {port: 5}\n",
        {},
    )
    assert cfg.skipped == ["iii-made-up", "iii-exec"]
    assert cfg.http is not None and cfg.http.port == 5
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "iii-made-up" in warnings[0] and "iii-exec" in warnings[1]


def test_models_are_frozen() -> None:
    # Modules read their config at run time; nothing may change it under them.
    cfg = parse(DEFAULT_CONFIG, {})
    assert cfg.http is not None
    with pytest.raises(ValueError, match="frozen"):
        cfg.http.port = 1  # type: ignore[misc]
