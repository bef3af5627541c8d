"""The retry loop every request runs in (``transport/retry.py``): what it leaves behind, and that reusing it across
requests and threads keeps each request's attempts its own."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_conversations.exceptions import RetriesExhaustedError
from airflow_provider_conversations.stats import HookStats
from airflow_provider_conversations.transport.errors import Retryable
from airflow_provider_conversations.transport.retry import Retrier, RetryPolicy
from airflow_provider_conversations.transport.session import Label
from airflow_provider_conversations.transport.throttle import Throttle


def retrier(max_attempts: int = 3) -> tuple[Retrier, list[float]]:
    slept: list[float] = []
    throttle = Throttle(sleep=slept.append)
    policy = RetryPolicy(max_attempts=max_attempts, backoff=0.001, backoff_max=0.001)
    return Retrier(policy, throttle=throttle, stats=HookStats(), log=logging.getLogger("test"),
                   label=Label("polyai", "PolyAI", "polyai_default")), slept


def failing(times: int, result: Any) -> Callable[[], Any]:
    """An attempt that fails ``times`` times with a retryable error, then returns ``result``."""
    left = [times]

    def attempt() -> Any:
        if left[0]:
            left[0] -= 1
            raise Retryable("HTTP 503", status=503)
        return result

    return attempt


@pytest.fixture
def no_automatic_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_a_request_leaves_no_garbage_for_the_cycle_collector(no_automatic_gc: None) -> None:
    """A new tenacity loop per request was a reference cycle: 22 objects per request for the cyclic collector,
    which then ran more often (with a Parquet writer's buffered records alive, each run walked them all)."""
    r, _ = retrier()
    for n in range(200):
        assert r.call(lambda n=n: {"page": n}, what="GET /v3/conversations") == {"page": n}
    assert gc.collect() < 50  # the loop's one cycle; 4,400 objects before


def test_each_request_has_its_own_attempts_when_the_loop_is_reused() -> None:
    r, slept = retrier(max_attempts=3)
    assert r.call(failing(2, "first"), what="GET /a") == "first"
    assert r.call(failing(2, "second"), what="GET /b") == "second"  # 3 attempts again, not what is left of 3
    assert len(slept) == 4
    with pytest.raises(RetriesExhaustedError) as exc:
        r.call(failing(3, "never"), what="GET /c")
    assert str(exc.value).startswith("PolyAI request to GET /c failed after 3 attempts over ")
    assert r.call(failing(0, "fine"), what="GET /d") == "fine"
    assert r.stats.retries == 6


def test_threads_sharing_the_loop_count_their_own_attempts() -> None:
    r, _ = retrier(max_attempts=3)
    start = threading.Barrier(4)
    results: dict[int, Any] = {}

    def worker(i: int) -> None:
        start.wait()
        out = []
        for j in range(50):
            try:
                out.append(r.call(failing(2, (i, j)), what=f"GET /{i}/{j}"))
            except RetriesExhaustedError as exc:  # would mean another thread's attempts were counted
                out.append(str(exc))
        results[i] = out

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == {i: [(i, j) for j in range(50)] for i in range(4)}
