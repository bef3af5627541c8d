"""The vendor's own Python client (``elevenlabs`` on PyPI) against the shipped ElevenLabs simulator.

A new user who tries our simulator with the client they already know must get what the real API gives them:
pages and details the client's models accept strictly, its own cursor/``has_more`` paging through a whole
window, and the same conversations our hook exports for that window.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from elevenlabs import ElevenLabs
from elevenlabs.core.api_error import ApiError
from elevenlabs.types import GetConversationResponseModel, GetConversationsPageResponseModel

from airflow_provider_conversations.hooks.elevenlabs import ElevenLabsHook
from airflow_provider_conversations.testing.dataset import DEFAULT_START
from airflow_provider_conversations.testing.elevenlabs import ElevenLabsSimulator
from tests.elevenlabs_strict import assert_strict

N = 500
START = DEFAULT_START + timedelta(hours=6)
END = START + timedelta(hours=30)


@pytest.fixture(scope="module", params=["inclusive", "exclusive"])
def el(request: pytest.FixtureRequest) -> Iterator[ElevenLabsSimulator]:
    with ElevenLabsSimulator(N, seed=31, bounds=request.param, max_seconds=300) as s:
        yield s


@pytest.fixture
def client(el: ElevenLabsSimulator) -> ElevenLabs:
    return ElevenLabs(api_key=el.token, base_url=el.url, timeout=10)


def _window_bounds(sim: ElevenLabsSimulator) -> dict[str, int]:
    """``call_start_after_unix`` / ``call_start_before_unix`` for ``[START, END)`` under the simulator's bounds
    (whole seconds: inclusive bounds take the last second before ``END``, exclusive ones the second before
    ``START``)."""
    a, b = int(START.timestamp()), int(END.timestamp())
    if sim.bounds == "inclusive":
        return {"call_start_after_unix": a, "call_start_before_unix": b - 1}
    return {"call_start_after_unix": a - 1, "call_start_before_unix": b}


def _walk(client: ElevenLabs, **params: Any) -> Iterator[tuple[GetConversationsPageResponseModel, Any]]:
    """The client's own paging: follow ``next_cursor`` while ``has_more``; each page with its raw JSON body."""
    cursor = None
    while True:
        response = client.conversational_ai.conversations.with_raw_response.list(cursor=cursor, **params)
        yield response.data, response._response.json()
        if not response.data.has_more:
            return
        cursor = response.data.next_cursor


def test_the_client_walks_a_whole_window_and_gets_what_the_hook_exports(el, client, set_connection):
    pages = list(_walk(client, page_size=23, **_window_bounds(el)))
    assert len(pages) > 5
    for _, body in pages:
        assert_strict(GetConversationsPageResponseModel, body)
    ids = [c.conversation_id for page, _ in pages for c in page.conversations]
    assert len(ids) == len(set(ids))
    truth = el.ground_truth(START, END)
    assert 100 < len(truth) < N
    assert sorted(ids) == sorted(truth)
    set_connection("elevenlabs_default", el.connection())
    hook_ids = [c["conversation_id"] for c in ElevenLabsHook(page_size=17).iter_conversations(START, END)]
    assert sorted(hook_ids) == sorted(ids)
    starts = [c.start_time_unix_secs for page, _ in pages for c in page.conversations]
    assert starts == sorted(starts, reverse=True)


def test_the_client_sends_its_own_list_parameters_and_the_simulator_applies_them(el, client):
    params: dict[str, Any] = {"page_size": 100, **_window_bounds(el), "sort_direction": "asc",
                              "tool_names": ["lookup_order", "refund"], "has_feedback_comment": False,
                              "exclude_statuses": ["initiated", "processing"], "call_successful": "success",
                              "data_collection_params": ["email:neq:"], "data_collection_ids": ["city"],
                              "evaluation_criteria_ids": ["resolved"], "summary_mode": "include",
                              "conversation_product_type": "agents"}
    pages = list(_walk(client, **params))
    for _, body in pages:
        assert_strict(GetConversationsPageResponseModel, body)
    got = [c for page, _ in pages for c in page.conversations]
    expected = el.ground_truth(START, END, **{k: v for k, v in params.items()
                                              if not k.startswith("call_start") and k != "page_size"})
    assert expected
    assert [c.conversation_id for c in got] == expected  # oldest first, as asked
    by_id = {r["conversation_id"]: r for r in el.records}
    for c in got:
        r = by_id[c.conversation_id]
        assert c.data_collection_results == {"city": r["_collected"]["city"]}
        assert c.evaluation_criteria_results is not None
        assert c.evaluation_criteria_results["resolved"].result == r["_evaluation"]["resolved"]
        assert c.transcript_summary == el.summary(r)


def test_the_clients_get_reads_the_detail_endpoint(el, client):
    for r in el.records[::25]:
        response = client.conversational_ai.conversations.with_raw_response.get(r["conversation_id"])
        assert_strict(GetConversationResponseModel, response._response.json())
        detail = response.data
        assert detail.conversation_id == r["conversation_id"]
        assert detail.metadata.start_time_unix_secs == r["start_time_unix_secs"]
        assert [t.message for t in detail.transcript] == [
            t["message"] for t in (el.detail(r["conversation_id"]) or {})["transcript"]]
        assert len(detail.transcript) == r["message_count"]
    otel = client.conversational_ai.conversations.get(el.records[0]["conversation_id"], format="opentelemetry")
    assert otel.otlp_traces is not None
    with pytest.raises(ApiError) as err:
        client.conversational_ai.conversations.get("conv_missing")
    assert err.value.status_code == 404
    assert err.value.body["detail"]["code"] == "conversation_not_found"
