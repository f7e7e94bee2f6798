"""Several nodes on one PostgreSQL log against one node on SQLite, same run.

Durable ``state::set`` at concurrency 64 (the load generator of
``bench/state_set.py``: 4 sockets x 16 calls in flight, split across the nodes)
on: one node on SQLite (``synchronous: full``), then one, two and three nodes
on one PostgreSQL database (a schema of its own, dropped at the end). Then the
latency from a write on one node to a stream subscriber on another, against a
subscriber on the writing node. And the cost of serialized appends alone: raw
commits of 32-record batches through ``PostgresStore`` from 1 and 3 stores at
once (each commit takes the head row's lock first).

    python bench/cluster.py [--seconds 5]

Needs PostgreSQL on 127.0.0.1:5432 (trust auth, database ``test``). Prints a
table and writes JSON to bench/results/cluster.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import help_text, pct, save_results
from bench.state_set import load
from bench.todo_job import cpu_seconds
from eventlog import Mutation, Outcome
from eventlog.postgres import PostgresStore
from eventlog.postgres.schemas import create_schema, drop_schema
from scripts.engine_process import EngineProcess

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
NODE = """\
workers:
  - name: iii-worker-manager
    config: {{host: 127.0.0.1, port: 0}}
  - name: iii-stream
    config: {{host: 127.0.0.1, port: 0}}
  - name: iii-state
  - name: iiilog-eventlog
    config: {{{log}}}
"""


def start(root: Path, name: str, log: str) -> EngineProcess:
    config = root / f"{name}.yaml"
    config.write_text(NODE.format(log=log))
    return EngineProcess(root / name, config=config).start(timeout=60)


def postgres_pids() -> list[int]:
    """Every PostgreSQL server process on this machine (backends included)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def busy_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot, from /proc/stat."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split()[1:11]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, sum(fields)


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    """CPU seconds used so far by each process still alive among ``pids``."""
    out = {}
    for pid in pids:
        try:
            out[pid] = cpu_seconds([pid])[0]
        except (OSError, IndexError):
            continue
    return out


def cpu_since(before: dict[int, float], pids: list[int]) -> float:
    """CPU seconds the processes ``pids`` used since ``before`` (a process
    started since counts whole; one gone since is lost)."""
    return sum(t - before.get(pid, 0.0) for pid, t in cpu_by_pid(pids).items())


async def set_load(nodes: list[EngineProcess], seconds: float) -> dict[str, Any]:
    """c = 64 across the nodes: 4 sockets x 16 in flight, sockets spread out.

    Also where the CPU went: engines, PostgreSQL and this process (the load
    generator), in ms per call, and how busy the machine's cores were. CPU is
    counted over the warm-up too, so per-call figures divide by the calls of
    warm-up and run together (estimated from the measured rate)."""
    engines = [n.proc.pid for n in nodes if n.proc is not None]
    pg_before = cpu_by_pid(postgres_pids())
    before = (cpu_by_pid(engines), time.process_time(), busy_ticks())
    started = time.perf_counter()
    measured = await _set_load(nodes, seconds)
    wall = time.perf_counter() - started
    busy, total = busy_ticks()
    calls = measured["calls_per_s"] * wall or 1
    measured["cpu_ms_per_call"] = {
        "engines": cpu_since(before[0], engines) * 1000 / calls,
        "postgres": cpu_since(pg_before, postgres_pids()) * 1000 / calls,
        "load_generator": (time.process_time() - before[1]) * 1000 / calls,
    }
    measured["cores_busy"] = (
        (busy - before[2][0]) / max(1, total - before[2][1]) * (os.cpu_count() or 1)
    )
    return measured


async def _set_load(nodes: list[EngineProcess], seconds: float) -> dict[str, Any]:
    run = uuid.uuid4().hex[:6]
    value = {"title": "milk", "completed": False, "n": 1}
    sockets = [n % len(nodes) for n in range(4)]
    results = await asyncio.gather(
        *(
            load(
                nodes[i].worker_url,
                "state::set",
                lambda s, k, i=i, run=run: {
                    "scope": "bench",
                    "key": f"{run}-{i}-{s}-{k % 1000}",
                    "value": value,
                },
                seconds=seconds,
                warmup=1.0,
                sockets=sockets.count(i),
                inflight=16,
            )
            for i in sorted(set(sockets))
        )
    )
    return {
        "calls_per_s": sum(r["calls_per_s"] for r in results),
        "p99_ms": max(r["p99_ms"] for r in results),
        "per_node_calls_per_s": [r["calls_per_s"] for r in results],
    }


async def fan_latency(writer: EngineProcess, reader: EngineProcess) -> dict[str, Any]:
    """Write → subscriber latency: 300 ``stream::set`` on ``writer``, paced at
    200/s, each timed until a client joined on ``reader`` receives it."""
    seen: dict[int, float] = {}
    got = asyncio.Event()
    stream = uuid.uuid4().hex[:8]
    async with aiohttp.ClientSession() as session:
        sub = await session.ws_connect(f"{reader.stream_url}/stream/{stream}/g")
        await sub.receive()  # the initial sync

        async def watch() -> None:
            async for msg in sub:
                frame = json.loads(msg.data)
                if frame["event"]["type"] in ("create", "update"):
                    seen[frame["event"]["data"]] = time.perf_counter()
                    got.set()

        watcher = asyncio.create_task(watch())
        ws = await session.ws_connect(writer.worker_url)
        sent: dict[int, float] = {}
        for n in range(300):
            sent[n] = time.perf_counter()
            await ws.send_str(
                json.dumps(
                    {
                        "type": "invokefunction",
                        "function_id": "stream::set",
                        "data": {
                            "stream_name": stream,
                            "group_id": "g",
                            "item_id": "i",
                            "data": n,
                        },
                    }
                )
            )
            await asyncio.sleep(0.005)
        deadline = time.monotonic() + 30
        while len(seen) < 300 and time.monotonic() < deadline:
            got.clear()
            await asyncio.wait_for(got.wait(), 30)
        watcher.cancel()
        await ws.close()
        await sub.close()
    latencies = [seen[n] - sent[n] for n in seen]
    return {
        "received": len(seen),
        "p50_ms": pct(latencies, 0.5),
        "p99_ms": pct(latencies, 0.99),
    }


async def raw_appends(url: str, stores: int, seconds: float) -> dict[str, Any]:
    """Commits of 32 records from ``stores`` stores at once, for ``seconds``."""
    opened = [await PostgresStore.open(url, pool_size=2) for _ in range(stores)]
    done = 0
    stop_at = time.perf_counter() + seconds

    async def commit_loop(i: int, store: PostgresStore) -> None:
        nonlocal done
        k = 0
        while time.perf_counter() < stop_at:
            batch = [
                Mutation(
                    "state.set",
                    "raw",
                    None,
                    f"{i}-{k}-{j}",
                    lambda _e, _o: Outcome(True, {"n": 1}),
                )
                for j in range(32)
            ]
            await store.commit(batch)
            done += 32
            k += 1

    started = time.perf_counter()
    try:
        await asyncio.gather(*(commit_loop(i, s) for i, s in enumerate(opened)))
    finally:
        for s in opened:
            await s.close()
    return {"records_per_s": done / (time.perf_counter() - started)}


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=help_text(__doc__), formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        solo = start(root, "sqlite", "synchronous: full")
        try:
            results["sqlite_1"] = await set_load([solo], args.seconds)
            results["latency_same_node_sqlite"] = await fan_latency(solo, solo)
        finally:
            solo.stop()
        for count in (1, 2, 3):
            schema = f"iiilog_bench_{uuid.uuid4().hex[:8]}"
            url = await create_schema(PG_URL, schema)
            nodes = [
                start(root, f"pg{count}-{i}", f'database_url: "{url}"')
                for i in range(count)
            ]
            try:
                results[f"postgres_{count}"] = await set_load(nodes, args.seconds)
                if count == 3:
                    results["latency_same_node_postgres"] = await fan_latency(
                        nodes[0], nodes[0]
                    )
                    results["latency_across_nodes"] = await fan_latency(
                        nodes[0], nodes[2]
                    )
            finally:
                for node in nodes:
                    node.stop()
            if count in (1, 3):
                results[f"raw_appends_{count}_stores"] = await raw_appends(
                    url, count, args.seconds
                )
            await drop_schema(PG_URL, schema)
    base = results["sqlite_1"]["calls_per_s"]
    one = results["postgres_1"]["calls_per_s"]
    results["postgres_1_vs_sqlite_1"] = one / base
    results["postgres_3_vs_postgres_1"] = results["postgres_3"]["calls_per_s"] / one
    print(
        f"{'state::set c=64':<16}{'calls/s':>10}{'p99 ms':>9}"
        f"  CPU ms/call: engines / postgres / load   cores busy"
    )
    for name in ("sqlite_1", "postgres_1", "postgres_2", "postgres_3"):
        r = results[name]
        cpu = r["cpu_ms_per_call"]
        print(
            f"{name:<16}{r['calls_per_s']:>10,.0f}{r['p99_ms']:>9.2f}"
            f"  {cpu['engines']:>6.3f} / {cpu['postgres']:.3f} /"
            f" {cpu['load_generator']:.3f}   {r['cores_busy']:.2f}"
        )
    ratio_1, ratio_3 = (
        results["postgres_1_vs_sqlite_1"],
        results["postgres_3_vs_postgres_1"],
    )
    print(f"one PostgreSQL node / one SQLite node: {ratio_1:.2f}")
    print(f"three nodes / one PostgreSQL node:     {ratio_3:.2f}")
    for name in (
        "latency_same_node_sqlite",
        "latency_same_node_postgres",
        "latency_across_nodes",
    ):
        r = results[name]
        print(
            f"write -> subscriber, {name[8:]:<20} p50 {r['p50_ms']:.2f} ms"
            f"  p99 {r['p99_ms']:.2f} ms  ({r['received']} of 300)"
        )
    for name in ("raw_appends_1_stores", "raw_appends_3_stores"):
        print(f"{name:<24}{results[name]['records_per_s']:>10,.0f} records/s")
    save_results("cluster", results)


if __name__ == "__main__":
    asyncio.run(main())
