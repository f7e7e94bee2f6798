"""Replay throughput and restart time, against baselines measured in the same run.

1. Builds a log of N records (default 1,000,000) through the engine's own write
   path (store + single writer, group commit), shaped like the todo app: sets,
   updates and deletes on scope ``todos``.
2. Replay: ``scripts/replay.py``'s fold of every target (inline views, todos,
   todo-metrics) from offset 0. Baseline: a raw scan of the same table that
   decodes every row's JSON and does nothing else.
3. Restart: time from ``iiilog serve`` to listening, with projection snapshots
   and with snapshots off (every start folds the whole history).

    python bench/replay.py [--records 1000000]

Prints a table and writes bench/results/replay.json.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import help_text, save_results
from engine.ops import apply_ops, parse_ops
from eventlog import LogWriter, Mutation, Outcome, SqliteStore
from eventlog.sqlite.probes import scan_rate
from projections.rebuild import Target, fold_log
from projections.registry import builtin
from projections.views import InlineViews
from scripts.engine_process import EngineProcess

TOGGLE = parse_ops([{"type": "set", "path": "completed", "value": True}])


def setter(value: Any) -> Any:
    return lambda _existed, _old: Outcome(True, value)


async def build(data_dir: Path, n: int) -> float:
    store = await SqliteStore.open(data_dir, synchronous="normal")
    writer = LogWriter(store, max_batch=2000)
    task = asyncio.get_running_loop().create_task(writer.run())
    rng = random.Random(1)
    started = time.perf_counter()

    def toggle(existed: bool, old: Any) -> Outcome:
        return Outcome(True, apply_ops(old, existed, TOGGLE)[0])

    chunk = 5000
    for start in range(0, n, chunk):
        pending = []
        for i in range(start, min(n, start + chunk)):
            key = f"todo-{rng.randrange(20_000)}"
            roll = rng.random()
            if roll < 0.6:
                value = {"id": key, "title": f"task {i}", "completed": roll < 0.1}
                m = Mutation("state.set", "todos", None, key, setter(value))
            elif roll < 0.9:
                m = Mutation("state.update", "todos", None, key, toggle)
            else:
                m = Mutation(
                    "state.delete", "todos", None, key, lambda _e, _o: Outcome(False)
                )
            pending.append(writer.submit(m))
        await asyncio.gather(*pending)
    elapsed = time.perf_counter() - started
    await writer.close()
    await task
    await store.close()
    return elapsed


async def replay_rate(data_dir: Path) -> dict[str, Any]:
    store = await SqliteStore.open(data_dir, read_only=True)
    try:
        head = await store.read_head()
        targets = [Target("views", InlineViews(), head, {})]
        targets += [Target(p.name, p, head, p.initial()) for p in builtin()]
        started = time.perf_counter()
        count = await fold_log(store.scanner(), targets)
        elapsed = time.perf_counter() - started
    finally:
        await store.close()
    return {"records": count, "seconds": elapsed, "records_per_s": count / elapsed}


def restart_time(root: Path, data_dir: Path, snapshots: bool) -> float:
    config = root / f"config-{snapshots}.yaml"
    config.write_text(
        "workers:\n"
        "  - name: iii-worker-manager\n    config: {port: 0, host: 127.0.0.1}\n"
        "  - name: iiilog-projections\n"
        f"    config: {{snapshots: {str(snapshots).lower()}}}\n"
    )
    proc = EngineProcess(data_dir, config=config)
    started = time.perf_counter()
    proc.start(timeout=600)
    elapsed = time.perf_counter() - started
    proc.stop(timeout=120)  # with snapshots: saves them for the next start
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=help_text(__doc__), formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data_dir = root / "data"
        build_s = await build(data_dir, args.records)
        replay = await replay_rate(data_dir)
        scan = scan_rate(data_dir)
        restart_time(root, data_dir, snapshots=True)  # first start writes snapshots
        with_snap = restart_time(root, data_dir, snapshots=True)
        without = restart_time(root, data_dir, snapshots=False)
    results = {
        "records": args.records,
        "build_records_per_s": args.records / build_s,
        "replay": replay,
        "raw_scan_baseline": scan,
        "replay_vs_raw_scan": replay["records_per_s"] / scan["records_per_s"],
        "restart_s_with_snapshots": with_snap,
        "restart_s_without_snapshots": without,
        "restart_speedup": without / with_snap,
    }
    print(
        f"log of {args.records:,} records built at "
        f"{results['build_records_per_s']:,.0f} records/s (writer, group commit)"
    )
    print(
        f"replay (views + todos + todo-metrics): "
        f"{replay['records_per_s']:,.0f} records/s ({replay['seconds']:.1f}s)"
    )
    print(
        f"raw scan-and-decode baseline:          "
        f"{scan['records_per_s']:,.0f} records/s; ratio "
        f"{results['replay_vs_raw_scan']:.2f}"
    )
    print(
        f"restart: {with_snap:.2f}s with snapshots, {without:.2f}s without "
        f"({results['restart_speedup']:.1f}x)"
    )
    save_results("replay", results)


if __name__ == "__main__":
    asyncio.run(main())
