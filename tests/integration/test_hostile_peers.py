"""Peers that do not read what they asked for: the engine's memory stays
bounded, such sockets are closed after ``slow_peer_timeout_ms``, and everyone
else keeps being served."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from iii import InvocationError

from tests.harness import EngineProcess, call, sdk_worker, wait_until
from tests.wsclients import StalledSocket, StreamWatcher, client_frame

MIB = 1024 * 1024


def rss_bytes(pid: int) -> int:
    """The process's resident set (VmRSS), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line")


def start(root: Path, listener: str, modules: str = "") -> EngineProcess:
    config = root / "config.yaml"
    config.write_text(
        "workers:\n  - name: iii-worker-manager\n"
        f"    config: {{port: 0, host: 127.0.0.1{listener}}}\n" + modules
    )
    return EngineProcess(root / "data", config=config).start()


def worker_names(client: object) -> set[str]:
    listed = call(client, "engine::workers::list", {})["workers"]
    return {w["name"] for w in listed}


def listed(client: object, function_id: str) -> bool:
    functions = call(client, "engine::functions::list", {})["functions"]
    return any(f["function_id"] == function_id for f in functions)


def register(peer: StalledSocket, name: str) -> None:
    """``engine::workers::register``, so the peer is listed by name."""
    peer.send_json(
        {
            "type": "invokefunction",
            "function_id": "engine::workers::register",
            "action": {"type": "void"},
            "data": {"runtime": "python", "version": "0", "name": name, "pid": 1},
        }
    )


def test_workers_that_never_read_cannot_grow_the_engine(tmp_path: Path) -> None:
    """The repro of issue 12: a 1 MB value, four sockets with an 8 KiB receive
    buffer each asking for it 100 times and reading nothing. Unbounded, the
    engine buffered every reply (RSS +500 MB and more)."""
    proc = start(tmp_path, ", slow_peer_timeout_ms: 3000")
    try:
        assert proc.proc is not None
        pid = proc.proc.pid
        with sdk_worker(proc.worker_url, "well-behaved") as good:
            call(good, "state::set", {"scope": "big", "key": "v", "value": "x" * MIB})
            stalled = [StalledSocket(proc.worker_url, rcvbuf=8192) for _ in range(4)]
            names = {f"stalled-{n}" for n in range(4)}
            for n, peer in enumerate(stalled):
                register(peer, f"stalled-{n}")
            stalled[0].send_json({"type": "registerfunction", "id": "stalled::fn"})
            wait_until(
                lambda: names <= worker_names(good) and listed(good, "stalled::fn"),
                message="peers listed",
            )
            # A call in flight to a peer that is dropped ends with
            # invocation_stopped, not with its timeout.
            outcome: dict[str, Any] = {}

            def call_stalled() -> None:
                try:
                    outcome["result"] = call(good, "stalled::fn", {}, 120_000)
                except InvocationError as e:
                    outcome["code"] = e.code

            caller = threading.Thread(target=call_stalled)
            caller.start()
            base = rss_bytes(pid)
            for n, peer in enumerate(stalled):
                peer.sock.sendall(
                    b"".join(
                        client_frame(
                            json.dumps(
                                {
                                    "type": "invokefunction",
                                    "invocation_id": f"s{n}-{i}",
                                    "function_id": "state::get",
                                    "data": {"scope": "big", "key": "v"},
                                }
                            ).encode()
                        )
                        for i in range(100)
                    )
                )
            peak = base
            started = time.monotonic()
            served = 0

            def settled() -> bool:
                nonlocal peak, served
                peak = max(peak, rss_bytes(pid))
                # The well-behaved worker is served all along.
                assert call(good, "state::get", {"scope": "big", "key": "v"}) == (
                    "x" * MIB
                )
                served += 1
                return not names & worker_names(good)

            wait_until(settled, timeout=60, interval=0.05, message="stalled closed")
            closed_after = time.monotonic() - started
            assert all(peer.gone() for peer in stalled)
            growth = peak - base
            print(f"RSS {base / MIB:.0f} MiB -> peak {peak / MIB:.0f} MiB")
            assert growth < 150 * MIB, f"RSS grew {growth / MIB:.0f} MiB"
            assert 2.5 < closed_after < 30, closed_after
            assert served > 5
            caller.join(10)
            assert outcome == {"code": "invocation_stopped"}
            for peer in stalled:
                peer.close()
            assert call(good, "state::get", {"scope": "big", "key": "v"}) == "x" * MIB
    finally:
        proc.stop()


def test_stream_client_that_never_reads_cannot_grow_the_engine(
    tmp_path: Path,
) -> None:
    """400 joins of a group holding a 1 MB item from a client that reads
    nothing: each would be a 1 MB sync snapshot. Snapshots are read one at a
    time and only while the client has room; a reading client is served."""
    proc = start(
        tmp_path, "", "  - name: iii-stream\n    config: {port: 0, host: 127.0.0.1}\n"
    )
    try:
        assert proc.proc is not None
        pid = proc.proc.pid
        with sdk_worker(proc.worker_url, "writer") as w:
            item = {"stream_name": "big", "group_id": "g", "item_id": "i"}
            call(w, "stream::set", {**item, "data": "x" * MIB})
            base = rss_bytes(pid)
            stalled = StalledSocket(proc.stream_url, rcvbuf=8192)
            stalled.sock.sendall(
                b"".join(
                    client_frame(
                        json.dumps(
                            {
                                "type": "join",
                                "data": {
                                    "subscriptionId": f"s-{i}",
                                    "streamName": "big",
                                    "groupId": "g",
                                },
                            }
                        ).encode()
                    )
                    for i in range(400)
                )
            )
            watcher = StreamWatcher(f"{proc.stream_url}/stream/big/small")
            peak = base
            sent = 0

            def delivered() -> bool:
                nonlocal peak, sent
                peak = max(peak, rss_bytes(pid))
                call(
                    w,
                    "stream::send",
                    {**item, "group_id": "small", "type": "t", "data": sent},
                )
                sent += 1
                return len(watcher.events()) >= 20

            wait_until(delivered, timeout=30, interval=0.1, message="live events")
            deadline = time.monotonic() + 3  # the joins have had time to pile up
            while time.monotonic() < deadline:
                peak = max(peak, rss_bytes(pid))
                time.sleep(0.05)
            watcher.close()
            stalled.close()
            growth = peak - base
            print(f"RSS {base / MIB:.0f} MiB -> peak {peak / MIB:.0f} MiB")
            assert growth < 150 * MIB, f"RSS grew {growth / MIB:.0f} MiB"
            assert call(w, "stream::get", item) == "x" * MIB
    finally:
        proc.stop()


def test_peers_that_never_read_do_not_hold_up_a_shutdown(tmp_path: Path) -> None:
    """A close handshake cannot reach a peer that reads nothing (the close
    frame queues behind what it left unread): such peers are dropped, and the
    engine stops at once, acknowledged writes kept."""
    proc = start(
        tmp_path, "", "  - name: iii-stream\n    config: {port: 0, host: 127.0.0.1}\n"
    )
    with sdk_worker(proc.worker_url, "writer") as w:
        call(w, "state::set", {"scope": "big", "key": "v", "value": "x" * MIB})
        item = {"stream_name": "big", "group_id": "g", "item_id": "i"}
        call(w, "stream::set", {**item, "data": "x" * MIB})
    worker_peer = StalledSocket(proc.worker_url, rcvbuf=8192)
    worker_peer.sock.sendall(
        b"".join(
            client_frame(
                json.dumps(
                    {
                        "type": "invokefunction",
                        "invocation_id": str(i),
                        "function_id": "state::get",
                        "data": {"scope": "big", "key": "v"},
                    }
                ).encode()
            )
            for i in range(20)
        )
    )
    stream_peer = StalledSocket(proc.stream_url, rcvbuf=8192)
    stream_peer.sock.sendall(
        b"".join(
            client_frame(
                json.dumps(
                    {
                        "type": "join",
                        "data": {
                            "subscriptionId": f"s-{i}",
                            "streamName": "big",
                            "groupId": "g",
                        },
                    }
                ).encode()
            )
            for i in range(20)
        )
    )
    try:
        time.sleep(1)  # the engine has written what the buffers take, and waits
        started = time.monotonic()
        assert proc.stop(timeout=12) == 0
        assert time.monotonic() - started < 5
    finally:
        worker_peer.close()
        stream_peer.close()
    proc.start()
    with sdk_worker(proc.worker_url, "reader") as r:
        assert call(r, "state::get", {"scope": "big", "key": "v"}) == "x" * MIB
    proc.stop()
