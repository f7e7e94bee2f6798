"""The published iii-sdk 0.25.0 integration suite, run against iiilog
(scripts/sdk_suite.py): every engine-facing file of the sdist, whole. The
tally is exact per file, skips included: a test that starts skipping (or one
the sdist adds) fails this test as surely as a failure does."""

from __future__ import annotations

from scripts.sdk_suite import ENGINE_FILES, run

EXPECTED = {
    "test_api_triggers.py": 13,  # 3 of them upload / download the synthetic PDF
    "test_bridge.py": 6,
    "test_data_channels.py": 2,
    "test_healthcheck.py": 1,
    "test_http_external_functions_integration.py": 9,
    "test_middleware.py": 5,
    "test_observe_e2e_local.py": 9,
    "test_observe_e2e_routed.py": 10,
    "test_pubsub.py": 2,
    "test_rbac_workers.py": 13,
    "test_state.py": 11,
    "test_streams.py": 11,
    "test_trigger_type_lifecycle.py": 3,
}


def test_sdk_suite_files_pass() -> None:
    assert sorted(EXPECTED) == sorted(ENGINE_FILES)
    tally = run(ENGINE_FILES)
    assert tally == {
        name: {"passed": passed, "failed": 0, "skipped": 0}
        for name, passed in EXPECTED.items()
    }
    assert sum(EXPECTED.values()) == 95
