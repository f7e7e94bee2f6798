"""Several real engine nodes on one PostgreSQL log, for the cluster tests.

Each node is an ``EngineProcess`` (its own ports and data dir) started with the
same database URL: a schema of the test's own on the machine's PostgreSQL,
dropped at the end. Cluster timings are shortened so failover happens within
the test's patience (a node is dead after 2 s without a heartbeat).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.harness import ROOT, EngineProcess, wait_until
from tests.storage import pg_schema

NODE_CONFIG = """\
workers:
  - name: iii-worker-manager
    config: {{host: 127.0.0.1, port: 0}}
  - name: iii-http
    config: {{host: 127.0.0.1, port: 0, default_timeout: 10000}}
  - name: iii-stream
    config: {{host: 127.0.0.1, port: 0}}
  - name: iii-state
  - name: iii-cron
  - name: iii-pubsub
  - name: iii-queue
    config:
      queue_configs:
        jobs: {{max_retries: 3, concurrency: 4, backoff_ms: 100}}
  - name: iiilog-eventlog
    config: {{database_url: "{url}"}}
  - name: iiilog-cluster
    config:
      heartbeat_ms: 200
      node_ttl_ms: 2000
      lease_ttl_ms: 2000
      refresh_ms: 200
  - name: iiilog-projections
    config: {{snapshot_interval_s: 1}}
  - name: iiilog-triggers
    config: {{delivery_timeout_ms: 5000, backoff_ms: 100}}
"""


class Cluster:
    def __init__(self, root: Path, url: str) -> None:
        self.root = root
        self.url = url
        self.config = root / "node.yaml"
        self.config.write_text(NODE_CONFIG.format(url=url))
        self.nodes: list[EngineProcess] = []
        self.workers: list[subprocess.Popen[bytes]] = []

    def node(self) -> EngineProcess:
        """Start one more node."""
        proc = EngineProcess(
            self.root / f"node{len(self.nodes)}", config=self.config
        ).start()
        self.nodes.append(proc)
        return proc

    def todo_worker(self, node: EngineProcess, name: str) -> subprocess.Popen[bytes]:
        """The Python todo example connected to ``node``."""
        env = {
            **os.environ,
            "III_URL": node.worker_url,
            "III_WORKER_NAME": name,
            "OTEL_ENABLED": "false",
        }
        log = (self.root / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "examples/todo/worker.py"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.workers.append(proc)
        return proc

    def status(self) -> dict[str, Any]:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "api",
                "status",
                "--json",
                "--database-url",
                self.url,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)  # type: ignore[no-any-return]

    def replay(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "scripts/replay.py",
                "--database-url",
                self.url,
                "--quiet",
                *extra,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def close(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait(10)
        for proc in self.nodes:
            if proc.alive():
                proc.kill()


@contextlib.contextmanager
def cluster(root: Path) -> Iterator[Cluster]:
    schema = f"iiilog_cluster_{uuid.uuid4().hex[:10]}"
    url = asyncio.run(pg_schema(schema))
    c = Cluster(root, url)
    try:
        yield c
    finally:
        c.close()
        asyncio.run(pg_schema(schema, drop=True))


def live_nodes(c: Cluster, n: int) -> None:
    wait_until(lambda: len(c.status()["cluster"]["nodes"]) == n, 15, 0.2, "nodes")
