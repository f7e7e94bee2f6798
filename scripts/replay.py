"""Rebuild the views from the log and compare them with the live ones.

    python scripts/replay.py --data-dir DIR [--verify]

Works read-only on the data dir of a stopped engine or beside a running one.
Exit status: 0 when the rebuilt views equal the live views, 1 on drift (what
differs is printed), 2 when the log cannot be read.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eventlog import EventLogError, SqliteStore
from projections.views import ViewState, fold, rows

BATCH = 5000


async def rebuild(
    store: SqliteStore, *, to: int | None = None, progress: bool = False
) -> tuple[ViewState, int, int]:
    """Fold the log from 0 up to ``to`` (default: the head).

    Returns (views, records read, last offset folded).
    """
    state: ViewState = {}
    cursor = 0
    count = 0
    head = await store.read_head() if to is None else to
    started = time.perf_counter()
    while cursor < head:
        records = await store.read(cursor, min(BATCH, head - cursor))
        if not records:
            break
        fold(records, state)
        cursor = records[-1].offset
        count += len(records)
        if progress:
            rate = count / max(time.perf_counter() - started, 1e-9)
            done = cursor / head
            bar = "#" * int(done * 30)
            print(
                f"\r[{bar:<30}] {cursor}/{head} {rate:,.0f} rec/s",
                end="",
                file=sys.stderr,
                flush=True,
            )
    if progress:
        print(file=sys.stderr)
    return state, count, cursor


def diff(
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


async def run(args: argparse.Namespace) -> int:
    try:
        store = await SqliteStore.open(Path(args.data_dir), read_only=True)
    except EventLogError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        position, live_views = await store.view_snapshot(("state", "stream"))
        started = time.perf_counter()
        state, count, head = await rebuild(store, to=position, progress=not args.quiet)
        elapsed = time.perf_counter() - started
        print(
            f"folded {count} records up to offset {head} in {elapsed:.2f}s "
            f"({count / max(elapsed, 1e-9):,.0f} records/s)"
        )
        drift = 0
        for space in ("state", "stream"):
            live = live_views[space]
            rebuilt = rows(state, space)
            problems = diff(live, rebuilt)
            print(
                f"{space} view: {len(rebuilt)} entries rebuilt, "
                f"{'OK' if not problems else f'{len(problems)} differences'}"
            )
            for line in problems[:50]:
                print("  " + line)
            drift += len(problems)
        return 1 if drift and args.verify else 0
    finally:
        await store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="replay",
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    parser.add_argument("--data-dir", default="./data")
    parser.add_argument(
        "--verify",
        action="store_true",
        help="exit 1 when a rebuilt view differs from the live one",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
