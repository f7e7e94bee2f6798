"""Durable topics through the real Node SDK (npm iii-sdk 0.22.1), as iii's
queue docs and the linkly tutorial write them: a Node worker subscribes two
functions with ``durable:subscriber`` (one failing, so its message is
dead-lettered) and publishes with ``iii::durable::publish``."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

from tests.harness import EngineProcess, call, wait_until
from tests.integration.test_todo import node_worker_dir

WORKER = """
import { registerWorker } from "iii-sdk";

const worker = registerWorker(process.env.III_URL, { workerName: "linkly-node" });

worker.registerFunction("link::on_link_updated", async (data) => {
  await worker.trigger({
    function_id: "state::set",
    payload: { scope: "links", key: data.code, value: { url: data.url } },
  });
  return {};
});
worker.registerTrigger({
  type: "durable:subscriber",
  function_id: "link::on_link_updated",
  config: { topic: "link.updated" },
});

worker.registerFunction("link::audit", async () => {
  throw new Error("audit is down");
});
worker.registerTrigger({
  type: "durable:subscriber",
  function_id: "link::audit",
  config: { topic: "link.updated", queue_config: { maxRetries: 0 } },
});

worker.registerFunction("link::update", async ({ code, url }) => {
  await worker.trigger({
    function_id: "iii::durable::publish",
    payload: { topic: "link.updated", data: { code, url } },
  });
  return { code, url };
});
"""


def test_node_worker_publishes_and_subscribes(
    engine: EngineProcess, client: Any
) -> None:
    node = shutil.which("node")
    assert node, "node is required for the Node worker tests"
    cwd = node_worker_dir("0.22.1")
    (cwd / "durable.mjs").write_text(WORKER)
    env = {**os.environ, "III_URL": engine.worker_url, "OTEL_ENABLED": "false"}
    proc = subprocess.Popen(
        [node, "durable.mjs"],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def bound() -> set[str]:
            listed = call(client, "engine::registered-triggers::list", {})
            return {
                t["function_id"]
                for t in listed["registered_triggers"]
                if t["trigger_type"] == "durable:subscriber"
            }

        wait_until(
            lambda: {"link::on_link_updated", "link::audit"} <= bound(), timeout=30
        )
        wait_until(
            lambda: (
                "link::update"
                in [
                    f["function_id"]
                    for f in call(client, "engine::functions::list", {})["functions"]
                ]
            ),
        )
        data = {"code": "abc", "url": "https://example.com"}
        assert call(client, "link::update", data) == data
        wait_until(
            lambda: (
                call(client, "state::get", {"scope": "links", "key": "abc"})
                == {"url": "https://example.com"}
            ),
            message="the durable subscriber ran",
        )

        def dead() -> list[dict[str, Any]]:
            return list(
                call(client, "engine::queue::dlq_messages", {"topic": "link.updated"})
            )

        wait_until(lambda: len(dead()) == 1, timeout=20, message="audit dead-lettered")
        letter = dead()[0]
        assert letter["payload"] == data and letter["function_id"] == "link::audit"
        assert letter["retries"] == 1 and "audit is down" in letter["error"]
    finally:
        proc.terminate()
        proc.wait(10)
