"""Replyful hook against requests-mock: exact bracketed bounds, cursor paging, the error envelope, rate limits."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from airflow_provider_conversations.exceptions import (
    ConfigurationError,
    InvalidFilterError,
    InvalidResponseError,
)
from airflow_provider_conversations.hooks.replyful import ReplyfulHook
from airflow_provider_conversations.output.records import normalize

BASE = "https://replyful.test"
URL = f"{BASE}/v1/conversations"
KEY = "rfl_live_9f8e7d6c5b4a"
START = datetime(2026, 11, 20, 10, tzinfo=UTC)
END = datetime(2026, 11, 20, 11, tzinfo=UTC)


def conv(i: int, created: str, updated: str | None = None, status: str = "resolved") -> dict[str, Any]:
    return {"id": f"conv_{i}", "object": "conversation", "status": status, "createdAt": created,
            "updatedAt": updated or created, "channel": {"id": "ch_1", "name": "Website chat", "type": "chat"}}


def page(*items: dict[str, Any], more: bool = False, cursor: str | None = None) -> dict[str, Any]:
    return {"json": {"object": "list", "data": list(items), "hasMore": more, "nextCursor": cursor,
                     "url": "/v1/conversations"}}


def sent(request: Any) -> dict[str, list[str]]:
    """The query exactly as sent (requests-mock's ``qs`` lower-cases it)."""
    return parse_qs(urlsplit(request.url).query)


def raw_query(request: Any) -> str:
    return urlsplit(request.url).query


@pytest.fixture
def replyful(set_connection):
    def make(password: str = KEY, conn_id: str = "replyful_default") -> None:
        set_connection(conn_id, {"conn_type": "replyful", "host": BASE, "password": password})

    make()
    return make


def fast(**kw: Any) -> ReplyfulHook:
    return ReplyfulHook(backoff=0.001, backoff_max=0.002, **kw)


# ---------------------------------------------------------------------------------------------- requests


def test_sends_bracketed_bounds_sort_filters_and_key(replyful, requests_mock):
    requests_mock.get(URL, **page())
    filters = {"status": ["needs_first_response", "needs_follow_up"], "channelId": "ch_1",
               "assignedToUserId": "unassigned", "supportLevel": "human", "topicId": ["top_1", "top_2"],
               "tagId": "tag_vip", "q": "refund please"}
    list(fast(page_size=50).iter_conversations(START, END, filters=filters))
    (req,) = requests_mock.request_history
    assert sent(req) == {
        "limit": ["50"], "sort": ["createdAt"],
        "status": ["needs_first_response", "needs_follow_up"], "channelId": ["ch_1"],
        "assignedToUserId": ["unassigned"], "supportLevel": ["human"], "topicId": ["top_1", "top_2"],
        "tagId": ["tag_vip"], "q": ["refund please"],
        # inclusive bounds one second wider than the window, at Replyful's millisecond precision
        "createdAt[gte]": ["2026-11-20T09:59:59.000Z"], "createdAt[lte]": ["2026-11-20T11:00:01.000Z"],
    }
    # the brackets and colons are percent-encoded on the wire
    query = raw_query(req)
    assert "createdAt%5Bgte%5D=2026-11-20T09%3A59%3A59.000Z" in query
    assert "createdAt%5Blte%5D=2026-11-20T11%3A00%3A01.000Z" in query
    assert "[" not in query
    assert "status=needs_first_response&status=needs_follow_up" in query
    assert req.headers["Authorization"] == f"Bearer {KEY}"
    assert req.headers["Accept"] == "application/json"
    assert req.headers["User-Agent"].startswith("airflow-provider-conversations/")
    assert KEY not in req.url


def test_default_page_size_is_the_maximum(replyful, requests_mock):
    requests_mock.get(URL, **page())
    list(fast().iter_conversations(START, END))
    assert sent(requests_mock.request_history[0])["limit"] == ["100"]


@pytest.mark.parametrize(("time_key", "field", "other"), [("created", "createdAt", "updatedAt"),
                                                           ("updated", "updatedAt", "createdAt")])
def test_bounds_follow_the_time_key_and_are_never_mixed(replyful, requests_mock, time_key, field, other):
    requests_mock.get(URL, [page(conv(1, "2026-11-20T10:00:00.000Z"), more=True, cursor="c1"), page()])
    list(fast().iter_conversations(START, END, time_key=time_key))
    for req in requests_mock.request_history:
        q = sent(req)
        assert q["sort"] == [field]
        assert q[f"{field}[gte]"] == ["2026-11-20T09:59:59.000Z"]
        assert q[f"{field}[lte]"] == ["2026-11-20T11:00:01.000Z"]
        assert not [k for k in q if k.startswith(other)]
    assert len(requests_mock.request_history) == 2


def test_sub_second_window_edges_are_widened_and_kept_at_milliseconds(replyful, requests_mock):
    requests_mock.get(URL, **page())
    start = datetime(2026, 11, 20, 10, 0, 0, 123456, tzinfo=UTC)
    end = datetime(2026, 11, 20, 10, 0, 5, 999999, tzinfo=UTC)
    list(fast().iter_conversations(start, end))
    q = sent(requests_mock.request_history[0])
    assert q["createdAt[gte]"] == ["2026-11-20T09:59:59.123Z"]
    assert q["createdAt[lte]"] == ["2026-11-20T10:00:06.999Z"]


# ---------------------------------------------------------------------------------------------- paging


def test_follows_starting_after_until_has_more_is_false(replyful, requests_mock):
    requests_mock.get(URL, [
        page(conv(1, "2026-11-20T10:00:00.000Z"), more=True, cursor="cur_A"),
        page(conv(2, "2026-11-20T10:30:00.000Z"), more=True, cursor="cur_B"),
        page(conv(3, "2026-11-20T10:59:59.999Z")),
    ])
    hook = fast(page_size=1)
    assert [c["id"] for c in hook.iter_conversations(START, END)] == ["conv_1", "conv_2", "conv_3"]
    history = requests_mock.request_history
    assert [sent(r).get("startingAfter") for r in history] == [None, ["cur_A"], ["cur_B"]]
    # every page repeats the same bounds, sort and limit
    for r in history:
        assert {k: v for k, v in sent(r).items() if k != "startingAfter"} == sent(history[0])
    assert hook.stats.pages == 3


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "not a list envelope"),
        ({"data": [], "hasMore": False, "nextCursor": None}, "not a list envelope"),
        ({"object": "conversation", "data": [], "hasMore": False}, "not a list envelope"),
        ({"object": "list", "data": {}, "hasMore": False}, "not a list envelope"),
        ({"object": "list", "data": [], "hasMore": "false"}, "not a list envelope"),
        ({"object": "list", "data": [], "hasMore": True, "nextCursor": 5}, "nextCursor that is not a string: 5"),
        ({"object": "list", "data": ["conv_1"], "hasMore": False}, "holding something other than objects"),
    ],
)
def test_a_body_that_is_not_the_envelope_is_an_invalid_response(replyful, requests_mock, body, message):
    requests_mock.get(URL, json=body)
    with pytest.raises(InvalidResponseError, match=message):
        list(fast().iter_conversations(START, END))
    assert requests_mock.call_count == 1


def test_half_open_cut_and_dedup(replyful, requests_mock):
    requests_mock.get(URL, [
        page(conv(0, "2026-11-20T09:59:59.999Z"),  # inside the widened bounds, before start: dropped
             conv(1, "2026-11-20T10:00:00.000Z"),  # == start: kept
             conv(2, "2026-11-20T10:00:00.000Z"),  # same instant, other id: kept
             more=True, cursor="c"),
        page(conv(2, "2026-11-20T10:00:00.000Z"),  # served again across the page boundary: dropped
             conv(3, "2026-11-20T10:59:59.999Z"),  # last millisecond: kept
             conv(4, "2026-11-20T11:00:00.000Z"),  # == end: belongs to the next window
             conv(5, "2026-11-20T11:00:00.500Z")),
    ])
    hook = fast()
    assert [c["id"] for c in hook.iter_conversations(START, END)] == ["conv_1", "conv_2", "conv_3"]
    assert hook.stats.duplicates == 1
    assert hook.stats.fetched == 7


def test_updated_windows_cut_on_updated_at(replyful, requests_mock):
    requests_mock.get(URL, **page(
        conv(1, "2026-11-19T08:00:00.000Z", "2026-11-20T10:00:00.000Z"),
        conv(2, "2026-11-20T10:30:00.000Z", "2026-11-20T11:00:00.000Z"),
    ))
    assert [c["id"] for c in fast().iter_conversations(START, END, time_key="updated")] == ["conv_1"]


# ---------------------------------------------------------------------------------------------- errors


def test_429_with_rate_limit_headers_waits_once_not_twice(replyful, requests_mock, fake_clock):
    requests_mock.get(URL, [
        {"status_code": 429, "headers": {"Retry-After": "12.5", "RateLimit-Limit": "100",
                                         "RateLimit-Remaining": "0", "RateLimit-Reset": "12.5"},
         "json": {"error": {"type": "rate_limit_error", "code": "too_many_requests", "message": "slow down"}}},
        page(conv(1, "2026-11-20T10:00:00.000Z")),
    ])
    hook = fast()
    clock = fake_clock(hook)
    assert [c["id"] for c in hook.iter_conversations(START, END)] == ["conv_1"]
    assert clock.sleeps == [12.5]


# ---------------------------------------------------------------------------------------------- validation


ALLOWED = "allowed filters: assignedToUserId, channelId, q, status, supportLevel, tagId, topicId"
STATUS_CHOICES = ("'waiting_for_user', 'needs_first_response', 'needs_follow_up', 'scheduled_ai_response', "
                  "'assumed_resolved', 'resolved', 'spam', 'paused', 'investigating', 'archived'")


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"channel_id": "ch_1"}, f"unknown Replyful filter 'channel_id'; {ALLOWED}"),
        ({"status": "open"}, f"Replyful filter 'status' got 'open'; allowed: one of {STATUS_CHOICES}, or a list of "
                             "such values"),
        ({"status": ["resolved", "closed"]}, "Replyful filter 'status' got 'closed'; allowed: one of"),
        ({"status": []}, "Replyful filter 'status' got [] (an empty list); allowed: one of"),
        ({"supportLevel": "bot"}, "Replyful filter 'supportLevel' got 'bot'; allowed: one of 'ai', 'human'"),
        ({"assignedToUserId": ["usr_1", "usr_2"]},
         "Replyful filter 'assignedToUserId' got ['usr_1', 'usr_2'] (a list, but this filter takes a single value); "
         "allowed: a non-empty string"),
        ({"q": "  "}, "Replyful filter 'q' got '  '; allowed: a non-empty string"),
        ({"sort": "-createdAt"}, "Replyful filter 'sort' cannot be passed in filters: the hook sorts ascending on "
                                 "the time key so that paging is exact; pass time_key instead"),
        ({"createdAt[gte]": "2026-11-20T00:00:00Z"},
         "Replyful filter 'createdAt[gte]' cannot be passed in filters: the hook sets it from the window and "
         "time_key; pass start/end instead"),
        ({"updatedAt[lte]": "2026-11-20T00:00:00Z"}, "Replyful filter 'updatedAt[lte]' cannot be passed in filters"),
        ({"startingAfter": "cur"}, "Replyful filter 'startingAfter' cannot be passed in filters: the hook pages"),
        ({"limit": 5}, "Replyful filter 'limit' cannot be passed in filters: the hook pages; pass page_size"),
    ],
)
def test_bad_filters_rejected_before_any_request(replyful, requests_mock, filters, message):
    with pytest.raises(InvalidFilterError) as err:
        fast().iter_conversations(START, END, filters=filters)
    assert message in str(err.value)
    assert requests_mock.call_count == 0


@pytest.mark.parametrize("page_size", [0, 101, "50"])
def test_page_size_outside_1_to_100_is_refused(replyful, page_size):
    with pytest.raises(ConfigurationError, match=rf"page_size={page_size!r} is not allowed for Replyful: expected "
                                                 "an integer from 1 to 100"):
        ReplyfulHook(page_size=page_size)


def test_a_key_with_a_line_break_is_refused_by_the_engine_before_any_request(replyful, requests_mock):
    replyful(password="rfl_live_abc\n", conn_id="replyful_prod")
    with pytest.raises(ConfigurationError, match="connection 'replyful_prod' has an API key with leading or trailing"):
        list(ReplyfulHook("replyful_prod").iter_conversations(START, END))
    assert requests_mock.call_count == 0


def test_unknown_time_key_is_refused(replyful, requests_mock):
    with pytest.raises(ConfigurationError, match="time_key='started' is not supported by Replyful; allowed: "
                                                 "'created', 'updated'"):
        fast().iter_pages(START, END, time_key="started")
    assert requests_mock.call_count == 0


@pytest.mark.parametrize("password", ["sk_live_abcdef", "rfl_prod_abcdef", "rfl_live_", "Bearer rfl_live_abc",
                                      "rfl_test_has space"])
def test_a_key_of_the_wrong_shape_is_refused_before_any_request(replyful, requests_mock, password):
    replyful(password=password, conn_id="replyful_prod")
    with pytest.raises(ConfigurationError) as err:
        list(ReplyfulHook("replyful_prod").iter_conversations(START, END))
    text = str(err.value)
    assert text == (
        "connection 'replyful_prod' has a Password that is not a Replyful API key (not shown here): Replyful keys "
        "start with rfl_live_ (live data) or rfl_test_ (test mode) and contain no spaces; paste the key alone, "
        "without 'Bearer '"
    )
    assert password.strip() == "rfl_live_" or password.strip() not in text  # the bare prefix is in the hint
    assert requests_mock.call_count == 0
    ok, message = ReplyfulHook("replyful_prod").test_connection()
    assert not ok
    assert "not a Replyful API key" in message
    assert requests_mock.call_count == 0


@pytest.mark.parametrize("password", ["rfl_live_4Jk9_x-Z", "rfl_test_simulator"])
def test_live_and_test_keys_are_accepted(replyful, requests_mock, password):
    replyful(password=password)
    requests_mock.get(URL, **page())
    list(fast().iter_conversations(START, END))
    assert requests_mock.request_history[0].headers["Authorization"] == f"Bearer {password}"


def test_the_key_check_can_be_switched_off_in_a_subclass(replyful, requests_mock):
    class AnyKeyHook(ReplyfulHook):
        api_key_pattern = None

    replyful(password="oauth-token-xyz")
    requests_mock.get(URL, **page())
    list(AnyKeyHook().iter_conversations(START, END))
    assert requests_mock.call_count == 1


def test_host_is_optional_and_defaults_to_the_public_api(set_connection, requests_mock):
    set_connection("replyful_default", {"conn_type": "replyful", "password": KEY})
    requests_mock.get("https://api.replyful.com/v1/conversations", **page())
    list(ReplyfulHook().iter_conversations(START, END))
    assert requests_mock.request_history[0].url.startswith("https://api.replyful.com/v1/conversations?")


# ---------------------------------------------------------------------------------------------- rate limit


def test_remaining_zero_makes_the_hook_wait_before_the_next_request(replyful, requests_mock, fake_clock):
    headers = {"RateLimit-Limit": "100", "RateLimit-Remaining": "0", "RateLimit-Reset": "12"}
    requests_mock.get(URL, [
        {**page(conv(1, "2026-11-20T10:00:00.000Z"), more=True, cursor="c1"), "headers": headers},
        page(conv(2, "2026-11-20T10:01:00.000Z")),
    ])
    hook = fast()
    clock = fake_clock(hook)
    assert [c["id"] for c in hook.iter_conversations(START, END)] == ["conv_1", "conv_2"]
    assert clock.sleeps == [12.0]
    assert hook.stats.throttle_waits == 1
    assert hook.stats.retries == 0


class FixedWindow:
    """A requests-mock callback enforcing ``limit`` requests per ``window`` seconds of the fake clock.

    The first window has only ``left`` requests left (other clients of the same key used the rest). Every
    response announces ``RateLimit-*``; a request over the limit gets a 429 with ``Retry-After``.
    """

    def __init__(self, clock: Any, *, limit: int, window: float, left: int, pages: int) -> None:
        self.clock, self.limit, self.window, self.pages = clock, limit, window, pages
        self.window_start = clock.now
        self.used = limit - left
        self.served = 0
        self.throttled = 0
        self.times: list[float] = []

    def __call__(self, request: Any, context: Any) -> dict[str, Any]:
        now = self.clock.now
        self.times.append(now)
        if now - self.window_start >= self.window:
            self.window_start, self.used = now, 0
        reset = self.window - (now - self.window_start)
        context.headers.update({"RateLimit-Limit": str(self.limit), "RateLimit-Reset": f"{reset:g}"})
        if self.used >= self.limit:
            self.throttled += 1
            context.status_code = 429
            context.headers.update({"RateLimit-Remaining": "0", "Retry-After": f"{reset:g}"})
            return {"error": {"type": "rate_limit_error", "code": "too_many_requests", "message": "slow down"}}
        self.used += 1
        context.headers["RateLimit-Remaining"] = str(self.limit - self.used)
        n = self.served
        self.served += 1
        more = self.served < self.pages
        return page(conv(n, f"2026-11-20T10:{n:02d}:00.000Z"), more=more, cursor=f"c{n}" if more else None)["json"]


def test_low_remaining_spreads_requests_instead_of_hitting_the_limit(set_connection, requests_mock, fake_clock):
    """Without a rate budget (extra rate_limit "none"), the headers alone pace the walk: what is left of the
    window is spread over it."""
    set_connection("replyful_default", {"conn_type": "replyful", "host": BASE, "password": KEY,
                                        "extra": {"rate_limit": "none"}})
    hook = fast(page_size=1)
    clock = fake_clock(hook)
    server = FixedWindow(clock, limit=100, window=30.0, left=3, pages=8)
    requests_mock.get(URL, json=server)
    got = [c["id"] for c in hook.iter_conversations(START, END)]
    assert got == [f"conv_{n}" for n in range(8)]
    assert server.throttled == 0  # never told "too many requests"
    assert hook.stats.retries == 0
    assert hook.stats.throttle_waits >= 2  # it slowed down on its own, before any 429
    # never more requests in the first window than it had left
    assert len([t for t in server.times if t - server.times[0] < 30.0]) <= 3
    assert server.times[-1] - server.times[0] >= 30.0


def test_with_its_budget_the_hook_uses_what_is_left_then_waits_for_the_reset(replyful, requests_mock, fake_clock):
    """With Replyful's default budget (100 / 60 s, no larger than the announced limit) the budget already keeps the
    walk within the window, so what is left goes at once and the used-up window pauses until its reset: no 429,
    never more than was left, and no slower than spreading."""
    hook = fast(page_size=1)
    clock = fake_clock(hook)
    server = FixedWindow(clock, limit=100, window=30.0, left=3, pages=8)
    requests_mock.get(URL, json=server)
    got = [c["id"] for c in hook.iter_conversations(START, END)]
    assert got == [f"conv_{n}" for n in range(8)]
    assert (server.throttled, hook.stats.retries) == (0, 0)
    assert len([t for t in server.times if t - server.times[0] < 30.0]) == 3
    assert server.times[3] - server.times[0] >= 30.0
    assert hook.stats.throttle_waits == 1


def test_a_hook_ignoring_the_headers_is_throttled_by_the_same_server(replyful, requests_mock, fake_clock):
    """The previous test can fail: without rate-limit headers the same walk runs into a 429."""

    class DeafHook(ReplyfulHook):
        rate_limit_headers = None

    hook = DeafHook(backoff=0.001, backoff_max=0.002, page_size=1)
    clock = fake_clock(hook)
    server = FixedWindow(clock, limit=100, window=30.0, left=3, pages=8)
    requests_mock.get(URL, json=server)
    assert len(list(hook.iter_conversations(START, END))) == 8
    assert server.throttled == 1
    assert hook.stats.retries == 1


# ---------------------------------------------------------------------------------------------- statuses


def test_finished_filters_narrow_the_status_filter(replyful):
    hook = fast()
    assert hook.finished_filters({}) == {"status": ["assumed_resolved", "resolved", "spam", "archived"]}
    assert hook.finished_filters({"status": ["archived", "paused", "resolved"]}) == {"status": ["resolved",
                                                                                                  "archived"]}
    assert hook.in_progress_filters({}) == {"status": [
        "waiting_for_user", "needs_first_response", "needs_follow_up", "scheduled_ai_response", "paused",
        "investigating"]}
    assert hook.in_progress_filters({"status": ["paused", "spam"]}) == {"status": ["paused"]}


def test_contradicting_status_filters_are_refused(replyful):
    hook = fast()
    with pytest.raises(InvalidFilterError) as err:
        hook.finished_filters({"status": ["paused", "investigating"]})
    assert str(err.value) == (
        "finished_only=True contradicts Replyful filter status=['paused', 'investigating']: none of those statuses "
        "is finished (finished: assumed_resolved, resolved, spam, archived)"
    )
    # Only finished statuses selected: nothing can be in progress, which is not an error (a settled sensor
    # on such a filter is simply settled); None tells the sensor to check the records themselves.
    assert hook.in_progress_filters({"status": ["resolved"]}) is None


@pytest.mark.parametrize(("status", "finished", "in_progress"), [
    ("resolved", True, False), ("assumed_resolved", True, False), ("spam", True, False), ("archived", True, False),
    ("waiting_for_user", False, True), ("needs_first_response", False, True), ("needs_follow_up", False, True),
    ("scheduled_ai_response", False, True), ("paused", False, True), ("investigating", False, True),
])
def test_every_status_is_either_finished_or_in_progress(replyful, status, finished, in_progress):
    hook = fast()
    item = conv(1, "2026-11-20T10:00:00.000Z", status=status)
    assert (hook.is_finished(item), hook.is_in_progress(item)) == (finished, in_progress)
    assert normalize(hook, item)["finished"] is finished


def test_normalize(replyful):
    item = {"id": "conv_2Xb", "object": "conversation", "status": "needs_follow_up", "supportLevel": "human",
            "channel": {"id": "ch_9", "name": "Support email", "type": "email"},
            "createdAt": "2026-11-20T10:00:00.500Z", "updatedAt": "2026-11-20T10:05:00.000Z", "waitingSince": None}
    assert normalize(fast(), item) == {
        "vendor": "replyful", "id": "conv_2Xb", "created_at": "2026-11-20T10:00:00.500000Z",
        "updated_at": "2026-11-20T10:05:00Z", "status": "needs_follow_up", "finished": False, "channel": "email",
        "duration_seconds": None, "raw": item,
    }
    assert normalize(fast(), {"id": "conv_1", "channel": {"name": "Website chat"}})["channel"] == "Website chat"
    bare = normalize(fast(), {"id": "conv_1"})
    assert (bare["created_at"], bare["status"], bare["finished"], bare["channel"]) == (None, None, None, None)
