"""``engine.core.trace_id``: the one parser of W3C ``traceparent`` values."""

from __future__ import annotations

import pytest

from engine.core import CallContext, trace_id

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.mark.parametrize(
    ("traceparent", "expected"),
    [
        (f"00-{TRACE}-00f067aa0ba902b7-01", TRACE),
        (f"01-{TRACE}-00f067aa0ba902b7-01-extra", TRACE),  # later versions may add
        (None, None),
        ("", None),
        ("00-abc-def-01", None),
        (f"00-{TRACE}-00f067aa0ba902b7", None),  # no flags
        (f"00_{TRACE}_00f067aa0ba902b7_01", None),
        (f"00-{TRACE}0-0f067aa0ba902b7-01", None),  # dashes in the wrong place
    ],
)
def test_trace_id(traceparent: str | None, expected: str | None) -> None:
    assert trace_id(traceparent) == expected
    assert CallContext("f", traceparent=traceparent).origin().trace_id == expected
