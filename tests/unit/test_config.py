"""Config parsing: iii's format, env substitution, unknown modules."""

from __future__ import annotations

import pytest

from api.config import DEFAULT_CONFIG, ConfigError, parse, substitute


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


def test_default_config_reads_env() -> None:
    cfg = parse(
        DEFAULT_CONFIG,
        {"IIILOG_WORKER_PORT": "1", "IIILOG_HTTP_PORT": "2", "IIILOG_DATA_DIR": "/x"},
    )
    assert cfg.worker_port == 1 and cfg.http is not None and cfg.http.port == 2
    assert str(cfg.data_dir) == "/x" and cfg.synchronous == "full"
    cfg = parse(DEFAULT_CONFIG, {})
    assert cfg.worker_port == 49134 and cfg.http is not None
    assert cfg.http.port == 3111


def test_unknown_modules_are_skipped() -> None:
    cfg = parse(
        "workers:\n  - name: iii-made-up\n  - name: iii-exec\n"
        "modules:\n  - name: http\n    config: {port: 5}\n",
        {},
    )
    assert cfg.skipped == ["iii-made-up", "iii-exec"]
    assert cfg.http is not None and cfg.http.port == 5


@pytest.mark.parametrize(
    "text",
    [
        "nonsense: 1",
        "workers: [{config: {}}]",
        "- a",
        "workers:\n  - name: [x",
        "workers:\n  - name: iii-state\n    config: {max_value_bytes: 0}",
        "workers:\n  - name: iii-http\n    config: {port: abc}",
        "workers:\n  - name: iiilog-eventlog\n    config: {synchronous: sometimes}",
    ],
)
def test_bad_config(text: str) -> None:
    with pytest.raises(ConfigError):
        parse(text, {})
