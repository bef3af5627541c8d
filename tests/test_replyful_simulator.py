"""Replyful hook against its simulator: exact windows on both time keys, filters, and the 100/60 s rate limit."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest
import requests

from airflow_provider_conversations.exceptions import AuthenticationError, VendorAPIError
from airflow_provider_conversations.hooks.replyful import ReplyfulHook
from airflow_provider_conversations.testing.dataset import DEFAULT_START, generate
from airflow_provider_conversations.testing.server import Faults
from tests.helpers import assert_exactly_once, walk_back_to_back

N = 3000
THREE_DAYS = DEFAULT_START + timedelta(days=3)
#: Replyful's 100 requests per 60 s, compressed 40-fold so a long walk crosses several windows in seconds, while
#: a client ignoring the headers still needs only 15 ms per request to run into the limit on a loaded machine.
COMPRESSED_LIMIT = (100, 1.5)


@pytest.fixture(scope="module")
def replyful_sim():
    from airflow_provider_conversations.testing.replyful import ReplyfulSimulator

    with ReplyfulSimulator(N, seed=4, max_seconds=600, log_requests=False) as s:
        yield s


def on_hour_edge(sim: Any, field: str) -> int:
    return sum(1 for r in sim.records if r[field].endswith(":00:00.000Z"))


def test_data_set_is_realistic(replyful_sim):
    records = replyful_sim.records
    assert len(records) == N
    # many conversations sit exactly on window edges, on both time keys
    assert on_hour_edge(replyful_sim, "createdAt") > 250
    assert on_hour_edge(replyful_sim, "updatedAt") > 250
    assert all(r["id"].startswith("conv_") and r["object"] == "conversation" for r in records)
    assert all(len(r["createdAt"]) == 24 and r["createdAt"].endswith("Z") for r in records)
    in_progress = [r for r in records if r["status"] not in ("assumed_resolved", "resolved", "spam", "archived")]
    assert 0.02 * N < len(in_progress) < 0.10 * N


@pytest.mark.parametrize("time_key", ["created", "updated"])
@pytest.mark.parametrize("page_size", [1, 7, 100])
def test_back_to_back_hours_partition_exactly(replyful_sim, set_connection, time_key, page_size):
    set_connection("replyful_default", replyful_sim.connection())
    hook = ReplyfulHook(page_size=page_size)
    got = walk_back_to_back(hook, DEFAULT_START, 72, time_key=time_key)
    truth = replyful_sim.ground_truth(DEFAULT_START, THREE_DAYS, time_key=time_key)
    assert len(truth) > 2900
    assert_exactly_once(got, truth)
    assert hook.stats.duplicates == 0  # keyset cursors never serve a conversation twice


@pytest.mark.parametrize("time_key", ["created", "updated"])
def test_exact_when_the_server_compares_bounds_at_whole_seconds(sim, set_connection, time_key):
    s = sim("replyful", conversations=3000, seed=9, truncate_bounds=True)
    set_connection("replyful_default", s.connection())
    hook = ReplyfulHook(page_size=100)
    start = DEFAULT_START + timedelta(hours=3, milliseconds=250)
    edges = [start + timedelta(minutes=37 * i, milliseconds=333 * i) for i in range(60)]
    got: list[str] = []
    for a, b in itertools.pairwise(edges):
        got += [c["id"] for c in hook.iter_conversations(a, b, time_key=time_key)]
    assert_exactly_once(got, s.ground_truth(edges[0], edges[-1], time_key=time_key))


def test_trusts_has_more_over_a_cursor_on_the_last_page(sim, set_connection):
    s = sim("replyful", conversations=500, seed=2, cursor_on_last_page=True)
    set_connection("replyful_default", s.connection())
    got = walk_back_to_back(ReplyfulHook(page_size=9), DEFAULT_START, 72)
    assert_exactly_once(got, s.ground_truth(DEFAULT_START, THREE_DAYS))


FILTER_CASES = [
    {"status": ["needs_first_response", "needs_follow_up", "resolved"]},
    {"channelId": ["ch_001", "ch_003"]},
    {"assignedToUserId": "unassigned"},
    {"assignedToUserId": "usr_002", "supportLevel": "human"},
    {"topicId": "top_002", "tagId": ["tag_vip"]},
    {"q": "REFUND"},
]


@pytest.mark.parametrize("filters", FILTER_CASES)
@pytest.mark.parametrize("time_key", ["created", "updated"])
def test_filters_reach_the_server(replyful_sim, set_connection, filters, time_key):
    set_connection("replyful_default", replyful_sim.connection())
    got = [c["id"] for c in ReplyfulHook().iter_conversations(DEFAULT_START, THREE_DAYS, time_key=time_key,
                                                              filters=filters)]
    truth = replyful_sim.ground_truth(DEFAULT_START, THREE_DAYS, time_key=time_key, **filters)
    assert 20 < len(truth) < N
    assert_exactly_once(got, truth)


def test_finished_and_in_progress_filters_select_by_status(sim, set_connection):
    s = sim("replyful", conversations=2000, seed=5)
    set_connection("replyful_default", s.connection())
    hook = ReplyfulHook()
    finished = list(hook.iter_conversations(DEFAULT_START, THREE_DAYS, filters=hook.finished_filters({})))
    live = list(hook.iter_conversations(DEFAULT_START, THREE_DAYS, filters=hook.in_progress_filters({})))
    assert finished
    assert live
    assert all(hook.is_finished(c) for c in finished)
    assert all(hook.is_in_progress(c) for c in live)
    assert_exactly_once([c["id"] for c in finished + live], s.ground_truth(DEFAULT_START, THREE_DAYS))
    s.finish_all()
    assert list(hook.iter_conversations(DEFAULT_START, THREE_DAYS, filters=hook.in_progress_filters({}))) == []


def test_inserts_during_a_walk_neither_shift_nor_repeat(sim, set_connection):
    s = sim("replyful", conversations=1500, seed=6)
    set_connection("replyful_default", s.connection())
    truth = s.ground_truth(DEFAULT_START, THREE_DAYS)
    late = generate(300, seed=99, start=DEFAULT_START, precision=timedelta(milliseconds=1))
    for c in late:
        c.extra["id"] = f"conv_late{c.index:05d}"
    got: list[str] = []
    for number, page in enumerate(ReplyfulHook(page_size=25).iter_pages(DEFAULT_START, THREE_DAYS), 1):
        got += [c["id"] for c in page]
        if number == 20:
            s.add(late)  # spread over the whole window: some land behind the cursor, some ahead of it
    old = [i for i in got if not i.startswith("conv_late")]
    assert_exactly_once(old, truth)
    assert len(got) == len(set(got))
    assert 0 < len(got) - len(old) < 300


def test_default_order_is_newest_update_first_and_both_directions_page_completely(replyful_sim):
    url = f"{replyful_sim.url}/v1/conversations"
    auth = {"Authorization": f"Bearer {replyful_sim.token}"}
    bounds = {"createdAt[gte]": "2026-11-18T00:00:00Z", "createdAt[lte]": "2026-11-18T06:00:00Z"}
    first = requests.get(url, params=bounds, headers=auth, timeout=10).json()
    assert len(first["data"]) == 20  # the vendor's default page size
    stamps = [r["updatedAt"] for r in first["data"]]
    assert stamps == sorted(stamps, reverse=True)
    for sort in ("createdAt", "-createdAt", "updatedAt", "-updatedAt"):
        seen: list[dict[str, Any]] = []
        params: dict[str, str] = {**bounds, "sort": sort, "limit": "13"}
        while True:
            body = requests.get(url, params=params, headers=auth, timeout=10).json()
            seen += body["data"]
            if not body["hasMore"]:
                assert body["nextCursor"] is None
                break
            params["startingAfter"] = body["nextCursor"]
        field = sort.lstrip("-")
        keys = [(r[field], r["id"]) for r in seen]
        assert keys == sorted(keys, reverse=sort.startswith("-"))
        truth = [r["id"] for r in replyful_sim.records
                 if "2026-11-18T00:00:00.000Z" <= r["createdAt"] <= "2026-11-18T06:00:00.000Z"]
        assert sorted(r["id"] for r in seen) == sorted(truth)


def vendor_error(sim: Any, params: dict[str, Any], token: str | None = None) -> dict[str, Any]:
    response = requests.get(f"{sim.url}/v1/conversations", params=params, timeout=10,
                            headers={"Authorization": f"Bearer {token or sim.token}"})
    assert response.status_code == 422
    error: dict[str, Any] = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["requestId"].startswith("req_")
    assert error["docUrl"] == f"https://docs.replyful.com/errors#{error['code']}"
    return error


@pytest.mark.parametrize(
    ("params", "code", "param"),
    [
        ({"createdAt[gte]": "2026-11-18T00:00:00Z", "updatedAt[lte]": "2026-11-19T00:00:00Z"},
         "conflicting_date_range", None),
        ({"startingAfter": "not-a-cursor"}, "invalid_cursor", "startingAfter"),
        ({"limit": "101"}, "invalid_query_parameter", "limit"),
        ({"limit": "0"}, "invalid_query_parameter", "limit"),
        ({"sort": "created_at"}, "invalid_query_parameter", "sort"),
        ({"status": ["resolved", "closed"]}, "invalid_query_parameter", "status"),
        ({"supportLevel": "robot"}, "invalid_query_parameter", "supportLevel"),
        ({"createdAt[gte]": "yesterday"}, "invalid_query_parameter", "createdAt[gte]"),
        ({"updatedAt[lte]": "2026-11-18T00:00:00"}, "invalid_query_parameter", "updatedAt[lte]"),
        ({"createdAt[gt]": "2026-11-18T00:00:00Z"}, "invalid_query_parameter", "createdAt[gt]"),
        ({"q": ["a", "b"]}, "invalid_query_parameter", "q"),
        ({"channelId": ""}, "invalid_query_parameter", "channelId"),
    ],
)
def test_server_side_validation_speaks_the_vendor_envelope(replyful_sim, params, code, param):
    error = vendor_error(replyful_sim, params)
    assert (error["code"], error["param"]) == (code, param)


def test_a_cursor_only_works_for_the_sort_it_was_issued_for(replyful_sim):
    url = f"{replyful_sim.url}/v1/conversations"
    auth = {"Authorization": f"Bearer {replyful_sim.token}"}
    body = requests.get(url, params={"sort": "createdAt", "limit": "5"}, headers=auth, timeout=10).json()
    error = vendor_error(replyful_sim, {"sort": "-createdAt", "startingAfter": body["nextCursor"]})
    assert error["code"] == "invalid_cursor"


def test_the_hook_surfaces_the_simulator_errors(replyful_sim, set_connection):
    set_connection("replyful_default", replyful_sim.connection())
    hook = ReplyfulHook()
    with pytest.raises(VendorAPIError) as err:
        hook.get_json({"createdAt[gte]": "2026-11-18T00:00:00Z", "updatedAt[gte]": "2026-11-18T00:00:00Z"})
    assert (err.value.status, err.value.code) == (422, "conflicting_date_range")
    assert err.value.request_id is not None
    assert err.value.request_id in str(err.value)
    with pytest.raises(VendorAPIError) as err:
        hook.get_json({"limit": "500"})
    assert (err.value.code, err.value.param) == ("invalid_query_parameter", "limit")
    assert "param=limit" in str(err.value)


def test_wrong_or_missing_key(replyful_sim, set_connection):
    set_connection("replyful_default", replyful_sim.connection(token="rfl_live_wrong"))
    with pytest.raises(AuthenticationError) as err:
        list(ReplyfulHook().iter_conversations(DEFAULT_START, THREE_DAYS))
    assert err.value.code == "invalid_api_key"
    assert "'replyful_default'" in str(err.value)
    assert "rfl_live_wrong" not in str(err.value)
    assert ReplyfulHook().test_connection()[0] is False
    set_connection("replyful_default", replyful_sim.connection())
    assert ReplyfulHook().test_connection()[0] is True
    missing = requests.get(f"{replyful_sim.url}/v1/conversations", timeout=10)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "missing_api_key"


def test_faults_are_retried_to_an_exact_result(sim, set_connection):
    s = sim("replyful", conversations=2000, seed=11,
            faults=Faults(every={"429": 5, "503": 7, "truncated": 11, "reset": 13}))
    set_connection("replyful_default", s.connection())
    hook = ReplyfulHook(page_size=100, backoff=0.001, backoff_max=0.01)
    got = walk_back_to_back(hook, DEFAULT_START, 72)
    assert_exactly_once(got, s.ground_truth(DEFAULT_START, THREE_DAYS))
    assert hook.stats.retries >= 20


# ---------------------------------------------------------------------------------------------- the trap


def test_a_long_walk_stays_under_the_rate_limit(sim, set_connection):
    """Several hundred requests against 100 per (compressed) minute: every conversation, and not one 429."""
    s = sim("replyful", conversations=2200, seed=12, rate_limit=COMPRESSED_LIMIT, log_requests=False)
    set_connection("replyful_default", s.connection())
    hook = ReplyfulHook(page_size=7)
    got = [c["id"] for c in hook.iter_conversations(DEFAULT_START, THREE_DAYS)]
    assert_exactly_once(got, s.ground_truth(DEFAULT_START, THREE_DAYS))
    assert s.stats.requests >= 3 * COMPRESSED_LIMIT[0]  # the walk needed several rate-limit windows
    assert s.stats.throttled == 0  # the hook slowed down before the server had to say so
    assert hook.stats.retries == 0
    assert s.stats.faults == {}
    assert hook.stats.throttle_waits >= 3  # it did wait, in every window


def test_a_naive_loop_ignoring_the_headers_is_throttled(sim):
    """The previous test can fail: the same walk without pacing runs into 429 too_many_requests."""
    s = sim("replyful", conversations=2200, seed=12, rate_limit=COMPRESSED_LIMIT, log_requests=False)
    params: dict[str, str] = {"limit": "7", "sort": "createdAt"}
    with requests.Session() as http:
        http.headers["Authorization"] = f"Bearer {s.token}"
        while True:
            response = http.get(f"{s.url}/v1/conversations", params=params, timeout=10)
            if response.status_code != 200:
                break
            body = response.json()
            if not body["hasMore"]:
                break
            params["startingAfter"] = body["nextCursor"]
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "too_many_requests"
    assert float(response.headers["Retry-After"]) <= COMPRESSED_LIMIT[1]
    assert response.headers["RateLimit-Remaining"] == "0"
    assert s.stats.throttled == 1
