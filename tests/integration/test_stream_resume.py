"""Stream clients that resume, fall behind or are many: resume from an offset
(also across ``kill -9``), resets when a position cannot be served (ahead of
the log, past retention at a join or mid-stream), slow consumers, a thousand
subscribers, the bound on subscriptions per client."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.harness import EngineProcess, engine_with
from tests.streamclient import name, ok, open_sub, send, tcp_wmem_max
from tests.wsclients import RawWorker, StalledSocket


async def test_resume_after_missing_hundreds(
    engine: EngineProcess, worker: RawWorker, session: aiohttp.ClientSession
) -> None:
    s = name()
    sub = await open_sub(session, engine.stream_url)
    await sub.join(s, "g")
    await sub.next()
    await worker.send_many([send(s, "g", i) for i in range(5)])
    seen = await sub.take(5)
    last = seen[-1]["offset"]
    await sub.ws.close()
    calls = []
    for i in range(5, 405):
        calls.append(send(s, "g", i))
        if i % 3 == 0:
            calls.append(send(s, "elsewhere", i))
    await worker.send_many(calls)
    again = await open_sub(session, engine.stream_url)
    await again.join(s, "g", position=last)
    replayed = await again.take(400)
    assert [m["event"]["event"]["data"]["i"] for m in replayed] == list(range(5, 405))
    offsets = [m["offset"] for m in replayed]
    assert offsets == sorted(set(offsets)) and offsets[0] > last
    await worker.send_many([send(s, "g", 405)])
    live = await again.next()
    assert live["event"]["event"]["data"] == {"i": 405}
    assert live["offset"] > offsets[-1]
    url_form = await open_sub(
        session, f"{engine.stream_url}/stream/{s}/g?from={offsets[-2]}"
    )
    tail = await url_form.take(2)
    assert [m["offset"] for m in tail] == [offsets[-1], live["offset"]]


async def test_resume_across_kill_9(
    fresh_engine: EngineProcess, session: aiohttp.ClientSession
) -> None:
    s = name()
    async with session.ws_connect(fresh_engine.worker_url) as ws:
        w = RawWorker(ws)
        await w.recv_type("workerregistered")
        sub = await open_sub(session, fresh_engine.stream_url)
        await sub.join(s, "g")
        await sub.next()
        await w.send_many([send(s, "g", i) for i in range(100)])
        got = await sub.take(40)
        position = got[-1]["offset"]
    fresh_engine.kill()
    fresh_engine.start()
    async with session.ws_connect(fresh_engine.worker_url) as ws:
        w = RawWorker(ws)
        await w.recv_type("workerregistered")
        await w.send_many([send(s, "g", i) for i in range(100, 150)])
        again = await open_sub(session, fresh_engine.stream_url)
        await again.join(s, "g", position=position)
        rest = await again.take(110)
        assert [m["event"]["event"]["data"]["i"] for m in rest] == list(range(40, 150))
        assert await again.quiet()


async def test_from_ahead_of_the_log_resets(
    engine: EngineProcess, session: aiohttp.ClientSession
) -> None:
    sub = await open_sub(session, engine.stream_url)
    await sub.join(name(), "g", position=10**12)
    msg = await sub.next()
    assert msg["event"]["type"] == "sync" and msg["reset"] is True


async def test_slow_consumer_blocks_nobody_and_catches_up(
    engine: EngineProcess, worker: RawWorker, session: aiohttp.ClientSession
) -> None:
    """A subscriber that reads nothing, on a socket with an 8 KiB receive
    buffer, while more is written than every buffer on the way holds (the
    kernel's, the engine's outbound bound) and more records than the in-memory
    tail keeps: the writers run at the pace they have without it, a reading
    subscriber gets everything live, and the stalled one, once it reads, gets
    every record in order (from the store)."""
    s = name()
    payload = "x" * 400
    frame_bytes = 550  # a record's frame is at least this (checked below)

    def sends(start: int, count: int) -> list[tuple[str, dict[str, Any]]]:
        return [
            (
                "stream::send",
                {
                    "stream_name": s,
                    "group_id": "g",
                    "type": "t",
                    "data": {"i": i, "pad": payload},
                },
            )
            for i in range(start, start + count)
        ]

    async def timed_writes(start: int, count: int) -> float:
        began = time.monotonic()
        for chunk in range(start, start + count, 1000):
            replies = await worker.send_many(sends(chunk, 1000))
            assert all("error" not in r for r in replies)
        return (time.monotonic() - began) / count

    live = await open_sub(session, engine.stream_url)
    await live.join(s, "g")
    await live.next()
    baseline_n, n = 3000, 30_000
    reader = asyncio.create_task(live.take(baseline_n + n, timeout=300))
    baseline = await timed_writes(0, baseline_n)  # per record, nobody stalled
    stalled = StalledSocket(f"{engine.stream_url}/stream/{s}/g", rcvbuf=8192)
    # Its sync, before the writes: from here on it reads nothing.
    sync = json.loads((await asyncio.to_thread(stalled.read_frames, 1, 10))[0])
    assert sync["event"] == {"type": "sync", "data": []}
    wmem_max = tcp_wmem_max()
    # More than the kernel buffers and the engine's bound (4 MiB) could hold:
    # the engine had to stop writing to the stalled socket.
    assert n * frame_bytes > 8192 + wmem_max + 4 * 1024 * 1024
    with_stalled = await timed_writes(baseline_n, n)
    # The writers are not held back by the subscriber that does not read.
    assert with_stalled < 4 * baseline + 0.002, (baseline, with_stalled)
    got = await reader
    assert [m["event"]["event"]["data"]["i"] for m in got] == list(
        range(baseline_n + n)
    )
    # The stalled client has read nothing so far; now it reads everything.
    frames = await asyncio.to_thread(stalled.read_frames, n, 100)
    stalled.close()
    assert min(len(f) for f in frames) >= frame_bytes
    caught_up = [json.loads(f) for f in frames]
    assert [m["event"]["event"]["data"]["i"] for m in caught_up] == list(
        range(baseline_n, baseline_n + n)
    )
    offsets = [m["offset"] for m in caught_up]
    assert offsets == sorted(set(offsets))


async def test_thousand_subscribers(
    engine: EngineProcess, worker: RawWorker, session: aiohttp.ClientSession
) -> None:
    s = name()
    subs = await asyncio.gather(
        *[open_sub(session, f"{engine.stream_url}/stream/{s}/g") for _ in range(1000)]
    )
    await asyncio.gather(*[sub.next() for sub in subs])  # every sync
    await ok(worker, *send(s, "g", 1))
    got = await asyncio.gather(*[sub.next(30) for sub in subs])
    assert all(m["event"]["event"]["data"] == {"i": 1} for m in got)
    assert len({m["offset"] for m in got}) == 1
    await asyncio.gather(*[sub.ws.close() for sub in subs])


async def test_retention_gives_an_explicit_reset(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    proc = engine_with(
        tmp_path,
        "  - name: iii-stream\n    config: {port: 0, host: 127.0.0.1,"
        " send_retention_ms: 1, prune_interval_ms: 50}\n",
    )
    try:
        async with session.ws_connect(proc.worker_url) as ws:
            w = RawWorker(ws)
            await w.recv_type("workerregistered")
            await w.send_many([send("r", "g", i) for i in range(20)])
            await ok(
                w,
                "stream::set",
                {"stream_name": "r", "group_id": "g", "item_id": "kept", "data": 1},
            )
            async with asyncio.timeout(10):
                while True:  # poll until retention has removed the sends
                    sub = await open_sub(session, proc.stream_url)
                    await sub.join("r", "g", position=0)
                    first = await sub.next()
                    await sub.ws.close()
                    if first["event"]["type"] == "sync":
                        break
            assert first["reset"] is True
            assert first["event"]["data"] == [1]
    finally:
        proc.stop()


async def test_a_subscriber_that_falls_past_retention_mid_stream_gets_a_reset(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """A client that stops reading while its group's ``stream.send`` records
    are written and then removed by retention: once it reads again it gets
    what was sent before it stalled, in order, then a ``sync`` marked
    ``reset`` (never a silent jump past the removed records), then live
    messages."""
    proc = engine_with(
        tmp_path,
        "  - name: iii-stream\n    config: {port: 0, host: 127.0.0.1,"
        " send_retention_ms: 1, prune_interval_ms: 50}\n",
    )
    stalled: StalledSocket | None = None
    try:
        stalled = StalledSocket(f"{proc.stream_url}/stream/mid/g")
        blob = "x" * 4096
        async with session.ws_connect(proc.worker_url) as ws:
            w = RawWorker(ws)
            await w.recv_type("workerregistered")
            sends = [
                (
                    "stream::send",
                    {
                        "stream_name": "mid",
                        "group_id": "g",
                        "type": "t",
                        "data": {"i": i, "pad": blob},
                    },
                )
                for i in range(5000)
            ]
            replies = await w.send_many(sends)
            assert all("error" not in r for r in replies)
            # Retention has removed them all: a join from before them resets.
            async with asyncio.timeout(20):
                while True:
                    probe = await open_sub(session, proc.stream_url)
                    await probe.join("mid", "g", position=1)
                    first = await probe.next()
                    await probe.ws.close()
                    if first["event"]["type"] == "sync":
                        break
            # The stalled client reads again.
            assert stalled is not None
            seen: list[dict[str, Any]] = []
            deadline = time.monotonic() + 60
            while not (seen[1:] and seen[-1]["event"]["type"] == "sync"):
                assert time.monotonic() < deadline, "no reset sync"
                seen.append(json.loads(stalled.read_frames(1, timeout=30)[0]))
            assert seen[0]["event"]["type"] == "sync" and not seen[0].get("reset")
            events, reset = seen[1:-1], seen[-1]
            assert reset["reset"] is True and reset["event"]["data"] == []
            assert events, "it stalled after some messages, not before all"
            offsets = [m["offset"] for m in events]
            assert all(b == a + 1 for a, b in itertools.pairwise(offsets))
            assert [m["event"]["event"]["data"]["i"] for m in events] == list(
                range(len(events))
            )
            assert len(events) < 5000 and reset["offset"] > offsets[-1]
            # Live messages follow the reset.
            await ok(
                w,
                "stream::send",
                {"stream_name": "mid", "group_id": "g", "type": "t", "data": "live"},
            )
            after = json.loads(stalled.read_frames(1, timeout=30)[0])
            assert after["event"]["event"]["data"] == "live"
            assert after["offset"] > reset["offset"]
    finally:
        if stalled is not None:
            stalled.close()
        proc.stop()


async def test_a_client_holds_a_bounded_number_of_subscriptions(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """Each subscription is a pump: past ``max_subscriptions`` a join is
    refused with an error and the client's other subscriptions go on."""
    proc = engine_with(
        tmp_path,
        "  - name: iii-stream\n    config: {port: 0, host: 127.0.0.1,"
        " max_subscriptions: 3}\n",
    )
    try:
        sub = await open_sub(session, proc.stream_url)
        for i in range(3):
            await sub.join(f"cap{i}", "g", sub_id=f"s-{i}")
            msg = await sub.next()
            assert msg["event"]["type"] == "sync" and msg["subscriptionId"] == f"s-{i}"
        await sub.join("cap3", "g", sub_id="s-3")
        msg = await sub.next()
        assert msg["type"] == "error" and msg["subscriptionId"] == "s-3"
        assert msg["error"]["code"] == "TOO_MANY_SUBSCRIPTIONS"
        await sub.join("cap0", "g", sub_id="s-0")  # a rejoin is no new one
        msg = await sub.next()
        assert msg["event"]["type"] == "sync" and msg["subscriptionId"] == "s-0"
    finally:
        proc.stop()
