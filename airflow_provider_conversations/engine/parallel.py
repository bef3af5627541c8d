"""A window fetched as contiguous sub-windows by several threads, and the pages put back in walk order.

Vendors with server-side time bounds can be walked in parallel: the window is cut into more sub-windows than
threads (uneven data evens out), each sub-window is one ordinary walk, and pages arrive in completion order,
tagged with their sub-window (``page.part``). :func:`in_walk_order` replays whatever the caller made of them
(shaped records, JSON Lines bytes) in the order a sequential walk would have produced, so a parallel export is
the same, byte for byte, as a sequential one.
"""

from __future__ import annotations

import queue
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO, Generic, Protocol, TypeVar

from airflow_provider_conversations.engine.walk import Page

#: Sub-windows per worker with max_parallel: more parts than threads evens out uneven data.
PARTS_PER_WORKER = 4
#: The most threads one export may use.
MAX_WORKERS = 64

T = TypeVar("T")


def run_parallel(walks: Sequence[Callable[[], Iterator[Page]]], workers: int, *,
                 thread_name: str, indexes: Sequence[int] | None = None,
                 freeze_every: int | None = None) -> Iterator[Page]:
    """Run the sub-window walks on ``workers`` threads; yield their pages as they come, tagged with ``part``.

    A bounded queue keeps memory flat (a slow consumer holds the workers back), and the first error stops every
    worker and is raised to the consumer. ``indexes`` are the sub-windows' indexes (``page.part``; default
    ``0..n-1``): a resumed export walks only the sub-windows an earlier try did not finish.

    ``freeze_every`` (checkpoints of a parallel walk): a worker runs ahead of the consumer, so a page's
    ``resume_state()`` called later would describe a later position. With it, the position is taken in the
    worker, right after the page, for each page whose number is a multiple of ``freeze_every`` and for the
    last page of each sub-window (its ``next`` is ``None``: the sub-window is complete); every other page's
    ``resume_state`` is ``None``. The last page is known by reading one page ahead.
    """
    pages: queue.Queue[Page | BaseException | None] = queue.Queue(maxsize=workers * 2)
    stop = threading.Event()

    def put(item: Page | BaseException | None) -> None:
        while not stop.is_set():
            try:
                pages.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def frozen(page: Page) -> None:
        """Replace ``page.resume_state`` by the position it gives now (or by ``None``)."""
        state = page.resume_state() if page.resume_state is not None else None
        page.resume_state = None if state is None else (lambda: state)

    def work(index: int, walk: Callable[[], Iterator[Page]]) -> None:
        try:
            held: Page | None = None
            held_open: Callable[[], dict[str, Any]] | None = None  # the walk's live position (see freeze_every)
            for page in walk():
                if stop.is_set():
                    return
                page.part = index
                if freeze_every is None:
                    put(page)
                    continue
                live = page.resume_state
                if page.number % freeze_every == 0:
                    frozen(page)  # now, before the walk goes on
                else:
                    page.resume_state = None
                if held is not None:
                    put(held)
                held, held_open = page, live
            if held is not None:
                # The walk is over: its position now is the one right after its last page (nothing left).
                if held.resume_state is None:
                    held.resume_state = held_open
                frozen(held)
                put(held)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(exc)
        finally:
            # "This sub-window is done", always from the worker thread: a done-callback runs in the submitting
            # thread when the walk already finished, and there, with the queue full, it waited for itself.
            put(None)

    remaining = len(walks)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=thread_name)
    try:
        for index, walk in zip(indexes if indexes is not None else range(len(walks)), walks, strict=True):
            pool.submit(work, index, walk)
        while remaining:
            item = pages.get()
            if item is None:
                remaining -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)


class PartStore(Protocol[T]):
    """Where the payloads of each sub-window wait until the walk is complete."""

    def add(self, part: int, payload: T) -> None: ...

    def replay(self, parts: list[int]) -> Iterator[T]: ...

    def close(self) -> None: ...


class MemoryParts(Generic[T]):
    """Payloads kept in memory (small results, e.g. what goes to XCom)."""

    def __init__(self) -> None:
        self._parts: dict[int, list[T]] = {}

    def add(self, part: int, payload: T) -> None:
        self._parts.setdefault(part, []).append(payload)

    def replay(self, parts: list[int]) -> Iterator[T]:
        for part in parts:
            yield from self._parts.get(part, ())

    def close(self) -> None:
        self._parts.clear()


class FileParts:
    """Bytes spooled to one local temporary file per sub-window, so memory stays flat however large the window.

    Replayed in chunks that may split a line; written back to back they rebuild it.
    """

    CHUNK = 1 << 20

    def __init__(self) -> None:
        self._files: dict[int, BinaryIO] = {}

    def add(self, part: int, payload: bytes) -> None:
        f = self._files.get(part)
        if f is None:
            f = self._files[part] = tempfile.TemporaryFile(prefix="conversations-part-")  # noqa: SIM115
        f.write(payload)

    def replay(self, parts: list[int]) -> Iterator[bytes]:
        for part in parts:
            f = self._files.get(part)
            if f is None:
                continue
            f.seek(0)
            while chunk := f.read(self.CHUNK):
                yield chunk

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()


def in_walk_order(pages: Iterable[tuple[Page, T]], store: PartStore[T], *, parallel: bool) -> Iterator[T]:
    """Each page's payload, in the order a sequential walk yields the pages.

    A sequential walk streams through untouched. A parallel one is held in ``store`` per sub-window until every
    page has arrived, then replayed oldest sub-window first (newest first for a walk that goes newest first).
    """
    if not parallel:
        for _page, payload in pages:
            yield payload
        return
    descending = False
    seen: set[int] = set()
    try:
        for page, payload in pages:
            store.add(page.part, payload)
            seen.add(page.part)
            descending = descending or page.descending
        yield from store.replay(sorted(seen, reverse=descending))
    finally:
        store.close()


__all__ = ["MAX_WORKERS", "PARTS_PER_WORKER", "FileParts", "MemoryParts", "PartStore", "in_walk_order",
           "run_parallel"]


