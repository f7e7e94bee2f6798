"""Effectively-once delivery across a real worker death: the worker process is
killed with SIGKILL after its handler's write was committed and before the
handler answered; the record is delivered again to the restarted worker, and
the write lands once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.subscription_rules import delivery_trace
from tests.harness import ROOT, EngineProcess, Http, call, wait_until
from tests.harness import trigger_bound as bound

WORKER = ROOT / "tests" / "workers" / "counting_worker.py"
FUNCTION_ID = "death::count"  # as the worker registers it
KEYS = [str(i) for i in range(5)]
HANG_KEY = "2"


class Workers:
    """Runs ``tests/workers/counting_worker.py`` processes, each logging to a
    file of its own; kills whatever is left at the end."""

    def __init__(self, engine: EngineProcess, tmp: Path, source: str) -> None:
        self.tmp = tmp
        self.marks = tmp / "marks"
        self.marks.mkdir()
        self.env = {
            **os.environ,
            "III_URL": engine.worker_url,
            "SOURCE": source,
            "MARKS": str(self.marks),
            "HANG_KEY": HANG_KEY,
            "OTEL_ENABLED": "false",
        }
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        with (self.tmp / f"worker-{len(self.procs)}.log").open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, str(WORKER)],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(proc)
        return proc

    def handled(self, proc: subprocess.Popen[bytes]) -> set[str]:
        """The keys whose write ``proc``'s handler saw acknowledged."""
        suffix = f".{proc.pid}"
        return {
            p.name[: -len(suffix)]
            for p in self.marks.iterdir()
            if p.name.endswith(suffix)
        }

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-2000:]
            for p in sorted(self.tmp.glob("worker-*.log"))
        )

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


@pytest.fixture
def source() -> str:
    return f"death-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def workers(engine: EngineProcess, tmp_path: Path, source: str) -> Iterator[Workers]:
    running = Workers(engine, tmp_path, source)
    try:
        yield running
    finally:
        running.close()


def subscription(client: Any) -> dict[str, Any]:
    status = call(client, "iiilog::triggers::status", {})
    return next(s for s in status["subscriptions"] if s["function_id"] == FUNCTION_ID)


def log_of(engine: EngineProcess, scope: str) -> list[dict[str, Any]]:
    """Every record of ``scope``, oldest first, from the console's log API."""
    status, body = Http(engine.http_url).json(
        "GET", f"/_iiilog/api/log?scope={scope}&order=oldest&limit=1000"
    )
    assert status == 200, body
    return list(body["records"])


def test_a_write_before_a_worker_death_is_not_applied_again(
    engine: EngineProcess, client: Any, workers: Workers, source: str
) -> None:
    """Five records; the handler counts each with a ``state::update``
    increment. On record "2" the first worker process has its increment
    committed and acknowledged, then hangs and is SIGKILLed before answering.
    The restarted worker (same function id, same trigger config) gets "2"
    again (its handler really runs a second time: a marker from the second
    pid) and then "3" and "4". The counter ends at exactly 5, and the log
    holds five increments.

    Why this fails without deduplication: the redelivery of "2" carries the
    same delivery trace id, derived from (subscription key, offset), both
    unchanged, and the second run of the handler sends the very same
    increment under it. Only the engine's write tags (trace id, write number)
    turn that second increment into a replay of the first result; without them
    it is applied again and the counter reads 6, with six records in the log.
    """
    counts = f"{source}-counts"

    def counter() -> Any:
        return call(client, "state::get", {"scope": counts, "key": "n"})

    first = workers.start()
    wait_until(
        lambda: bound(client, FUNCTION_ID),
        timeout=30,
        message=f"the worker's trigger bound; worker log:\n{workers.logs()}",
    )
    offsets = {}
    for key in KEYS:
        call(client, "state::set", {"scope": source, "key": key, "value": key})
    for record in log_of(engine, source):
        offsets[record["key"]] = record["offset"]
    assert sorted(offsets) == KEYS

    wait_until(
        lambda: (workers.marks / "hung").exists(),
        timeout=30,
        message=f"the handler to hang after its write; worker log:\n{workers.logs()}",
    )
    # Written and acknowledged, not answered: "0" and "1" counted and answered
    # (one at a time: "3" and "4" wait behind "2").
    assert workers.handled(first) == {"0", "1", HANG_KEY}
    assert counter() == {"seen": 3}
    assert subscription(client)["position"] < offsets[HANG_KEY]

    first.send_signal(signal.SIGKILL)
    first.wait(10)
    wait_until(lambda: not bound(client, FUNCTION_ID), message="the worker gone")
    assert counter() == {"seen": 3}  # the committed increment stays

    second = workers.start()
    wait_until(
        lambda: workers.handled(second) >= {HANG_KEY, "3", "4"},
        timeout=30,
        message=f"the redelivery and the rest; worker log:\n{workers.logs()}",
    )
    wait_until(lambda: subscription(client)["lag"] == 0)
    assert counter() == {"seen": 5}  # not 6: "2" counted once

    # The log: one increment per record, each under its own delivery's trace
    # id, the one derived from the subscription and the record's offset.
    increments = log_of(engine, counts)
    assert [r["kind"] for r in increments] == ["state.update"] * 5
    key = subscription(client)["key"]
    assert [r["origin"]["trace_id"] for r in increments] == [
        delivery_trace(key, offsets[k]) for k in KEYS
    ]
    assert [r["new_value"] for r in increments] == [{"seen": n} for n in range(1, 6)]
