"""``wait_event``: an event with a timeout, and a cancellation that arrives as
the event is set still ends the loop waiting on it.

The engine's background loops (queues, the tail's follower, the cluster's
sync and leases, observers) wait like this and are cancelled at shutdown. With
``asyncio.wait_for`` on Python 3.11 a cancellation in the same turn as the
event's ``set()`` was swallowed: the loop went on and the engine never
finished stopping (seen as "engine did not stop within 15 s of SIGTERM" after
a queue's last delivery).
"""

from __future__ import annotations

import asyncio
import time

from eventlog import wait_event


async def test_set_timeout_and_no_limit() -> None:
    event = asyncio.Event()
    started = time.monotonic()
    assert await wait_event(event, 0.05) is False
    assert time.monotonic() - started >= 0.05
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await wait_event(event, None) is True
    assert await wait_event(event, 0) is True  # already set: no wait


async def test_a_cancel_as_the_event_is_set_ends_the_loop() -> None:
    event = asyncio.Event()
    rounds = 0

    async def loop() -> None:  # the shape of QueueModule._run and the others
        nonlocal rounds
        while True:
            rounds += 1
            await wait_event(event, 10)
            event.clear()

    task = asyncio.get_running_loop().create_task(loop())
    await asyncio.sleep(0.01)  # waiting on the event now
    event.set()
    task.cancel()  # the same turn of the loop as the set()
    done, _ = await asyncio.wait({task}, timeout=2)
    try:
        assert task in done and task.cancelled(), (
            f"the cancellation was swallowed: the loop went on ({rounds} rounds)"
        )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
