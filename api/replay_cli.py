"""The replay command (``iiilog replay``, ``scripts/replay.py``): a thin command
line over ``projections.rebuild``. It opens the log, prints the progress and
the differences, and sets the exit status: 0 ok, 1 drift (with ``--verify``),
2 the log cannot be read or written. It never creates a data dir.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

from eventlog import EventLogError, LogStore, SqliteStore, StoreError
from eventlog.codec import dumps
from eventlog.postgres import PostgresStore
from projections.rebuild import (
    RebuildError,
    Report,
    apply_corrections,
    rebuild,
    targets_for,
)


def show_progress(cursor: int, end: int, count: int, started: float) -> None:
    rate = count / max(time.perf_counter() - started, 1e-9)
    bar = "#" * int(30 * cursor / max(end, 1))
    print(
        f"\r[{bar:<30}] {cursor}/{end}  {rate:,.0f} records/s",
        end="",
        file=sys.stderr,
        flush=True,
    )


async def open_log(
    data_dir: Path, database_url: str | None, *, write: bool = False
) -> LogStore:
    """The log a tool reads (``write``: and corrects): the PostgreSQL one when
    a URL is given, else the data dir's. Never creates a log."""
    if database_url:
        store = await PostgresStore.open(database_url, create=False, pool_size=2)
        if write and await store.directory().nodes(60_000):
            await store.close()
            raise StoreError("engine nodes are running on this database")
        return store
    return await SqliteStore.open(data_dir, read_only=not write)


async def run(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir)
    try:
        store = await open_log(data_dir, args.database_url, write=args.apply)
    except EventLogError as e:
        hint = " (is the engine running? stop it to --apply)" if args.apply else ""
        print(f"error: {e}{hint}", file=sys.stderr)
        return 2
    try:
        try:
            targets = await targets_for(
                store,
                only=args.only or (),
                to=args.to,
                from_snapshot=args.from_snapshot,
            )
        except RebuildError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        started = time.perf_counter()
        report = await rebuild(
            store,
            targets,
            None if args.quiet else (lambda c, e, n: show_progress(c, e, n, started)),
            compare=args.to is None,
        )
        if not args.quiet:
            print(file=sys.stderr)
        if args.json:
            print(dumps(_as_json(report)))
            return 0
        _print(report, args.to)
        if args.apply and report.drift:
            fixed = await apply_corrections(store, report)
            print(f"applied {fixed} corrections (as new log records for views)")
            return 0
        return 1 if report.drift and args.verify else 0
    except EventLogError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        await store.close()


def _as_json(report: Report) -> dict[str, object]:
    return {
        "records": report.records,
        "seconds": report.seconds,
        "targets": {
            t.name: {"position": t.until, "state": t.rebuilt()} for t in report.targets
        },
    }


def _print(report: Report, to: int | None) -> None:
    rate = report.records / max(report.seconds, 1e-9)
    print(
        f"folded {report.records} records in {report.seconds:.2f}s"
        f" ({rate:,.0f} records/s)"
    )
    for t in report.targets:
        if to is not None:
            print(f"{t.name}: rebuilt as of offset {to}")
            continue
        if t.live is None:
            verdict = "rebuilt (no live snapshot to compare yet)"
        else:
            verdict = "OK" if not t.problems else f"{len(t.problems)} differences"
        print(f"{t.name} (at offset {t.until}): {verdict}")
        for line in t.problems[:50]:
            print("  " + line)


DESCRIPTION = """\
Rebuild views and projections by folding the log, and compare them with the
live ones. Each live target (the inline views, each projection) is compared
with the fold of the log up to the offset it reflects; read-only unless
--apply, so it runs beside a live engine.

  replay --data-dir DIR               rebuild all, report
  replay --data-dir DIR --verify      exit 1 on drift
  replay --data-dir DIR --apply       fix drift with new records (engine stopped)
  replay --data-dir DIR --to 1200 --only todo-metrics --json
"""


def parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description=DESCRIPTION.replace("replay", prog),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        default=os.environ.get("IIILOG_DATA_DIR", "./data"),
        help="the engine's data dir (default: $IIILOG_DATA_DIR, else ./data)",
    )
    p.add_argument(
        "--database-url",
        metavar="URL",
        default=os.environ.get("IIILOG_DATABASE_URL") or None,
        help="a PostgreSQL log instead of the data dir's"
        " (default: $IIILOG_DATABASE_URL)",
    )
    p.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="views, or a projection name (repeatable)",
    )
    p.add_argument(
        "--verify",
        action="store_true",
        help="exit 1 when a rebuilt target differs from the live one",
    )
    p.add_argument(
        "--apply",
        action="store_true",
        help="correct drift with new records (engine must be stopped)",
    )
    p.add_argument("--to", type=int, metavar="OFFSET", help="rebuild as of this offset")
    p.add_argument(
        "--from-snapshot",
        action="store_true",
        help="start projections from their stored snapshot",
    )
    p.add_argument("--json", action="store_true", help="print rebuilt states")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None, prog: str = "iiilog replay") -> int:
    args = parser(prog).parse_args(argv)
    if args.database_url is None and not Path(args.data_dir).is_dir():
        print(f"error: {args.data_dir}: no such data dir", file=sys.stderr)
        return 2
    return asyncio.run(run(args))
