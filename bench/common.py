"""What every bench script shares: percentiles, where results go, help text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def help_text(doc: str | None) -> str:
    """A module docstring as ``--help`` text: plain, without the double
    backticks of reStructuredText."""
    return (doc or "").replace("``", "")


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile of latencies in seconds, in milliseconds (nan if none)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


def save_results(name: str, results: Any, directory: Path = RESULTS) -> Path:
    """Write ``results`` as ``<directory>/<name>.json`` (what report.py reads)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    path.write_text(json.dumps(results, indent=2))
    return path
