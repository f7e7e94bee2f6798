"""Where the engine's CPU goes in the reactive todo job, stage by stage.

Runs the todo job (``bench/todo_job.py``'s harness: the Python todo worker with
the SDK's default telemetry, S subscribers, C creators) while ``py-spy``
samples the engine process, then sorts every sample of the engine's main thread
into a stage by the innermost frame of ours (or of aiohttp, uvloop, orjson,
pydantic) on its stack:

  parse      worker frames to messages (api/protocol, api/session, pydantic)
  dispatch   routing a call: worker bridge, engine core, registry, peers
  http       aiohttp's server and our HTTP module (routes, channels)
  commit     the writer, the planner and the store (staging the transaction)
  fan-out    stream clients: pumps, envelopes, outbound frames
  triggers   durable trigger delivery (subscriptions, cursors)
  telemetry  /otel frames, logs and spans
  loop       uvloop itself (socket reads and writes, running callbacks: C code
             the sampler cannot see into)
  other      anything else of ours or the libraries' (tasks, futures, ...)

Only samples of a running thread count (py-spy leaves out threads waiting in
the kernel), so the shares are of the main thread's busy time. Each stage is
reported as that share and as CPU ms per create (the engine's measured CPU per
create, all threads, times the stage's share). The writer thread (fsync) is
reported on its own.

    python bench/profile_todo.py [--seconds 8] [--subscribers 10]
    python bench/profile_todo.py --tree ../before --label before

Writes bench/results/profile.json (``--label`` adds a named run beside others,
e.g. before/after a change).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import RESULTS, help_text
from bench.todo_job import iiilog_subscriber, run_job, stop, wait_http
from scripts.engine_process import ROOT, EngineProcess
from scripts.todo_workers import start_todo_worker

# (stage, substrings of a frame "function (file:line)"); the first stage whose
# pattern matches the innermost frame of interest wins.
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("telemetry", ("engine/logs.py", "engine/traces.py", "otel_handler")),
    ("parse", ("api/protocol.py", "api/session.py", "pydantic", "orjson.loads")),
    ("commit", ("eventlog/",)),
    ("triggers", ("engine/durable.py",)),
    ("fan-out", ("api/stream_ws.py", "engine/streams.py", "api/frames.py")),
    (
        "http",
        (
            "api/http_server.py",
            "engine/http_routes.py",
            "engine/channels.py",
            "aiohttp/web",
            "aiohttp/http_parser",
            "aiohttp/_http",
        ),
    ),
    (
        "dispatch",
        (
            "api/worker_ws.py",
            "engine/core.py",
            "engine/registry.py",
            "engine/model.py",
            "engine/state.py",
            "engine/cluster.py",
            "engine/ops.py",
            "engine/observers.py",
        ),
    ),
]
LOOP = ("Runner.run", "uvloop", "_run_once")


def stage_of(stack: str) -> str:
    """A collapsed stack ``frame;frame;...`` (outermost first) -> its stage."""
    frames = stack.split(";")
    for frame in reversed(frames):
        for stage, patterns in STAGES:
            if any(p in frame for p in patterns):
                return stage
    if any(p in frames[-1] for p in LOOP):
        return "loop"
    return "other"


def classify(raw: str) -> dict[str, Any]:
    """py-spy's raw output (``thread ...;frames count`` lines) by thread and
    stage."""
    main: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        thread, _, frames = stack.partition(";")
        n = int(count)
        threads[thread] += n
        if "MainThread" in thread or thread.startswith("process"):
            main[stage_of(frames) if frames else "loop"] += n
    return {"main": dict(main), "threads": dict(threads)}


async def job(
    engine: EngineProcess, worker_pid: int, args: argparse.Namespace
) -> dict[str, Any]:
    await wait_http(f"{engine.http_url}/todos/metrics")
    # A short warm-up job, then the measured one under the profiler.
    await run_job(
        f"{engine.http_url}/todos",
        iiilog_subscriber(engine.stream_url),
        args.subscribers,
        args.creators,
        1.0,
        [engine.proc.pid if engine.proc else 0, worker_pid],
    )
    out = Path(tempfile.mkdtemp()) / "raw.txt"
    spy = await asyncio.create_subprocess_exec(
        *[
            str(Path(sys.executable).parent / "py-spy"),
            "record",
            "--pid",
            str(engine.proc.pid if engine.proc else 0),
            "--rate",
            "250",
            "--format",
            "raw",
            "--threads",
            "--duration",
            str(int(args.seconds)),
            "--output",
            str(out),
        ],
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    result = await run_job(
        f"{engine.http_url}/todos",
        iiilog_subscriber(engine.stream_url),
        args.subscribers,
        args.creators,
        args.seconds,
        [engine.proc.pid if engine.proc else 0, worker_pid],
    )
    await asyncio.wait_for(spy.wait(), 60)
    result["profile"] = classify(out.read_text())
    if args.keep_raw:
        (RESULTS / f"profile-{args.label}.txt").write_text(out.read_text())
    return result


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    main = result["profile"]["main"]
    busy = sum(main.values()) or 1
    engine_ms = result["cpu_ms_per_create_by_process"][0]
    stages = {}
    for stage in [s for s, _ in STAGES] + ["loop", "other"]:
        n = main.get(stage, 0)
        stages[stage] = {"share": n / busy, "cpu_ms_per_create": engine_ms * n / busy}
    return {
        "creates_per_s": result["creates_per_s"],
        "engine_cpu_ms_per_create": engine_ms,
        "worker_cpu_ms_per_create": result["cpu_ms_per_create_by_process"][1],
        "stages": stages,
        "threads": result["profile"]["threads"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=help_text(__doc__), formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--subscribers", type=int, default=10)
    parser.add_argument("--creators", type=int, default=64)
    parser.add_argument("--label", default="current")
    parser.add_argument(
        "--tree",
        type=Path,
        default=ROOT,
        help="profile the engine of this checkout (e.g. an older commit's)",
    )
    parser.add_argument(
        "--keep-raw", action="store_true", help="keep py-spy's raw stacks"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tree = args.tree.resolve()
        engine = EngineProcess(Path(tmp) / "data", root=tree).start()
        worker = start_todo_worker(
            "python", engine.worker_url, telemetry=True, root=tree
        )
        try:
            result = asyncio.run(job(engine, worker.pid, args))
        finally:
            stop(worker)
            engine.stop()
    summary = summarize(result)
    path = RESULTS / "profile.json"
    runs = json.loads(path.read_text()) if path.exists() else {}
    runs[args.label] = summary
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(runs, indent=2))
    print(
        f"{summary['creates_per_s']:,.0f} creates/s; engine CPU "
        f"{summary['engine_cpu_ms_per_create']:.3f} ms per create"
    )
    for stage, s in summary["stages"].items():
        print(
            f"  {stage:<10} {s['share'] * 100:5.1f}%  "
            f"{s['cpu_ms_per_create']:.3f} ms per create"
        )


if __name__ == "__main__":
    main()
