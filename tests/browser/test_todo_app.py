"""The todo web app in a real browser (examples/todo/web, served by the todo
worker's ``http`` triggers): two tabs stay in step through the stream, the
counters follow, the first render and the live changes agree while writes are
going on, and an open page rides out ``kill -9`` of the engine."""

from __future__ import annotations

import re
import threading
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import TodoStack, screenshot
from tests.harness import wait_until
from tests.wsclients import StreamWatcher

TIMEOUT_MS = 15_000


def open_app(context: Any, stack: TodoStack) -> Any:
    page = context.new_page()
    page.goto(f"{stack.url}/")
    expect(page.get_by_role("status")).to_have_text("Live", timeout=TIMEOUT_MS)
    return page


def add(page: Any, title: str) -> None:
    page.get_by_label("New todo").fill(title)
    page.get_by_role("button", name="Add").click()


def item(page: Any, title: str) -> Any:
    return page.get_by_role("listitem").filter(has_text=title)


def shown(page: Any) -> list[str]:
    """The todo ids the page shows, in order."""
    return list(
        page.locator("#todos > li").evaluate_all("els => els.map(e => e.dataset.id)")
    )


def test_two_tabs_stay_in_step(browser: Any, stack: TodoStack) -> None:
    context = browser.new_context()  # two tabs of one browser: one localStorage
    a, b = open_app(context, stack), open_app(context, stack)
    counters_a, counters_b = a.locator("#counters"), b.locator("#counters")
    expect(counters_a).to_have_text("0 total, 0 completed")

    add(a, "milk")
    expect(b.get_by_role("checkbox", name="milk")).to_be_visible(timeout=TIMEOUT_MS)
    expect(a.get_by_label("New todo")).to_have_value("")
    expect(counters_b).to_have_text("1 total, 0 completed", timeout=TIMEOUT_MS)
    add(b, "bread")
    expect(a.get_by_role("checkbox", name="bread")).to_be_visible(timeout=TIMEOUT_MS)
    expect(counters_a).to_have_text("2 total, 0 completed", timeout=TIMEOUT_MS)

    b.get_by_role("checkbox", name="milk").check()
    expect(a.get_by_role("checkbox", name="milk")).to_be_checked(timeout=TIMEOUT_MS)
    expect(counters_a).to_have_text("2 total, 1 completed", timeout=TIMEOUT_MS)
    expect(counters_b).to_have_text("2 total, 1 completed", timeout=TIMEOUT_MS)

    item(a, "milk").get_by_role("button", name="Delete").click()
    expect(item(b, "milk")).to_have_count(0, timeout=TIMEOUT_MS)
    expect(counters_b).to_have_text("1 total, 0 completed", timeout=TIMEOUT_MS)
    expect(counters_a).to_have_text("1 total, 0 completed", timeout=TIMEOUT_MS)

    # The pages show what the engine holds, in its order.
    server = [t["id"] for t in stack.todos()]
    assert shown(a) == shown(b) == server
    add(a, "eggs")
    add(a, "jam")
    expect(b.get_by_role("listitem")).to_have_count(3, timeout=TIMEOUT_MS)
    b.get_by_role("checkbox", name="jam").check()
    expect(counters_a).to_have_text("3 total, 1 completed", timeout=TIMEOUT_MS)
    screenshot(a, "todo-app.png")
    context.close()


def test_bad_input_is_shown_not_lost(browser: Any, stack: TodoStack) -> None:
    page = open_app(browser.new_context(), stack)
    page.get_by_label("New todo").fill("   ")
    page.get_by_role("button", name="Add").click()  # blank: not even sent
    add(page, "ok")
    expect(page.get_by_role("checkbox", name="ok")).to_be_visible(timeout=TIMEOUT_MS)
    assert [t["title"] for t in stack.todos()] == ["ok"]


def test_first_render_and_live_changes_agree_under_writes(
    browser: Any, stack: TodoStack
) -> None:
    """Pages open while todos are being created, toggled and deleted: each
    ends with exactly the engine's list (none missed, none twice)."""
    stop = threading.Event()
    made: list[str] = []

    def write() -> None:
        n = 0
        while not stop.is_set():
            status, todo = stack.api.json("POST", "/todos", {"title": f"w{n}"})
            assert status == 201
            made.append(todo["id"])
            if n % 3 == 1:
                stack.api.json("POST", "/todos/toggle", {"id": made[-2]})
            if n % 5 == 4:
                stack.api.json("POST", "/todos/delete", {"id": made[-3]})
            n += 1

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        wait_until(lambda: len(made) >= 10, message="writes under way")
        pages = [open_app(browser.new_context(), stack) for _ in range(3)]
        wait_until(lambda: len(made) >= 40, timeout=30, message="more writes")
    finally:
        stop.set()
        writer.join(30)
    server = stack.todos()
    for page in pages:
        expect(page.get_by_role("listitem")).to_have_count(
            len(server), timeout=TIMEOUT_MS
        )
        completed = sum(1 for t in server if t["completed"])
        expect(page.locator("#counters")).to_have_text(
            f"{len(server)} total, {completed} completed", timeout=TIMEOUT_MS
        )
        assert shown(page) == [t["id"] for t in server]
        for todo in server:
            box = page.get_by_role("checkbox", name=todo["title"], exact=True)
            expect(box).to_be_checked(checked=todo["completed"])


def test_an_open_page_rides_out_kill_9(browser: Any, stack: TodoStack) -> None:
    context = browser.new_context()
    page = open_app(context, stack)
    add(page, "before")
    expect(page.get_by_role("checkbox", name="before")).to_be_visible(
        timeout=TIMEOUT_MS
    )
    before = stack.todos()[0]

    stack.engine.kill()
    expect(page.get_by_role("status")).to_have_text(
        re.compile("Reconnecting"), timeout=TIMEOUT_MS
    )
    # Keep the page away while the engine is back and changes are made.
    context.set_offline(True)
    stack.engine.start()
    stack.wait_for_worker(timeout=60)
    watcher = StreamWatcher(f"{stack.engine.stream_url}/stream/todos-live/all")
    try:
        for title in ("while-away-1", "while-away-2"):
            assert stack.api.json("POST", "/todos", {"title": title})[0] == 201
        assert stack.api.json("POST", "/todos/toggle", {"id": before["id"]})[0] == 200
        wait_until(
            lambda: sum(m["event"]["type"] == "event" for m in watcher.messages) >= 3,
            message="the changes pushed to the stream",
        )
    finally:
        watcher.close()
    expect(page.get_by_role("status")).to_have_text(re.compile("Reconnecting"))
    context.set_offline(False)

    expect(page.get_by_role("status")).to_have_text("Live", timeout=30_000)
    server = stack.todos()
    expect(page.get_by_role("listitem")).to_have_count(3, timeout=TIMEOUT_MS)
    assert shown(page) == [t["id"] for t in server]
    expect(page.get_by_role("checkbox", name="before")).to_be_checked()
    expect(page.locator("#counters")).to_have_text("3 total, 1 completed")
    # Live again: a change from elsewhere still arrives, once.
    assert stack.api.json("POST", "/todos/delete", {"id": before["id"]})[0] == 200
    expect(page.get_by_role("listitem")).to_have_count(2, timeout=TIMEOUT_MS)
    expect(page.locator("#counters")).to_have_text("2 total, 0 completed")
    # A reload resumes from the offset kept in localStorage, same list.
    page.reload()
    expect(page.get_by_role("status")).to_have_text("Live", timeout=TIMEOUT_MS)
    expect(page.get_by_role("listitem")).to_have_count(2, timeout=TIMEOUT_MS)
    assert shown(page) == [t["id"] for t in stack.todos()]
    context.close()
