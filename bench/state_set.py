"""Durable ``state::set`` / ``state::update`` throughput and latency at
concurrency 1, 16 and 64, against baselines measured in the same run.

A real engine (temp data dir, ephemeral ports, ``synchronous: full``) is driven
by a load generator that speaks the worker protocol directly: S sockets with C
calls in flight each, pipelined, warm-up then a fixed duration. Baselines:
``state::get`` through the same engine (no log write), a bare aiohttp WebSocket
server answering each call at once with the same generator (the transport's
ceiling), and raw aiosqlite batched inserts of log-shaped rows (the log's
ceiling, ``full`` and ``normal``).

    python bench/state_set.py [--seconds 5]

Prints a table and writes JSON to bench/results/state_set.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.baseline_server import python_server
from bench.common import help_text, save_results
from eventlog.sqlite.probes import insert_rate
from scripts.engine_process import EngineProcess


async def load(
    url: str,
    function_id: str,
    payload: Any,
    *,
    seconds: float,
    warmup: float,
    sockets: int,
    inflight: int,
) -> dict[str, Any]:
    latencies: list[float] = []
    done = 0
    measuring = False
    stop_at = 0.0

    async def one_socket(session: aiohttp.ClientSession, n: int) -> None:
        nonlocal done
        async with session.ws_connect(url) as ws:
            pending: dict[str, float] = {}
            counter = 0

            async def send_one() -> None:
                nonlocal counter
                counter += 1
                inv = f"{n}-{counter}"
                data = payload(n, counter) if callable(payload) else payload
                pending[inv] = time.perf_counter()
                await ws.send_str(
                    json.dumps(
                        {
                            "type": "invokefunction",
                            "invocation_id": inv,
                            "function_id": function_id,
                            "data": data,
                        }
                    )
                )

            for _ in range(inflight):
                await send_one()
            async for msg in ws:
                frame = json.loads(msg.data)
                if frame.get("type") != "invocationresult":
                    continue
                if "error" in frame:
                    raise RuntimeError(frame["error"])
                started = pending.pop(frame["invocation_id"])
                if measuring:
                    latencies.append(time.perf_counter() - started)
                    done += 1
                if time.perf_counter() >= stop_at:
                    if not pending:
                        return
                    continue
                await send_one()

    async with aiohttp.ClientSession() as session:
        stop_at = time.perf_counter() + warmup + seconds
        tasks = [asyncio.create_task(one_socket(session, n)) for n in range(sockets)]
        await asyncio.sleep(warmup)
        measuring = True
        started = time.perf_counter()
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "calls": done,
        "calls_per_s": done / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }


ECHO_SERVER = """
import asyncio, json, sys
from aiohttp import web
async def handle(request):
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for msg in ws:
        frame = json.loads(msg.data)
        await ws.send_str(json.dumps({"type": "invocationresult",
            "invocation_id": frame["invocation_id"],
            "function_id": frame["function_id"], "result": None}))
    return ws
async def main():
    app = web.Application(); app.router.add_get("/", handle)
    runner = web.AppRunner(app); await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0); await site.start()
    print(site._server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()
import uvloop; uvloop.run(main())  # the same loop as the engine
"""


async def echo_baseline(opts: dict[str, Any]) -> dict[str, Any]:
    """The transport's ceiling: an aiohttp server that answers every call
    immediately, driven by the same load generator."""
    async with python_server(ECHO_SERVER) as port:
        return await load(f"ws://127.0.0.1:{port}/", "echo", {"x": 1}, **opts)


def engine_with(data_root: Path, synchronous: str) -> EngineProcess:
    config = data_root / f"config-{synchronous}.yaml"
    config.write_text(
        "workers:\n"
        "  - name: iii-worker-manager\n    config: {port: 0, host: 127.0.0.1}\n"
        "  - name: iiilog-eventlog\n"
        f"    config: {{synchronous: {synchronous}}}\n"
    )
    return EngineProcess(data_root / f"data-{synchronous}", config=config).start()


LEVELS = {1: (1, 1), 16: (4, 4), 64: (4, 16)}  # concurrency: (sockets, in flight)


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=help_text(__doc__), formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument(
        "--levels", default="1,16,64", help="concurrency levels, comma separated"
    )
    args = parser.parse_args()
    levels = {int(c): LEVELS[int(c)] for c in args.levels.split(",")}
    results: dict[str, Any] = {"levels": {}}
    value = {"title": "milk", "completed": False, "n": 1}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        proc = engine_with(root, "full")
        try:
            for level, (sockets, inflight) in levels.items():
                opts = {
                    "seconds": args.seconds,
                    "warmup": args.warmup,
                    "sockets": sockets,
                    "inflight": inflight,
                }
                run = uuid.uuid4().hex[:6]
                row = {
                    "echo": await echo_baseline(opts),
                    "get": await load(
                        proc.worker_url,
                        "state::get",
                        {"scope": "bench", "key": "k0"},
                        **opts,
                    ),
                    "set": await load(
                        proc.worker_url,
                        "state::set",
                        lambda s, i, run=run: {
                            "scope": "bench",
                            "key": f"{run}-{s}-{i % 1000}",
                            "value": value,
                        },
                        **opts,
                    ),
                    "update": await load(
                        proc.worker_url,
                        "state::update",
                        lambda s, i, run=run: {
                            "scope": "bench",
                            "key": f"{run}-u-{i % 100}",
                            "ops": [{"type": "increment", "path": "n", "by": 1}],
                        },
                        **opts,
                    ),
                }
                row["set_vs_echo"] = (
                    row["set"]["calls_per_s"] / row["echo"]["calls_per_s"]
                )
                results["levels"][level] = row
        finally:
            proc.stop()
        results["sqlite_full"] = await insert_rate(
            root / "raw-full.db", "full", args.seconds
        )
        results["sqlite_normal"] = await insert_rate(
            root / "raw-normal.db", "normal", args.seconds
        )
    print(f"{'c':>3} {'op':<8}{'calls/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    for level, row in results["levels"].items():
        for op in ("echo", "get", "set", "update"):
            r = row[op]
            print(
                f"{level:>3} {op:<8}{r['calls_per_s']:>10,.0f}"
                f"{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
            )
        print(f"{level:>3} state::set / raw WebSocket echo: {row['set_vs_echo']:.2f}")
    top = results["levels"][max(levels)]["set"]["calls_per_s"]
    for name in ("sqlite_full", "sqlite_normal"):
        raw = results[name]["rows_per_s"]
        results[f"set_c64_vs_{name}"] = top / raw
        print(
            f"raw aiosqlite batched inserts ({name.split('_')[1]}): "
            f"{raw:,.0f} rows/s; state::set at c={max(levels)} is {top / raw:.3f} of it"
        )
    save_results("state_set", results)


if __name__ == "__main__":
    asyncio.run(main())
