"""HTTP load generator, and the HTTP scenario: the engine's HTTP triggers
through the todo worker against a bare aiohttp server, same run, same load.

As a tool: C concurrent keep-alive connections send requests back to back;
warm-up, then a fixed duration; throughput and latency percentiles; JSON out.
``{n}`` in the body is replaced by a counter (unique titles, ids...).

    python bench/http_load.py URL [--method POST] [--body '{"title": "t{n}"}']
                                  [--concurrency 16] [--seconds 5] [--warmup 1]

Without a URL it runs the scenario: an engine (temp data dir, ephemeral ports)
with ``examples/todo/worker.py``; ``POST /todos`` (HTTP -> worker -> durable
``state::set`` -> response, plus the todo's two triggers) and
``GET /todos/metrics`` (HTTP -> worker -> ``state::get``), each at concurrency
1 and 16, against a bare aiohttp server (same loop as the engine, another
process) that answers the same routes at once: the HTTP transport's ceiling
here. Writes bench/results/http.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.baseline_server import python_server
from bench.common import RESULTS, help_text, pct, save_results
from bench.todo_job import stop, wait_http
from scripts.engine_process import EngineProcess
from scripts.todo_workers import start_todo_worker


async def http_load(
    url: str,
    *,
    method: str = "GET",
    body: str | None = None,
    concurrency: int = 16,
    seconds: float = 5.0,
    warmup: float = 1.0,
) -> dict[str, Any]:
    """Drive ``url`` with ``concurrency`` workers for ``warmup + seconds``;
    only the last ``seconds`` are measured. Any non-2xx answer is counted."""
    latencies: list[float] = []
    errors = 0
    counter = 0
    measuring = False
    stop_at = time.perf_counter() + warmup + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal counter, errors
            while time.perf_counter() < stop_at:
                counter += 1
                data = body.replace("{n}", str(counter)) if body else None
                started = time.perf_counter()
                async with session.request(
                    method,
                    url,
                    data=data,
                    headers={"content-type": "application/json"} if data else None,
                ) as resp:
                    await resp.read()
                    ok = 200 <= resp.status < 300
                if measuring:
                    latencies.append(time.perf_counter() - started)
                    errors += 0 if ok else 1

        tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
        await asyncio.sleep(warmup)
        measuring = True
        started = time.perf_counter()
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "errors": errors,
        "requests_per_s": len(latencies) / elapsed,
        "p50_ms": pct(latencies, 0.5),
        "p99_ms": pct(latencies, 0.99),
    }


BARE_SERVER = """
import asyncio, json, time, uuid
from aiohttp import web
async def create(request):
    body = await request.json()
    todo = {"id": uuid.uuid4().hex, "title": body["title"], "completed": False,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    return web.json_response(todo, status=201)
async def metrics(request):
    return web.json_response({"total": 0, "completed": 0})
async def main():
    app = web.Application()
    app.router.add_post("/todos", create)
    app.router.add_get("/todos/metrics", metrics)
    runner = web.AppRunner(app, access_log=None); await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0); await site.start()
    print(site._server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()
import uvloop; uvloop.run(main())  # the same loop as the engine
"""

ROUTES = {
    "create": ("POST", "/todos", '{"title": "todo {n}"}'),
    "metrics": ("GET", "/todos/metrics", None),
}


async def scenario(base: str, opts: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (method, path, body) in ROUTES.items():
        for c in (1, 16):
            out[f"{name}@{c}"] = await http_load(
                base + path, method=method, body=body, concurrency=c, **opts
            )
    return out


def print_table(results: dict[str, Any]) -> None:
    print(f"{'route@c':<12}{'server':<8}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}")
    for key, ours in results["iiilog"].items():
        bare = results["bare"][key]
        for name, r in (("iiilog", ours), ("bare", bare)):
            print(
                f"{key:<12}{name:<8}{r['requests_per_s']:>9,.0f}"
                f"{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
                + (f"  ({r['errors']} errors)" if r["errors"] else "")
            )
        print(f"{'':<12}ratio   {results['ratios'][key]:>9.2f}")


async def engine_scenario(url: str, opts: dict[str, Any]) -> dict[str, Any]:
    await wait_http(f"{url}/todos/metrics")
    return await scenario(url, opts)


async def bare_scenario(opts: dict[str, Any]) -> dict[str, Any]:
    async with python_server(BARE_SERVER) as port:
        return await scenario(f"http://127.0.0.1:{port}", opts)


def run_scenario(seconds: float, warmup: float) -> dict[str, Any]:
    opts = {"seconds": seconds, "warmup": warmup}
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        engine = EngineProcess(Path(tmp) / "data").start()
        worker = start_todo_worker("python", engine.worker_url)
        try:
            results["iiilog"] = asyncio.run(engine_scenario(engine.http_url, opts))
        finally:
            stop(worker)
            engine.stop()
    results["bare"] = asyncio.run(bare_scenario(opts))
    results["ratios"] = {
        key: r["requests_per_s"] / results["bare"][key]["requests_per_s"]
        for key, r in results["iiilog"].items()
    }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=help_text(__doc__), formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("url", nargs="?")
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument(
        "--json", help="with a URL: the result's file; without: the results folder"
    )
    args = parser.parse_args()
    if args.url:
        result = asyncio.run(
            http_load(
                args.url,
                method=args.method.upper(),
                body=args.body,
                concurrency=args.concurrency,
                seconds=args.seconds,
                warmup=args.warmup,
            )
        )
        print(json.dumps(result, indent=2))
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2))
    else:
        result = run_scenario(args.seconds, args.warmup)
        print_table(result)
        save_results("http", result, Path(args.json) if args.json else RESULTS)


if __name__ == "__main__":
    main()
