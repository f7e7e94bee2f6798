"""Durable ``state::set`` throughput, against a baseline measured in the same run.

Starts a real engine (temp data dir, ephemeral ports) for each durability
setting, opens S worker sockets speaking the protocol directly and keeps C calls
in flight on each, for a fixed duration after a warm-up. The baseline is
``state::get`` through the same sockets and the same engine (transport and
dispatch without the log write), so the ratio shows what durability costs.

    python bench/state_set.py [--seconds 5] [--sockets 4] [--inflight 16]

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

from tests.harness import EngineProcess


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


def engine_with(data_root: Path, synchronous: str) -> EngineProcess:
    config = data_root / f"config-{synchronous}.yaml"
    config.write_text(
        "workers:\n"
        "  - name: iii-worker-manager\n    config: {port: 0, host: 127.0.0.1}\n"
        "  - name: iiilog-eventlog\n"
        f"    config: {{synchronous: {synchronous}}}\n"
    )
    return EngineProcess(data_root / f"data-{synchronous}", config=config).start()


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--sockets", type=int, default=4)
    parser.add_argument("--inflight", type=int, default=16)
    args = parser.parse_args()
    opts = {
        "seconds": args.seconds,
        "warmup": args.warmup,
        "sockets": args.sockets,
        "inflight": args.inflight,
    }
    results: dict[str, Any] = {"concurrency": args.sockets * args.inflight}
    with tempfile.TemporaryDirectory() as tmp:
        for sync in ("full", "normal"):
            proc = engine_with(Path(tmp), sync)
            try:
                run = uuid.uuid4().hex[:6]
                value = {"title": "milk", "completed": False, "n": 1}
                baseline = await load(
                    proc.worker_url,
                    "state::get",
                    {"scope": "bench", "key": "k0"},
                    **opts,
                )
                sets = await load(
                    proc.worker_url,
                    "state::set",
                    lambda s, i, run=run, value=value: {
                        "scope": "bench",
                        "key": f"{run}-{s}-{i % 1000}",
                        "value": value,
                    },
                    **opts,
                )
            finally:
                proc.stop()
            results[sync] = {
                "get_baseline": baseline,
                "set": sets,
                "set_vs_get": sets["calls_per_s"] / baseline["calls_per_s"],
            }
    print(
        f"concurrency {results['concurrency']} "
        f"({args.sockets} sockets x {args.inflight} in flight), "
        f"{args.seconds:.0f}s each"
    )
    print(f"{'synchronous':<12}{'op':<12}{'calls/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    for sync in ("full", "normal"):
        for op, r in (
            ("get (base)", results[sync]["get_baseline"]),
            ("set", results[sync]["set"]),
        ):
            print(
                f"{sync:<12}{op:<12}{r['calls_per_s']:>10,.0f}"
                f"{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
            )
        print(f"{sync:<12}set/get ratio {results[sync]['set_vs_get']:.2f}")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "state_set.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
