"""``in_walk_order``: what a parallel walk produced, replayed in the order a sequential walk yields it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_conversations.engine.parallel import FileParts, MemoryParts, in_walk_order
from airflow_provider_conversations.engine.walk import Page


def page(part: int, *, descending: bool = False) -> Page:
    return Page([], number=1, fetched=0, part=part, descending=descending)


class Untouched:
    """A store that must not be used."""

    def add(self, part: int, payload: Any) -> None:
        raise AssertionError("a sequential walk must stream, not store")

    def replay(self, parts: list[int]) -> Iterator[Any]:
        raise AssertionError("a sequential walk must stream, not store")

    def close(self) -> None:
        raise AssertionError("a sequential walk must stream, not store")


def test_sequential_walk_streams_through_in_arrival_order():
    produced: list[str] = []

    def pages() -> Iterator[tuple[Page, str]]:
        for part, payload in [(3, "x"), (0, "y"), (3, "z")]:
            produced.append(payload)
            yield page(part), payload

    out = in_walk_order(pages(), Untouched(), parallel=False)
    assert next(out) == "x"
    assert produced == ["x"]  # streamed: nothing read ahead
    assert list(out) == ["y", "z"]


ARRIVALS = [(2, "c1"), (0, "a1"), (1, "b1"), (0, "a2"), (2, "c2"), (1, "b2")]


def test_parallel_parts_are_replayed_oldest_sub_window_first_once_all_have_arrived():
    produced: list[str] = []

    def pages() -> Iterator[tuple[Page, str]]:
        for part, payload in ARRIVALS:
            produced.append(payload)
            yield page(part), payload

    out = in_walk_order(pages(), MemoryParts(), parallel=True)
    assert next(out) == "a1"
    assert len(produced) == len(ARRIVALS)  # the first payload waits for every part
    assert list(out) == ["a2", "b1", "b2", "c1", "c2"]  # within a part, the walk's own order


def test_parallel_newest_first_walk_replays_the_newest_sub_window_first():
    pages = [(page(part, descending=True), payload) for part, payload in ARRIVALS]
    assert list(in_walk_order(pages, MemoryParts(), parallel=True)) == ["c1", "c2", "b1", "b2", "a1", "a2"]


def test_parallel_walk_without_pages_yields_nothing():
    assert list(in_walk_order([], MemoryParts(), parallel=True)) == []


def test_file_parts_replay_bytes_in_chunks_that_rebuild_the_lines():
    parts = FileParts()
    parts.CHUNK = 4  # chunks split lines; written back to back they rebuild them
    pages = [(page(1), b'{"id":"b1"}\n'), (page(0), b'{"id":"a1"}\n'), (page(1), b'{"id":"b2"}\n')]
    chunks = list(in_walk_order(pages, parts, parallel=True))
    assert {len(c) for c in chunks[:-1]} == {4}
    assert b"".join(chunks) == b'{"id":"a1"}\n{"id":"b1"}\n{"id":"b2"}\n'
    assert parts._files == {}  # closed (and the temporary files with them) once replayed


def test_memory_parts_replay_skips_parts_never_added_and_close_forgets():
    parts: MemoryParts[str] = MemoryParts()
    parts.add(2, "c")
    parts.add(0, "a")
    assert list(parts.replay([0, 1, 2])) == ["a", "c"]
    parts.close()
    assert list(parts.replay([0, 1, 2])) == []


def test_file_parts_replay_skips_parts_never_added():
    parts = FileParts()
    parts.add(1, b"b")
    try:
        assert list(parts.replay([0, 1, 2])) == [b"b"]
    finally:
        parts.close()


@pytest.mark.parametrize("store", [MemoryParts, FileParts])
def test_the_store_is_closed_when_a_worker_fails(store):
    parts = store()
    closed: list[bool] = []
    close = parts.close
    parts.close = lambda: (closed.append(True), close())[-1]  # type: ignore[method-assign]

    def pages() -> Iterator[tuple[Page, Any]]:
        yield page(0), b"a"
        raise RuntimeError("worker 3 failed")

    with pytest.raises(RuntimeError, match="worker 3 failed"):
        list(in_walk_order(pages(), parts, parallel=True))
    assert closed == [True]
