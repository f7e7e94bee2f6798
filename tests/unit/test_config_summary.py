"""``engine.introspection.config_summary``: the ``config_summary`` column of
``engine::registered-triggers::list``."""

from __future__ import annotations

from typing import Any

import pytest

from engine.introspection import config_summary


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (None, "null"),
        ({}, "{}"),
        (
            {"api_path": "orders", "http_method": "POST"},
            '{"api_path":"orders","http_method":"POST"}',  # compact, as sent
        ),
        ({"b": 1, "a": 2}, '{"b":1,"a":2}'),
        ({"scope": "é"}, '{"scope":"é"}'),  # never \\u escapes
        ("x" * 78, '"' + "x" * 78 + '"'),  # exactly 80 characters: whole
        ("x" * 79, '"' + "x" * 79 + "…"),  # 81: cut at 80, then the ellipsis
    ],
)
def test_config_summary(config: Any, expected: str) -> None:
    assert config_summary(config) == expected


def test_long_configs_are_cut_by_characters_not_bytes() -> None:
    summary = config_summary({"data": "é" * 200})
    assert len(summary) == 81 and summary.endswith("…")
    assert summary.startswith('{"data":"ééé')
