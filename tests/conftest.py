from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.harness import EngineProcess, Http, sdk_worker
from tests.wsclients import RawWorker


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    """One real engine per test module (ephemeral ports, temp data dir)."""
    data = tmp_path_factory.mktemp("engine") / "data"
    proc = EngineProcess(data).start()
    try:
        yield proc
    finally:
        if proc.alive():
            proc.stop()


@pytest.fixture
def fresh_engine(tmp_path: Path) -> Iterator[EngineProcess]:
    """An engine of the test's own (for restarts and kills)."""
    proc = EngineProcess(tmp_path / "data").start()
    try:
        yield proc
    finally:
        if proc.alive():
            proc.kill()


@pytest.fixture(scope="module")
def client(engine: EngineProcess) -> Iterator[object]:
    with sdk_worker(engine.worker_url, "test-client") as c:
        yield c


@pytest.fixture(scope="module")
def http(engine: EngineProcess) -> Http:
    return Http(engine.http_url)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A real aiohttp client session (no connection limit: many sockets)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        yield s


@pytest.fixture
async def worker(
    engine: EngineProcess, session: aiohttp.ClientSession
) -> AsyncIterator[RawWorker]:
    """A raw worker socket on the module's engine, past ``workerregistered``."""
    ws = await session.ws_connect(engine.worker_url, max_msg_size=64 * 1024 * 1024)
    w = RawWorker(ws)
    w.registered = await w.recv()  # the first frame, nothing skipped
    assert w.registered["type"] == "workerregistered", w.registered
    yield w
    await ws.close()
