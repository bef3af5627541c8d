"""``Dedup`` and ``Progress`` on their own, for what ``tests/test_engine.py`` does not already pin down."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow_provider_conversations.engine.walk import Dedup, Progress


def ts(minute: int) -> datetime:
    return datetime(2026, 1, 1, 0, minute, tzinfo=UTC)


def item(item_id: str) -> dict[str, Any]:
    return {"id": item_id}


# ---------------------------------------------------------------------------------------------- Dedup


def test_dedup_behind_the_frontier_is_a_repeat_when_the_pagination_can_repeat():
    d = Dedup("asc", repeats=True)
    assert d.first_time("a", ts(5))
    assert not d.first_time("z", ts(3))  # never seen, but behind the frontier: offset paging served it before
    assert d.order == "asc"  # not disorder: the order still holds


def test_dedup_tells_of_disorder_once_with_the_item_its_time_and_the_frontier():
    told: list[tuple[str, datetime, datetime]] = []
    d = Dedup("asc", repeats=False, on_disorder=lambda *args: told.append(args))
    assert d.first_time("a", ts(5))
    assert d.first_time("b", ts(5))  # a new id at the frontier instant: kept, no disorder
    assert told == []
    assert d.first_time("c", ts(3))
    assert told == [("c", ts(3), ts(5))]
    assert d.order is None  # every id from now on
    assert d.first_time("e", ts(1))  # further out-of-order items are kept without telling again
    assert told == [("c", ts(3), ts(5))]
    assert [d.first_time(i, ts(9)) for i in "abce"] == [False] * 4  # and every id is remembered


def test_dedup_descending_disorder_falls_back_too():
    told: list[str] = []
    d = Dedup("desc", repeats=False, on_disorder=lambda i, t, f: told.append(i))
    assert d.first_time("a", ts(3))
    assert d.first_time("b", ts(5))  # newer in a newest-first walk
    assert told == ["b"]
    assert not d.first_time("a", ts(3))


def test_dedup_without_a_listener_still_falls_back():
    d = Dedup("asc", repeats=False)
    assert d.first_time("a", ts(5))
    assert d.first_time("b", ts(3))
    assert not d.first_time("a", ts(5))
    assert d.order is None


# ---------------------------------------------------------------------------------------------- Progress


def test_progress_of_a_walk_that_cannot_repeat_is_every_item():
    p = Progress("asc", repeats=False)
    page = [item("a"), item("a")]
    assert p.fresh(page, [ts(1), ts(1)], "id") == page
    assert p.fresh(page, [ts(1), ts(1)], "id") == page  # a repeated cursor is the fingerprints' job


def test_progress_ordered_counts_only_what_is_beyond_the_frontier():
    p = Progress("desc", repeats=True)
    assert p.fresh([item("a"), item("b")], [ts(9), ts(8)], "id") == [item("a"), item("b")]
    # a page shifted by inserts: a and b again, then c at b's instant and d older
    assert p.fresh([item("a"), item("b"), item("c"), item("d")], [ts(9), ts(8), ts(8), ts(7)], "id") == [
        item("c"), item("d")]
    assert p.fresh([item("c"), item("d")], [ts(8), ts(7)], "id") == []


def test_progress_unordered_counts_ids_never_seen_on_any_page():
    p = Progress(None, repeats=True)
    assert p.fresh([item("a"), item("b")], [ts(1), ts(2)], "id") == [item("a"), item("b")]
    assert p.fresh([item("b"), item("c"), item("a")], [ts(0), ts(9), ts(5)], "id") == [item("c")]
    assert p.fresh([{"cid": 7}], [ts(1)], "cid") == [{"cid": 7}]  # read by the walk's id field
    assert p.fresh([{"cid": 7}], [ts(1)], "cid") == []


def test_progress_reorder_judges_anew_and_only_when_the_order_changes():
    p = Progress(None, repeats=True)
    p.fresh([item("a")], [ts(5)], "id")
    p.reorder(None)  # unchanged: memory kept
    assert p.fresh([item("a")], [ts(5)], "id") == []
    p.reorder("desc")  # a paginator proved the order: judged by the frontier from now on
    assert p.order == "desc"
    assert p.fresh([item("a")], [ts(5)], "id") == [item("a")]
    p.reorder("desc")
    assert p.fresh([item("a")], [ts(5)], "id") == []
    p.reorder(None)  # proven wrong: by ids again, from scratch
    assert p.order is None
    assert p.fresh([item("a"), item("z")], [ts(5), ts(9)], "id") == [item("a"), item("z")]
