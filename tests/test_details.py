"""Per-conversation details against requests-mock: exact detail requests per vendor, what 404/403/429/5xx/resets
on a detail mean, ``on_missing_detail``, id mismatches, order and set, the concurrency bound, normalized
``messages``, ``exclude_fields`` on detail paths, and the operators' arguments and manifest."""

from __future__ import annotations

import gzip
import re
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pendulum
import pytest
import requests

from airflow_provider_conversations.exceptions import (
    AuthenticationError,
    ConfigurationError,
    InvalidResponseError,
    MissingDetailError,
    RetriesExhaustedError,
)
from airflow_provider_conversations.hooks.anyreach import AnyreachHook
from airflow_provider_conversations.hooks.elevenlabs import ElevenLabsHook
from airflow_provider_conversations.hooks.parrotmob import ParrotMobHook
from airflow_provider_conversations.hooks.polyai import PolyAIHook
from airflow_provider_conversations.hooks.replyful import ReplyfulHook
from airflow_provider_conversations.operators.conversations import (
    ConversationsOperator,
    ConversationsToObjectStorageOperator,
)
from airflow_provider_conversations.windows import parse_iso

START = datetime(2026, 11, 20, 10, tzinfo=UTC)
END = datetime(2026, 11, 20, 11, tzinfo=UTC)
T0 = int(START.timestamp())
FAST = {"backoff": 0.001, "backoff_max": 0.002}

EL = "https://elevenlabs.test"
RF = "https://replyful.test"
AR = "https://anyreach.test"
PM = "https://parrotmob.test"
PA = "https://polyai.test"
RF_KEY = "rfl_live_9f8e7d6c5b4a"


@pytest.fixture(autouse=True)
def connections(set_connection):
    set_connection("elevenlabs_default", {"conn_type": "elevenlabs", "host": EL, "password": "xi-secret-123"})
    set_connection("replyful_default", {"conn_type": "replyful", "host": RF, "password": RF_KEY})
    set_connection("anyreach_default", {"conn_type": "anyreach", "host": AR, "password": "ak_secret_1"})
    set_connection("anyreach_pat", {"conn_type": "anyreach", "host": AR, "password": "pat_secret_2",
                                    "extra": {"org_id": "org_7"}})
    set_connection("parrotmob_default", {"conn_type": "parrotmob", "host": PM, "password": "pm-secret"})
    set_connection("polyai_default", {"conn_type": "polyai", "host": PA, "password": "pa-secret",
                                      "extra": {"account_id": "acc", "project_id": "proj"}})


# ---------------------------------------------------------------------------------------------- vendor bodies


def el_item(i: int) -> dict[str, Any]:
    return {"conversation_id": f"conv_{i:03d}", "agent_id": "agent_1", "start_time_unix_secs": T0 + 3000 - i,
            "call_duration_secs": 30, "status": "done"}


def el_detail(i: int) -> dict[str, Any]:
    return {"conversation_id": f"conv_{i:03d}", "agent_id": "agent_1", "status": "done",
            "metadata": {"start_time_unix_secs": T0 + 3000 - i, "call_duration_secs": 30},
            "transcript": [{"role": "agent", "message": f"Hello {i}", "time_in_call_secs": 0},
                           {"role": "user", "message": f"Question {i}", "time_in_call_secs": 4}],
            "has_audio": True, "has_user_audio": True, "has_response_audio": True}


def el_pages(requests_mock: Any, n: int, per_page: int = 4) -> None:
    """``n`` ElevenLabs conversations over pages of ``per_page`` (newest first), and every detail."""
    items = [el_item(i) for i in range(n)]
    chunks = [items[k:k + per_page] for k in range(0, n, per_page)] or [[]]
    responses = [{"json": {"conversations": chunk, "has_more": k < len(chunks) - 1,
                           "next_cursor": f"c{k + 1}" if k < len(chunks) - 1 else None}}
                 for k, chunk in enumerate(chunks)]
    requests_mock.get(f"{EL}/v1/convai/conversations", responses)
    for i in range(n):
        requests_mock.get(f"{EL}/v1/convai/conversations/conv_{i:03d}", json=el_detail(i))


def detail_requests(requests_mock: Any, prefix: str) -> list[Any]:
    return [r for r in requests_mock.request_history if urlsplit(r.url).path.startswith(prefix)]


# ---------------------------------------------------------------------------------------------- exact requests


def test_elevenlabs_detail_request_is_exact(requests_mock):
    el_pages(requests_mock, 2)
    got = list(ElevenLabsHook().iter_conversations(START, END, include_details=True, detail_concurrency=1))
    assert [c["detail"] for c in got] == [el_detail(0), el_detail(1)]
    assert [{k: v for k, v in c.items() if k != "detail"} for c in got] == [el_item(0), el_item(1)]
    details = detail_requests(requests_mock, "/v1/convai/conversations/")
    assert [r.url for r in details] == [f"{EL}/v1/convai/conversations/conv_000",
                                        f"{EL}/v1/convai/conversations/conv_001"]
    for r in details:
        assert r.method == "GET"
        assert r.headers["xi-api-key"] == "xi-secret-123"
        assert r.headers["Accept"] == "application/json"
        assert "Authorization" not in r.headers


def test_replyful_detail_request_is_exact(requests_mock):
    item = {"id": "conv_a/b", "object": "conversation", "status": "resolved", "createdAt": "2026-11-20T10:05:00.000Z",
            "updatedAt": "2026-11-20T10:06:00.000Z"}
    detail = {**item, "messages": [{"id": "msg_1", "role": "contact", "text": "Hi", "createdAt": item["createdAt"]}]}
    requests_mock.get(f"{RF}/v1/conversations", json={"object": "list", "data": [item], "hasMore": False,
                                                       "nextCursor": None})
    requests_mock.get(f"{RF}/v1/conversations/conv_a%2Fb", json=detail)
    (got,) = ReplyfulHook().iter_conversations(START, END, include_details=True)
    assert got == {**item, "detail": detail}
    (r,) = detail_requests(requests_mock, "/v1/conversations/")
    assert r.url == f"{RF}/v1/conversations/conv_a%2Fb"  # the id is one path segment, whatever it holds
    assert r.headers["Authorization"] == f"Bearer {RF_KEY}"


@pytest.mark.parametrize(("conn_id", "org"), [("anyreach_default", None), ("anyreach_pat", "org_7")])
def test_anyreach_detail_request_is_exact(requests_mock, conn_id, org):
    item = {"id": "c-1", "created_at": "2026-11-20T10:30:00Z", "updated_at": "2026-11-20T10:31:00Z",
            "status": "completed"}
    detail = {**item, "conversation": [{"role": "agent", "text": "Hi", "timestamp": "2026-11-20T10:30:01Z"}]}
    requests_mock.get(f"{AR}/core/conversations", [{"json": [item]}, {"json": []}])
    requests_mock.get(f"{AR}/core/conversations/c-1", json=detail)
    (got,) = AnyreachHook(conn_id).iter_conversations(START, END, include_details=True)
    assert got["detail"] == detail
    (r,) = detail_requests(requests_mock, "/core/conversations/")
    assert r.url == f"{AR}/core/conversations/c-1"
    assert r.headers["Authorization"] == f"Bearer {'pat_secret_2' if org else 'ak_secret_1'}"
    assert r.headers.get("X-Anyreach-Org") == org


def test_polyai_details_need_no_request(requests_mock):
    item = {"id": "p1", "started_at": "2026-11-20T10:10:00Z", "in_progress": False,
            "turns": [{"user_input": "hi", "user_input_datetime": "2026-11-20T10:10:01Z",
                       "agent_response": "hello", "agent_response_datetime": "2026-11-20T10:10:02+00:00"}]}
    requests_mock.get(f"{PA}/v3/acc/proj/conversations", json={"conversations": [item], "cursor": None})
    assert list(PolyAIHook().iter_conversations(START, END, include_details=True)) == [item]
    assert len(requests_mock.request_history) == 1
    assert PolyAIHook().messages_of(item) == [
        {"role": "user", "text": "hi", "at": "2026-11-20T10:10:01Z"},
        {"role": "agent", "text": "hello", "at": "2026-11-20T10:10:02Z"},
    ]


def test_parrotmob_refuses_details_before_any_request(requests_mock):
    with pytest.raises(ConfigurationError) as err:
        ParrotMobHook().iter_conversations(START, END, include_details=True)
    assert str(err.value) == (
        "include_details=True is not supported by ParrotMob: ParrotMob documents no detail endpoint (no "
        "per-conversation transcript or messages to fetch); use include_details=False")
    with pytest.raises(ConfigurationError, match="ParrotMob documents no detail endpoint"):
        ParrotMobHook().get_conversation("x")
    assert requests_mock.request_history == []


# ---------------------------------------------------------------------------------------------- order, set, bound


def test_order_and_set_are_the_same_with_and_without_details(requests_mock):
    el_pages(requests_mock, 23, per_page=5)
    plain = list(ElevenLabsHook().iter_conversations(START, END))
    el_pages(requests_mock, 23, per_page=5)  # the pages again (a response list is answered once)
    with_details = list(ElevenLabsHook().iter_conversations(START, END, include_details=True, detail_concurrency=4))
    assert [c["conversation_id"] for c in with_details] == [c["conversation_id"] for c in plain]
    assert len(plain) == 23
    for c in with_details:
        assert c["detail"]["conversation_id"] == c["conversation_id"]
        assert c["detail"]["transcript"][0]["message"] == f"Hello {int(c['conversation_id'][5:])}"


@pytest.mark.parametrize("concurrency", [1, 3, 8])
def test_never_more_detail_requests_in_flight_than_detail_concurrency(requests_mock, concurrency):
    """Each detail waits until ``concurrency`` details are in flight together, so the bound is reached every
    round; one more in flight would be counted. (requests-mock answers one request at a time, so the detail
    fetch itself is the gated one here; the simulator tests count in-flight requests on the wire.)"""
    n = 24
    el_pages(requests_mock, n, per_page=4)
    gate = threading.Barrier(concurrency, timeout=20)
    lock = threading.Lock()
    in_flight = peak = 0
    hook = ElevenLabsHook()
    fetch = hook.get_conversation

    def gated(conversation_id: str) -> dict[str, Any]:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        gate.wait()
        with lock:
            in_flight -= 1
        return fetch(conversation_id)

    hook.get_conversation = gated  # type: ignore[method-assign]
    got = list(hook.iter_conversations(START, END, include_details=True, detail_concurrency=concurrency))
    assert [c["detail"]["conversation_id"] for c in got] == [f"conv_{i:03d}" for i in range(n)]
    assert peak == concurrency
    assert (hook.stats.detail_requests, hook.stats.details_fetched, hook.stats.requests) == (n, n, n + 6)


# ---------------------------------------------------------------------------------------------- missing details


def _one_gone(requests_mock: Any) -> None:
    el_pages(requests_mock, 3, per_page=3)
    requests_mock.get(f"{EL}/v1/convai/conversations/conv_001", status_code=404, json={
        "detail": {"status": "conversation_not_found", "message": "Conversation not found"}})


def test_missing_detail_is_kept_with_null_by_default_and_named_in_the_log(requests_mock, logs):
    _one_gone(requests_mock)
    hook = ElevenLabsHook()
    got = list(hook.iter_conversations(START, END, include_details=True))
    assert [(c["conversation_id"], c["detail"] is None) for c in got] == [
        ("conv_000", False), ("conv_001", True), ("conv_002", False)]
    assert (hook.stats.details_fetched, hook.stats.details_missing, hook.stats.detail_requests) == (2, 1, 3)
    assert ("ElevenLabs: conversation conv_001 was listed but its detail is gone (HTTP 404); written with "
            "\"detail\": null (on_missing_detail='keep')") in logs()


def test_missing_detail_skipped(requests_mock, logs):
    _one_gone(requests_mock)
    got = list(ElevenLabsHook().iter_conversations(START, END, include_details=True, on_missing_detail="skip"))
    assert [c["conversation_id"] for c in got] == ["conv_000", "conv_002"]
    assert "conversation conv_001 was listed but its detail is gone (HTTP 404); skipped" in logs()


def test_missing_detail_fails_with_fail(requests_mock):
    _one_gone(requests_mock)
    with pytest.raises(MissingDetailError) as err:
        list(ElevenLabsHook().iter_conversations(START, END, include_details=True, on_missing_detail="fail"))
    assert err.value.conversation_id == "conv_001"
    assert err.value.status == 404
    assert str(err.value) == (
        "ElevenLabs has no detail for conversation conv_001, listed in this window (HTTP 404, "
        "code=conversation_not_found: archived or deleted since it was listed); on_missing_detail='fail' stops the "
        "export (use 'keep' to write the conversation with \"detail\": null, or 'skip' to leave it out)")


def test_get_conversation_404_is_a_typed_missing_detail(requests_mock):
    requests_mock.get(f"{RF}/v1/conversations/conv_gone", status_code=404, json={
        "error": {"type": "invalid_request_error", "code": "conversation_not_found", "message": "No such"}})
    with pytest.raises(MissingDetailError) as err:
        ReplyfulHook().get_conversation("conv_gone")
    assert (err.value.conversation_id, err.value.code, err.value.vendor) == ("conv_gone", "conversation_not_found",
                                                                             "replyful")
    assert len(requests_mock.request_history) == 1  # a 404 is an answer, not retried


# ---------------------------------------------------------------------------------------------- failures


def test_anyreach_403_fails_at_once_naming_the_scope(requests_mock):
    items = [{"id": f"c{i}", "created_at": f"2026-11-20T10:{50 - i:02d}:00Z", "updated_at": "2026-11-20T10:55:00Z"}
             for i in range(6)]
    requests_mock.get(f"{AR}/core/conversations", [{"json": items}, {"json": []}])
    requests_mock.get(f"{AR}/core/conversations/c0", status_code=403,
                      json={"detail": "Missing scope conversations:read_sensitive"})
    for i in range(1, 6):
        requests_mock.get(f"{AR}/core/conversations/c{i}", json=items[i])
    with pytest.raises(AuthenticationError) as err:
        list(AnyreachHook().iter_conversations(START, END, include_details=True, detail_concurrency=1))
    assert str(err.value) == (
        "Anyreach refused the detail of conversation c0 (HTTP 403, connection 'anyreach_default'): the token lacks "
        "the scope 'conversations:read_sensitive'; grant it to the token, or use include_details=False. Vendor "
        "said: Missing scope conversations:read_sensitive")
    assert err.value.status == 403
    # nothing after the 403: not retried, and no other detail was requested
    assert [urlsplit(r.url).path for r in detail_requests(requests_mock, "/core/conversations/")] == [
        "/core/conversations/c0"]
    assert "ak_secret_1" not in str(err.value)


@pytest.mark.parametrize("failures", [
    [{"status_code": 429, "headers": {"Retry-After": "0"},
      "json": {"detail": {"status": "rate_limit_exceeded", "message": "slow down"}}}],
    [{"status_code": 503, "json": {"detail": {"message": "unavailable"}}},
     {"status_code": 500, "text": "oops"}],
    [{"exc": requests.exceptions.ConnectionError("connection reset by peer")}],
    [{"status_code": 200, "text": '{"conversation_id": "conv_00'}],  # truncated body
], ids=["429", "5xx", "reset", "truncated"])
def test_retryable_detail_failures_are_retried(requests_mock, failures):
    el_pages(requests_mock, 2, per_page=2)
    requests_mock.get(f"{EL}/v1/convai/conversations/conv_001", [*failures, {"json": el_detail(1)}])
    hook = ElevenLabsHook(**FAST)
    got = list(hook.iter_conversations(START, END, include_details=True))
    assert [c["detail"] for c in got] == [el_detail(0), el_detail(1)]
    assert hook.stats.retries == len(failures)
    assert hook.stats.detail_requests == 2 + len(failures)


def test_429_on_a_detail_pauses_the_hooks_shared_throttle(requests_mock, fake_clock):
    el_pages(requests_mock, 1, per_page=1)
    requests_mock.get(f"{EL}/v1/convai/conversations/conv_000", [
        {"status_code": 429, "headers": {"Retry-After": "7"}, "json": {"detail": {"status": "rate_limit_exceeded"}}},
        {"json": el_detail(0)}])
    hook = ElevenLabsHook(**FAST)
    clock = fake_clock(hook)
    (got,) = hook.iter_conversations(START, END, include_details=True)
    assert got["detail"] == el_detail(0)
    assert clock.sleeps == [7.0]  # the listing's throttle waited out the vendor's Retry-After
    assert hook.throttle._blocked_until == 1007.0


def test_detail_retries_exhausted(requests_mock):
    el_pages(requests_mock, 1, per_page=1)
    requests_mock.get(f"{EL}/v1/convai/conversations/conv_000", status_code=502, text="bad gateway")
    with pytest.raises(RetriesExhaustedError, match=r"failed after 2 attempts.*HTTP 502"):
        list(ElevenLabsHook(max_attempts=2, **FAST).iter_conversations(START, END, include_details=True))


@pytest.mark.parametrize(("body", "shown"), [
    ({"conversation_id": "conv_999", "transcript": []}, "another conversation (conversation_id='conv_999')"),
    ({"transcript": []}, "another conversation (conversation_id=None)"),
    (["not", "an", "object"], """something that is not an object ("['not', 'an', 'object']")"""),
])
def test_detail_of_another_conversation_is_an_invalid_response(requests_mock, body, shown):
    el_pages(requests_mock, 1, per_page=1)
    requests_mock.get(f"{EL}/v1/convai/conversations/conv_000", json=body)
    with pytest.raises(InvalidResponseError) as err:
        list(ElevenLabsHook().iter_conversations(START, END, include_details=True))
    assert str(err.value) == (f"ElevenLabs answered the detail request for conversation conv_000 with {shown}; "
                              "refusing to attach it")


def test_details_with_parallel_sub_windows_are_the_sequential_export(requests_mock):
    """Replyful is server-bounded: with max_parallel=2 the sub-windows and their details are fetched in parallel,
    and the records are the same, in the same order, as a sequential run."""
    convs = [{"id": f"conv_{m:02d}", "object": "conversation", "status": "resolved",
              "createdAt": f"2026-11-20T10:{m:02d}:30.000Z", "updatedAt": "2026-11-20T11:30:00.000Z"}
             for m in range(0, 60, 3)]

    def listing(request: Any, context: Any) -> dict[str, Any]:
        query = parse_qs(urlsplit(request.url).query)
        lo, hi = parse_iso(query["createdAt[gte]"][0]), parse_iso(query["createdAt[lte]"][0])
        data = [c for c in convs if lo <= parse_iso(c["createdAt"]) <= hi]
        return {"object": "list", "data": data, "hasMore": False, "nextCursor": None}

    def detail(request: Any, context: Any) -> dict[str, Any]:
        cid = request.path.rsplit("/", 1)[1]
        return {"id": cid, "messages": [{"role": "contact", "text": f"about {cid}"}]}

    requests_mock.get(f"{RF}/v1/conversations", json=listing)
    requests_mock.get(re.compile(re.escape(f"{RF}/v1/conversations/") + ".+"), json=detail)
    sequential = ConversationsOperator(task_id="s", conn_id="replyful_default", include_details=True).execute(ctx())
    parallel = ConversationsOperator(task_id="p", conn_id="replyful_default", include_details=True,
                                     max_parallel=2, detail_concurrency=3).execute(ctx())
    assert [r["id"] for r in sequential] == [c["id"] for c in convs]
    assert parallel == sequential
    assert all(r["detail"]["messages"][0]["text"] == f"about {r['id']}" for r in parallel)


# ---------------------------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"include_details": "yes"}, "include_details='yes' is not valid; expected True or False"),
    ({"include_details": True, "detail_concurrency": 0},
     "detail_concurrency=0 is not valid; expected an integer from 1 to 64"),
    ({"include_details": True, "detail_concurrency": 65},
     "detail_concurrency=65 is not valid; expected an integer from 1 to 64"),
    ({"include_details": True, "detail_concurrency": True},
     "detail_concurrency=True is not valid; expected an integer from 1 to 64"),
    ({"include_details": True, "on_missing_detail": "ignore"},
     "on_missing_detail='ignore' is not valid; allowed: 'keep', 'skip', 'fail'"),
    ({"detail_concurrency": "8"}, "detail_concurrency='8' is not valid; expected an integer from 1 to 64"),
])
def test_bad_detail_arguments_fail_before_any_request(requests_mock, kwargs, message):
    with pytest.raises(ConfigurationError) as err:
        ElevenLabsHook().iter_conversations(START, END, **kwargs)
    assert str(err.value) == message
    with pytest.raises(ConfigurationError) as op_err:
        ConversationsOperator(task_id="t", conn_id="elevenlabs_default", **kwargs)
    assert str(op_err.value) == f"ConversationsOperator 't': {message}"
    assert requests_mock.request_history == []


def test_operator_refuses_parrotmob_details_at_parse_time_with_vendor():
    for cls, extra in ((ConversationsOperator, {}), (ConversationsToObjectStorageOperator,
                                                     {"destination": "memory://x/"})):
        with pytest.raises(ConfigurationError) as err:
            cls(task_id="t", conn_id="parrotmob_default", vendor="parrotmob", include_details=True, **extra)
        assert str(err.value) == (
            f"{cls.__name__} 't': include_details=True is not supported by ParrotMob: ParrotMob documents no "
            "detail endpoint (no per-conversation transcript or messages to fetch); use include_details=False")


def ctx() -> dict[str, Any]:
    return {"data_interval_start": pendulum.instance(START), "data_interval_end": pendulum.instance(END)}


def test_operator_refuses_parrotmob_details_before_any_request_without_vendor(requests_mock):
    op = ConversationsOperator(task_id="t", conn_id="parrotmob_default", include_details=True)
    with pytest.raises(ConfigurationError) as err:
        op.execute(ctx())
    assert str(err.value).startswith("ConversationsOperator 't': include_details=True is not supported by ParrotMob: "
                                     "ParrotMob documents no detail endpoint")
    assert requests_mock.request_history == []


# ---------------------------------------------------------------------------------------------- records


def test_raw_records_carry_the_detail_and_exclude_detail_paths(requests_mock):
    el_pages(requests_mock, 2, per_page=2)
    op = ConversationsOperator(task_id="t", conn_id="elevenlabs_default", include_details=True,
                               exclude_fields=["detail.transcript.message", "detail.metadata"])
    records = op.execute(ctx())
    assert records[0] == {**el_item(0), "detail": {
        "conversation_id": "conv_000", "agent_id": "agent_1", "status": "done",
        "transcript": [{"role": "agent", "time_in_call_secs": 0}, {"role": "user", "time_in_call_secs": 4}],
        "has_audio": True, "has_user_audio": True, "has_response_audio": True}}


def test_normalized_messages_per_vendor(requests_mock):
    el_pages(requests_mock, 1, per_page=1)
    op = ConversationsOperator(task_id="t", conn_id="elevenlabs_default", include_details=True,
                               output_format="normalized")
    (record,) = op.execute(ctx())
    assert list(record) == ["vendor", "id", "created_at", "updated_at", "status", "finished", "channel",
                            "duration_seconds", "messages", "raw"]
    t = T0 + 3000
    assert record["messages"] == [
        {"role": "agent", "text": "Hello 0", "at": datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")},
        {"role": "user", "text": "Question 0",
         "at": datetime.fromtimestamp(t + 4, UTC).isoformat().replace("+00:00", "Z")},
    ]
    assert record["raw"] == {**el_item(0), "detail": el_detail(0)}

    replyful = ReplyfulHook().messages_of({"detail": {"messages": [
        {"role": "contact", "text": "Hi", "createdAt": "2026-11-20T10:05:00.123Z"},
        {"role": "ai", "text": "Hello!", "createdAt": "2026-11-20T11:05:00+01:00"},
        {"role": "whisper", "text": "note", "createdAt": None}]}})
    assert replyful == [{"role": "user", "text": "Hi", "at": "2026-11-20T10:05:00.123000Z"},
                        {"role": "agent", "text": "Hello!", "at": "2026-11-20T10:05:00Z"},
                        {"role": "whisper", "text": "note", "at": None}]
    anyreach = AnyreachHook().messages_of({"detail": {"conversation": {"turns": [
        {"role": "assistant", "text": "Hi", "timestamp": "2026-11-20T10:30:01Z"},
        {"role": "user", "content": "Yes"}]}}})
    assert anyreach == [{"role": "agent", "text": "Hi", "at": "2026-11-20T10:30:01Z"},
                        {"role": "user", "text": "Yes", "at": None}]
    assert AnyreachHook().messages_of({"detail": {"id": "c"}}) is None  # no scope: no transcript


def test_excluding_the_transcript_also_keeps_it_out_of_messages(requests_mock):
    el_pages(requests_mock, 1, per_page=1)
    (a,) = ConversationsOperator(task_id="a", conn_id="elevenlabs_default", include_details=True,
                                 output_format="normalized", exclude_fields=["messages.text"]).execute(ctx())
    assert a["messages"] == [{"role": "agent", "at": a["messages"][0]["at"]},
                             {"role": "user", "at": a["messages"][1]["at"]}]
    assert a["raw"]["detail"]["transcript"][0]["message"] == "Hello 0"  # only what was asked for is dropped
    (b,) = ConversationsOperator(task_id="b", conn_id="elevenlabs_default", include_details=True,
                                 output_format="normalized", exclude_fields=["detail.transcript"]).execute(ctx())
    assert b["messages"] is None
    assert "transcript" not in b["raw"]["detail"]
    (c,) = ConversationsOperator(task_id="c", conn_id="elevenlabs_default", include_details=True,
                                 output_format="normalized", exclude_fields=["messages"]).execute(ctx())
    assert "messages" not in c


def test_manifest_counts_details(requests_mock, tmp_path: Path):
    _one_gone(requests_mock)
    op = ConversationsToObjectStorageOperator(task_id="t", conn_id="elevenlabs_default", include_details=True,
                                              destination=f"file://{tmp_path}/", detail_concurrency=2)
    manifest = op.execute(ctx())
    assert manifest["count"] == 3
    assert (manifest["details_fetched"], manifest["details_missing"], manifest["detail_requests"]) == (2, 1, 3)
    assert manifest["requests"] == 4
    assert manifest["detail_seconds"] >= 0
    path = Path(manifest["uri"].removeprefix("file://"))
    lines = [orjson.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]
    assert [(r["conversation_id"], r["detail"] is None) for r in lines] == [
        ("conv_000", False), ("conv_001", True), ("conv_002", False)]
    plain = ConversationsToObjectStorageOperator(task_id="p", conn_id="elevenlabs_default",
                                                 destination=f"file://{tmp_path}/plain/").execute(ctx())
    assert "details_fetched" not in plain
