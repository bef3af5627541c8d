"""Anyreach hook against its simulator: exact partitions under both cursor comparisons, and the tie trap.

The trap: the cursor is Base64(created_at) with no tie-breaker, and the server's comparison (``<`` or ``<=``)
is undocumented. ``test_naive_cursor_walk_loses_or_repeats`` shows that the simulator really springs it on
a client that follows the documented recipe literally; the hook must come out exact under both switches.
"""

from __future__ import annotations

import base64
import math
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests

from airflow_provider_conversations.exceptions import (
    AuthenticationError,
    ConfigurationError,
    PaginationError,
    VendorAPIError,
)
from airflow_provider_conversations.hooks.anyreach import AnyreachHook
from airflow_provider_conversations.output.records import normalize
from airflow_provider_conversations.testing.anyreach import AnyreachSimulator, tie_group
from airflow_provider_conversations.testing.dataset import DEFAULT_START
from airflow_provider_conversations.testing.server import Faults
from tests.helpers import assert_exactly_once, walk_back_to_back

N = 3000
DAYS3 = DEFAULT_START + timedelta(days=3)
#: Extra tie groups for the partition tests: one on an hour edge, one inside a window, both > 7.
PARTITION_TIES = [(DEFAULT_START + timedelta(hours=30), 120),
                  (DEFAULT_START + timedelta(hours=41, minutes=17, microseconds=250), 45)]
#: The trap, in a dense hour (~1000 others): hundreds on one instant (more than any small page), a second
#: group, and groups on both window edges (the one on the end edge belongs to the next window).
TRAP_HOUR = DEFAULT_START + timedelta(hours=1)
TRAP_TIES = [(TRAP_HOUR + timedelta(minutes=25, microseconds=1), 400),
             (TRAP_HOUR + timedelta(minutes=40), 250),
             (TRAP_HOUR, 150),
             (TRAP_HOUR + timedelta(hours=1), 300)]
TRAP_IN_WINDOW = 400 + 250 + 150


@pytest.fixture(scope="module")
def partition_sim() -> Iterator[AnyreachSimulator]:
    with AnyreachSimulator(N, seed=7, tie_groups=PARTITION_TIES, max_seconds=600, log_requests=False) as s:
        yield s


@pytest.fixture(params=["strict", "inclusive"])
def compare(request: pytest.FixtureRequest, partition_sim: AnyreachSimulator) -> Iterator[str]:
    """The server's cursor comparison, switched on the shared simulator for one test."""
    partition_sim.cursor_compare = request.param
    yield request.param
    partition_sim.cursor_compare = "strict"


def on_hour_edges(sim: AnyreachSimulator) -> int:
    return sum(1 for r in sim.records if r["created_at"].endswith(":00:00.000000Z"))


@pytest.mark.parametrize("time_key", ["created", "updated"])
@pytest.mark.parametrize("page_size", [1, 7, None])
def test_back_to_back_hours_partition_exactly(partition_sim, set_connection, compare, time_key, page_size):
    set_connection("anyreach_default", partition_sim.connection())
    assert on_hour_edges(partition_sim) > 300  # many conversations sit exactly on window edges
    hook = AnyreachHook(page_size=page_size)
    got = walk_back_to_back(hook, DEFAULT_START, 72, time_key=time_key)
    truth = partition_sim.ground_truth(DEFAULT_START, DAYS3, time_key=time_key)
    assert len(truth) > 2500
    assert_exactly_once(got, truth)


# ------------------------------------------------------------------------------------------ the trap


def naive_walk(sim: AnyreachSimulator, params: dict[str, str], limit: int,
               max_requests: int = 100) -> tuple[list[str], bool]:
    """The documented recipe, followed literally: cursor = Base64(created_at of the last item).

    Returns the ids in the order received and whether the walk ended (False: it was still going after
    ``max_requests``, i.e. stuck).
    """
    got: list[str] = []
    query = {**params, "limit": str(limit)}
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {sim.token}"
        for _ in range(max_requests):
            page = session.get(f"{sim.url}/core/conversations", params=query, timeout=10).json()
            got += [c["id"] for c in page]
            if len(page) < limit:
                return got, True
            query["cursor"] = base64.b64encode(page[-1]["created_at"].encode()).decode()
    return got, False


@pytest.fixture(scope="module")
def trap_sim() -> Iterator[AnyreachSimulator]:
    with AnyreachSimulator(3000, seed=13, span=timedelta(hours=3), tie_groups=TRAP_TIES, max_seconds=600,
                           log_requests=False) as s:
        yield s


TRAP_WINDOW = {"created_after": "2026-11-17T01:00:00Z", "created_before": "2026-11-17T01:59:59.999999Z"}


@pytest.mark.parametrize("cursor_compare", ["strict", "inclusive"])
def test_naive_cursor_walk_loses_or_repeats(trap_sim, cursor_compare):
    """Proof that the trap is real: the same walk the hook must get right fails when done naively."""
    trap_sim.cursor_compare = cursor_compare
    try:
        truth = trap_sim.ground_truth(TRAP_HOUR, TRAP_HOUR + timedelta(hours=1))
        got, ended = naive_walk(trap_sim, TRAP_WINDOW, limit=50)
    finally:
        trap_sim.cursor_compare = "strict"
    assert len(truth) >= 1500
    if cursor_compare == "strict":
        # Every page boundary inside a tie group skips the rest of the group.
        assert ended
        assert not [i for i, n in Counter(got).items() if n > 1]
        assert len(set(truth) - set(got)) >= 600
    else:
        # The first page inside the 400-group is the whole next page, forever.
        assert not ended
        assert Counter(got).most_common(1)[0][1] > 50


@pytest.mark.parametrize("tie_order", ["stable", "shuffled"])
@pytest.mark.parametrize("cursor_compare", ["strict", "inclusive"])
@pytest.mark.parametrize("page_size", [7, 50, 300, None])
def test_hundreds_on_one_instant_exactly_once_without_looping(trap_sim, set_connection, cursor_compare, tie_order,
                                                             page_size):
    trap_sim.cursor_compare, trap_sim.tie_order = cursor_compare, tie_order
    try:
        set_connection("anyreach_default", trap_sim.connection())
        hook = AnyreachHook(page_size=page_size)
        got = [c["id"] for c in hook.iter_conversations(TRAP_HOUR, TRAP_HOUR + timedelta(hours=1))]
    finally:
        trap_sim.cursor_compare, trap_sim.tie_order = "strict", "stable"
    truth = trap_sim.ground_truth(TRAP_HOUR, TRAP_HOUR + timedelta(hours=1))
    assert_exactly_once(got, truth)
    # Bounded: one probe, one 1000-item page per tie group a page lands inside, and otherwise pages that
    # each move on by at least page_size - (ties at their first instant) conversations.
    size = page_size or 1000
    others = len(truth) - TRAP_IN_WINDOW
    assert hook.stats.requests <= 1 + 2 * 3 + math.ceil(others / (size - 3)) + 2


@pytest.mark.parametrize("cursor_compare", ["strict", "inclusive"])
@pytest.mark.parametrize("page_size", [7, None])
def test_more_than_a_thousand_ties_fail_loudly_and_quickly(sim, set_connection, cursor_compare, page_size):
    instant = DEFAULT_START + timedelta(hours=3, minutes=30)
    s = sim("anyreach", conversations=200, seed=3, cursor_compare=cursor_compare, tie_groups=[(instant, 1001)])
    set_connection("anyreach_default", s.connection())
    hook = AnyreachHook(page_size=page_size)
    with pytest.raises(PaginationError, match=r"at least 1000 Anyreach conversations share created_at "
                                              r"2026-11-17T03:30:00\.000000Z"):
        list(hook.iter_conversations(instant, instant + timedelta(minutes=1)))
    assert hook.stats.requests == (3 if page_size else 1)


@pytest.mark.parametrize("cursor_compare", ["strict", "inclusive"])
def test_millisecond_timestamps(sim, set_connection, cursor_compare):
    """Coarser vendor timestamps: the crafted strict cursor (T + 1 µs) still means "at or before T"."""
    s = sim("anyreach", conversations=600, seed=5, span=timedelta(hours=6), cursor_compare=cursor_compare,
            precision=timedelta(milliseconds=1),
            tie_groups=[(DEFAULT_START + timedelta(hours=2, milliseconds=7), 40)])
    assert s.records[0]["created_at"].endswith("Z")
    assert len(s.records[0]["created_at"]) == len("2026-11-17T00:00:00.000Z")
    set_connection("anyreach_default", s.connection())
    got = walk_back_to_back(AnyreachHook(page_size=7), DEFAULT_START, 6)
    assert_exactly_once(got, s.ground_truth(DEFAULT_START, DEFAULT_START + timedelta(hours=6)))


def test_conversations_added_mid_walk_behind_the_cursor_are_exported_once(sim, set_connection):
    s = sim("anyreach", conversations=400, seed=9, span=timedelta(hours=2))
    set_connection("anyreach_default", s.connection())
    start, end = DEFAULT_START, DEFAULT_START + timedelta(hours=2)
    pages = AnyreachHook(page_size=20).iter_pages(start, end)
    got = [c["id"] for c in next(pages)]
    # 60 more on an instant the walk has not reached yet (it walks back from the newest).
    s.add(tie_group(start + timedelta(minutes=5), 60, first_index=10_000))
    got += [c["id"] for page in pages for c in page]
    assert_exactly_once(got, s.ground_truth(start, end))


# ------------------------------------------------------------------------------------------ filters, fields


def test_filters_reach_the_server(partition_sim, set_connection):
    set_connection("anyreach_default", partition_sim.connection())
    filters: dict[str, Any] = {"channel": "telephone", "direction": "inbound", "duration_above": 100,
                               "duration_below": 1500, "user_turn_count_above": 3, "agent_number": "+1800555",
                               "custom_metadata": {"tier": "gold"}}
    got = [c["id"] for c in AnyreachHook(page_size=50).iter_conversations(DEFAULT_START, DAYS3, filters=filters)]
    truth = [r["id"] for r in partition_sim.records
             if r["channel"] == "telephone" and r["direction"] == "inbound" and 100 <= r["duration"] <= 1500
             and r["user_turn_count"] >= 3 and r["custom_metadata"]["tier"] == "gold"]
    assert len(truth) > 20
    assert sorted(got) == sorted(truth)
    assert sorted(truth) == sorted(partition_sim.ground_truth(DEFAULT_START, DAYS3, **filters))


@pytest.mark.parametrize(
    ("filters", "check"),
    [
        ({"status": "in_progress"}, lambda r: r["status"] == "in_progress"),
        ({"user_id": "user-00"}, lambda r: "user-00" in r["user_id"]),
        ({"agent_id": "agt_3", "agent_version_id": "agv_3_1"}, lambda r: r["agent_version_id"] == "agv_3_1"),
        ({"web_widget_id": "wgt_2", "user_turn_count_below": 10},
         lambda r: r["web_widget_id"] == "wgt_2" and r["user_turn_count"] <= 10),
    ],
)
def test_every_filter_is_applied(partition_sim, set_connection, filters, check):
    set_connection("anyreach_default", partition_sim.connection())
    got = sorted(c["id"] for c in AnyreachHook().iter_conversations(DEFAULT_START, DAYS3, filters=filters))
    truth = sorted(r["id"] for r in partition_sim.records if check(r))
    assert truth
    assert got == truth


def test_fields_projection_and_reduced_scope(sim, set_connection):
    s = sim("anyreach", conversations=300, seed=2, sensitive=False)
    set_connection("anyreach_default", s.connection())
    hook = AnyreachHook(page_size=25)
    slim = list(hook.iter_conversations(DEFAULT_START, DAYS3, filters={"fields": "status,summary"}))
    assert {tuple(sorted(c)) for c in slim} == {("created_at", "id", "status", "updated_at")}
    full = list(hook.iter_conversations(DEFAULT_START, DAYS3))
    assert len(full) == len(slim) == 300
    assert not any("summary" in c or "recording_details" in c for c in full)
    assert all(normalize(hook, c)["finished"] is not None for c in full)


def test_in_progress_and_finish_all(sim, set_connection):
    s = sim("anyreach", conversations=1000, seed=4)
    set_connection("anyreach_default", s.connection())
    hook = AnyreachHook()
    records = list(hook.iter_conversations(DEFAULT_START, DAYS3))
    live = [c for c in records if hook.is_in_progress(c)]
    assert 10 <= len(live) <= 120
    assert all(hook.is_finished(c) for c in records if c not in live)
    s.finish_all()
    assert not [c for c in hook.iter_conversations(DEFAULT_START, DAYS3) if not hook.is_finished(c)]


# ------------------------------------------------------------------------------------------ auth, validation


def test_ak_key_and_wrong_key(sim, set_connection):
    s = sim("anyreach", conversations=10)
    set_connection("anyreach_default", s.connection(token="ak_wrong.key"))
    with pytest.raises(AuthenticationError, match=r"'anyreach_default'.*Invalid authentication credentials"):
        list(AnyreachHook().iter_conversations(DEFAULT_START, DAYS3))
    assert AnyreachHook().test_connection()[0] is False
    set_connection("anyreach_default", s.connection())
    assert AnyreachHook().test_connection()[0] is True


def test_pat_token_needs_the_right_organisation(sim, set_connection):
    s = sim("anyreach", conversations=10, token="pat_sim.personal", org_id="org_7")
    set_connection("anyreach_default", s.connection())
    assert s.connection()["extra"] == {"org_id": "org_7"}
    assert len(list(AnyreachHook().iter_conversations(DEFAULT_START, DAYS3))) == 10
    set_connection("anyreach_default", s.connection(org_id="org_other"))
    with pytest.raises(AuthenticationError) as err:
        list(AnyreachHook().iter_conversations(DEFAULT_START, DAYS3))
    assert err.value.status == 403
    assert "Token has no access to organization 'org_other'." in str(err.value)
    # Without org_id the hook refuses before sending anything.
    before = s.stats.requests
    set_connection("anyreach_default", {**s.connection(), "extra": {}})
    with pytest.raises(ConfigurationError, match="'anyreach_default' uses a personal access token"):
        list(AnyreachHook().iter_conversations(DEFAULT_START, DAYS3))
    assert s.stats.requests == before
    # What the server says to a client that forgets the header.
    r = requests.get(f"{s.url}/core/conversations", headers={"Authorization": "Bearer pat_sim.personal"}, timeout=10)
    assert (r.status_code, r.json()) == (401, {"detail": "Token is missing organization claim."})


@pytest.mark.parametrize(
    ("params", "status", "body"),
    [
        ({"limit": "1001"}, 422, {"detail": [{"loc": ["query", "limit"], "type": "less_than_equal",
                                              "msg": "Input should be less than or equal to 1000"}]}),
        ({"limit": "0"}, 422, {"detail": [{"loc": ["query", "limit"], "type": "greater_than_equal",
                                           "msg": "Input should be greater than or equal to 1"}]}),
        ({"sort": "asc"}, 422, {"detail": [{"loc": ["query", "sort"], "type": "extra_forbidden",
                                            "msg": "Extra inputs are not permitted"}]}),
        ({"channel": "fax"}, 422, {"detail": [{"loc": ["query", "channel"], "type": "enum",
                                               "msg": "Input should be 'telephone', 'webrtc', 'email', 'text'"}]}),
        ({"custom_metadata": "[1]"}, 422, {"detail": [{"loc": ["query", "custom_metadata"], "type": "value_error",
                                                       "msg": "custom_metadata must be a JSON object string"}]}),
        ({"cursor": "not base64!"}, 400, {"detail": "Invalid cursor"}),
    ],
)
def test_server_side_validation(sim, params, status, body):
    s = sim("anyreach", conversations=10)
    r = requests.get(f"{s.url}/core/conversations", params=params, timeout=10,
                     headers={"Authorization": f"Bearer {s.token}"})
    assert (r.status_code, r.json()) == (status, body)


def test_vendor_422_reaches_the_user(sim, set_connection):
    s = sim("anyreach", conversations=10)
    set_connection("anyreach_default", s.connection())
    with pytest.raises(VendorAPIError) as err:
        AnyreachHook().get_json({"limit": "1001"})
    assert (err.value.status, err.value.param) == (422, "limit")


def test_faults_are_retried_to_an_exact_result(sim, set_connection):
    s = sim("anyreach", conversations=3000, seed=11, tie_groups=[(DEFAULT_START + timedelta(hours=9), 80)],
            faults=Faults(every={"429": 5, "503": 7, "truncated": 11, "reset": 13}))
    set_connection("anyreach_default", s.connection())
    hook = AnyreachHook(page_size=100, backoff=0.001, backoff_max=0.01)
    got = walk_back_to_back(hook, DEFAULT_START, 72)
    assert_exactly_once(got, s.ground_truth(DEFAULT_START, DAYS3))
    assert hook.stats.retries >= 20
