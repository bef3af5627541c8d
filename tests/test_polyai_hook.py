"""PolyAI hook against requests-mock: exact requests, every pagination path, errors and retries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from airflow_provider_conversations.exceptions import (
    ConfigurationError,
    InvalidFilterError,
)
from airflow_provider_conversations.hooks.polyai import PolyAIHook
from airflow_provider_conversations.output.records import normalize

BASE = "https://polyai.test"
V3 = f"{BASE}/v3/acct/proj/conversations"
V1 = f"{BASE}/v1/acct/proj/conversations"
START = datetime(2026, 11, 20, 10, tzinfo=UTC)
END = datetime(2026, 11, 20, 11, tzinfo=UTC)


def conv(i: int, started_at: str, **extra: object) -> dict[str, object]:
    return {"id": f"c{i}", "started_at": started_at, "in_progress": False, **extra}


@pytest.fixture
def polyai(set_connection):
    def make(api_version: str = "v3", **extra: object) -> None:
        set_connection("polyai_default", {
            "conn_type": "polyai", "host": BASE, "password": "pk-secret-123",
            "extra": {"account_id": "acct", "project_id": "proj", "api_version": api_version, **extra},
        })
    make()
    return make


def fast(**kw: object) -> PolyAIHook:
    return PolyAIHook(backoff=0.001, backoff_max=0.002, **kw)  # type: ignore[arg-type]


def test_v3_sends_window_filters_and_key(polyai, requests_mock):
    requests_mock.get(V3, json={"conversations": [], "cursor": None})
    list(fast(page_size=50).iter_conversations(START, END, filters={"variant_id": "v9", "in_progress": False,
                                                                       "channel": ["voice", "sms"]}))
    (req,) = requests_mock.request_history
    assert req.qs == {
        "client_env": ["live"], "limit": ["50"], "variant_id": ["v9"], "in_progress": ["false"],
        "channel": ["voice", "sms"],
        # one second of margin on each side: PolyAI does not document inclusivity; the hook cuts exactly
        "start_time": ["2026-11-20t09:59:59z"], "end_time": ["2026-11-20t11:00:01z"],
    }
    assert req.headers["x-api-key"] == "pk-secret-123"
    assert req.headers["User-Agent"].startswith("airflow-provider-conversations/")
    assert "pk-secret-123" not in req.url


def test_v3_follows_cursor_until_null(polyai, requests_mock):
    requests_mock.get(V3, [
        {"json": {"conversations": [conv(1, "2026-11-20T10:00:00Z")], "cursor": "abc"}},
        {"json": {"conversations": [conv(2, "2026-11-20T10:30:00Z")], "cursor": "def"}},
        {"json": {"conversations": [conv(3, "2026-11-20T10:59:59.999999Z")], "cursor": None}},
    ])
    hook = fast(page_size=1)
    assert [c["id"] for c in hook.iter_conversations(START, END)] == ["c1", "c2", "c3"]
    cursors = [r.qs.get("cursor") for r in requests_mock.request_history]
    assert cursors == [None, ["abc"], ["def"]]
    assert hook.stats.pages == 3


def test_v1_follows_next_offset_until_absent(polyai, requests_mock):
    polyai("v1")
    requests_mock.get(V1, [
        {"json": {"conversations": [conv(1, "2026-11-20T10:00:00Z"), conv(2, "2026-11-20T10:01:00Z")],
                  "next_offset": 2, "descriptions": {}}},
        {"json": {"conversations": [conv(3, "2026-11-20T10:02:00Z")], "descriptions": {}}},
    ])
    assert [c["id"] for c in fast(page_size=2).iter_conversations(START, END)] == ["c1", "c2", "c3"]
    assert [r.qs.get("offset") for r in requests_mock.request_history] == [None, ["2"]]
    assert "cursor" not in requests_mock.request_history[0].qs


def test_half_open_bounds_and_dedup(polyai, requests_mock):
    requests_mock.get(V3, [
        {"json": {"conversations": [
            conv(0, "2026-11-20T09:59:59.999999Z"),  # before start: dropped
            conv(1, "2026-11-20T10:00:00Z"),  # == start: kept
            conv(2, "2026-11-20T10:00:00+00:00"),  # same instant, other id: kept
        ], "cursor": "x"}},
        {"json": {"conversations": [
            conv(2, "2026-11-20T10:00:00Z"),  # repeat across pages: dropped
            conv(3, "2026-11-20T10:59:59.999999Z"),  # last microsecond: kept
            conv(4, "2026-11-20T11:00:00Z"),  # == end: dropped (belongs to the next window)
        ], "cursor": None}},
    ])
    hook = fast()
    assert [c["id"] for c in hook.iter_conversations(START, END)] == ["c1", "c2", "c3"]
    assert hook.stats.duplicates == 1


def test_pages_are_yielded_one_by_one(polyai, requests_mock):
    requests_mock.get(V3, [
        {"json": {"conversations": [conv(1, "2026-11-20T10:00:00Z")], "cursor": "x"}},
        {"json": {"conversations": [], "cursor": "y"}},
        {"json": {"conversations": [conv(2, "2026-11-20T10:01:00Z")], "cursor": None}},
    ])
    pages = list(fast().iter_pages(START, END))
    assert [[c["id"] for c in p] for p in pages] == [["c1"], [], ["c2"]]
    assert [p.number for p in pages] == [1, 2, 3]


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"agent": "x"},
         "unknown PolyAI filter 'agent'; allowed filters: channel, in_progress, include_context_state, "
         "include_latency, variant_id, variant_name"),
        ({"in_progress": "maybe"}, "PolyAI filter 'in_progress' got 'maybe'; allowed: true or false"),
        ({"variant_id": "a", "variant_name": "b"}, "'variant_id' and 'variant_name' are mutually exclusive"),
        ({"start_time": "2026"}, "cannot be passed in filters: the hook sets it from the window"),
        ({"variant_id": ""}, "PolyAI filter 'variant_id' got ''; allowed: a non-empty string"),
    ],
)
def test_bad_filters_rejected_before_any_request(polyai, requests_mock, filters, message):
    with pytest.raises(InvalidFilterError) as err:
        fast().iter_conversations(START, END, filters=filters)
    assert message in str(err.value)
    assert requests_mock.call_count == 0


def test_v3_only_filter_on_v1_connection(polyai, requests_mock):
    polyai("v1")
    with pytest.raises(InvalidFilterError, match="'channel' needs api_version v3"):
        fast().iter_pages(START, END, filters={"channel": ["voice"]})
    assert requests_mock.call_count == 0


@pytest.mark.parametrize(
    ("start", "end", "time_key", "message"),
    [
        (datetime(2026, 11, 20), END, "created", "start=2026-11-20T00:00:00 is a naive datetime"),
        (END, START, "created", "must be earlier than end"),
        (START, START, "created", "must be earlier than end"),
        (START, END, "updated", "time_key='updated' is not supported by PolyAI; allowed: 'created'"),
    ],
)
def test_bad_windows_rejected_before_any_request(polyai, requests_mock, start, end, time_key, message):
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        fast().iter_pages(start, end, time_key=time_key)
    assert requests_mock.call_count == 0


def test_region_selects_base_url(set_connection, requests_mock):
    set_connection("polyai_eu", {"conn_type": "polyai", "password": "k" * 10,
                                 "extra": {"account_id": "a", "project_id": "p", "region": "euw-1"}})
    url = "https://api.euw-1.platform.polyai.app/v3/a/p/conversations"
    requests_mock.get(url, json={"conversations": [], "cursor": None})
    list(PolyAIHook("polyai_eu").iter_conversations(START, END))
    assert requests_mock.request_history[0].url.startswith(url)


def test_missing_account_or_project_is_a_configuration_error(set_connection, requests_mock):
    set_connection("polyai_bad", {"conn_type": "polyai", "password": "k" * 10, "extra": {"account_id": "a"}})
    with pytest.raises(ConfigurationError, match="'polyai_bad' is missing project_id"):
        PolyAIHook("polyai_bad").iter_pages(START, END)
    assert requests_mock.call_count == 0


def test_session_is_reused_across_pages(polyai, requests_mock):
    requests_mock.get(V3, [
        {"json": {"conversations": [conv(1, "2026-11-20T10:00:00Z")], "cursor": "x"}},
        {"json": {"conversations": [], "cursor": None}},
    ])
    hook = fast()
    list(hook.iter_conversations(START, END))
    session = hook.get_conn()
    list(hook.iter_conversations(START, END + timedelta(hours=1)))
    assert hook.get_conn() is session


def test_normalize(polyai):
    record = normalize(fast(), {"id": "c1", "started_at": "2026-11-20T10:00:00.5+00:00", "in_progress": False,
                               "channel": "voice", "total_duration": 42})
    assert record == {
        "vendor": "polyai", "id": "c1", "created_at": "2026-11-20T10:00:00.500000Z", "updated_at": None,
        "status": "finished", "finished": True, "channel": "voice", "duration_seconds": 42.0,
        "raw": {"id": "c1", "started_at": "2026-11-20T10:00:00.5+00:00", "in_progress": False,
                "channel": "voice", "total_duration": 42},
    }
