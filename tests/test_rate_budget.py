"""One rate budget per API key: the extras, the moving window under threads, and the budget shared through Redis.

The shared tests run a real ``redis-server`` (``make redis`` installs Debian's) on a free 127.0.0.1 port, always
stopped; one of them kills it mid-walk. No timed assertions: the simulator's 429 count, exact record sets, exact
messages, slot counts under a frozen clock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis

import airflow_provider_conversations.transport.throttle as throttle_module
from airflow_provider_conversations.exceptions import ConfigurationError
from airflow_provider_conversations.hooks.parrotmob import ParrotMobHook
from airflow_provider_conversations.hooks.replyful import ReplyfulHook
from airflow_provider_conversations.testing.dataset import DEFAULT_START
from airflow_provider_conversations.transport.retry import BACKOFF_REASON
from airflow_provider_conversations.transport.throttle import RateBudget, RateLimit, key_digest, parse_rate_limit
from benchmarks.rate_budget import TOKEN, run_once
from tests.helpers import assert_exactly_once
from tools.redis_server import RedisServer

KEY = "rfl_test_budget0123456789abcdef"
BASE = "https://api.replyful.example"
END = DEFAULT_START + timedelta(days=3)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with RedisServer(max_seconds=300) as server:
        yield server


def replyful_conn(**extra: Any) -> dict[str, Any]:
    return {"conn_type": "replyful", "host": BASE, "password": KEY, "extra": extra}


# ---------------------------------------------------------------------------------------------- the extras


def test_replyful_defaults_to_its_documented_limit_and_the_extra_overrides_it(set_connection):
    set_connection("replyful_default", replyful_conn())
    assert ReplyfulHook().settings.rate_limit == RateLimit(100, 60)
    assert ReplyfulHook().settings.rate_limit_storage is None
    set_connection("replyful_default", replyful_conn(rate_limit=" 5 / 1 "))
    assert ReplyfulHook().settings.rate_limit == RateLimit(5, 1)
    set_connection("replyful_default", replyful_conn(rate_limit="none"))
    assert ReplyfulHook().settings.rate_limit is None


def test_vendors_without_a_documented_limit_have_no_budget_unless_set(set_connection):
    set_connection("parrotmob_default", {"conn_type": "parrotmob", "host": "https://macaw.example", "password": "t"})
    assert ParrotMobHook().settings.rate_limit is None
    set_connection("parrotmob_default", {"conn_type": "parrotmob", "host": "https://macaw.example", "password": "t",
                                         "extra": {"rate_limit": "30/60"}})
    assert ParrotMobHook().settings.rate_limit == RateLimit(30, 60)


@pytest.mark.parametrize("value", ["100", "100/0", "0/60", "1.5/60", "100/1.5", "-1/60", "per minute", 100, ""])
def test_a_bad_rate_limit_is_refused_naming_the_extra_the_value_and_the_form(set_connection, value):
    extra = {"rate_limit": value}
    set_connection("replyful_default", replyful_conn(**extra))
    if value == "":
        assert ReplyfulHook().settings.rate_limit == RateLimit(100, 60)  # empty: the default, as for any extra
        return
    with pytest.raises(ConfigurationError) as err:
        ReplyfulHook().settings  # noqa: B018
    assert str(err.value) == (
        f"Replyful connection 'replyful_default' has rate_limit={value!r}; expected '<requests>/<seconds>' in "
        "whole numbers above zero, e.g. '100/60', or 'none' for no budget"
    )


@pytest.mark.parametrize(("uri", "problem"), [
    ("http://127.0.0.1:6379/0", "unsupported scheme http://; expected a storage URI such as "
     "redis://127.0.0.1:6379/0 (also rediss://, redis+unix://, memory://)"),
    ("127.0.0.1:6379", "unsupported scheme (none); expected a storage URI such as redis://127.0.0.1:6379/0 "
     "(also rediss://, redis+unix://, memory://)"),
    ("redis://", "no host; expected a storage URI such as redis://127.0.0.1:6379/0 (also rediss://, redis+unix://, "
     "memory://)"),
    ("redis://127.0.0.1:6379/zero", "the database must be a number, as in redis://127.0.0.1:6379/0; expected a "
     "storage URI such as redis://127.0.0.1:6379/0 (also rediss://, redis+unix://, memory://)"),
    ("redis://127.0.0.1:port/0", "expected a storage URI such as redis://127.0.0.1:6379/0 (also rediss://, "
     "redis+unix://, memory://)"),
    ("memcached://127.0.0.1:11211", "unsupported scheme memcached://; expected a storage URI such as "
     "redis://127.0.0.1:6379/0 (also rediss://, redis+unix://, memory://)"),
])
def test_a_bad_storage_uri_is_a_configuration_error_before_any_request(sim, set_connection, uri, problem):
    s = sim("replyful", conversations=20, seed=1)
    conn = s.connection()
    conn["extra"]["rate_limit_storage"] = uri
    set_connection("replyful_default", conn)
    with pytest.raises(ConfigurationError) as err:
        list(ReplyfulHook().iter_conversations(DEFAULT_START, END))
    shown = uri if "://" in uri else "(a URI without a scheme, not shown)"
    assert str(err.value) == f"Replyful connection 'replyful_default' has rate_limit_storage={shown!r}; {problem}"
    assert s.stats.requests == 0


def test_a_storage_password_never_appears_in_the_error(set_connection):
    set_connection("replyful_default", replyful_conn(rate_limit_storage="redis://:s3cret-pw@127.0.0.1:6379/x"))
    with pytest.raises(ConfigurationError) as err:
        ReplyfulHook().settings  # noqa: B018
    assert "s3cret-pw" not in str(err.value)
    assert "rate_limit_storage='redis://127.0.0.1:6379/x'" in str(err.value)


def test_parse_rate_limit_round_trips():
    assert str(parse_rate_limit("20/2")) == "20/2"
    assert parse_rate_limit("NONE") is None


# ---------------------------------------------------------------------------------------------- one process


class FrozenTime:
    """``time.time()`` for the limiter and the budget that only moves when the test says so."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def time(self) -> float:
        return self.now


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> FrozenTime:
    import limits.storage.memory
    import limits.storage.redis

    clock = FrozenTime()
    for module in (throttle_module, limits.storage.memory, limits.storage.redis):
        monkeypatch.setattr(module, "time", clock)
    return clock


def _race(budget: RateBudget, threads: int = 8, tries: int = 25) -> tuple[int, list[float]]:
    """``threads`` threads asking at once, ``tries`` times each: how many got a slot, and the waits told."""
    barrier = threading.Barrier(threads)
    granted: list[int] = []
    waits: list[float] = []
    lock = threading.Lock()

    def ask() -> None:
        barrier.wait()
        for _ in range(tries):
            delay, _reason = budget.acquire()
            with lock:
                (granted.append(1) if delay == 0 else waits.append(delay))

    pool = [threading.Thread(target=ask) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=60)
    return len(granted), waits


@pytest.mark.parametrize("shared", [False, True], ids=["in-process", "redis"])
def test_concurrent_threads_never_get_more_slots_than_the_limit_per_window(frozen, shared, request):
    """8 threads x 25 tries in one instant: exactly the limit is granted; one window later, exactly again."""
    uri = request.getfixturevalue("redis_server").url if shared else None
    budget = RateBudget(RateLimit(10, 60), vendor="replyful", secret=KEY, storage_uri=uri)
    granted, waits = _race(budget)
    assert granted == 10
    assert len(waits) == 8 * 25 - 10
    assert all(w == pytest.approx(60.0 + 1.2) for w in waits)  # plus the 2% margin for the vendor's clock
    frozen.now += 59.999
    assert _race(budget)[0] == 0  # the window has not moved past any slot yet
    frozen.now += 0.002
    assert _race(budget)[0] == 10


def test_eight_threads_of_one_hook_stay_under_the_limit(sim, set_connection):
    """A parallel walk (the same throttle for every thread) against 10 requests per second: not one 429."""
    s = sim("replyful", conversations=600, seed=16, rate_limit=(10, 1.0), log_requests=False)
    set_connection("replyful_default", s.connection())
    assert s.connection()["extra"]["rate_limit"] == "10/1"
    hook = ReplyfulHook(page_size=10)
    got = [c["id"] for c in hook.iter_conversations(DEFAULT_START, END, max_parallel=8)]
    assert_exactly_once(got, s.ground_truth(DEFAULT_START, END))
    assert s.stats.requests >= 4 * 10  # several windows' worth
    assert s.stats.throttled == 0
    assert hook.stats.retries == 0


# ---------------------------------------------------------------------------------------------- shared


def test_two_processes_share_one_budget_through_redis(redis_server):
    """Two tasks, one key, one Redis: together never over the limit (the simulator never said 429)."""
    client = redis.Redis.from_url(redis_server.url)
    seen: set[str] = set()
    done = threading.Event()

    def watch() -> None:  # the keys expire with the window: collect them while the tasks run
        while not done.is_set():
            seen.update(k.decode() for k in client.scan_iter("*"))
            done.wait(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = run_once(shared=True, tasks=2, conversations=400, page_size=10, limit=(10, 1),
                          redis_url=redis_server.url)
    finally:
        done.set()
        watcher.join(timeout=30)
    assert result.exact  # the union of both tasks' records is the ground truth, each once
    assert result.ok_requests >= 4 * 10
    assert result.throttled == 0
    keys = sorted(seen)
    assert keys
    assert all(k.startswith("airflow-provider-conversations") for k in keys)
    assert any(key_digest(TOKEN) in k for k in keys)
    assert not any(TOKEN in k for k in keys)  # the key itself is never in Redis


def test_a_429_seen_by_one_task_pauses_the_others(redis_server, set_connection, requests_mock, logs):
    set_connection("replyful_default", replyful_conn(rate_limit_storage=redis_server.url))
    url = f"{BASE}/v1/conversations"
    page = {"data": [], "hasMore": False, "nextCursor": None}
    requests_mock.get(url, [
        {"status_code": 429, "headers": {"Retry-After": "1"},
         "json": {"error": {"type": "rate_limit_error", "code": "too_many_requests", "message": "slow down"}}},
        {"json": page}, {"json": page},
    ])
    first, other = ReplyfulHook(max_attempts=2), ReplyfulHook()
    client = redis.Redis.from_url(redis_server.url)
    pause_key = f"airflow-provider-conversations:pause:replyful:{key_digest(KEY)}"
    seen = threading.Thread(target=first.get_json, args=({"limit": "1"},))
    seen.start()
    for _ in range(1000):  # the first task publishes its pause (bounded poll, no timing asserted)
        if client.get(pause_key) is not None:
            break
        threading.Event().wait(0.005)
    assert client.get(pause_key) is not None
    other.get_json({"limit": "1"})
    seen.join(timeout=30)
    assert first.stats.retries == 1
    assert other.stats.retries == 0
    assert other.stats.throttle_waits == 1
    assert "paused for every task using this key" in logs()
    assert requests_mock.call_count == 3
    assert BACKOFF_REASON == "back-off after HTTP 429"


def test_redis_dying_mid_walk_falls_back_to_in_process_pacing(redis_server, sim, set_connection, logs):
    s = sim("replyful", conversations=300, seed=16, rate_limit=(10, 1.0), log_requests=False)
    conn = s.connection()
    conn["extra"]["rate_limit_storage"] = redis_server.url
    set_connection("replyful_default", conn)
    hook = ReplyfulHook(page_size=10)
    got: list[str] = []
    for n, page in enumerate(hook.iter_pages(DEFAULT_START, END)):
        got.extend(c["id"] for c in page)
        if n == 2:
            assert hook.throttle.budget is not None
            assert hook.throttle.budget.shared
            redis_server.kill()
    assert_exactly_once(got, s.ground_truth(DEFAULT_START, END))  # the export did not fail, nothing lost
    assert s.stats.throttled == 0  # still paced, now in process
    budget = hook.throttle.budget
    assert budget is not None
    assert not budget.shared
    text = logs()
    warning = f"Replyful: rate_limit_storage {redis_server.url} is unreachable ("
    assert text.count(warning) == 1  # once, not per request
    assert "pacing in process from now on" in text
    assert s.token not in text
