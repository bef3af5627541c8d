"""run_parallel's hand-over between the sub-window threads and the consumer."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from airflow_provider_conversations.engine.parallel import run_parallel
from airflow_provider_conversations.engine.walk import Page


def _empty() -> Iterator[Page]:
    return iter(())


def _pages(n: int) -> Iterator[Page]:
    return (Page([{"id": f"{n}-{i}"}], number=i + 1, fetched=1) for i in range(3))


def test_many_sub_windows_that_end_at_once_do_not_hang_the_consumer():
    """Sub-windows that end before the consumer starts reading (empty ones, here 200 on 2 threads with a queue of 4)
    used to be announced by a done-callback, which runs in the submitting thread when the walk has already ended;
    with the queue full, that thread waited for itself, forever."""
    walks = [_empty if n % 10 else (lambda n=n: _pages(n)) for n in range(200)]
    got: list[str] = []

    def consume() -> None:
        got.extend(str(item["id"]) for page in run_parallel(walks, 2, thread_name="t") for item in page)

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    t.join(20)
    assert not t.is_alive(), "run_parallel hung"
    assert sorted(got) == sorted(f"{n}-{i}" for n in range(0, 200, 10) for i in range(3))
