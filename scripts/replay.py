"""Rebuild views and projections by folding the log, and compare them with the
live ones.

    python scripts/replay.py --data-dir DIR               # rebuild all, report
    python scripts/replay.py --data-dir DIR --verify      # exit 1 on drift
    python scripts/replay.py --data-dir DIR --apply       # fix drift (engine stopped)
    python scripts/replay.py --data-dir DIR --to 1200 --only todo-metrics --json

Targets: ``views`` (the inline state and stream views) and every projection
(``todos``, ``todo-metrics``, ...). Each live target is compared with the fold
of the log up to the offset it reflects. ``--apply`` never rewrites history: a
drifted view is corrected by new log records (``state.set``/``state.delete``,
and the stream equivalents), a drifted projection by a fresh snapshot.
``--from-snapshot`` starts each projection from its stored snapshot instead of
offset 0 (what a restart does). Read-only unless ``--apply``; works on a stopped
engine's data dir or beside a running one. Exit status: 0 ok, 1 drift (with
``--verify``), 2 the log cannot be read or written.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eventlog import (
    EventLogError,
    Kind,
    LogWriter,
    Mutation,
    Origin,
    Outcome,
    Record,
    SqliteStore,
)
from eventlog.codec import dumps, loads
from eventlog.store import scan_compacted, scan_log
from projections.base import Projection
from projections.bulk import gc_paused
from projections.registry import builtin
from projections.views import InlineViews, rows

BATCH = 5000
SPACES = ("state", "stream")


@dataclass
class Target:
    """One thing to rebuild: a fold, where to stop, and what it is compared to."""

    name: str
    fold: Projection | InlineViews
    until: int
    state: Any = None
    position: int = 0
    live: Any = None
    captured: Any = None
    problems: list[str] = field(default_factory=list)

    def accepts(self, record: Record) -> bool:
        return isinstance(self.fold, InlineViews) or self.fold.accepts(record)


async def fold_log(
    store: SqliteStore,
    targets: list[Target],
    *,
    progress: Callable[[int, int, int], None] | None = None,
) -> int:
    """One pass over the log; each target stops at its own ``until``.

    The pass runs on a thread with a read connection of its own (the folds
    are pure; nothing else touches the targets meanwhile).
    """
    return await asyncio.to_thread(_fold, store.path, targets, progress)


def _fold(
    path: Path,
    targets: list[Target],
    progress: Callable[[int, int, int], None] | None,
) -> int:
    # A fold allocates a record and its values per row and keeps few of them;
    # the cyclic GC would walk the ever larger states again and again (a third
    # of the time of a full pass, measured). It runs again afterwards.
    with gc_paused():
        return _fold_targets(path, targets, progress)


def _fold_targets(
    path: Path,
    targets: list[Target],
    progress: Callable[[int, int, int], None] | None,
) -> int:
    """Targets that are not compactable fold every record, in one pass.
    Compactable ones (last writer wins per address, ``projections/base.py``)
    fold the compacted log instead, which SQLite computes on a second thread
    while the full pass runs."""
    # A target is never folded past its capture, so its state is captured as is.
    for t in targets:
        if t.position >= t.until:
            t.captured = t.state
    active = [t for t in targets if t.captured is None]
    if not active:
        return 0
    span = max(t.until for t in active) - min(t.position for t in active)
    compacted = [t for t in active if getattr(t.fold, "compactable", False)]
    full = [t for t in active if t not in compacted]
    with ThreadPoolExecutor(1) as pool:
        windows = {(t.position, t.until) for t in compacted}
        pending = {w: pool.submit(scan_compacted, path, *w) for w in windows}
        count = _fold_full(path, full, progress) if full else span
        for t in compacted:
            _fold_chunk(t, pending[(t.position, t.until)].result())
    for t in targets:
        if t.captured is None:
            t.captured = t.state
    return count


def _fold_full(
    path: Path,
    targets: list[Target],
    progress: Callable[[int, int, int], None] | None,
) -> int:
    end = max(t.until for t in targets)
    count = 0
    for records in scan_log(path, min(t.position for t in targets), end):
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
    state, apply = t.state, t.fold.apply
    if isinstance(t.fold, InlineViews):
        for record in chunk:
            state = apply(state, record)
    else:
        accepts = t.fold.accepts
        for record in chunk:
            if accepts(record):
                state = apply(state, record)
    t.state = state
    t.position = min(last, t.until)
    if t.position >= t.until:
        t.captured = state


def view_diff(
    live: list[tuple[str, str, str, Any]], rebuilt: list[tuple[str, str, str, Any]]
) -> list[str]:
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


async def corrections(store: SqliteStore, views: Target) -> int:
    """New records that bring the live views back to the fold of the log."""
    writer = LogWriter(store)
    task = asyncio.get_running_loop().create_task(writer.run())
    origin = Origin(function_id="iiilog::replay")
    applied = 0
    try:
        for space in SPACES:
            live = {r[:3]: r[3] for r in views.live[space]}
            rebuilt = {r[:3]: r[3] for r in rows(views.captured, space)}
            for addr in sorted(set(live) | set(rebuilt)):
                scope, group, key = addr
                grp = group or None
                if addr in rebuilt and (
                    addr not in live or live[addr] != rebuilt[addr]
                ):
                    outcome = Outcome(True, rebuilt[addr])
                    kind: Kind = "state.set" if space == "state" else "stream.set"
                elif addr not in rebuilt:
                    outcome = Outcome(False)
                    kind = "state.delete" if space == "state" else "stream.delete"
                else:
                    continue
                mutation = Mutation(kind, scope, grp, key, _const(outcome), origin)
                await writer.submit(mutation)
                applied += 1
    finally:
        await writer.close()
        await task
    return applied


def _const(outcome: Outcome) -> Callable[[bool, Any], Outcome]:
    return lambda _existed, _old: outcome


def show_progress(cursor: int, end: int, count: int, started: float) -> None:
    rate = count / max(time.perf_counter() - started, 1e-9)
    bar = "#" * int(30 * cursor / max(end, 1))
    print(
        f"\r[{bar:<30}] {cursor}/{end}  {rate:,.0f} records/s",
        end="",
        file=sys.stderr,
        flush=True,
    )


async def run(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir)
    try:
        store = await SqliteStore.open(data_dir, read_only=not args.apply)
    except EventLogError as e:
        hint = " (is the engine running? stop it to --apply)" if args.apply else ""
        print(f"error: {data_dir}: {e}{hint}", file=sys.stderr)
        return 2
    try:
        return await _run(store, args)
    finally:
        await store.close()


async def _run(store: SqliteStore, args: argparse.Namespace) -> int:
    wanted = set(args.only or [])
    projections = [p for p in builtin() if not wanted or p.name in wanted]
    head = await store.read_head()
    to = args.to
    if to is not None and not 0 <= to <= head:
        print(f"error: --to must be between 0 and the head ({head})", file=sys.stderr)
        return 2
    targets: list[Target] = []
    if not wanted or "views" in wanted:
        position, live_views = await store.view_snapshot(SPACES)
        targets.append(
            Target(
                "views",
                InlineViews(),
                to if to is not None else position,
                InlineViews().initial(),
                live=live_views,
            )
        )
    for p in projections:
        saved = await store.projection_state(p.name)
        live = (saved[0], loads(saved[1])) if saved else None
        until = to if to is not None else (live[0] if live else head)
        target = Target(p.name, p, until, p.initial(), live=live)
        if args.from_snapshot and live is not None and live[0] <= until:
            target.position, target.state = live[0], copy.deepcopy(live[1])
        targets.append(target)
    started = time.perf_counter()
    count = await fold_log(
        store,
        targets,
        progress=None
        if args.quiet
        else (lambda c, e, n: show_progress(c, e, n, started)),
    )
    elapsed = time.perf_counter() - started
    if not args.quiet:
        print(file=sys.stderr)
    if args.json:
        out = {}
        for t in targets:
            if isinstance(t.fold, InlineViews):
                state: Any = {
                    space: [list(r) for r in rows(t.captured, space)]
                    for space in SPACES
                }
            else:
                state = t.captured
            out[t.name] = {"position": t.until, "state": state}
        print(dumps({"records": count, "seconds": elapsed, "targets": out}))
        return 0
    print(
        f"folded {count} records in {elapsed:.2f}s "
        f"({count / max(elapsed, 1e-9):,.0f} records/s)"
    )
    drift = 0
    for t in targets:
        if to is not None:
            print(f"{t.name}: rebuilt as of offset {to}")
            continue
        if isinstance(t.fold, InlineViews):
            for space in SPACES:
                t.problems += [
                    f"{space}: {line}"
                    for line in view_diff(t.live[space], rows(t.captured, space))
                ]
        elif t.live is not None:
            t.problems += state_diff(t.live[1], t.captured)
        verdict = "OK" if not t.problems else f"{len(t.problems)} differences"
        if t.live is None:
            verdict = "rebuilt (no live snapshot to compare yet)"
        print(f"{t.name} (at offset {t.until}): {verdict}")
        for line in t.problems[:50]:
            print("  " + line)
        drift += len(t.problems)
    if args.apply and drift:
        fixed = 0
        for t in targets:
            if not t.problems:
                continue
            if isinstance(t.fold, InlineViews):
                fixed += await corrections(store, t)
            else:
                await store.write_small(
                    [
                        (
                            "INSERT INTO projections(name, position, state, ts)"
                            " VALUES (?,?,?,?) ON CONFLICT(name) DO UPDATE SET"
                            " position=excluded.position, state=excluded.state,"
                            " ts=excluded.ts",
                            (
                                t.name,
                                t.until,
                                json.dumps(t.captured),
                                int(time.time() * 1000),
                            ),
                        )
                    ]
                )
                fixed += 1
        print(f"applied {fixed} corrections (as new log records for views)")
        return 0
    return 1 if drift and args.verify else 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        default="./data",
        help="the engine's data dir (default: ./data)",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="views, or a projection name (repeatable)",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="exit 1 when a rebuilt target differs from the live one",
    )
    parser.add_argument(
        "--apply",
        action="store_true",
        help="correct drift with new records (engine must be stopped)",
    )
    parser.add_argument(
        "--to", type=int, metavar="OFFSET", help="rebuild as of this offset"
    )
    parser.add_argument(
        "--from-snapshot",
        action="store_true",
        help="start projections from their stored snapshot",
    )
    parser.add_argument("--json", action="store_true", help="print rebuilt states")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if not Path(args.data_dir).is_dir():  # opening the store would create it
        print(f"error: {args.data_dir}: no such data dir", file=sys.stderr)
        return 2
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
