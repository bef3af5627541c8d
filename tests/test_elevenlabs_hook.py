"""ElevenLabs hook against requests-mock: exact requests, cursor paging, whole-second bounds, errors and retries."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from airflow_provider_conversations.exceptions import (
    ConfigurationError,
    InvalidFilterError,
    InvalidResponseError,
)
from airflow_provider_conversations.hooks.elevenlabs import ElevenLabsHook
from airflow_provider_conversations.output.records import normalize

BASE = "https://elevenlabs.test"
URL = f"{BASE}/v1/convai/conversations"
START = datetime(2026, 11, 20, 10, tzinfo=UTC)
END = datetime(2026, 11, 20, 11, tzinfo=UTC)
T0 = 1795168800  # START in Unix seconds
T1 = T0 + 3600  # END


def conv(i: int, t: int, status: str = "done", **extra: object) -> dict[str, object]:
    return {"conversation_id": f"c{i}", "agent_id": "a1", "start_time_unix_secs": t, "call_duration_secs": 30,
            "message_count": 4, "status": status, "call_successful": "success", **extra}


def page(*items: dict[str, object], cursor: str | None = None, more: bool | None = None) -> dict[str, object]:
    return {"json": {"conversations": list(items), "next_cursor": cursor,
                     "has_more": cursor is not None if more is None else more}}


def query(req: object) -> dict[str, list[str]]:
    """The query string as sent (requests-mock's ``qs`` lower-cases values)."""
    return parse_qs(urlsplit(req.url).query, keep_blank_values=True)  # type: ignore[attr-defined]


def detail(code: str, message: str, param: str | None = None, type_: str = "validation_error") -> dict[str, object]:
    return {"detail": {"type": type_, "code": code, "message": message, "request_id": "req_42", "param": param}}


@pytest.fixture
def elevenlabs(set_connection):
    def make(conn_id: str = "elevenlabs_default", **conn: object) -> None:
        set_connection(conn_id, {"conn_type": "elevenlabs", "host": BASE, "password": "xi-secret-123", **conn})
    make()
    return make


def fast(**kw: object) -> ElevenLabsHook:
    return ElevenLabsHook(backoff=0.001, backoff_max=0.002, **kw)  # type: ignore[arg-type]


def ids(hook: ElevenLabsHook, start: datetime = START, end: datetime = END, **kw: object) -> list[str]:
    return [str(c["conversation_id"]) for c in hook.iter_conversations(start, end, **kw)]  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- requests


def test_sends_window_filters_and_key(elevenlabs, requests_mock):
    requests_mock.get(URL, **page())
    list(fast(page_size=50).iter_conversations(START, END, filters={
        "agent_id": "agent_7", "call_successful": "failure", "call_duration_min_secs": 10,
        "call_duration_max_secs": "600", "rating_min": 2, "rating_max": 5, "user_id": "u-1",
        "evaluation_params": ["resolved:success", "polite:failure"],
        "data_collection_params": ["city:in:Paris|Berlin", "email:exists", "vip:missing:", "total:gte:10.5",
                                   "phone:eq:", "fax:neq:"],
        "main_languages": ["en", "de"], "summary_mode": "include", "conversation_initiation_source": "twilio",
        "branch_id": "b-1", "topic_ids": "billing", "exclude_statuses": ["initiated", "failed"],
        "tag_ids": ["vip", "escalated"],
    }))
    (req,) = requests_mock.request_history
    assert query(req) == {
        "page_size": ["50"], "agent_id": ["agent_7"], "call_successful": ["failure"],
        "call_duration_min_secs": ["10"], "call_duration_max_secs": ["600"], "rating_min": ["2"],
        "rating_max": ["5"], "user_id": ["u-1"], "evaluation_params": ["resolved:success", "polite:failure"],
        # the 2025-08 spec's exists/missing go out as the client sends them: neq/eq with an empty value
        "data_collection_params": ["city:in:Paris|Berlin", "email:neq:", "vip:eq:", "total:gte:10.5", "phone:eq:",
                                   "fax:neq:"],
        "main_languages": ["en", "de"], "summary_mode": ["include"], "conversation_initiation_source": ["twilio"],
        "branch_id": ["b-1"], "topic_ids": ["billing"], "exclude_statuses": ["initiated", "failed"],
        "tag_ids": ["vip", "escalated"],
        # whole seconds of undocumented inclusivity: one second more on each side, the hook cuts exactly
        "call_start_after_unix": [str(T0 - 1)], "call_start_before_unix": [str(T1 + 1)],
    }
    assert urlsplit(req.url).path == "/v1/convai/conversations"
    assert req.headers["xi-api-key"] == "xi-secret-123"
    assert "Authorization" not in req.headers
    assert req.headers["User-Agent"].startswith("airflow-provider-conversations/")
    assert "xi-secret-123" not in req.url


def test_default_page_size_is_the_maximum(elevenlabs, requests_mock):
    requests_mock.get(URL, **page())
    list(fast().iter_conversations(START, END))
    assert query(requests_mock.request_history[0]) == {
        "page_size": ["100"], "call_start_after_unix": [str(T0 - 1)], "call_start_before_unix": [str(T1 + 1)],
    }


@pytest.mark.parametrize("size", [0, 101, "10", True])
def test_page_size_outside_1_to_100_is_refused(elevenlabs, size):
    with pytest.raises(ConfigurationError, match=f"page_size={size!r} is not allowed for ElevenLabs: expected an "
                                                 "integer from 1 to 100"):
        ElevenLabsHook(page_size=size)  # type: ignore[arg-type]


def test_search_is_sent_without_a_deprecation_warning(elevenlabs, requests_mock, logs):
    # The 2025-08 spec marked it deprecated; the vendor's current client (2.78.0) no longer does.
    requests_mock.get(URL, **page())
    list(fast().iter_conversations(START, END, filters={"search": "refund"}))
    assert query(requests_mock.request_history[0])["search"] == ["refund"]
    assert "deprecat" not in logs()


# ---------------------------------------------------------------------------------------------- paging


def test_follows_next_cursor_while_has_more(elevenlabs, requests_mock):
    requests_mock.get(URL, [
        page(conv(1, T0 + 3000), conv(2, T0 + 2000), cursor="cur-A"),
        page(conv(3, T0 + 1000), cursor="cur-B"),
        page(conv(4, T0 + 10), cursor=None, more=False),
    ])
    hook = fast(page_size=2)
    assert ids(hook) == ["c1", "c2", "c3", "c4"]
    assert [query(r).get("cursor") for r in requests_mock.request_history] == [None, ["cur-A"], ["cur-B"]]
    # every page repeats the window and the filters
    assert all(query(r)["call_start_after_unix"] == [str(T0 - 1)] for r in requests_mock.request_history)
    assert hook.stats.pages == 3
    assert hook.stats.requests == 3


@pytest.mark.parametrize("body", [{"conversations": []}, {"items": [], "has_more": False},
                                  {"conversations": [], "has_more": "false"}, ["not", "a", "page"]])
def test_body_that_is_not_a_page_fails_loudly(elevenlabs, requests_mock, body):
    requests_mock.get(URL, json=body)
    with pytest.raises(InvalidResponseError, match="without a 'conversations' list and a boolean 'has_more'"):
        list(fast().iter_conversations(START, END))


def test_conversation_without_start_time_fails_loudly(elevenlabs, requests_mock):
    requests_mock.get(URL, **page({"conversation_id": "c1", "start_time_unix_secs": "soon", "status": "done"}))
    with pytest.raises(InvalidResponseError, match=r"conversation_id='c1'.*'start_time_unix_secs': 'soon'"):
        list(fast().iter_conversations(START, END))


# ---------------------------------------------------------------------------------------------- bounds


def test_half_open_cut_on_whole_hours(elevenlabs, requests_mock):
    requests_mock.get(URL, **page(
        conv(0, T1 + 1),  # the extra second the wide bound lets in: dropped
        conv(1, T1),  # == end: belongs to the next window
        conv(2, T1 - 1),  # last second of the window: kept
        conv(3, T0),  # == start: kept
        conv(4, T0),  # same instant, other id: kept
        conv(5, T0 - 1),  # before start: dropped
    ))
    assert ids(fast()) == ["c2", "c3", "c4"]


def test_sub_second_edges_round_outwards_and_cut_exactly(elevenlabs, requests_mock):
    start = START + timedelta(seconds=10, microseconds=500_000)
    end = START + timedelta(seconds=20, microseconds=250_000)
    requests_mock.get(URL, **page(
        conv(1, T0 + 21), conv(2, T0 + 20),  # 20.0 < 20.25: kept; 21 is past the end
        conv(3, T0 + 11), conv(4, T0 + 10),  # 10.0 < 10.5: before start, dropped
    ))
    assert ids(fast(), start, end) == ["c2", "c3"]
    q = query(requests_mock.request_history[0])
    # floor(10.5) - 1 and ceil(20.25) + 1: wide enough whether the vendor compares inclusively or not
    assert q["call_start_after_unix"] == [str(T0 + 9)]
    assert q["call_start_before_unix"] == [str(T0 + 22)]


def test_consecutive_sub_second_windows_partition_whole_second_items(elevenlabs, requests_mock):
    items = [conv(i, T0 + i // 2) for i in range(20, 0, -1)]  # two conversations per second, newest first
    requests_mock.get(URL, **page(*items))
    edges = [START + timedelta(seconds=k * 1.7) for k in range(6)]  # 0, 1.7, ..., 8.5 s
    got: list[str] = []
    for a, b in itertools.pairwise(edges):
        got += ids(fast(), a, b)
    expected = [str(c["conversation_id"]) for c in items if int(str(c["start_time_unix_secs"])) < T0 + 8.5]
    assert len(expected) == 17  # seconds 0..8; the conversations at 9 and 10 s are past the last edge
    assert sorted(got) == sorted(expected)
    assert len(got) == len(set(got))


# ---------------------------------------------------------------------------------------------- dedup


def test_repeats_across_pages_are_dropped(elevenlabs, requests_mock):
    requests_mock.get(URL, [
        page(conv(1, T0 + 500), conv(2, T0 + 400), cursor="x"),
        page(conv(2, T0 + 400), conv(3, T0 + 400), conv(4, T0 + 300), cursor="y"),
        page(conv(4, T0 + 300), cursor=None, more=False),
    ])
    hook = fast()
    assert ids(hook) == ["c1", "c2", "c3", "c4"]
    assert hook.stats.duplicates == 2
    assert hook.stats.fetched == 6
    assert hook.stats.yielded == 4


def test_out_of_order_item_is_kept_and_logged(elevenlabs, requests_mock, logs):
    requests_mock.get(URL, [
        page(conv(1, T0 + 500), conv(2, T0 + 100), cursor="x"),
        page(conv(3, T0 + 300), conv(2, T0 + 100), cursor=None, more=False),
    ])
    hook = fast()
    assert ids(hook) == ["c1", "c2", "c3"]
    assert hook.stats.duplicates == 1
    assert "ElevenLabs returned conversation c3" in logs()
    assert "against the descending order" in logs()


# ---------------------------------------------------------------------------------------------- errors


# ---------------------------------------------------------------------------------------------- validation

DC_HINT = ("a string like 'id:op:value' (op: eq or neq with a value, or with an empty value for 'not collected' / "
           "'collected'; gt, gte, lt or lte with a number; in with values 'a|b|c'), or 'id:exists' / 'id:missing', "
           "or a list of such values")


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"agent": "x"},
         # the whole list is in tests/test_bad_input.py; here its ends
         "unknown ElevenLabs filter 'agent'; allowed filters: agent_id, branch_id, call_duration_max_secs, "),
        ({"agent": "x"}, "whatsapp_phone_number_ids, workflow_node_entered_id. To send a query parameter this "
                         "provider does not know yet, pass it in extra_params"),
        ({"call_successful": "yes"},
         "ElevenLabs filter 'call_successful' got 'yes'; allowed: one of 'success', 'failure', 'unknown', 'error'"),
        ({"rating_min": 0}, "ElevenLabs filter 'rating_min' got 0 (out of range); allowed: an integer >= 1 and <= 5"),
        ({"rating_max": 6}, "ElevenLabs filter 'rating_max' got 6 (out of range); allowed: an integer >= 1 and <= 5"),
        ({"rating_min": 4, "rating_max": 2},
         "ElevenLabs filter 'rating_min'=4 is greater than 'rating_max'=2; the range would be empty"),
        ({"call_duration_min_secs": -1},
         "ElevenLabs filter 'call_duration_min_secs' got -1 (out of range); allowed: an integer >= 0"),
        ({"call_duration_max_secs": "1.5"},
         "ElevenLabs filter 'call_duration_max_secs' got '1.5'; allowed: an integer >= 0"),
        ({"call_duration_min_secs": 60, "call_duration_max_secs": 30},
         "ElevenLabs filter 'call_duration_min_secs'=60 is greater than 'call_duration_max_secs'=30; "
         "the range would be empty"),
        ({"evaluation_params": "resolved"},
         "ElevenLabs filter 'evaluation_params' got 'resolved'; allowed: a string like 'criteria_id:result' with "
         "result success, failure or unknown, or a list of such values"),
        ({"evaluation_params": ["resolved:success", "resolved:maybe"]},
         "ElevenLabs filter 'evaluation_params' got 'resolved:maybe'"),
        ({"data_collection_params": "total:between:1"},
         f"ElevenLabs filter 'data_collection_params' got 'total:between:1'; allowed: {DC_HINT}"),
        ({"data_collection_params": "email:exists:yes"}, "got 'email:exists:yes'; allowed: a string like"),
        ({"data_collection_params": "total:gt:ten"}, "got 'total:gt:ten'; allowed"),
        ({"data_collection_params": "total:lte:"}, "got 'total:lte:'; allowed"),
        ({"data_collection_params": "total:gt"}, "got 'total:gt'; allowed"),
        ({"data_collection_params": "city:in:a||b"}, "got 'city:in:a||b'; allowed"),
        ({"data_collection_params": ":eq:1"}, "got ':eq:1'; allowed"),
        ({"exclude_statuses": ["done", "gone"]},
         "ElevenLabs filter 'exclude_statuses' got 'gone'; allowed: one of 'initiated', 'in-progress', "
         "'processing', 'done', 'failed', or a list of such values"),
        ({"summary_mode": "all"}, "ElevenLabs filter 'summary_mode' got 'all'; allowed: one of 'exclude', 'include'"),
        ({"topic_ids": []}, "ElevenLabs filter 'topic_ids' got [] (an empty list)"),
        ({"agent_id": ["a", "b"]},
         "ElevenLabs filter 'agent_id' got ['a', 'b'] (a list, but this filter takes a single value)"),
        ({"user_id": ""}, "ElevenLabs filter 'user_id' got ''; allowed: a non-empty string"),
        ({"page_size": 5},
         "ElevenLabs filter 'page_size' cannot be passed in filters: the hook pages; pass page_size to the hook"),
        ({"cursor": "abc"}, "ElevenLabs filter 'cursor' cannot be passed in filters: the hook pages"),
        ({"call_start_after_unix": 1},
         "ElevenLabs filter 'call_start_after_unix' cannot be passed in filters: the hook sets it from the window"),
        ({"call_start_before_unix": 1},
         "ElevenLabs filter 'call_start_before_unix' cannot be passed in filters: the hook sets it from the window"),
    ],
)
def test_bad_filters_rejected_before_any_request(elevenlabs, requests_mock, filters, message):
    with pytest.raises(InvalidFilterError) as err:
        fast().iter_conversations(START, END, filters=filters)
    assert message in str(err.value)
    assert requests_mock.call_count == 0


def test_updated_time_key_is_refused(elevenlabs, requests_mock):
    with pytest.raises(ConfigurationError) as err:
        fast().iter_pages(START, END, time_key="updated")
    assert str(err.value) == ("time_key='updated' is not supported by ElevenLabs; allowed: 'created' "
                              "(ElevenLabs conversations have no update time)")
    assert requests_mock.call_count == 0


# ---------------------------------------------------------------------------------------------- connection


@pytest.mark.parametrize(
    ("region", "base"),
    [
        (None, "https://api.elevenlabs.io"),
        ("global", "https://api.elevenlabs.io"),
        ("us", "https://api.us.elevenlabs.io"),
        ("eu-residency", "https://api.eu.residency.elevenlabs.io"),
        ("in-residency", "https://api.in.residency.elevenlabs.io"),
        ("sg-residency", "https://api.sg.residency.elevenlabs.io"),
    ],
)
def test_region_selects_base_url(set_connection, requests_mock, region, base):
    set_connection("el", {"conn_type": "elevenlabs", "password": "k" * 10,
                          "extra": {"region": region} if region else {}})
    requests_mock.get(f"{base}/v1/convai/conversations", **page())
    hook = ElevenLabsHook("el")
    assert hook.base_url == base
    list(hook.iter_conversations(START, END))
    assert requests_mock.request_history[0].url.startswith(f"{base}/v1/convai/conversations?")


def test_host_overrides_region(elevenlabs, requests_mock):
    elevenlabs(extra={"region": "eu-residency"})
    requests_mock.get(URL, **page())
    list(fast().iter_conversations(START, END))
    assert requests_mock.request_history[0].url.startswith(URL)


def test_bad_region_is_a_configuration_error(set_connection, requests_mock):
    set_connection("el_bad", {"conn_type": "elevenlabs", "password": "k" * 10, "extra": {"region": "eu"}})
    with pytest.raises(ConfigurationError) as err:
        list(ElevenLabsHook("el_bad").iter_pages(START, END))
    assert str(err.value) == ("ElevenLabs connection 'el_bad' has region='eu'; allowed: global, us, eu-residency, "
                              "in-residency, sg-residency")
    assert requests_mock.call_count == 0


# ---------------------------------------------------------------------------------------------- statuses


def test_finished_filters_merge_with_the_users():
    hook = ElevenLabsHook()
    assert hook.finished_filters({}) == {"exclude_statuses": ["initiated", "in-progress", "processing"]}
    assert hook.finished_filters({"exclude_statuses": ["failed", "initiated"]}) == {
        "exclude_statuses": ["initiated", "in-progress", "processing", "failed"]}
    with pytest.raises(InvalidFilterError, match=r"finished_only=True contradicts ElevenLabs filter "
                                                 r"exclude_statuses=\['done', 'failed'\]"):
        hook.finished_filters({"exclude_statuses": ["done", "failed"]})


def test_in_progress_filters_merge_with_the_users():
    hook = ElevenLabsHook()
    assert hook.in_progress_filters({}) == {"exclude_statuses": ["done", "failed"]}
    assert hook.in_progress_filters({"exclude_statuses": "initiated"}) == {
        "exclude_statuses": ["initiated", "done", "failed"]}
    assert hook.in_progress_filters({"exclude_statuses": ["initiated", "in-progress", "processing"]}) is None


@pytest.mark.parametrize(("status", "finished", "in_progress"), [
    ("initiated", False, True), ("in-progress", False, True), ("processing", False, True),
    ("done", True, False), ("failed", True, False),
])
def test_status_classification(status, finished, in_progress):
    hook = ElevenLabsHook()
    item = conv(1, T0, status)
    assert (hook.is_finished(item), hook.is_in_progress(item)) == (finished, in_progress)
    assert normalize(hook, item)["finished"] is finished


def test_normalize():
    item = conv(1, T0 + 5, "done", call_duration_secs=42, conversation_initiation_source="twilio")
    assert normalize(ElevenLabsHook(), item) == {
        "vendor": "elevenlabs", "id": "c1", "created_at": "2026-11-20T10:00:05Z", "updated_at": None,
        "status": "done", "finished": True, "channel": "twilio", "duration_seconds": 42.0, "raw": item,
    }
    live = {"conversation_id": "c2", "start_time_unix_secs": T0, "status": "in-progress"}
    assert normalize(ElevenLabsHook(), live) == {
        "vendor": "elevenlabs", "id": "c2", "created_at": "2026-11-20T10:00:00Z", "updated_at": None,
        "status": "in-progress", "finished": False, "channel": None, "duration_seconds": None, "raw": live,
    }
