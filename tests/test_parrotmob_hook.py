"""ParrotMob hook against requests-mock: exact requests, client-side windows, early stop, errors and retries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from airflow_provider_conversations.exceptions import (
    ConfigurationError,
    InvalidFilterError,
    InvalidResponseError,
    VendorAPIError,
)
from airflow_provider_conversations.hooks.parrotmob import ParrotMobHook
from airflow_provider_conversations.output.records import normalize

BASE = "https://macaw.test"
URL = f"{BASE}/accounts/me/conversations"
SECRET = "pm-secret-123"
START = datetime(2026, 11, 20, 10, tzinfo=UTC)
END = datetime(2026, 11, 20, 11, tzinfo=UTC)


def conv(i: int, inserted_at: str, updated_at: str | None = None, **extra: object) -> dict[str, object]:
    return {"id": f"c{i}", "status": "completed", "inserted_at": inserted_at,
            "updated_at": updated_at or inserted_at, **extra}


def at(minutes: float, hour: int = 10) -> str:
    """An ISO timestamp ``minutes`` after ``hour``:00 on the test day (negative: before it)."""
    return (datetime(2026, 11, 20, hour, tzinfo=UTC) + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


@pytest.fixture
def parrotmob(set_connection):
    def make(conn_id: str = "parrotmob_default", **conn: object) -> None:
        set_connection(conn_id, {"conn_type": "parrotmob", "host": BASE, "password": SECRET, **conn})
    make()
    return make


def fast(**kw: object) -> ParrotMobHook:
    return ParrotMobHook(backoff=0.001, backoff_max=0.002, **kw)  # type: ignore[arg-type]


def offsets(requests_mock) -> list[str]:
    return [r.qs["offset"][0] for r in requests_mock.request_history]


# ---------------------------------------------------------------------------------------------- requests


@pytest.mark.parametrize(("time_key", "order_by"), [("created", "inserted_at_desc"), ("updated", "updated_at_desc")])
def test_sends_order_limit_offset_filters_and_bearer(parrotmob, requests_mock, time_key, order_by):
    requests_mock.get(URL, json=[])
    list(fast().iter_conversations(START, END, time_key=time_key, filters={
        "status": "any_terminal", "support_required": False, "conversation_graph_id": "g-1",
        "audience_membership_id": "5fbeb6aa-29c3-40cc-a9f1-0cfe24abf09c"}))
    (req,) = requests_mock.request_history
    assert req.qs == {
        "limit": ["500"], "offset": ["0"], "order_by": [order_by], "status": ["any_terminal"],
        "support_required": ["false"], "conversation_graph_id": ["g-1"],
        "audience_membership_id": ["5fbeb6aa-29c3-40cc-a9f1-0cfe24abf09c"],
    }
    assert req.headers["Authorization"] == f"Bearer {SECRET}"
    assert SECRET not in req.url
    # no time filter exists: nothing about the window is sent
    assert not {"start", "end", "since", "inserted_after"} & set(req.qs)


def test_offset_advances_by_page_until_a_short_page(parrotmob, requests_mock):
    requests_mock.get(URL, [
        {"json": [conv(1, at(50)), conv(2, at(40))]},
        {"json": [conv(3, at(30)), conv(4, at(20))]},
        {"json": [conv(5, at(10))]},
    ])
    hook = fast(page_size=2)
    assert [c["id"] for c in hook.iter_conversations(START, END)] == ["c1", "c2", "c3", "c4", "c5"]
    assert offsets(requests_mock) == ["0", "2", "4"]
    assert {r.qs["limit"][0] for r in requests_mock.request_history} == {"2"}
    assert hook.stats.pages == 3


def test_an_empty_page_ends_the_walk(parrotmob, requests_mock):
    requests_mock.get(URL, [{"json": [conv(1, at(50)), conv(2, at(40))]}, {"json": []},
                            {"json": [conv(3, at(30))]}])
    assert [c["id"] for c in fast(page_size=2).iter_conversations(START, END)] == ["c1", "c2"]
    assert requests_mock.call_count == 2


def test_data_envelope_is_accepted(parrotmob, requests_mock):
    requests_mock.get(URL, [{"json": {"data": [conv(1, at(50)), conv(2, at(40))]}}, {"json": {"data": []}}])
    assert [c["id"] for c in fast(page_size=2).iter_conversations(START, END)] == ["c1", "c2"]


@pytest.mark.parametrize("body", ['{"items": []}', '{"data": {"id": "c1"}}', '"conversations"', "[1, 2]", "null"])
def test_anything_else_is_an_invalid_response(parrotmob, requests_mock, body):
    requests_mock.get(URL, text=body)
    with pytest.raises(InvalidResponseError, match="neither a JSON array of conversations nor an object with a "
                                                   "'data' array"):
        list(fast().iter_conversations(START, END))
    assert requests_mock.call_count == 1


def test_account_id_extra_is_url_quoted(parrotmob, requests_mock):
    parrotmob(extra={"account_id": "team/a b"})
    url = f"{BASE}/accounts/team%2Fa%20b/conversations"
    requests_mock.get(url, json=[])
    list(fast().iter_conversations(START, END))
    assert requests_mock.request_history[0].url.startswith(url + "?")


def test_missing_host_is_a_clear_error(parrotmob, requests_mock):
    parrotmob("parrotmob_nohost", host=None)
    with pytest.raises(ConfigurationError) as err:
        list(ParrotMobHook("parrotmob_nohost").iter_conversations(START, END))
    assert str(err.value) == (
        "connection 'parrotmob_nohost' has no host, and ParrotMob has no public default base URL: set Host to the "
        "API base URL, e.g. https://api.example.com"
    )
    assert requests_mock.call_count == 0


# ---------------------------------------------------------------------------------------------- windows


def test_half_open_cut_and_dedup_of_rows_shifted_by_inserts(parrotmob, requests_mock):
    requests_mock.get(URL, [
        {"json": [
            conv(0, at(0, hour=11)),  # == end: belongs to the next window
            conv(1, at(59.99999)),
            conv(2, at(30)),
        ]},
        {"json": [
            conv(2, at(30)),  # a row inserted at the top pushed c2 onto this page too
            conv(3, at(0)),  # == start: kept
            conv(4, at(0)),  # same instant, other id: kept
        ]},
        {"json": [conv(4, at(0)), conv(5, at(-0.00001))]},  # c4 repeated again; c5 before start
    ])
    hook = fast(page_size=3)
    assert [c["id"] for c in hook.iter_conversations(START, END)] == ["c1", "c2", "c3", "c4"]
    assert hook.stats.duplicates == 2


def serve(requests_mock, data: list[dict[str, object]]) -> None:
    """A newest-first list served by offset and limit, like the real endpoint (probes get the right rows)."""

    def page(request, context):
        offset, limit = int(request.qs["offset"][0]), int(request.qs["limit"][0])
        return data[offset: offset + limit]

    requests_mock.get(URL, json=page)


def test_recent_window_stops_at_the_first_older_conversation(parrotmob, requests_mock):
    serve(requests_mock, [
        conv(1, at(30, 12)), conv(2, at(10, 12)), conv(3, at(59.5)),  # c1, c2 newer than the window
        conv(4, at(50)), conv(5, at(20)), conv(6, at(5)),
        conv(7, at(1)), conv(8, at(-1)), conv(9, at(-30)),  # c8 is older than start: stop after this page
        conv(10, at(-40)), conv(11, at(-50)), conv(12, at(-55)),  # never asked for
    ])
    hook = fast(page_size=3)
    assert [c["id"] for c in hook.iter_conversations(START, END)] == ["c3", "c4", "c5", "c6", "c7"]
    assert offsets(requests_mock) == ["0", "3", "6"]  # a recent window: no probing, just pages


def test_old_window_seeks_past_the_newer_history_with_one_item_probes(parrotmob, requests_mock):
    newer = [conv(100 + i, at(-i, 23)) for i in range(200)]  # 200 conversations after the window
    window = [conv(i, at(50 - 10 * i)) for i in range(6)]  # 10:50, 10:40, ... 10:00
    older = [conv(300 + i, at(-1 - i)) for i in range(20)]
    serve(requests_mock, newer + window + older)
    hook = fast(page_size=10)
    assert [c["id"] for c in hook.iter_conversations(START, END)] == [f"c{i}" for i in range(6)]
    history = requests_mock.request_history
    probes = [r for r in history if r.qs["limit"] == ["1"]]
    assert 8 <= len(probes) <= 2 * 8 + 2  # galloping then bisecting over ~200 rows: about 2 log2(200)
    assert len(history) - len(probes) == 2  # the first page, then the window's page (short: the end)
    assert history[-1].qs["offset"] == ["200"]  # the walk resumed exactly where the window begins


def test_updated_window_stops_early_once_the_order_is_proven(parrotmob, requests_mock):
    requests_mock.get(URL, [
        # updated_at descending, inserted_at NOT descending (c2 was inserted after c1): proof of updated order
        {"json": [conv(1, at(-90), at(50)), conv(2, at(-30), at(40)), conv(3, at(-60), at(-5))]},
        {"json": [conv(4, at(-70), at(-10)), conv(5, at(-80), at(-20)), conv(6, at(-85), at(-25))]},
    ])
    hook = fast(page_size=3)
    assert [c["id"] for c in hook.iter_conversations(START, END, time_key="updated")] == ["c1", "c2"]
    assert requests_mock.call_count == 1


def test_updated_window_keeps_walking_while_the_order_is_ambiguous(parrotmob, requests_mock, logs):
    # One item per page, sorted by BOTH keys: nothing proves updated_at order, so no early stop.
    requests_mock.get(URL, [
        {"json": [conv(1, at(20), at(30))]},
        {"json": [conv(2, at(-30), at(-10))]},  # older than start, but the order is unproven
        {"json": [conv(3, at(-40), at(-20))]},
        {"json": []},
    ])
    hook = fast(page_size=1)
    assert [c["id"] for c in hook.iter_conversations(START, END, time_key="updated")] == ["c1"]
    assert requests_mock.call_count == 4
    assert "asked for updated_at_desc" not in logs()


def test_updated_order_violated_warns_once_and_walks_to_the_end(parrotmob, requests_mock, logs):
    # What the docs say happens: updated_at_desc actually sorted by inserted_at.
    requests_mock.get(URL, [
        {"json": [conv(1, at(40), at(50)), conv(2, at(30), at(-5))]},
        {"json": [conv(3, at(20), at(45)), conv(4, at(10), at(-20))]},  # c3: updated_at goes up
        {"json": [conv(5, at(-10), at(30)), conv(6, at(-20), at(-30))]},  # in window, past an older one
        {"json": [conv(7, at(-50), at(20))]},
    ])
    hook = fast(page_size=2)
    assert [c["id"] for c in hook.iter_conversations(START, END, time_key="updated")] == ["c1", "c3", "c5", "c7"]
    assert requests_mock.call_count == 4
    text = logs()
    assert text.count("asked for updated_at_desc") == 1
    assert "got conversation c3 (updated_at 2026-11-20T10:45:00Z) after c2 (updated_at 2026-11-20T09:55:00Z)" in text
    assert "walking to the end of the list" in text


def test_rows_shifted_by_inserts_are_not_taken_as_order_evidence(parrotmob, requests_mock, logs):
    # Two rows inserted at the top push c2 and c3 onto page 2 again. Compared with c3, the repeated c2 would
    # look like updated_at going up (a false alarm); the repeats are skipped and c4 is compared with c3,
    # which proves updated_at order (inserted_at goes up), so the walk stops after page 2.
    requests_mock.get(URL, [
        {"json": [conv(1, at(-20), at(50)), conv(2, at(-30), at(40)), conv(3, at(-40), at(30))]},
        {"json": [conv(2, at(-30), at(40)), conv(3, at(-40), at(30)), conv(4, at(-35), at(-10))]},
        {"json": [conv(5, at(-60), at(-20)), conv(6, at(-70), at(-30)), conv(7, at(-80), at(-40))]},
    ])
    hook = fast(page_size=3)
    assert [c["id"] for c in hook.iter_conversations(START, END, time_key="updated")] == ["c1", "c2", "c3"]
    assert requests_mock.call_count == 2
    assert hook.stats.duplicates == 2
    assert "asked for" not in logs()


# ---------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("status", "body", "code", "param", "message"),
    [
        (400, {"errors": {"code": "invalid_parameter", "detail": "status must be one of ...", "param": "status"}},
         "invalid_parameter", "status", "status must be one of ..."),
        (404, {"errors": {"detail": "Not Found"}}, None, None, "Not Found"),  # Phoenix's default error body
        (422, {"message": "limit too large", "code": "bad_limit"}, "bad_limit", None, "limit too large"),
    ],
)
def test_4xx_body_is_surfaced(parrotmob, requests_mock, status, body, code, param, message):
    requests_mock.get(URL, status_code=status, json=body)
    with pytest.raises(VendorAPIError) as err:
        list(fast().iter_conversations(START, END))
    assert (err.value.status, err.value.code, err.value.param, err.value.vendor_message) == (
        status, code, param, message)
    assert f"ParrotMob refused the request (connection 'parrotmob_default'): HTTP {status}" in str(err.value)
    assert repr(message) in str(err.value)
    assert requests_mock.call_count == 1


# ---------------------------------------------------------------------------------------------- filters


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"channel": "sms"},
         "unknown ParrotMob filter 'channel'; allowed filters: audience_membership_id, conversation_graph_id, "
         "needs_support, status, support_required. To send a query parameter this provider does not know yet, pass "
         "it in extra_params"),
        ({"status": "done"},
         "ParrotMob filter 'status' got 'done'; allowed: one of 'scheduled', 'ready', 'running', 'completed', "
         "'expired', 'cancelled', 'any_terminal'"),
        ({"support_required": "maybe"}, "ParrotMob filter 'support_required' got 'maybe'; allowed: true or false"),
        ({"needs_support": 1}, "ParrotMob filter 'needs_support' got 1; allowed: true or false"),
        ({"support_required": True, "needs_support": True},
         "ParrotMob filter 'needs_support' is a deprecated alias of 'support_required'; pass only one of them"),
        ({"audience_membership_id": ""},
         "ParrotMob filter 'audience_membership_id' got ''; allowed: a non-empty string"),
        ({"limit": 0}, "ParrotMob filter 'limit' cannot be passed in filters: the hook pages; pass page_size to "
                       "the hook instead (0 would mean 'everything at once')"),
        ({"offset": 10}, "ParrotMob filter 'offset' cannot be passed in filters: the hook pages; it is not a filter"),
        ({"order_by": "inserted_at_asc"},
         "ParrotMob filter 'order_by' cannot be passed in filters: the hook sorts newest first on the time key so "
         "it can stop early; pass time_key instead"),
    ],
)
def test_bad_filters_rejected_before_any_request(parrotmob, requests_mock, filters, message):
    with pytest.raises(InvalidFilterError) as err:
        fast().iter_pages(START, END, filters=filters)
    assert str(err.value) == message
    assert requests_mock.call_count == 0


def test_deprecated_alias_is_sent_as_support_required(parrotmob, requests_mock):
    requests_mock.get(URL, json=[])
    list(fast().iter_conversations(START, END, filters={"needs_support": "true"}))
    qs = requests_mock.request_history[0].qs
    assert qs["support_required"] == ["true"]
    assert "needs_support" not in qs


@pytest.mark.parametrize(
    ("start", "end", "time_key", "message"),
    [
        (datetime(2026, 11, 20), END, "created", "start=2026-11-20T00:00:00 is a naive datetime"),
        (END, START, "created", "must be earlier than end"),
        (START, END, "started", "time_key='started' is not supported by ParrotMob; allowed: 'created', 'updated'"),
    ],
)
def test_bad_windows_rejected_before_any_request(parrotmob, requests_mock, start, end, time_key, message):
    with pytest.raises(ConfigurationError, match=message):
        fast().iter_pages(start, end, time_key=time_key)
    assert requests_mock.call_count == 0


def test_page_size_is_bounded_by_the_documented_choice():
    with pytest.raises(ConfigurationError, match="page_size=501 is not allowed for ParrotMob: expected an integer "
                                                 "from 1 to 500"):
        ParrotMobHook(page_size=501)
    with pytest.raises(ConfigurationError, match="page_size=0"):
        ParrotMobHook(page_size=0)  # 0 would mean "unlimited" to ParrotMob


# ---------------------------------------------------------------------------------------------- statuses


def test_finished_and_in_progress_filters(parrotmob):
    hook = fast()
    assert hook.finished_filters({}) == {"status": "any_terminal"}
    assert hook.finished_filters({"status": "expired"}) == {"status": "expired"}
    assert hook.finished_filters({"status": "any_terminal"}) == {"status": "any_terminal"}
    with pytest.raises(InvalidFilterError) as err:
        hook.finished_filters({"status": "running"})
    assert str(err.value) == (
        "finished_only=True contradicts ParrotMob filter status='running' (an in-progress status); drop one of "
        "them, or filter on completed, expired, cancelled or any_terminal"
    )
    assert hook.in_progress_filters({}) is None  # three in-progress statuses, the API filters on one
    assert [hook.is_finished({"status": s}) for s in ("completed", "expired", "cancelled", "running")] == [
        True, True, True, False]
    assert [hook.is_in_progress({"status": s}) for s in ("scheduled", "ready", "running", "completed")] == [
        True, True, True, False]


def test_normalize(parrotmob):
    item = {"id": "c1", "status": "running", "inserted_at": "2026-11-20T10:00:00.5+00:00",
            "updated_at": "2026-11-20T10:05:00Z", "support_required": True}
    assert normalize(fast(), item) == {
        "vendor": "parrotmob", "id": "c1", "created_at": "2026-11-20T10:00:00.500000Z",
        "updated_at": "2026-11-20T10:05:00Z", "status": "running", "finished": False, "channel": None,
        "duration_seconds": None, "raw": item,
    }
    other = normalize(fast(), {"id": 7, "status": "expired", "inserted_at": "2026-11-20T10:00:00Z",
                              "updated_at": None, "channel": "sms", "duration": 42})
    assert (other["id"], other["finished"], other["updated_at"], other["channel"], other["duration_seconds"]) == (
        "7", True, None, "sms", 42.0)


