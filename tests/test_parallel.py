"""Parallel sub-windows: the same conversations as a sequential walk, one shared throttle, errors propagate."""

from __future__ import annotations

from datetime import timedelta

import pytest

from airflow_provider_conversations.exceptions import ConfigurationError, RetriesExhaustedError
from airflow_provider_conversations.hooks.polyai import PolyAIHook
from airflow_provider_conversations.testing.dataset import DEFAULT_START
from airflow_provider_conversations.testing.server import Faults
from tests.helpers import assert_exactly_once

START, END = DEFAULT_START, DEFAULT_START + timedelta(days=3)


def test_parallel_walk_yields_exactly_the_sequential_set(sim, set_connection):
    s = sim("polyai", conversations=4000, seed=5)
    set_connection("polyai_default", s.connection())
    sequential = [c["id"] for c in PolyAIHook(page_size=50).iter_conversations(START, END)]
    pages = list(PolyAIHook(page_size=50).iter_pages(START, END, max_parallel=8))
    parallel = [c["id"] for p in pages for c in p]
    assert_exactly_once(parallel, sequential)
    assert_exactly_once(parallel, s.ground_truth(START, END))
    assert sorted({p.part for p in pages}) == list(range(32))  # 8 workers x 4 sub-windows, all seen
    # within a part, pages keep their order; across parts, sub-windows are in time order
    in_order = [c["id"] for p in sorted(pages, key=lambda p: (p.part, p.number)) for c in p]
    assert in_order == sequential


def test_parallel_requests_overlap_under_latency(sim, set_connection):
    """What makes max_parallel faster under latency is requests in flight at once (the speed-up itself is measured
    in ``make bench``, not asserted here): a sequential walk never has two, eight workers have several."""
    s = sim("polyai", conversations=3000, seed=2, latency_ms=40, transcripts=False)  # rows as small as before turns
    set_connection("polyai_default", s.connection())
    n1 = sum(1 for _ in PolyAIHook(page_size=100).iter_conversations(START, END))
    assert s.stats.max_in_flight == 1
    n8 = sum(1 for _ in PolyAIHook(page_size=100).iter_conversations(START, END, max_parallel=8))
    assert n1 == n8 == len(s.ground_truth(START, END))
    assert 4 <= s.stats.max_in_flight <= 8


def test_an_error_in_one_worker_fails_the_walk(sim, set_connection):
    s = sim("polyai", conversations=3000, seed=2, faults=Faults(fail_after=10, fail_status=503))
    set_connection("polyai_default", s.connection())
    hook = PolyAIHook(page_size=20, max_attempts=2, backoff=0.001, backoff_max=0.001)
    with pytest.raises(RetriesExhaustedError, match="HTTP 503"):
        list(hook.iter_conversations(START, END, max_parallel=4))


def test_shared_throttle_back_off_applies_to_every_worker(sim, set_connection):
    s = sim("polyai", conversations=2000, seed=2, faults=Faults(schedule={3: "429"}, retry_after="0.3"),
            transcripts=False)  # rows as small as before turns: in-flight requests land as quickly as before
    set_connection("polyai_default", s.connection())
    hook = PolyAIHook(page_size=50)
    got = [c["id"] for c in hook.iter_conversations(START, END, max_parallel=4)]
    assert_exactly_once(got, s.ground_truth(START, END))
    assert hook.stats.retries == 1
    assert hook.stats.retry_wait_seconds == pytest.approx(0.3)
    (throttled,) = [r for r in s.requests if r.outcome == "429"]
    # Requests already in flight when the 429 was served still land; after that, everyone waits it out.
    during_pause = [r for r in s.requests if throttled.received + 0.05 < r.received < throttled.received + 0.25]
    assert during_pause == []


@pytest.mark.parametrize("value", [0, 65, True, "4", 2.0])
def test_max_parallel_is_validated(set_connection, requests_mock, value):
    set_connection("polyai_default", {"conn_type": "polyai", "host": "http://127.0.0.1:9", "password": "k" * 10,
                                      "extra": {"account_id": "a", "project_id": "p"}})
    with pytest.raises(ConfigurationError, match=f"max_parallel={value!r} is not allowed: expected an integer"):
        PolyAIHook().iter_pages(START, END, max_parallel=value)
    assert requests_mock.call_count == 0
