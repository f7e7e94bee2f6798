"""Rebuild and verify: fold the log again and compare with what is live.

Targets are the inline views (``views``) and every projection. Each live target
is compared with the fold of the log up to the offset it reflects, so a rebuild
can run read-only beside a running engine. One pass over the log serves every
target that needs every record; compactable targets fold the compacted log,
which the store computes on a second thread meanwhile. Corrections never
rewrite history: a drifted view is mended by new records (origin
``iiilog::replay``), a drifted projection by a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from eventlog import (
    Kind,
    LogScanner,
    LogStore,
    LogWriter,
    Mutation,
    Origin,
    Outcome,
    Record,
    SaveSnapshot,
    ViewRow,
)

from .base import Projection
from .bulk import gc_paused
from .registry import builtin
from .views import InlineViews, rows

SPACES = ("state", "stream")
Progress = Callable[[int, int, int], None]  # (offset reached, end, records folded)


class RebuildError(ValueError):
    """The rebuild cannot be done as asked (e.g. ``to`` beyond the head)."""


@dataclass
class Target:
    """One thing to rebuild: a fold, where to stop, and what it is compared to."""

    name: str
    fold: Projection
    until: int
    state: Any = None
    position: int = 0
    live: Any = None
    captured: Any = None
    problems: list[str] = field(default_factory=list)
    mirror: tuple[str, str] | None = None  # compared with this state, not a snapshot

    def rebuilt(self) -> Any:
        """The rebuilt state as JSON (the views as rows per space)."""
        if isinstance(self.fold, InlineViews):
            return {
                space: [list(r) for r in rows(self.captured, space)] for space in SPACES
            }
        return self.captured


@dataclass
class Report:
    records: int
    seconds: float
    targets: list[Target]

    @property
    def drift(self) -> int:
        return sum(len(t.problems) for t in self.targets)


async def targets_for(
    store: LogStore,
    *,
    only: Sequence[str] = (),
    to: int | None = None,
    from_snapshot: bool = False,
) -> list[Target]:
    """What to rebuild: ``views`` and every projection, or only the named ones,
    each up to ``to`` or else to what its live copy reflects."""
    head = await store.read_head()
    if to is not None and not 0 <= to <= head:
        raise RebuildError(f"--to must be between 0 and the head ({head})")
    wanted = set(only)
    targets: list[Target] = []
    if not wanted or "views" in wanted:
        position, live_views = await store.view_snapshot(SPACES)
        views = InlineViews()
        until = to if to is not None else position
        targets.append(Target("views", views, until, views.initial(), live=live_views))
    for p in builtin():
        if wanted and p.name not in wanted:
            continue
        saved = await store.snapshot(p.name)
        live = (saved.position, saved.state) if saved else None
        until = to if to is not None else (live[0] if live else head)
        target = Target(p.name, p, until, p.initial(), live=live)
        if from_snapshot and live is not None and live[0] <= until:
            target.position, target.state = live[0], copy.deepcopy(live[1])
        targets.append(target)
        if p.mirror is not None and to is None:
            scope, key = p.mirror
            found, value = await store.view_get("state", scope, "", key)
            targets.append(
                Target(
                    f"{p.name} = state {scope}/{key}",
                    p,
                    head,
                    p.initial(),
                    live=(head, value) if found else None,  # nobody keeps it
                    mirror=p.mirror,
                )
            )
    return targets


async def rebuild(
    store: LogStore,
    targets: list[Target],
    progress: Progress | None = None,
    *,
    compare: bool = True,
) -> Report:
    """Fold every target and, with ``compare``, set each one's differences from
    its live copy (``Target.problems``)."""
    started = time.perf_counter()
    count = await fold_log(store.scanner(), targets, progress)
    elapsed = time.perf_counter() - started
    for t in targets if compare else ():
        if isinstance(t.fold, InlineViews):
            for space in SPACES:
                t.problems += [
                    f"{space}: {line}"
                    for line in view_diff(t.live[space], rows(t.captured, space))
                ]
        elif t.live is not None:
            live = t.live[1]
            if t.mirror is not None and isinstance(live, dict):
                live = {**t.fold.initial(), **live}  # a counter never moved is 0
            t.problems += state_diff(live, t.captured)
    return Report(count, elapsed, targets)


async def fold_log(
    scanner: LogScanner, targets: list[Target], progress: Progress | None = None
) -> int:
    """One pass over the log on a thread; each target stops at its ``until``.
    Returns how many records were read."""
    return await asyncio.to_thread(_fold, scanner, targets, progress)


def _fold(scanner: LogScanner, targets: list[Target], progress: Progress | None) -> int:
    with gc_paused():
        # A target already at its end is captured as is.
        for t in targets:
            if t.position >= t.until:
                t.captured = t.state
        active = [t for t in targets if t.captured is None]
        if not active:
            return 0
        span = max(t.until for t in active) - min(t.position for t in active)
        compacted = [t for t in active if t.fold.compactable]
        full = [t for t in active if not t.fold.compactable]
        with ThreadPoolExecutor(1) as pool:
            windows = {(t.position, t.until) for t in compacted}
            pending = {w: pool.submit(scanner.compacted, *w) for w in windows}
            count = _fold_full(scanner, full, progress) if full else span
            for t in compacted:
                _fold_chunk(t, pending[(t.position, t.until)].result())
        for t in targets:
            if t.captured is None:
                t.captured = t.state
        return count


def _fold_full(
    scanner: LogScanner, targets: list[Target], progress: Progress | None
) -> int:
    end = max(t.until for t in targets)
    count = 0
    for records in scanner.scan(min(t.position for t in targets), end):
        for t in targets:
            if t.captured is None:
                _fold_chunk(t, records)
        count += len(records)
        if progress is not None:
            progress(records[-1].offset, end, count)
    return count


def _fold_chunk(t: Target, records: list[Record]) -> None:
    """Fold the records of ``t``'s window (offset order; offsets may have holes)."""
    if not records:
        return
    first, last = records[0].offset, records[-1].offset
    chunk = records
    if t.position >= first or t.until < last:
        chunk = [r for r in records if t.position < r.offset <= t.until]
    state, apply, accepts = t.state, t.fold.apply, t.fold.accepts
    for record in chunk:
        if accepts(record):
            state = apply(state, record)
    t.state = state
    t.position = min(last, t.until)
    if t.position >= t.until:
        t.captured = state


def view_diff(live: list[ViewRow], rebuilt: list[ViewRow]) -> list[str]:
    out: list[str] = []
    live_map = {r[:3]: r[3] for r in live}
    rebuilt_map = {r[:3]: r[3] for r in rebuilt}
    for addr in sorted(set(live_map) | set(rebuilt_map)):
        if addr not in rebuilt_map:
            out.append(f"only live:    {addr} = {live_map[addr]!r}")
        elif addr not in live_map:
            out.append(f"only rebuilt: {addr} = {rebuilt_map[addr]!r}")
        elif live_map[addr] != rebuilt_map[addr]:
            out.append(
                f"differs:      {addr}: live {live_map[addr]!r} "
                f"!= rebuilt {rebuilt_map[addr]!r}"
            )
    if not out and [r[:3] for r in live] != [r[:3] for r in rebuilt]:
        out.append("same entries, different list order")
    return out


def state_diff(live: Any, rebuilt: Any) -> list[str]:
    if live == rebuilt and (not isinstance(live, dict) or list(live) == list(rebuilt)):
        return []
    if isinstance(live, dict) and isinstance(rebuilt, dict):
        out = []
        for key in sorted(set(live) | set(rebuilt), key=str):
            a, b = live.get(key, "<absent>"), rebuilt.get(key, "<absent>")
            if a != b:
                out.append(f"differs:      {key!r}: live {a!r} != rebuilt {b!r}")
        return out or ["same entries, different order"]
    return [f"differs: live {live!r} != rebuilt {rebuilt!r}"]


async def apply_corrections(store: LogStore, report: Report) -> int:
    """Bring drifted targets back to the fold of the log: new records for the
    views, a fresh snapshot for a projection. Needs a writable store."""
    writer = LogWriter(store)
    task = asyncio.get_running_loop().create_task(writer.run(), name="replay-writer")
    fixed = 0
    try:
        for t in report.targets:
            if not t.problems:
                continue
            if isinstance(t.fold, InlineViews):
                fixed += await _view_corrections(writer, t)
            elif t.mirror is not None:
                scope, key = t.mirror
                await writer.submit(
                    Mutation(
                        "state.set",
                        scope,
                        None,
                        key,
                        _const(Outcome(True, t.captured)),
                        Origin(function_id="iiilog::replay"),
                    )
                )
                fixed += 1
            else:
                ts = int(time.time() * 1000)
                await writer.keep(SaveSnapshot.capture(t.name, t.until, t.captured, ts))
                fixed += 1
    finally:
        await writer.close()
        await task
    return fixed


async def _view_corrections(writer: LogWriter, views: Target) -> int:
    origin = Origin(function_id="iiilog::replay")
    applied = 0
    for space in SPACES:
        live = {r[:3]: r[3] for r in views.live[space]}
        rebuilt = {r[:3]: r[3] for r in rows(views.captured, space)}
        for addr in sorted(set(live) | set(rebuilt)):
            scope, group, key = addr
            if addr in rebuilt and (addr not in live or live[addr] != rebuilt[addr]):
                outcome = Outcome(True, rebuilt[addr])
                kind: Kind = "state.set" if space == "state" else "stream.set"
            elif addr not in rebuilt:
                outcome = Outcome(False)
                kind = "state.delete" if space == "state" else "stream.delete"
            else:
                continue
            await writer.submit(
                Mutation(kind, scope, group or None, key, _const(outcome), origin)
            )
            applied += 1
    return applied


def _const(outcome: Outcome) -> Callable[[bool, Any], Outcome]:
    return lambda _existed, _old: outcome
