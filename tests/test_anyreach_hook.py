"""Anyreach hook against requests-mock: exact requests, the tie-safe cursor under both comparisons, errors."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from airflow_provider_conversations.exceptions import (
    AuthenticationError,
    ConfigurationError,
    InvalidFilterError,
    InvalidResponseError,
    PaginationError,
    VendorAPIError,
)
from airflow_provider_conversations.hooks.anyreach import FIELDS, AnyreachHook
from airflow_provider_conversations.output.records import normalize

BASE = "https://anyreach.test"
URL = f"{BASE}/core/conversations"
START = datetime(2026, 11, 20, 10, tzinfo=UTC)
END = datetime(2026, 11, 20, 11, tzinfo=UTC)
KEY = "ak_test.s3cr3t-key"
PAT = "pat_test.s3cr3t-token"
T = "2026-11-20T10:30:00.250000Z"  # the instant several conversations share in the tie tests
T_NEXT = "2026-11-20T10:30:00.250001Z"  # T + 1 µs: "at or before T" for a strict server


def conv(cid: str, created_at: str, updated_at: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": cid, "created_at": created_at, "updated_at": updated_at or created_at, "status": "completed",
            **extra}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def sent(requests_mock: Any) -> list[dict[str, str]]:
    """Query parameters of every request, exactly as sent (requests-mock's ``qs`` lower-cases values)."""
    out = []
    for req in requests_mock.request_history:
        q = {k: v[0] for k, v in parse_qs(urlsplit(req.url).query).items()}
        if "cursor" in q:
            q["cursor"] = base64.b64decode(q["cursor"]).decode()  # shown decoded: the timestamp it carries
        out.append(q)
    return out


@pytest.fixture
def anyreach(set_connection):
    def make(token: str = KEY, conn_id: str = "anyreach_default", **conn: Any) -> None:
        set_connection(conn_id, {"conn_type": "anyreach", "host": BASE, "password": token, **conn})

    make()
    return make


def fast(**kw: Any) -> AnyreachHook:
    return AnyreachHook(backoff=0.001, backoff_max=0.002, **kw)


def ids(hook: AnyreachHook, **kw: Any) -> list[str]:
    return [c["id"] for c in hook.iter_conversations(START, END, **kw)]


# ------------------------------------------------------------------------------------------ requests


def test_sends_window_filters_and_bearer_key(anyreach, requests_mock):
    requests_mock.get(URL, json=[])
    list(fast(page_size=50).iter_conversations(START, END, filters={
        "direction": "inbound", "channel": "telephone", "status": "completed", "user_id": "+1555",
        "agent_id": "agt_1", "agent_version_id": "agv_1", "agent_number": "+1800", "web_widget_id": "wgt_1",
        "duration_above": 10, "duration_below": "600", "user_turn_count_above": 1, "user_turn_count_below": 30,
        "custom_metadata": {"tier": "gold", "order_id": "123"},
    }))
    assert sent(requests_mock) == [{
        "limit": "50", "direction": "inbound", "channel": "telephone", "status": "completed", "user_id": "+1555",
        "agent_id": "agt_1", "agent_version_id": "agv_1", "agent_number": "+1800", "web_widget_id": "wgt_1",
        "duration_above": "10", "duration_below": "600", "user_turn_count_above": "1",
        "user_turn_count_below": "30", "custom_metadata": '{"order_id":"123","tier":"gold"}',
        # both bounds are inclusive: [start, end - 1 µs] is exactly the half-open window
        "created_after": "2026-11-20T10:00:00Z", "created_before": "2026-11-20T10:59:59.999999Z",
    }]
    req = requests_mock.request_history[0]
    assert req.headers["Authorization"] == f"Bearer {KEY}"
    assert "X-Anyreach-Org" not in req.headers  # an ak_ key carries its organisation
    assert req.headers["User-Agent"].startswith("airflow-provider-conversations/")
    assert KEY not in req.url


def test_pat_token_sends_the_organisation_header(anyreach, requests_mock):
    anyreach(PAT, extra={"org_id": "org_42"})
    requests_mock.get(URL, json=[])
    list(fast().iter_conversations(START, END))
    req = requests_mock.request_history[0]
    assert req.headers["Authorization"] == f"Bearer {PAT}"
    assert req.headers["X-Anyreach-Org"] == "org_42"
    assert sent(requests_mock)[0]["limit"] == "1000"  # default page size: the maximum


def test_pat_token_without_org_id_is_refused_before_any_request(anyreach, requests_mock):
    anyreach(PAT, conn_id="anyreach_pat")
    with pytest.raises(ConfigurationError) as err:
        list(fast(conn_id="anyreach_pat").iter_pages(START, END))
    assert str(err.value) == (
        "Anyreach connection 'anyreach_pat' uses a personal access token (pat_...) but has no org_id: set "
        "Organisation ID in the connection form (it is sent as X-Anyreach-Org), or use an organisation API key "
        "(ak_...)"
    )
    assert PAT not in str(err.value)
    assert requests_mock.call_count == 0


def test_default_base_url(set_connection, requests_mock):
    set_connection("anyreach_default", {"conn_type": "anyreach", "password": KEY})
    requests_mock.get("https://api.anyreach.ai/core/conversations", json=[])
    list(fast().iter_conversations(START, END))
    assert requests_mock.request_history[0].url.startswith("https://api.anyreach.ai/core/conversations?")


@pytest.mark.parametrize(("time_key", "absent"), [("created", "updated"), ("updated", "created")])
def test_bounds_follow_the_time_key(anyreach, requests_mock, time_key, absent):
    requests_mock.get(URL, json=[])
    list(fast().iter_conversations(START, END, time_key=time_key))
    (q,) = sent(requests_mock)
    assert q[f"{time_key}_after"] == "2026-11-20T10:00:00Z"
    assert q[f"{time_key}_before"] == "2026-11-20T10:59:59.999999Z"
    assert f"{absent}_after" not in q
    assert f"{absent}_before" not in q


def test_updated_window_cuts_on_updated_at(anyreach, requests_mock):
    requests_mock.get(URL, json=[
        conv("late", "2026-11-20T10:50:00Z", "2026-11-20T11:00:00Z"),  # updated == end: next window
        conv("in", "2026-11-20T09:00:00Z", "2026-11-20T10:00:00Z"),  # created earlier, updated == start
        conv("early", "2026-11-20T08:00:00Z", "2026-11-20T09:59:59.999999Z"),
    ])
    assert ids(fast(), time_key="updated") == ["in"]


def test_fields_projection_always_asks_for_id_and_both_timestamps(anyreach, requests_mock):
    requests_mock.get(URL, json=[])
    hook = fast()
    list(hook.iter_conversations(START, END, filters={"fields": "status, channel"}))
    list(hook.iter_conversations(START, END, filters={"fields": "id,created_at,summary"}))
    assert [q["fields"] for q in sent(requests_mock)] == [
        "status,channel,id,created_at,updated_at", "id,created_at,summary,updated_at",
    ]


# ------------------------------------------------------------------------------------------ paging


def test_a_short_page_ends_the_walk(anyreach, requests_mock):
    requests_mock.get(URL, json=[conv("a", "2026-11-20T10:50:00Z"), conv("b", "2026-11-20T10:40:00Z")])
    hook = fast(page_size=3)
    assert ids(hook) == ["a", "b"]
    assert requests_mock.call_count == 1
    assert hook.stats.pages == 1


def test_half_open_cut_and_dedup(anyreach, requests_mock):
    requests_mock.get(URL, json=[
        conv("end", "2026-11-20T11:00:00Z"),  # == end: belongs to the next window
        conv("last", "2026-11-20T10:59:59.999999Z"),
        conv("start", "2026-11-20T10:00:00Z"),  # == start: kept
        conv("start", "2026-11-20T10:00:00.000000Z"),  # served twice: kept once
        conv("twin", "2026-11-20T10:00:00+00:00"),  # same instant, other id: kept
        conv("before", "2026-11-20T09:59:59.999999Z"),
    ])
    hook = fast(page_size=10)
    assert ids(hook) == ["last", "start", "twin"]
    assert hook.stats.duplicates == 1


# Six conversations, newest first; c and d share T and the first page (limit 3) ends between them.
BOUNDARY = [
    conv("a", "2026-11-20T10:50:00.000000Z"),
    conv("b", "2026-11-20T10:40:00.000000Z"),
    conv("c", T),
    conv("d", T),
    conv("e", "2026-11-20T10:20:00.000000Z"),
    conv("f", "2026-11-20T10:10:00.000000Z"),
]
a, b, c, d, e, f = BOUNDARY
E = e["created_at"]
WINDOW = {"created_after": "2026-11-20T10:00:00Z", "created_before": "2026-11-20T10:59:59.999999Z"}


def test_tie_at_page_boundary_inclusive_server(anyreach, requests_mock):
    requests_mock.get(URL, [
        {"json": [a, b, c]},
        {"json": [c]},  # probe: an inclusive server answers the cursor with a conversation at T
        {"json": [c, d, e]},  # "<= T": c again (de-duplicated), then d, which a strict server would skip
        {"json": [e, f]},  # short: done
    ])
    hook = fast(page_size=3)
    assert ids(hook) == ["a", "b", "c", "d", "e", "f"]
    assert sent(requests_mock) == [
        {"limit": "3", **WINDOW},
        {"limit": "1", "cursor": T, "created_after": T, "created_before": WINDOW["created_before"]},
        {"limit": "3", "cursor": T, **WINDOW},
        {"limit": "3", "cursor": E, **WINDOW},
    ]
    assert hook.stats.duplicates == 3  # c twice, e once


def test_tie_at_page_boundary_strict_server(anyreach, requests_mock):
    requests_mock.get(URL, [
        {"json": [a, b, c]},
        {"json": []},  # probe: a strict server has nothing below T at or after T
        {"json": [c, d, e]},  # cursor T + 1 µs: "< T + 1 µs" is "<= T"
        {"json": [e, f]},
    ])
    hook = fast(page_size=3)
    assert ids(hook) == ["a", "b", "c", "d", "e", "f"]
    assert sent(requests_mock) == [
        {"limit": "3", **WINDOW},
        {"limit": "1", "cursor": T, "created_after": T, "created_before": WINDOW["created_before"]},
        {"limit": "3", "cursor": T_NEXT, **WINDOW},
        {"limit": "3", "cursor": "2026-11-20T10:20:00.000001Z", **WINDOW},
    ]


# b..e share T: a group larger than the page (limit 2).
GROUP = [conv("a", "2026-11-20T10:50:00Z"), *(conv(x, T) for x in "bcde"), conv("f", "2026-11-20T10:10:00Z")]


@pytest.mark.parametrize(("compare", "probe", "cursor"), [("inclusive", [GROUP[1]], T), ("strict", [], T_NEXT)])
def test_tie_group_larger_than_the_page_is_fetched_whole(anyreach, requests_mock, compare, probe, cursor):
    requests_mock.get(URL, [
        {"json": GROUP[0:2]},  # [a, b]
        {"json": probe},
        {"json": GROUP[1:3]},  # "<= T", limit 2: [b, c], the whole page on T; again would loop forever
        {"json": GROUP[1:]},  # "<= T", limit 1000: the whole group and what follows
    ])
    hook = fast(page_size=2)
    assert ids(hook) == ["a", "b", "c", "d", "e", "f"]
    assert [(q["limit"], q.get("cursor")) for q in sent(requests_mock)] == [
        ("2", None), ("1", T), ("2", cursor), ("1000", cursor),
    ]


def test_updated_walk_probes_with_an_extra_created_after(anyreach, requests_mock):
    requests_mock.get(URL, [
        {"json": [conv("a", "2026-11-20T10:50:00Z", "2026-11-20T10:55:00Z"), conv("b", T, "2026-11-20T10:45:00Z")]},
        {"json": [conv("b", T, "2026-11-20T10:45:00Z")]},
        {"json": [conv("b", T, "2026-11-20T10:45:00Z"), conv("c", T, "2026-11-20T10:35:00Z")]},
        {"json": [conv("b", T, "2026-11-20T10:45:00Z"), conv("c", T, "2026-11-20T10:35:00Z")]},
    ])
    assert ids(fast(page_size=2), time_key="updated") == ["a", "b", "c"]
    upd = {"updated_after": "2026-11-20T10:00:00Z", "updated_before": "2026-11-20T10:59:59.999999Z"}
    assert sent(requests_mock) == [
        {"limit": "2", **upd},
        {"limit": "1", "cursor": T, "created_after": T, **upd},
        {"limit": "2", "cursor": T, **upd},
        {"limit": "1000", "cursor": T, **upd},
    ]


@pytest.mark.parametrize(("compare", "probe"), [("inclusive", [conv("x", T)]), ("strict", [])])
def test_a_thousand_ties_stop_the_walk_loudly(anyreach, requests_mock, compare, probe):
    thousand = [conv(f"t{i}", T) for i in range(1000)]
    requests_mock.get(URL, [{"json": thousand[:10]}, {"json": probe}, {"json": thousand}])
    with pytest.raises(PaginationError) as err:
        list(fast(page_size=10).iter_conversations(START, END))
    assert str(err.value).startswith(
        f"at least 1000 Anyreach conversations share created_at {T}: the API's cursor is that timestamp alone, "
        "so it cannot page past them without losing or repeating conversations."
    )
    assert requests_mock.call_count == 3


def test_a_thousand_ties_at_the_default_page_size_fail_on_the_first_page(anyreach, requests_mock):
    requests_mock.get(URL, json=[conv(f"t{i}", T) for i in range(1000)])
    with pytest.raises(PaginationError, match="at least 1000 Anyreach conversations share created_at"):
        list(fast().iter_conversations(START, END))
    assert requests_mock.call_count == 1


def test_a_server_that_ignores_the_cursor_fails_at_once(anyreach, requests_mock):
    requests_mock.get(URL, json=[a, b, c])  # the same page, whatever is asked
    with pytest.raises(PaginationError, match=r"answered the probe cursor=.* with a conversation created at "
                                              r"2026-11-20T10:50:00.000000Z: it ignores its cursor"):
        list(fast(page_size=3).iter_conversations(START, END))
    assert requests_mock.call_count == 2


def test_a_continuation_that_walks_forward_fails_at_once(anyreach, requests_mock):
    requests_mock.get(URL, [{"json": [a, b, c]}, {"json": [c]}, {"json": [a, b, c]}])
    with pytest.raises(PaginationError, match=f"answered a cursor at {T} with a conversation created later"):
        list(fast(page_size=3).iter_conversations(START, END))
    assert requests_mock.call_count == 3


def test_a_strict_cursor_that_skips_the_instant_fails_instead_of_losing(anyreach, requests_mock):
    # A server comparing at millisecond precision would treat T + 1 µs as T and skip d.
    requests_mock.get(URL, [{"json": [a, b, c]}, {"json": []}, {"json": [e, f]}])
    with pytest.raises(PaginationError, match=f"cursor {T_NEXT} .* did not return the conversations created at"):
        list(fast(page_size=3).iter_conversations(START, END))


def test_a_conversation_deleted_mid_walk_is_tolerated_once_the_cursor_is_known(anyreach, requests_mock):
    g, h = conv("g", "2026-11-20T10:05:00Z"), conv("h", "2026-11-20T10:01:00Z")
    requests_mock.get(URL, [
        {"json": [a, b, c]}, {"json": []}, {"json": [c, d, e]},
        {"json": [f, g, h]},  # e was deleted meanwhile: nothing at its instant any more
        {"json": []},
    ])
    assert ids(fast(page_size=3)) == ["a", "b", "c", "d", "e", "f", "g", "h"]


@pytest.mark.parametrize("body", [{"data": []}, [["c1"]], "conversations"])
def test_anything_but_an_array_of_objects_is_invalid(anyreach, requests_mock, body):
    requests_mock.get(URL, json=body)
    with pytest.raises(InvalidResponseError, match="something other than a JSON array of conversations"):
        list(fast().iter_conversations(START, END))


def test_a_conversation_without_created_at_is_invalid(anyreach, requests_mock):
    requests_mock.get(URL, json=[{"id": "x", "created_at": T, "updated_at": "2026-11-20T10:10:00Z"},
                                 {"id": "y", "updated_at": "2026-11-20T10:20:00Z"}])
    with pytest.raises(InvalidResponseError, match=r"\(id='y'\) without a valid 'created_at' \(None\)"):
        list(fast(page_size=2).iter_conversations(START, END, time_key="updated"))


# ------------------------------------------------------------------------------------------ errors


def test_missing_organisation_claim_is_surfaced(anyreach, requests_mock):
    anyreach(PAT, extra={"org_id": "org_wrong"})
    requests_mock.get(URL, status_code=401, json={"detail": "Token is missing organization claim."})
    with pytest.raises(AuthenticationError, match=r"Token is missing organization claim\."):
        list(fast().iter_conversations(START, END))


def test_string_detail_is_surfaced(anyreach, requests_mock):
    requests_mock.get(URL, status_code=400, json={"detail": "Invalid cursor"})
    with pytest.raises(VendorAPIError) as err:
        list(fast().iter_conversations(START, END))
    assert err.value.vendor_message == "Invalid cursor"
    assert "refused the request (connection 'anyreach_default'): HTTP 400" in str(err.value)


# ------------------------------------------------------------------------------------------ input checks

ALLOWED_FIELDS = ", ".join(FIELDS)


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"direction": "sideways"},
         "Anyreach filter 'direction' got 'sideways'; allowed: one of 'inbound', 'outbound'"),
        ({"channel": "fax"},
         "Anyreach filter 'channel' got 'fax'; allowed: one of 'telephone', 'webrtc', 'email', 'text'"),
        ({"status": "done"},
         "Anyreach filter 'status' got 'done'; allowed: one of 'token_created', 'triggered', 'ringing', "
         "'in_progress', 'completed', 'failed', 'cancelled', 'transferred', 'unanswered'"),
        ({"status": ["completed", "failed"]},
         "Anyreach filter 'status' got ['completed', 'failed'] (a list, but this filter takes a single value)"),
        ({"duration_above": -1}, "Anyreach filter 'duration_above' got -1 (out of range); allowed: an integer >= 0"),
        ({"duration_below": 1.5}, "Anyreach filter 'duration_below' got 1.5; allowed: an integer >= 0"),
        ({"duration_above": 60, "duration_below": 30},
         "Anyreach filter 'duration_above'=60 is greater than 'duration_below'=30; the range would be empty"),
        ({"user_turn_count_below": "many"},
         "Anyreach filter 'user_turn_count_below' got 'many'; allowed: an integer >= 0"),
        ({"user_turn_count_above": 5, "user_turn_count_below": 2},
         "Anyreach filter 'user_turn_count_above'=5 is greater than 'user_turn_count_below'=2"),
        ({"custom_metadata": "[1]"},
         "Anyreach filter 'custom_metadata' got '[1]'; allowed: a JSON object (a dict, or a string holding one)"),
        ({"custom_metadata": "{"}, "Anyreach filter 'custom_metadata' got '{' (not valid JSON)"),
        ({"fields": "id,transcript"},
         f"Anyreach filter 'fields' got 'id,transcript'; allowed: a string of comma-separated field names from: "
         f"{ALLOWED_FIELDS}"),
        ({"fields": "id,,status"}, "Anyreach filter 'fields' got 'id,,status'"),
        ({"user_id": ""}, "Anyreach filter 'user_id' got ''; allowed: a non-empty string"),
        ({"agent": "x"},
         "unknown Anyreach filter 'agent'; allowed filters: agent_id, agent_number, agent_version_id, channel, "
         "custom_metadata, direction, duration_above, duration_below, fields, status, user_id, "
         "user_turn_count_above, user_turn_count_below, web_widget_id"),
        ({"cursor": "abc"}, "Anyreach filter 'cursor' cannot be passed in filters: the hook pages; it is not a filter"),
        ({"limit": 5}, "Anyreach filter 'limit' cannot be passed in filters: the hook pages; pass page_size"),
        ({"created_after": "2026-11-20T00:00:00Z"},
         "Anyreach filter 'created_after' cannot be passed in filters: the hook sets it from the window"),
        ({"updated_before": "2026-11-20T00:00:00Z"},
         "Anyreach filter 'updated_before' cannot be passed in filters: the hook sets it from the window"),
    ],
)
def test_bad_filters_rejected_before_any_request(anyreach, requests_mock, filters, message):
    with pytest.raises(InvalidFilterError) as err:
        fast().iter_pages(START, END, filters=filters)
    assert message in str(err.value)
    assert requests_mock.call_count == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"time_key": "started"}, "time_key='started' is not supported by Anyreach; allowed: 'created', 'updated'"),
        ({"start": END, "end": START}, "must be earlier than end"),
        ({"start": datetime(2026, 11, 20)}, "start=2026-11-20T00:00:00 is a naive datetime"),
    ],
)
def test_bad_windows_rejected_before_any_request(anyreach, requests_mock, kwargs, message):
    args = {"start": START, "end": END, **kwargs}
    with pytest.raises(ConfigurationError, match=message):
        fast().iter_pages(args.pop("start"), args.pop("end"), **args)
    assert requests_mock.call_count == 0


def test_page_size_is_limited_to_1000():
    with pytest.raises(ConfigurationError, match="page_size=1001 is not allowed for Anyreach: expected an integer "
                                                 "from 1 to 1000"):
        AnyreachHook(page_size=1001)


# ------------------------------------------------------------------------------------------ statuses, records


def test_finished_and_in_progress_filters(anyreach):
    hook = fast()
    assert hook.finished_filters({}) == {}
    assert hook.finished_filters({"status": "failed"}) == {}
    with pytest.raises(InvalidFilterError, match=r"finished_only=True contradicts Anyreach filter status='ringing' "
                                                 r"\(an in-progress status\); drop one of them"):
        hook.finished_filters({"status": "ringing"})
    assert hook.in_progress_filters({}) is None
    finished = ["completed", "failed", "cancelled", "transferred", "unanswered"]
    in_progress = ["token_created", "triggered", "ringing", "in_progress"]
    assert [s for s in finished + in_progress if hook.is_finished({"status": s})] == finished
    assert [s for s in finished + in_progress if hook.is_in_progress({"status": s})] == in_progress
    assert not hook.is_finished({})
    assert not hook.is_in_progress({})


def test_normalize_needs_no_sensitive_field(anyreach):
    item = {"id": "cnv_1", "created_at": "2026-11-20T10:00:00.5Z", "updated_at": "2026-11-20T10:05:00Z",
            "status": "transferred", "channel": "telephone", "duration": 42, "direction": "inbound"}
    assert normalize(fast(), item) == {
        "vendor": "anyreach", "id": "cnv_1", "created_at": "2026-11-20T10:00:00.500000Z",
        "updated_at": "2026-11-20T10:05:00Z", "status": "transferred", "finished": True, "channel": "telephone",
        "duration_seconds": 42.0, "raw": item,
    }
    bare = normalize(fast(), {"id": "cnv_2", "created_at": "2026-11-20T10:00:00Z", "status": "ringing",
                             "duration": None})
    assert (bare["finished"], bare["duration_seconds"], bare["updated_at"]) == (False, None, None)
    assert normalize(fast(), {"id": "cnv_3", "created_at": "2026-11-20T10:00:00Z"})["finished"] is None


