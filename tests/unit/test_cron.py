"""Cron expressions as iii's crate reads them (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.cron import parse_expression
from engine.errors import TriggerRegistrationFailed

THU = datetime(2026, 1, 1, tzinfo=UTC)  # a Thursday


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("*/2 * * * * *", THU, datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC)),
        ("30 * * * * *", THU, datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)),
        ("0 30 9 * * MON-FRI", THU, datetime(2026, 1, 1, 9, 30, tzinfo=UTC)),
        ("0 0 0 * * SAT", THU, datetime(2026, 1, 3, tzinfo=UTC)),
        ("0 0 0 * * 1", THU, datetime(2026, 1, 4, tzinfo=UTC)),  # 1 = Sunday
        ("0 0 0 * * 6-7", THU, datetime(2026, 1, 2, tzinfo=UTC)),  # Fri-Sat
        ("0 0 12 1 JAN ? 2030", THU, datetime(2030, 1, 1, 12, tzinfo=UTC)),
    ],
)
def test_next_fire_time(expression: str, after: datetime, expected: datetime) -> None:
    assert parse_expression(expression).get_next_fire_time(None, after) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "Cron expression is required"),
        (None, "Cron expression is required"),
        ("* * * * *", "Invalid cron expression '* * * * *'"),
        ("0 0 0 * * 0", "Invalid cron expression"),
        ("0 0 0 * * 5-2", "runs backwards"),
        ("61 * * * * *", "Invalid cron expression"),
        ("a b c d e f", "Invalid cron expression"),
    ],
)
def test_rejected(expression: str | None, message: str) -> None:
    with pytest.raises(TriggerRegistrationFailed, match=message):
        parse_expression(expression)
