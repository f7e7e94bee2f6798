"""Configuration as iii's docs describe it, through the real Python SDK:
``configuration::register/set/get/list/schema``, the ``configuration`` trigger,
per-worker files ``config/<id>.yaml`` edited while the engine runs, and
``config.yaml`` changes picked up without a restart. Every change is a log
record: an entry survives a restart and can be read as of an earlier offset."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from iii import InvocationError, TriggerAction

from tests.harness import Http, call, engine_with, sdk_worker, trigger_bound, wait_until

MODULES = """\
  - name: iii-http
    config: {port: 0, host: 127.0.0.1}
  - name: iii-queue
    config:
      queue_configs:
        default: {max_retries: 2}
"""
SCHEMA = {
    "type": "object",
    "required": ["max_links"],
    "properties": {
        "max_links": {"type": "integer", "minimum": 1},
        "domain": {"type": "string"},
    },
    "additionalProperties": False,
}


def test_registry_functions_trigger_and_files(tmp_path: Path) -> None:
    engine = engine_with(tmp_path, MODULES, env={"LINKLY_DOMAIN": "lnk.example"})
    events: list[dict[str, Any]] = []
    lock = threading.Lock()

    def on_change(event: dict[str, Any]) -> None:
        with lock:
            events.append(event)

    try:
        with sdk_worker(engine.worker_url, "linkly") as w:
            w.register_function("linkly::on_config", on_change)
            w.register_trigger(
                {
                    "type": "configuration",
                    "function_id": "linkly::on_config",
                    "config": {
                        "configuration_id": "linkly",
                        "event_types": ["configuration:updated"],
                    },
                }
            )
            wait_until(lambda: trigger_bound(w, "linkly::on_config"))
            stored = call(
                w,
                "configuration::register",
                {
                    "id": "linkly",
                    "name": "Linkly",
                    "description": "Link settings",
                    "schema": SCHEMA,
                    "initial_value": {"max_links": 10, "domain": "${LINKLY_DOMAIN:x}"},
                },
            )
            assert stored["value"] == {"max_links": 10, "domain": "${LINKLY_DOMAIN:x}"}
            assert call(w, "configuration::get", {"id": "linkly"}) == {
                "id": "linkly",
                "value": {"max_links": 10, "domain": "lnk.example"},
            }
            raw = call(w, "configuration::get", {"id": "linkly", "raw": True})
            assert raw["value"]["domain"] == "${LINKLY_DOMAIN:x}"
            listed = call(w, "configuration::list", {})["configurations"]
            mine = next(c for c in listed if c["id"] == "linkly")
            assert "value" not in mine and mine["schema"] == SCHEMA
            assert {"http", "queue"} <= {c["id"] for c in listed}  # the engine's own
            schema = call(w, "configuration::schema", {"id": "linkly"})
            assert schema["name"] == "Linkly" and schema["schema"] == SCHEMA

            # set: validated, answered with old and new, and a trigger event
            answer = call(
                w, "configuration::set", {"id": "linkly", "value": {"max_links": 20}}
            )
            assert answer == {
                "old_value": {"max_links": 10, "domain": "${LINKLY_DOMAIN:x}"},
                "new_value": {"max_links": 20},
            }
            wait_until(lambda: events, message="configuration:updated")
            event = events[0]
            assert event["type"] == "configuration" and event["id"] == "linkly"
            assert event["event_type"] == "configuration:updated"
            assert event["old_value"]["domain"] == "lnk.example"
            assert event["new_value"] == {"max_links": 20}
            assert event["name"] == "Linkly" and event["schema"] == SCHEMA
            for payload, code in (
                ({"id": "linkly", "value": {"max_links": 0}}, "SCHEMA_INVALID"),
                ({"id": "linkly", "value": {"max_links": 1, "x": 1}}, "SCHEMA_INVALID"),
                ({"id": "nope", "value": {}}, "NOT_REGISTERED"),
            ):
                with pytest.raises(InvocationError) as err:
                    call(w, "configuration::set", payload)
                assert err.value.code == code
            with pytest.raises(InvocationError) as err:
                call(w, "configuration::get", {"id": "nope"})
            assert err.value.code == "NOT_FOUND"
            with pytest.raises(InvocationError) as err:
                call(
                    w,
                    "configuration::register",
                    {"id": "Bad Id", "schema": {}, "name": "x"},
                )
            assert err.value.code == "INVALID_ID"

            # the file the fs layout keeps, edited by hand while running
            path = tmp_path / "config" / "linkly.yaml"
            wait_until(path.exists, message="config/linkly.yaml written")
            doc = yaml.safe_load(path.read_text())
            assert doc["id"] == "linkly" and doc["value"] == {"max_links": 20}
            doc["value"]["max_links"] = 42
            path.write_text(yaml.safe_dump(doc))
            wait_until(
                lambda: (
                    call(w, "configuration::get", {"id": "linkly"})["value"]
                    == {"max_links": 42}
                ),
                message="the hand edit applied live",
            )
            wait_until(lambda: len(events) == 2)
            assert events[1]["new_value"] == {"max_links": 42}
            # an edit the schema refuses is rejected; the good value stays
            doc["value"]["max_links"] = "lots"
            path.write_text(yaml.safe_dump(doc))
            wait_until(lambda: "edit rejected" in engine.log())
            assert call(w, "configuration::get", {"id": "linkly"})["value"] == {
                "max_links": 42
            }
        engine.stop()
        engine.start()
        with sdk_worker(engine.worker_url, "after") as w:
            now = call(w, "configuration::get", {"id": "linkly"})
            assert now["value"] == {"max_links": 42}
            # time travel: as of the offset of the first value
            head = call(w, "iiilog::triggers::status", {})["head"]
            past = [
                call(w, "configuration::get", {"id": "linkly", "offset": o})
                for o in range(1, head + 1)
                if _exists(w, o)
            ]
            assert past[0]["value"]["max_links"] == 10
    finally:
        engine.stop()


def _exists(client: Any, offset: int) -> bool:
    try:
        call(client, "configuration::get", {"id": "linkly", "offset": offset})
    except InvocationError:
        return False
    return True


def test_worker_files_and_config_yaml_apply_live(tmp_path: Path) -> None:
    engine = engine_with(tmp_path, MODULES)
    done: list[Any] = []
    try:
        with sdk_worker(engine.worker_url, "clicks") as w:
            w.register_function("link::record_click", done.append)

            def enqueue() -> Any:
                return w.trigger(
                    {
                        "function_id": "link::record_click",
                        "payload": {"code": "abc"},
                        "action": TriggerAction.Enqueue(queue="clicks"),
                    }
                )

            with pytest.raises(InvocationError):
                enqueue()  # no such queue yet
            # linkly chapter 4: define the queue in config/queue.yaml, no restart
            (tmp_path / "config").mkdir(exist_ok=True)
            (tmp_path / "config" / "queue.yaml").write_text(
                "id: queue\nvalue:\n  queue_configs:\n    clicks:\n"
                "      type: standard\n      max_retries: 5\n      concurrency: 5\n"
            )
            wait_until(
                lambda: (
                    call(w, "configuration::get", {"id": "queue"})["value"]
                    .get("queue_configs", {})
                    .get("clicks")
                    is not None
                ),
                message="queue.yaml applied",
            )
            assert "messageReceiptId" in enqueue()
            wait_until(lambda: done == [{"code": "abc"}])
            value = call(w, "configuration::get", {"id": "queue"})["value"]
            assert set(value["queue_configs"]) == {"default", "clicks"}  # merged

            # config.yaml itself: a route's CORS, changed while running
            w.register_function("hello::get", lambda req: {"status_code": 200})
            w.register_trigger(
                {
                    "type": "http",
                    "function_id": "hello::get",
                    "config": {"api_path": "hello", "http_method": "GET"},
                }
            )
            api = Http(engine.http_url)
            wait_until(lambda: api.request("GET", "/hello")[0] == 200)
            origin = {"Origin": "https://app.example"}
            before = api.request("GET", "/hello", headers=origin)[1]
            assert before.get("access-control-allow-origin") == "https://app.example"
            config = tmp_path / "config.yaml"
            config.write_text(
                config.read_text().replace(
                    "config: {port: 0, host: 127.0.0.1}\n  - name: iii-queue",
                    "config:\n      port: 0\n      host: 127.0.0.1\n      cors:\n"
                    "        allowed_origins: ['https://other.example']\n"
                    "  - name: iii-queue",
                )
            )

            def allowed() -> str | None:
                headers = api.request("GET", "/hello", headers=origin)[1]
                return headers.get("access-control-allow-origin")

            # permissive before; now only the listed origin is allowed
            wait_until(lambda: allowed() is None, message="CORS applied live")
            other = {"Origin": "https://other.example"}
            headers = api.request("GET", "/hello", headers=other)[1]
            assert headers.get("access-control-allow-origin") == "https://other.example"
            http_value = call(w, "configuration::get", {"id": "http"})["value"]
            assert http_value["cors"] == {"allowed_origins": ["https://other.example"]}
    finally:
        engine.stop()
