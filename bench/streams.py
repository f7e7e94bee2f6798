"""Stream delivery: write->subscriber latency and catch-up rate, with baselines
measured in the same run.

* latency: one writer sends ``stream::send`` events (paced, each acknowledged)
  while S subscribers (S = 1, 100, 1000) watch the group; latency is the time
  from the call to each subscriber receiving the event. Baseline: the round trip
  of a plain call (``state::get``) on the same engine.
* fan-out: one writer sends as fast as it can (8 calls in flight) for a fixed
  time to 1,000 subscribers of one group: delivered messages/s and p99 from the
  call to each delivery. Baseline: a bare aiohttp WebSocket server (another
  process, same loop as the engine) relaying the same frames to the same 1,000
  client sockets (the fan-out ceiling of the transport here).
* catch-up: N records are written, then a subscriber joins with ``from`` = the
  offset before them and reads them all. Baseline: a bare aiohttp WebSocket
  server (another process) pushing the same N frames to the same client.

    python bench/streams.py [--events 200] [--catchup 100000] [--fanout-seconds 5]

Prints a table and writes bench/results/streams.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.baseline_server import python_server
from bench.common import help_text, pct, save_results
from scripts.engine_process import EngineProcess
from scripts.raw_worker import RawWorker


async def latency(
    engine: EngineProcess, subscribers: int, events: int
) -> dict[str, Any]:
    stream = f"lat-{subscribers}"
    received: list[float] = []
    sent_at: dict[int, float] = {}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        subs = [
            await session.ws_connect(f"{engine.stream_url}/stream/{stream}/g")
            for _ in range(subscribers)
        ]
        for ws in subs:
            await ws.receive()  # the sync
        counts: dict[int, int] = {}
        all_in = asyncio.Event()

        async def read(ws: aiohttp.ClientWebSocketResponse) -> None:
            async for msg in ws:
                now = time.perf_counter()
                i = json.loads(msg.data)["event"]["event"]["data"]["i"]
                received.append(now - sent_at[i])
                counts[i] = counts.get(i, 0) + 1
                if counts[i] == subscribers and i == events - 1:
                    all_in.set()

        readers = [asyncio.create_task(read(ws)) for ws in subs]
        async with session.ws_connect(engine.worker_url) as wws:
            w = RawWorker(wws)
            await w.recv_type("workerregistered")
            rtt: list[float] = []
            for _ in range(events):
                started = time.perf_counter()
                await w.call("state::get", {"scope": "bench", "key": "k"})
                rtt.append(time.perf_counter() - started)
            for i in range(events):
                sent_at[i] = time.perf_counter()
                await w.call(
                    "stream::send",
                    {
                        "stream_name": stream,
                        "group_id": "g",
                        "type": "t",
                        "data": {"i": i},
                    },
                )
                await asyncio.sleep(0.005)  # pacing: measure latency, not queueing
            await asyncio.wait_for(all_in.wait(), 120)
        for task in readers:
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in subs))
    return {
        "subscribers": subscribers,
        "deliveries": len(received),
        "p50_ms": pct(received, 0.5),
        "p99_ms": pct(received, 0.99),
        "baseline_rtt_p50_ms": statistics.median(rtt) * 1000,
        "p50_vs_rtt": statistics.median(received) / statistics.median(rtt),
    }


async def fanout(
    sub_url: str,
    publish: Callable[[list[int]], Awaitable[None]],
    subscribers: int,
    seconds: float,
) -> dict[str, Any]:
    """Subscribers on ``sub_url``; ``publish(batch)`` sends messages ``batch``
    pipelined (their frames carry ``data.t``, the send time). Every frame is
    parsed, as a client would."""
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        subs = [await session.ws_connect(sub_url) for _ in range(subscribers)]
        for ws in subs:
            await ws.receive()  # the sync (engine) or hello (baseline)
        last_at = 0.0
        expected = -1  # known once the writer stops
        all_in = asyncio.Event()

        async def read(ws: aiohttp.ClientWebSocketResponse) -> None:
            nonlocal last_at
            async for msg in ws:
                now = time.perf_counter()
                latencies.append(
                    now - json.loads(msg.data)["event"]["event"]["data"]["t"]
                )
                last_at = now
                if len(latencies) == expected:
                    all_in.set()

        readers = [asyncio.create_task(read(ws)) for ws in subs]
        started = time.perf_counter()
        sent = 0
        while time.perf_counter() - started < seconds:
            await publish(list(range(sent, sent + 8)))
            sent += 8
        expected = sent * subscribers
        if len(latencies) < expected:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_in.wait(), 300)
        for task in readers:
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in subs))
    return {
        "subscribers": subscribers,
        "messages": sent,
        "deliveries": len(latencies),
        "expected_deliveries": expected,
        "delivered_per_s": len(latencies) / (last_at - started),
        "p50_ms": pct(latencies, 0.5),
        "p99_ms": pct(latencies, 0.99),
    }


async def engine_fanout(
    engine: EngineProcess, subscribers: int, seconds: float
) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(engine.worker_url) as wws,
    ):
        w = RawWorker(wws)
        await w.recv_type("workerregistered")

        async def publish(batch: list[int]) -> None:
            replies = await w.send_many(
                [
                    (
                        "stream::send",
                        {
                            "stream_name": "fanout",
                            "group_id": "g",
                            "type": "t",
                            "data": {"i": i, "t": time.perf_counter()},
                        },
                    )
                    for i in batch
                ]
            )
            assert all("error" not in r for r in replies)

        return await fanout(
            f"{engine.stream_url}/stream/fanout/g", publish, subscribers, seconds
        )


FANOUT_SERVER = """
import asyncio
from aiohttp import web
subs = set()
async def sub(request):
    ws = web.WebSocketResponse(compress=False)
    await ws.prepare(request)
    await ws.send_str("{}")
    subs.add(ws)
    async for _ in ws:
        pass
    subs.discard(ws)
    return ws
async def pub(request):
    ws = web.WebSocketResponse(compress=False)
    await ws.prepare(request)
    async for msg in ws:
        for s in list(subs):
            await s.send_str(msg.data)
        await ws.send_str("ok")
    return ws
async def main():
    app = web.Application()
    app.router.add_get("/", sub)
    app.router.add_get("/pub", pub)
    runner = web.AppRunner(app); await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0); await site.start()
    print(site._server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()
import uvloop; uvloop.run(main())  # the same loop as the engine
"""


async def baseline_fanout(subscribers: int, seconds: float) -> dict[str, Any]:
    """The same subscribers and publisher against a bare relay: one frame in,
    the same frame out to every subscriber, acknowledged after the last."""
    async with (
        python_server(FANOUT_SERVER) as port,
        aiohttp.ClientSession() as session,
        session.ws_connect(f"ws://127.0.0.1:{port}/pub") as pub,
    ):

        async def publish(batch: list[int]) -> None:
            for i in batch:
                frame = {
                    "offset": i,
                    "event": {
                        "type": "event",
                        "timestamp": 0,
                        "streamName": "fanout",
                        "groupId": "g",
                        "event": {
                            "type": "t",
                            "data": {"i": i, "t": time.perf_counter()},
                        },
                    },
                }
                await pub.send_str(json.dumps(frame))
            for _ in batch:
                await pub.receive()

        return await fanout(f"ws://127.0.0.1:{port}/", publish, subscribers, seconds)


async def catchup(engine: EngineProcess, n: int) -> dict[str, Any]:
    stream = "catchup"
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(
            engine.worker_url, max_msg_size=64 * 1024 * 1024
        ) as wws:
            w = RawWorker(wws)
            await w.recv_type("workerregistered")
            for start in range(0, n, 5000):
                replies = await w.send_many(
                    [
                        (
                            "stream::send",
                            {
                                "stream_name": stream,
                                "group_id": "g",
                                "type": "t",
                                "data": {"i": i},
                            },
                        )
                        for i in range(start, min(n, start + 5000))
                    ]
                )
                assert all("error" not in r for r in replies)
        sample = ""
        async with session.ws_connect(
            f"{engine.stream_url}/stream/{stream}/g?from=0"
        ) as ws:
            started = time.perf_counter()
            got = 0
            async for msg in ws:
                if not sample:
                    sample = msg.data
                got += 1
                if got == n:
                    break
            elapsed = time.perf_counter() - started
    return {
        "records": n,
        "seconds": elapsed,
        "records_per_s": n / elapsed,
        "frame": sample,
    }


BASELINE_SERVER = """
import asyncio, sys
from aiohttp import web
frame, n = sys.argv[1], int(sys.argv[2])
async def handle(request):
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    for _ in range(n):
        await ws.send_str(frame)
    await ws.close()
    return ws
async def main():
    app = web.Application(); app.router.add_get("/", handle)
    runner = web.AppRunner(app); await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0); await site.start()
    print(site._server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()
import uvloop; uvloop.run(main())  # the same loop as the engine
"""


async def push_baseline(frame: str, n: int) -> dict[str, Any]:
    async with (
        python_server(BASELINE_SERVER, frame, str(n)) as port,
        aiohttp.ClientSession() as session,
        session.ws_connect(f"ws://127.0.0.1:{port}/") as ws,
    ):
        started = time.perf_counter()
        got = 0
        async for _ in ws:
            got += 1
            if got == n:
                break
        elapsed = time.perf_counter() - started
    return {"records": n, "records_per_s": n / elapsed}


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=help_text(__doc__), formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--catchup", type=int, default=100_000)
    parser.add_argument("--fanout-seconds", type=float, default=5.0)
    parser.add_argument("--fanout-subscribers", type=int, default=1000)
    args = parser.parse_args()
    results: dict[str, Any] = {"latency": []}
    with tempfile.TemporaryDirectory() as tmp:
        engine = EngineProcess(Path(tmp) / "data").start()
        try:
            for subscribers in (1, 100, 1000):
                events = (
                    args.events if subscribers < 1000 else max(20, args.events // 4)
                )
                results["latency"].append(await latency(engine, subscribers, events))
            results["fanout"] = await engine_fanout(
                engine, args.fanout_subscribers, args.fanout_seconds
            )
            results["catchup"] = await catchup(engine, args.catchup)
        finally:
            engine.stop()
    results["fanout_baseline"] = await baseline_fanout(
        args.fanout_subscribers, args.fanout_seconds
    )
    results["fanout_vs_baseline"] = (
        results["fanout"]["delivered_per_s"]
        / results["fanout_baseline"]["delivered_per_s"]
    )
    frame = results["catchup"].pop("frame")
    results["catchup_baseline"] = await push_baseline(frame, args.catchup)
    results["catchup_vs_baseline"] = (
        results["catchup"]["records_per_s"]
        / results["catchup_baseline"]["records_per_s"]
    )
    print(
        f"{'subscribers':>11}{'p50 ms':>9}{'p99 ms':>9}{'call rtt ms':>13}"
        f"{'p50/rtt':>9}"
    )
    for r in results["latency"]:
        print(
            f"{r['subscribers']:>11}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
            f"{r['baseline_rtt_p50_ms']:>13.2f}{r['p50_vs_rtt']:>9.2f}"
        )
    for name in ("fanout", "fanout_baseline"):
        f = results[name]
        print(
            f"{name:<16} {f['subscribers']} subscribers: {f['messages']} messages, "
            f"{f['deliveries']}/{f['expected_deliveries']} delivered, "
            f"{f['delivered_per_s']:,.0f} deliveries/s, p50 {f['p50_ms']:.1f} ms, "
            f"p99 {f['p99_ms']:.1f} ms"
        )
    print(f"fan-out ratio (engine / bare relay): {results['fanout_vs_baseline']:.2f}")
    c, b = results["catchup"], results["catchup_baseline"]
    print(
        f"catch-up: {c['records']} records in {c['seconds']:.2f}s = "
        f"{c['records_per_s']:,.0f} records/s; raw aiohttp push of the same "
        f"frames: {b['records_per_s']:,.0f}/s; ratio "
        f"{results['catchup_vs_baseline']:.2f}"
    )
    save_results("streams", results)


if __name__ == "__main__":
    asyncio.run(main())
