"""``LogStore.read_matching``, part of the conformance suite (every backend of
``conftest.backend``): the console's filtered, paged log view. Filters by
space, scope, key and offset range combine; pages come oldest or newest first;
a filter value is data, never SQL."""

from __future__ import annotations

import pytest

from eventlog import LogQuery, LogStore, PruneSends
from tests.conformance.test_logstore import bump, now_ms, put, remove, send


async def offsets(store: LogStore, **filters: object) -> list[int]:
    return [r.offset for r in await store.read_matching(LogQuery(**filters))]  # type: ignore[arg-type]


async def test_filters_combine_and_pages_come_in_either_order(
    store: LogStore,
) -> None:
    await store.commit([put("a", "k1", {"n": 1}), put("a", "k2", 1), put("b", "k1", 1)])
    await store.commit([send("a", "g", 0), bump("a", "k1"), remove("a", "k2")])
    await store.commit([put("a' OR scope <> '", "k1", 1), put("a", "k1", 3)])
    # 1 a/k1  2 a/k2  3 b/k1  4 send a/g  5 a/k1  6 a/k2 (delete)  7 odd  8 a/k1
    assert await offsets(store) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert await offsets(store, space="state") == [1, 2, 3, 5, 6, 7, 8]
    assert await offsets(store, space="stream") == [4]
    assert await offsets(store, space="queue") == []
    assert await offsets(store, scope="a") == [1, 2, 4, 5, 6, 8]
    assert await offsets(store, scope="a", space="state") == [1, 2, 5, 6, 8]
    assert await offsets(store, scope="a", key="k1") == [1, 5, 8]
    assert await offsets(store, key="k1") == [1, 3, 5, 7, 8]
    assert await offsets(store, scope="a' OR scope <> '") == [7]
    assert await offsets(store, scope="%") == []  # no pattern matching
    # Offset ranges: after < offset <= until.
    assert await offsets(store, after=2, until=5) == [3, 4, 5]
    assert await offsets(store, after=8) == []
    assert await offsets(store, scope="a", after=1, until=6) == [2, 4, 5, 6]
    # Pages: the newest first ends at `until`; the oldest first starts after `after`.
    assert await offsets(store, newest_first=True, limit=3) == [8, 7, 6]
    assert await offsets(store, newest_first=True, limit=3, until=5) == [5, 4, 3]
    assert await offsets(store, limit=2, after=3) == [4, 5]
    assert await offsets(store, scope="a", key="k1", newest_first=True, limit=2) == [
        8,
        5,
    ]
    # The records come back whole, as any other read gives them.
    (record,) = await store.read_matching(LogQuery(after=4, until=5))
    assert record == await store.read_one(5)
    assert record.kind == "state.update" and record.new_value == {"n": 2}


async def test_pruned_sends_are_gone_from_the_view(store: LogStore) -> None:
    await store.commit([send("s", "g", 1), put("s", "k", 1), send("s", "g", 2)])
    await store.commit([], [PruneSends(now_ms() + 1000)])
    assert await offsets(store, scope="s") == [2]


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"space": "view"}, "space must be one of state, stream, queue"),
        ({"limit": 0}, "limit must be from 1 to 1000"),
        ({"limit": 1001}, "limit must be from 1 to 1000"),
        ({"after": -1}, "offsets must not be negative"),
        ({"until": -5}, "offsets must not be negative"),
    ],
)
def test_bad_queries_are_refused_before_any_read(
    filters: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        LogQuery(**filters)  # type: ignore[arg-type]
