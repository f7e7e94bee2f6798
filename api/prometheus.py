"""The Prometheus text exposition format (version 0.0.4), written by hand.

Pure: no I/O, no registry, no locks. The engine keeps plain integers and
``Histogram`` buckets where things happen (one increment each) and turns them
into text only when ``/metrics`` is scraped. Label values and help texts are
escaped as the format requires; histogram buckets are written cumulative, with
``+Inf``, ``_sum`` and ``_count``.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence

Sample = tuple[Mapping[str, str], float]


class Histogram:
    """Counts per bucket (``value <= bound``), not cumulative until rendered."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        if list(bounds) != sorted(set(bounds)):
            raise ValueError("bucket bounds must be increasing")
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one: above them all
        self.sum: float = 0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1


def number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_label_value(str(v))}"' for k, v in labels.items())
    return "{" + inner + "}"


def _head(name: str, kind: str, help_text: str) -> list[str]:
    escaped = help_text.replace("\\", "\\\\").replace("\n", "\\n")
    return [f"# HELP {name} {escaped}", f"# TYPE {name} {kind}"]


def family(name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> str:
    """A counter or gauge family: one line per labelled sample."""
    if kind not in ("counter", "gauge"):
        raise ValueError(f"not a simple metric type: {kind}")
    lines = _head(name, kind, help_text)
    lines += [f"{name}{_labels(labels)} {number(v)}" for labels, v in samples]
    return "\n".join(lines) + "\n"


def histogram(name: str, help_text: str, hist: Histogram) -> str:
    lines = _head(name, "histogram", help_text)
    running = 0
    for bound, count in zip(hist.bounds, hist.counts, strict=False):
        running += count
        lines.append(f'{name}_bucket{{le="{number(bound)}"}} {running}')
    lines.append(f'{name}_bucket{{le="+Inf"}} {hist.count}')
    lines.append(f"{name}_sum {number(hist.sum)}")
    lines.append(f"{name}_count {hist.count}")
    return "\n".join(lines) + "\n"
