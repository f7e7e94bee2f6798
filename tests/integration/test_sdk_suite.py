"""The published iii-sdk 0.25.0 integration suite, run against iiilog
(scripts/sdk_suite.py). The files listed here must pass whole; the README's
compatibility section lists what still fails elsewhere, and why."""

from __future__ import annotations

from scripts.sdk_suite import run

PASSING = [
    "test_state.py",
    "test_streams.py",
    "test_bridge.py",
    "test_pubsub.py",
    "test_healthcheck.py",
    "test_middleware.py",
    "test_api_triggers.py",
    "test_data_channels.py",
    "test_trigger_type_lifecycle.py",
    "test_http_external_functions_integration.py",
    "test_rbac_workers.py",
]


def test_sdk_suite_files_pass() -> None:
    tally = run(PASSING)
    failed = {name: row for name, row in tally.items() if row["failed"]}
    assert not failed, f"iii-sdk suite failures: {failed}"
    assert sum(row["passed"] for row in tally.values()) >= 50
