"""ParrotMob hook against its simulator: exact windows with no server-side time filter, and the three traps.

ParrotMob has no time filter. A created (inserted_at) walk seeks to its window with one-item probes, so the
back-to-back checks cover the whole 3 days at every page size. An updated walk cannot seek before it has proven
the list's order, so it walks down from the newest conversation: (conversations newer than its start) /
page_size requests per window; its checks cover 3 days at the maximum page size and the most recent 24 and 8
hours at page sizes 7 and 1 (still dozens of window edges each).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests

from airflow_provider_conversations.exceptions import AuthenticationError, PaginationError, VendorAPIError
from airflow_provider_conversations.hooks.parrotmob import MAX_PAGE_SIZE, ParrotMobHook
from airflow_provider_conversations.testing.dataset import DEFAULT_START
from airflow_provider_conversations.testing.parrotmob import ParrotMobSimulator
from airflow_provider_conversations.windows import parse_iso
from tests.helpers import assert_exactly_once, walk_back_to_back

N = 3000
SPAN_END = DEFAULT_START + timedelta(days=3)
WARNING = "asked for updated_at_desc"


@pytest.fixture(scope="module")
def pm_sim():
    with ParrotMobSimulator(N, seed=7, max_seconds=600, log_requests=False) as s:
        yield s


def window_ids(hook: ParrotMobHook, start: datetime, end: datetime, **kwargs: Any) -> list[str]:
    return [c["id"] for c in hook.iter_conversations(start, end, **kwargs)]


def naive_walk(sim: ParrotMobSimulator, start: datetime, end: datetime, *, time_key: str, limit: int,
               early_stop: bool = True) -> list[str]:
    """What a client that trusts ``order_by`` and offsets blindly does: stop at the first older conversation,
    never de-duplicate. The traps below show it being wrong, so the hook's tests can fail."""
    field, order = {"created": ("inserted_at", "inserted_at_desc"), "updated": ("updated_at", "updated_at_desc")}[
        time_key]
    got: list[str] = []
    offset = 0
    while True:
        page = requests.get(f"{sim.url}/accounts/me/conversations", timeout=10,
                            headers={"Authorization": f"Bearer {sim.token}"},
                            params={"limit": limit, "offset": offset, "order_by": order}).json()
        for item in page:
            ts = parse_iso(item[field])
            assert ts is not None
            if early_stop and ts < start:
                return got
            if start <= ts < end:
                got.append(item["id"])
        if len(page) < limit:
            return got
        offset += limit


# ---------------------------------------------------------------------------------------------- data set


def test_data_set_has_many_conversations_on_hour_edges(pm_sim):
    assert len(pm_sim.records) == N
    on_edges = [r for r in pm_sim.records if r["inserted_at"].endswith(":00:00.000000Z")]
    assert len(on_edges) > 300
    starts = sorted(r["inserted_at"] for r in pm_sim.records)
    assert starts[0] >= "2026-11-17T00:00:00"
    assert starts[-1] < "2026-11-20T00:00:00"
    statuses = Counter(r["status"] for r in pm_sim.records)
    assert set(statuses) == {"scheduled", "ready", "running", "completed", "expired", "cancelled"}
    assert 0 < statuses["scheduled"] + statuses["ready"] + statuses["running"] < N * 0.1


# ---------------------------------------------------------------------------------------------- exactness


@pytest.mark.parametrize(
    ("time_key", "page_size", "hours"),
    [
        # created walks seek to the window (one-item probes), so every page size covers all 72 hours
        ("created", None, 72), ("created", 7, 72), ("created", 1, 72),
        # updated walks cannot seek (the order must first be proven) and walk down from the newest
        # conversation: small pages on old windows cost (history / page size) requests, so fewer hours
        ("updated", None, 72), ("updated", 7, 24), ("updated", 1, 8),
    ],
)
def test_back_to_back_hours_partition_exactly(pm_sim, set_connection, time_key, page_size, hours):
    set_connection("parrotmob_default", pm_sim.connection())
    start = SPAN_END - timedelta(hours=hours)
    hook = ParrotMobHook(page_size=page_size)
    got = walk_back_to_back(hook, start, hours, time_key=time_key)
    truth = pm_sim.ground_truth(start, SPAN_END, time_key=time_key)
    assert len(truth) > 30 * hours
    field = "inserted_at" if time_key == "created" else "updated_at"
    on_edges = {r["id"] for r in pm_sim.records if r[field].endswith(":00:00.000000Z")}
    assert len(on_edges & set(truth)) >= hours  # conversations exactly on the window edges are in play
    assert_exactly_once(got, truth)


def test_filters_reach_the_server_and_the_deprecated_alias_works(pm_sim, set_connection):
    set_connection("parrotmob_default", pm_sim.connection())
    hook = ParrotMobHook()
    start = DEFAULT_START
    for filters in ({"status": "any_terminal"}, {"status": "running"}, {"support_required": True},
                    {"needs_support": False},
                    {"audience_membership_id": pm_sim.records[0]["audience_membership_id"], "status": "completed"},
                    {"conversation_graph_id": pm_sim.records[1]["conversation_graph_id"]}):
        sent = {"support_required" if k == "needs_support" else k: v for k, v in filters.items()}
        truth = pm_sim.ground_truth(start, SPAN_END, **sent)
        assert 0 < len(truth) < N
        assert sorted(window_ids(hook, start, SPAN_END, filters=filters)) == sorted(truth), filters


def test_account_id_me_and_explicit_account(pm_sim, set_connection):
    set_connection("parrotmob_default", pm_sim.connection(account_id=pm_sim.account_id))
    start = SPAN_END - timedelta(hours=2)
    assert sorted(window_ids(ParrotMobHook(), start, SPAN_END)) == sorted(pm_sim.ground_truth(start, SPAN_END))
    set_connection("parrotmob_default", pm_sim.connection(account_id="acct_other"))
    with pytest.raises(VendorAPIError) as err:
        window_ids(ParrotMobHook(), start, SPAN_END)
    assert (err.value.status, err.value.code, err.value.param) == (404, "not_found", "account_id")
    assert "account 'acct_other' not found" in str(err.value)


# ---------------------------------------------------------------------------------------------- trap 1


@pytest.mark.parametrize("time_key", ["created", "updated"])
def test_recent_window_costs_a_few_pages_not_the_whole_history(sim, set_connection, time_key):
    s = sim("parrotmob", conversations=20_000, seed=3, span=timedelta(days=30), log_requests=False)
    set_connection("parrotmob_default", s.connection())
    hook = ParrotMobHook(page_size=50)
    newest = max(parse_iso(r["inserted_at"]) for r in s.records)
    assert newest is not None
    end = newest.replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(hours=1)
    before = s.stats.requests
    got = window_ids(hook, start, end, time_key=time_key)
    assert_exactly_once(got, s.ground_truth(start, end, time_key=time_key))
    assert len(got) > 10
    whole_account_pages = len(s.records) // 50
    assert whole_account_pages == 400
    assert s.stats.requests - before == hook.stats.requests <= 6


# ---------------------------------------------------------------------------------------------- trap 2


@pytest.mark.parametrize("page_size", [7, 100])
def test_updated_order_bug_still_exact_walks_further_and_warns(sim, set_connection, logs, page_size):
    good = sim("parrotmob", conversations=3000, seed=5, log_requests=False)
    buggy = sim("parrotmob", conversations=3000, seed=5, updated_order_bug=True, log_requests=False)
    start = SPAN_END - timedelta(hours=4)
    end = start + timedelta(hours=1)
    truth = buggy.ground_truth(start, end, time_key="updated")
    assert truth == good.ground_truth(start, end, time_key="updated")

    set_connection("parrotmob_default", good.connection())
    hook = ParrotMobHook(page_size=page_size)
    assert_exactly_once(window_ids(hook, start, end, time_key="updated"), truth)
    trusting_requests = hook.stats.requests
    assert WARNING not in logs()

    set_connection("parrotmob_default", buggy.connection())
    hook = ParrotMobHook(page_size=page_size)
    assert_exactly_once(window_ids(hook, start, end, time_key="updated"), truth)
    assert hook.stats.requests == len(buggy.records) // page_size + 1  # to the end of the list
    assert hook.stats.requests > 3 * trusting_requests
    text = logs()
    assert text.count(WARNING) == 1
    assert "walking to the end of the list" in text

    # The naive early-stopping client is right against the honest server and wrong against the buggy one.
    assert sorted(naive_walk(good, start, end, time_key="updated", limit=page_size)) == sorted(truth)
    naive = naive_walk(buggy, start, end, time_key="updated", limit=page_size)
    assert set(naive) < set(truth)


def test_the_simulator_bug_switch_sorts_updated_orders_by_inserted_at(sim):
    s = sim("parrotmob", conversations=200, seed=1, updated_order_bug=True)
    headers = {"Authorization": f"Bearer {s.token}"}

    def order(order_by: str) -> list[str]:
        return [c["id"] for c in requests.get(f"{s.url}/accounts/me/conversations", headers=headers, timeout=10,
                                              params={"limit": 0, "order_by": order_by}).json()]

    assert order("updated_at_desc") == order("inserted_at_desc") == order("inserted_at_asc")[::-1]
    assert order("updated_at_asc") == order("inserted_at_asc")
    s.updated_order_bug = False  # a live switch
    by_updated = sorted(s.records, key=lambda r: (r["updated_at"], r["id"]))
    assert order("updated_at_asc") == [r["id"] for r in by_updated]
    assert order("updated_at_desc") == [r["id"] for r in reversed(by_updated)]
    assert order("updated_at_desc") != order("inserted_at_desc")


# ---------------------------------------------------------------------------------------------- trap 3


@pytest.mark.parametrize("time_key", ["created", "updated"])
def test_inserts_during_the_walk_still_yield_the_window_once(sim, set_connection, time_key):
    s = sim("parrotmob", conversations=3000, seed=9, inserts_per_request=10, log_requests=False)
    set_connection("parrotmob_default", s.connection())
    start = SPAN_END - timedelta(hours=6)
    end = start + timedelta(hours=2)
    truth = s.ground_truth(start, end, time_key=time_key)
    hook = ParrotMobHook(page_size=20)
    got = window_ids(hook, start, end, time_key=time_key)
    assert_exactly_once(got, truth)
    assert hook.stats.pages >= 6
    assert hook.stats.duplicates >= 10
    assert s.inserted >= 10 * hook.stats.requests

    naive = naive_walk(s, start, end, time_key=time_key, limit=50)
    assert set(naive) == set(truth)
    assert len(naive) > len(set(naive))  # the same conversations twice


def test_inserts_as_fast_as_the_walk_pages_fail_loudly(sim, set_connection):
    s = sim("parrotmob", conversations=500, seed=2, inserts_per_request=5, log_requests=False)
    set_connection("parrotmob_default", s.connection())
    for time_key in ("created", "updated"):
        hook = ParrotMobHook(page_size=5)
        with pytest.raises(PaginationError, match=r"50 full pages in a row brought no conversation the walk had not "
                                                  r"read .* use a larger page_size"):
            window_ids(hook, DEFAULT_START, DEFAULT_START + timedelta(hours=1), time_key=time_key)
        # 50 stalled pages after the first; a created walk also sends its one-item seek probes (bounded).
        assert hook.stats.pages in (51, 52)
        assert hook.stats.requests <= hook.stats.pages + 40


# ---------------------------------------------------------------------------------------------- the wire


def get(s: ParrotMobSimulator, path: str = "/accounts/me/conversations", token: str | None = None,
        **params: Any) -> requests.Response:
    return requests.get(f"{s.url}{path}", params=params, timeout=10,
                        headers={"Authorization": f"Bearer {token or s.token}"})


def test_simulator_paging_envelope_and_errors(sim):
    s = sim("parrotmob", conversations=120, seed=4)
    assert len(get(s).json()) == 50  # documented default limit
    everything = get(s, limit=0).json()  # 0 = unlimited, as documented
    assert len(everything) == 120
    assert [c["id"] for c in everything] == [c["id"] for c in get(s, limit=200, order_by="inserted_at_desc").json()]
    assert [c["inserted_at"] for c in everything] == sorted((c["inserted_at"] for c in everything), reverse=True)
    assert get(s, limit=10, offset=115).json() == everything[115:]
    assert get(s, path=f"/accounts/{s.account_id}/conversations", limit=0).json() == everything
    assert get(s, status="any_terminal", limit=0).json() == [
        c for c in everything if c["status"] in ("completed", "expired", "cancelled")]
    assert get(s, needs_support="true", limit=0).json() == get(s, support_required="true", limit=0).json() == [
        c for c in everything if c["support_required"]]

    s.envelope = "data"
    assert get(s, limit=0).json() == {"data": everything}

    for params, status, body in [
        ({"order_by": "newest"}, 400, {"code": "invalid_parameter", "param": "order_by",
                                       "detail": "order_by must be one of inserted_at_asc, inserted_at_desc, "
                                                 "updated_at_asc, updated_at_desc"}),
        ({"limit": "-1"}, 400, {"code": "invalid_parameter", "param": "limit",
                                "detail": "limit must be a non-negative integer"}),
        ({"created_after": "2026-11-17"}, 400, {"code": "invalid_parameter", "param": "created_after",
                                                "detail": "unknown query parameter 'created_after'"}),
        ({"status": "done"}, 400, {"code": "invalid_parameter", "param": "status",
                                   "detail": "status must be one of scheduled, ready, running, completed, expired, "
                                             "cancelled, any_terminal"}),
    ]:
        response = get(s, **params)
        assert (response.status_code, response.json()) == (status, {"errors": body})
    other = get(s, path="/accounts/acct_zzz/conversations")
    assert (other.status_code, other.json()) == (404, {"errors": {"code": "not_found", "param": "account_id",
                                                                  "detail": "account 'acct_zzz' not found"}})
    assert get(s, token="wrong").status_code == 401


def test_finish_all_and_wrong_token(sim, set_connection):
    s = sim("parrotmob", conversations=300, seed=8)
    set_connection("parrotmob_default", s.connection(token="wrong-token"))
    with pytest.raises(AuthenticationError, match="'parrotmob_default'"):
        window_ids(ParrotMobHook(), DEFAULT_START, SPAN_END)
    assert ParrotMobHook().test_connection()[0] is False
    set_connection("parrotmob_default", s.connection())
    hook = ParrotMobHook()
    assert hook.test_connection()[0] is True
    in_progress = [c for c in hook.iter_conversations(DEFAULT_START, SPAN_END) if hook.is_in_progress(c)]
    assert in_progress
    s.finish_all()
    assert all(hook.is_finished(c) for c in hook.iter_conversations(DEFAULT_START, SPAN_END))


def test_faults_are_retried_to_an_exact_result(sim, set_connection):
    from airflow_provider_conversations.testing.server import Faults

    s = sim("parrotmob", conversations=3000, seed=11, log_requests=False,
            faults=Faults(every={"429": 5, "503": 7, "truncated": 11, "reset": 13}))
    set_connection("parrotmob_default", s.connection())
    hook = ParrotMobHook(page_size=100, backoff=0.001, backoff_max=0.01)
    start = SPAN_END - timedelta(hours=24)
    got = walk_back_to_back(hook, start, 24)
    assert_exactly_once(got, s.ground_truth(start, SPAN_END))
    assert hook.stats.retries >= 10


def test_max_page_size_is_served_in_one_request(pm_sim):
    assert MAX_PAGE_SIZE == 500
    assert len(get(pm_sim, limit=MAX_PAGE_SIZE).json()) == MAX_PAGE_SIZE
