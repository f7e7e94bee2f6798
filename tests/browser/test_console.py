"""The operator console and ``/metrics`` after a todo job done in the browser:
the todo worker and its subscriptions (lag 0), its functions and triggers,
projections, the page's stream subscription, the log filtered to one todo, time
travel to before and after its toggle; and ``/metrics`` parsed with
``prometheus_client``, its counters moved by exactly the job."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect
from prometheus_client.parser import text_string_to_metric_families

from tests.browser.conftest import TodoStack, screenshot
from tests.browser.test_todo_app import TIMEOUT_MS, add, item, open_app


def scrape(stack: TodoStack) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of ``/metrics``, by (name, labels)."""
    status, headers, body = stack.api.request("GET", "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        assert family.name.startswith("iiilog_")
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_console_and_metrics_follow_the_job(browser: Any, stack: TodoStack) -> None:
    before = scrape(stack)
    context = browser.new_context()
    app = open_app(context, stack)
    add(app, "milk")
    expect(app.get_by_role("checkbox", name="milk")).to_be_visible(timeout=TIMEOUT_MS)
    add(app, "bread")
    expect(app.get_by_role("checkbox", name="bread")).to_be_visible(timeout=TIMEOUT_MS)
    app.get_by_role("checkbox", name="milk").check()
    item(app, "bread").get_by_role("button", name="Delete").click()
    expect(app.locator("#counters")).to_have_text(
        "1 total, 1 completed", timeout=TIMEOUT_MS
    )
    (milk,) = stack.todos()

    console = context.new_page()
    console.goto(f"{stack.url}/_iiilog/console")
    worker = console.locator('#workers tr[data-worker="reactive-backend"]')
    expect(worker.locator('[data-col="runtime"]')).to_have_text("python")
    expect(worker.locator('[data-col="sdk"]')).to_have_text("0.25.0")
    create = console.locator('#functions tr[data-function="todos::create"]')
    expect(create.locator('[data-col="triggers"]')).to_contain_text(
        '"api_path":"todos"'
    )
    for function_id in ("todos::on-change", "todos::update-metrics"):
        row = console.locator(f'#subscriptions tr[data-function="{function_id}"]')
        expect(row.locator('[data-col="lag"]')).to_have_text("0", timeout=TIMEOUT_MS)
        expect(row.locator('[data-col="parked"]')).to_have_text("0")
        expect(row.get_by_role("button", name="Redeliver")).to_be_disabled()
    for name in ("todos", "todo-metrics"):
        row = console.locator(f'#projections tr[data-projection="{name}"]')
        expect(row.locator('[data-col="lag"]')).to_have_text("0", timeout=TIMEOUT_MS)
        expect(row.locator('[data-col="start"]')).to_contain_text(" records to ")
    expect(console.locator("#streams tbody")).to_contain_text("todos-live / all")
    expect(console.locator("#head")).to_have_text(re.compile(r"^\d+$"))

    # The log, filtered to the milk todo: created, then toggled.
    log = console.locator("#log-filter")
    log.get_by_label("Scope").fill("todos")
    log.get_by_label("Key").fill(milk["id"])
    log.get_by_role("button", name="Filter").click()
    rows = console.locator("#log tbody tr[data-offset]")
    expect(rows).to_have_count(2, timeout=TIMEOUT_MS)
    expect(rows.nth(0).locator('[data-col="kind"]')).to_have_text("state.update")
    expect(rows.nth(1).locator('[data-col="kind"]')).to_have_text("state.set")
    toggled = int(rows.nth(0).get_attribute("data-offset") or 0)
    expect(rows.nth(0).locator('[data-col="origin"]')).to_have_text("state::update")

    # Time travel: the todo right before its toggle, and right after it.
    travel = console.locator("#tt-form")
    travel.get_by_label("Scope").fill("todos")
    travel.get_by_label("Key").fill(milk["id"])
    travel.get_by_label("As of offset").fill(str(toggled - 1))
    travel.get_by_role("button", name="Show").click()
    result = console.locator("#tt-result")
    expect(result).to_contain_text('"completed":false', timeout=TIMEOUT_MS)
    expect(console.locator("#tt-caption")).to_contain_text(
        f"as of offset {toggled - 1}"
    )
    travel.get_by_label("As of offset").fill(str(toggled))
    travel.get_by_role("button", name="Show").click()
    expect(result).to_contain_text('"completed":true', timeout=TIMEOUT_MS)
    # The whole scope as of the toggle, from the log row's offset button:
    # both todos, bread not yet deleted.
    rows.nth(0).get_by_role("button", name=str(toggled)).click()
    expect(console.locator("#tt-result li")).to_have_count(2, timeout=TIMEOUT_MS)
    expect(result).to_contain_text('"title":"bread"')
    expect(console.locator("#engine-lines")).to_contain_text("log head at offset")
    console.set_viewport_size({"width": 1280, "height": 900})
    console.evaluate("window.scrollTo(0, 0)")
    screenshot(console, "console.png")

    after = scrape(stack)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # Two creates, a toggle, a delete: four state records; the counters,
    # the pushes and the cursors add their own records on top.
    assert moved("iiilog_records_appended_total") >= 4
    assert value(after, "iiilog_log_head") >= value(before, "iiilog_log_head") + 4
    ok = {"outcome": "ok"}
    assert moved("iiilog_invocations_total", function_id="todos::create", **ok) == 2
    assert moved("iiilog_invocations_total", function_id="todos::toggle", **ok) == 1
    assert moved("iiilog_invocations_total", function_id="todos::delete", **ok) == 1
    assert moved("iiilog_invocations_total", function_id="state::set", **ok) == 2
    assert moved("iiilog_http_requests_total", route="POST /todos", status="201") == 2
    assert (
        moved("iiilog_http_requests_total", route="POST /todos/toggle", status="200")
        == 1
    )
    assert moved("iiilog_commit_batch_size_count") >= 1
    assert moved("iiilog_commit_seconds_count") == moved(
        "iiilog_commit_batch_size_count"
    )
    for function_id in ("todos::on-change", "todos::update-metrics"):
        labels = {"function_id": function_id, "trigger_type": "state"}
        lags = [
            v
            for (name, lbls), v in after.items()
            if name == "iiilog_subscription_lag" and set(labels.items()) <= lbls
        ]
        assert lags == [0.0]
    assert value(after, "iiilog_workers_connected") >= 1
    assert value(after, "iiilog_stream_clients") >= 1
    assert value(after, "iiilog_stream_subscriptions") >= 1
    context.close()
