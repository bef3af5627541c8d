"""The ElevenLabs simulator agrees with the vendor's client (``elevenlabs`` 2.78.0): every page and detail body
validates strictly against its response models, and every list parameter the client sends is applied."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests
from elevenlabs.conversational_ai.conversations.raw_client import RawConversationsClient
from elevenlabs.types import GetConversationResponseModel, GetConversationsPageResponseModel

from airflow_provider_conversations.testing.dataset import DEFAULT_START
from airflow_provider_conversations.testing.elevenlabs import LISTS, SCALARS, ElevenLabsSimulator, public
from tests.elevenlabs_strict import assert_strict, check

N = 400
ID = "conversation_id"


@pytest.fixture(scope="module")
def el() -> Iterator[ElevenLabsSimulator]:
    with ElevenLabsSimulator(N, seed=21, max_seconds=300, log_requests=False) as s:
        yield s


def _pages(sim: ElevenLabsSimulator, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every page of a walk with these parameters, following ``next_cursor`` while ``has_more``."""
    pages, cursor = [], None
    while True:
        answer = requests.get(f"{sim.url}/v1/convai/conversations", params={**params, "cursor": cursor},
                              headers={"xi-api-key": sim.token}, timeout=10)
        assert answer.status_code == 200, answer.text
        pages.append(answer.json())
        if not pages[-1]["has_more"]:
            return pages
        cursor = pages[-1]["next_cursor"]


def _ids(pages: list[dict[str, Any]]) -> list[str]:
    return [c[ID] for p in pages for c in p["conversations"]]


def test_the_simulator_knows_every_parameter_the_client_sends():
    sent = set(inspect.signature(RawConversationsClient.list).parameters) - {"self", "request_options"}
    assert len(sent) == 48
    assert set(SCALARS) | set(LISTS) == sent
    assert not set(SCALARS) & set(LISTS)


def test_every_page_validates_strictly_and_carries_no_undeclared_field(el):
    for params in ({"page_size": 100}, {"page_size": 37, "summary_mode": "include"},
                   {"page_size": 100, "data_collection_ids": ["city", "email"],
                    "evaluation_criteria_ids": ["resolved", "polite", "unknown_criterion"]}):
        pages = _pages(el, params)
        assert sorted(_ids(pages)) == sorted(r[ID] for r in el.records)
        for page in pages:
            assert_strict(GetConversationsPageResponseModel, page)
    plain = _pages(el, {"page_size": 100})[0]["conversations"]
    assert all("data_collection_results" not in c and "evaluation_criteria_results" not in c for c in plain)
    assert all(not any(k.startswith("_") for k in c) for c in plain)
    by_id = {r[ID]: r for r in el.records}
    assert plain == [public(by_id[c[ID]]) for c in plain]


def test_data_collection_and_evaluation_results_only_for_the_ids_asked(el):
    page = _pages(el, {"page_size": 100, "data_collection_ids": "city",
                       "evaluation_criteria_ids": ["polite", "nope"]})[0]["conversations"]
    by_id = {r[ID]: r for r in el.records}
    for c in page:
        r = by_id[c[ID]]
        assert c["data_collection_results"] == ({"city": r["_collected"]["city"]} if r["_collected"] else {})
        polite = r["_evaluation"].get("polite")
        assert c["evaluation_criteria_results"] == {"polite": {"result": polite} if polite else None, "nope": None}


def test_the_checker_rejects_what_the_models_do_not_declare(el):
    page = _pages(el, {"page_size": 3})[0]
    bad = {**page, "conversations": [{**page["conversations"][0], "evaluation_results": {}},
                                     {**page["conversations"][1], "status": "weird"},
                                     {**page["conversations"][2], "message_count": "3"}]}
    problems = check(GetConversationsPageResponseModel, bad)
    assert any("$.conversations[0].evaluation_results: not a field" in p for p in problems)
    assert any("$.conversations[1].status: 'weird' is not one of" in p for p in problems)
    assert any("$.conversations[2].message_count: expected an integer" in p for p in problems)
    detail = el.detail(el.records[0][ID])
    assert detail is not None
    assert check(GetConversationResponseModel, {**detail, "transcript": [{"role": "bot", "message": "x"}]})


def test_every_detail_validates_strictly(el):
    for r in el.records[::8]:
        for fmt in ("json", "opentelemetry"):
            answer = requests.get(f"{el.url}/v1/convai/conversations/{r[ID]}", params={"format": fmt},
                                  headers={"xi-api-key": el.token}, timeout=10)
            assert answer.status_code == 200
            assert_strict(GetConversationResponseModel, answer.json())


def _tools(r: dict[str, Any], pos: int, outcomes: tuple[str, ...], wanted: set[str]) -> bool:
    return any(t[pos] in wanted and t[2] in outcomes for t in r["_tools"])


FILTER_CASES: list[tuple[dict[str, Any], Any]] = [
    ({"version_id": "agtvrsn_1_2"}, lambda r: r["version_id"] == "agtvrsn_1_2"),
    ({"visited_agent_ids": ["agent_3", "agent_4"]}, lambda r: {"agent_3", "agent_4"} & set(r["_visited"])),
    ({"visited_agent_branch_ids": "branch_2_1"}, lambda r: "branch_2_1" in r["_visited_branches"]),
    ({"triggered_procedure_ids": ["proc_0", "proc_3"]}, lambda r: {"proc_0", "proc_3"} & set(r["_procedures"])),
    ({"call_successful": "error"}, lambda r: r["status"] == "failed"),
    ({"has_feedback_comment": "true"}, lambda r: r["_feedback_comment"]),
    ({"has_feedback_comment": "false"}, lambda r: not r["_feedback_comment"]),
    ({"data_collection_params": "email:eq:"}, lambda r: "email" not in r["_collected"]),
    ({"data_collection_params": "email:neq:"}, lambda r: "email" in r["_collected"]),
    ({"data_collection_params": ["order_total:lt:100", "city:eq:paris"]},
     lambda r: r["_collected"].get("order_total", 1000) < 100 and r["_collected"].get("city") == "paris"),
    ({"data_collection_filter": "city:in:berlin|madrid", "data_collection_params": "order_total:gte:200"},
     lambda r: r["_collected"].get("city") in ("berlin", "madrid") and r["_collected"].get("order_total", 0) >= 200),
    ({"dynamic_variable_params": ["customer_tier:eq:gold", "attempt:gt:1"]},
     lambda r: r["_dynamic"]["customer_tier"] == "gold" and r["_dynamic"]["attempt"] > 1),
    ({"dynamic_variable_filter": "customer_tier:neq:bronze"}, lambda r: r["_dynamic"]["customer_tier"] != "bronze"),
    ({"tool_names": "lookup_order"}, lambda r: _tools(r, 0, ("ok", "error"), {"lookup_order"})),
    ({"tool_names": "lookup_order", "include_invalid_tool_calls": "true"},
     lambda r: _tools(r, 0, ("ok", "error", "invalid"), {"lookup_order"})),
    ({"tool_names_successful": ["refund", "end_call"]}, lambda r: _tools(r, 0, ("ok",), {"refund", "end_call"})),
    ({"tool_names_errored": "refund"}, lambda r: _tools(r, 0, ("error",), {"refund"})),
    ({"tool_ids": "__system_end_call"}, lambda r: _tools(r, 1, ("ok", "error"), {"__system_end_call"})),
    ({"tool_ids_successful": "tool_refund"}, lambda r: _tools(r, 1, ("ok",), {"tool_refund"})),
    ({"tool_ids_errored": "tool_lookup_order"}, lambda r: _tools(r, 1, ("error",), {"tool_lookup_order"})),
    ({"phone_number_ids": ["phnum_1", "phnum_2"]}, lambda r: r["_phone_number_id"] in ("phnum_1", "phnum_2")),
    ({"whatsapp_phone_number_ids": "wanum_0"}, lambda r: r["_whatsapp_number_id"] == "wanum_0"),
    ({"text_only": "1"}, lambda r: r["_text_only"]),
    ({"conversation_product_type": "speech_engine"}, lambda r: r["_product"] == "speech_engine"),
    ({"parent_conversation_id": "conv_00000023"}, lambda r: r["_parent"] == "conv_00000023"),
    ({"workflow_node_entered_id": "node_resolve"}, lambda r: "node_resolve" in r["_nodes"]),
    ({"termination_reasons": ["Max duration exceeded", "Call ended by remote party"]},
     lambda r: r["termination_reason"] in ("Max duration exceeded", "Call ended by remote party")),
    ({"guardrail_types": ["prompt_injection", "custom"]},
     lambda r: any(g[0] in ("prompt_injection", "custom") for g in r["_guardrails"])),
    ({"custom_guardrail_names": "no_pricing_promises"},
     lambda r: ["custom", "no_pricing_promises"] in r["_guardrails"]),
    ({"topic_ids": "billing", "tag_ids": ["vip"], "rating_min": 2},
     lambda r: "billing" in r["_topics"] and "vip" in r["tag_ids"] and (r["rating"] or 0) >= 2),
]


@pytest.mark.parametrize(("params", "pred"), FILTER_CASES, ids=[",".join(f"{k}={v}" for k, v in p.items())
                                                                 for p, _ in FILTER_CASES])
def test_each_parameter_of_the_client_is_applied(el, params, pred):
    expected = [r[ID] for r in el.records if pred(r)]
    assert expected, "the case must select something"
    assert len(expected) < N, "and leave something out"
    pages = _pages(el, {**params, "page_size": 50})
    assert sorted(_ids(pages)) == sorted(expected)
    for page in pages:
        assert_strict(GetConversationsPageResponseModel, page)
    hook_form = {k: (v == "true" if v in ("true", "false") else v) for k, v in params.items()}
    assert el.ground_truth(DEFAULT_START, DEFAULT_START + timedelta(days=3), **hook_form) == expected


def test_search_looks_in_the_transcript_messages(el):
    needle = "One-Time CODE"
    expected = [r[ID] for r in el.records
                if any(needle.lower() in t["message"].lower() for t in (el.detail(r[ID]) or {})["transcript"])]
    assert 0 < len(expected) < N
    assert sorted(_ids(_pages(el, {"search": needle, "page_size": 100}))) == sorted(expected)
    assert _ids(_pages(el, {"search": "user_12 talked to", "page_size": 100})) == [
        r[ID] for r in el.records[::-1] if r["_user_id"] == "user_12"]  # and in the summary


def test_sort_direction_pages_oldest_first_with_the_same_set(el):
    newest = _ids(_pages(el, {"page_size": 33}))
    oldest_pages = _pages(el, {"page_size": 33, "sort_direction": "asc"})
    oldest = _ids(oldest_pages)
    assert oldest == newest[::-1]
    starts = [c["start_time_unix_secs"] for p in oldest_pages for c in p["conversations"]]
    assert starts == sorted(starts)
    assert len(oldest) == len(set(oldest)) == N


def test_parameters_the_client_does_not_send_are_ignored(el):
    assert _pages(el, {"page_size": 100, "made_up": "1", "evaluation_results": "x"}) == _pages(el, {"page_size": 100})


def test_bad_values_are_refused_with_the_documented_error_body(el):
    cases = {"guardrail_types": "rude", "conversation_product_type": "phone", "sort_direction": "sideways",
             "has_feedback_comment": "maybe", "include_invalid_tool_calls": "perhaps",
             "data_collection_params": "order_total:gte:lots", "dynamic_variable_params": "attempt:lt:",
             "conversation_initiation_source": "pigeon", "call_successful": "great"}
    for name, value in cases.items():
        answer = requests.get(f"{el.url}/v1/convai/conversations", params={name: value},
                              headers={"xi-api-key": el.token}, timeout=10)
        assert answer.status_code == 422, name
        detail = answer.json()["detail"]
        assert set(detail) == {"type", "code", "message", "request_id", "param"}
        assert (detail["type"], detail["param"]) == ("validation_error", name)
    many = requests.get(f"{el.url}/v1/convai/conversations", params={"visited_agent_ids": [f"a{i}" for i in range(51)]},
                        headers={"xi-api-key": el.token}, timeout=10)
    assert many.status_code == 422
    assert many.json()["detail"]["message"] == "Can not exceed 50 values, got 51"
