"""A worker that dies between its write and its answer (for
``tests/integration/test_worker_death.py``).

It registers ``death::count`` behind a durable ``state`` trigger on scope
``$SOURCE`` (one record at a time: ``max_in_flight: 1``). For each record the
handler increments ``seen`` in ``$SOURCE-counts``/``n`` with ``state::update``;
once that call has answered (the increment is committed) it creates
``$MARKS/<key>.<pid>``. On the record whose key is ``$HANG_KEY`` it then, the
first time only (while ``$MARKS/hung`` does not exist), creates ``$MARKS/hung``
and blocks instead of answering: the test kills the process there. A second
process started the same way (same function id, same trigger config) gets the
record again and answers it.

Environment: ``III_URL``, ``SOURCE``, ``MARKS``, ``HANG_KEY``.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from iii import InitOptions, register_worker

FUNCTION_ID = "death::count"


def main() -> None:
    source = os.environ["SOURCE"]
    marks = Path(os.environ["MARKS"])
    hang_key = os.environ["HANG_KEY"]
    iii = register_worker(
        os.environ["III_URL"],
        InitOptions(
            worker_name="counting",
            otel={"enabled": False},
            enable_metrics_reporting=False,
        ),
    )

    def count(event: dict[str, Any]) -> None:
        key = event["key"]
        iii.trigger(
            {
                "function_id": "state::update",
                "payload": {
                    "scope": f"{source}-counts",
                    "key": "n",
                    "ops": [{"type": "increment", "path": "seen", "by": 1}],
                },
            }
        )
        (marks / f"{key}.{os.getpid()}").touch()  # written (acknowledged)
        if key == hang_key and not (marks / "hung").exists():
            (marks / "hung").touch()
            threading.Event().wait()  # never answers: SIGKILL ends it here

    iii.register_function(FUNCTION_ID, count)
    iii.register_trigger(
        {
            "type": "state",
            "function_id": FUNCTION_ID,
            "config": {"scope": source, "max_in_flight": 1},
        }
    )
    stop: list[int] = []  # no lock in a signal handler (see the todo worker)
    signal.signal(signal.SIGTERM, lambda signum, _: stop.append(signum))
    while not stop:
        time.sleep(0.1)
    iii.shutdown()


if __name__ == "__main__":
    main()
