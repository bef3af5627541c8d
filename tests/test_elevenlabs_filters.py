"""The ElevenLabs filter table against the vendor's own client: same parameters, types, lists and enums.

``elevenlabs`` (the vendor's public Python client) is a test dependency: its ``conversations.list`` signature is
read here at test time, so a client release that adds, drops or retypes a list parameter fails this suite, not a
user's DAG. Then what the hook sends for the new filters, exactly, and what it refuses, with the exact messages.
"""

from __future__ import annotations

import collections.abc
import inspect
import typing
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from elevenlabs.conversational_ai.conversations.client import AsyncConversationsClient, ConversationsClient

from airflow_provider_conversations.exceptions import InvalidFilterError
from airflow_provider_conversations.hooks.elevenlabs import ElevenLabsHook

START = datetime(2026, 11, 20, 10, tzinfo=UTC)
END = START + timedelta(hours=1)
T0, T1 = int(START.timestamp()), int(END.timestamp())
URL = "https://elevenlabs.test/v1/convai/conversations"
EMPTY = {"json": {"conversations": [], "next_cursor": None, "has_more": False}}
#: What the hook sets itself on every list request (paging, window, order), and the client's per-call options.
HOOKS_OWN = {"cursor", "page_size", "call_start_after_unix", "call_start_before_unix", "sort_direction"}
NOT_PARAMETERS = {"self", "request_options"}
TABLE = ElevenLabsHook.filter_set


def client_parameters(method: Any = ConversationsClient.list) -> dict[str, Any]:
    """The client's list parameters and their resolved annotations."""
    hints = typing.get_type_hints(method)
    names = [n for n in inspect.signature(method).parameters if n not in NOT_PARAMETERS]
    return {n: hints[n] for n in names}


def _flat(annotation: Any) -> list[Any]:
    """The members of a (nested) Union, without ``None`` and ``Any`` (the client's open-enum escape)."""
    if typing.get_origin(annotation) is typing.Union:
        return [m for a in typing.get_args(annotation) for m in _flat(a)]
    return [] if annotation in (type(None), typing.Any) else [annotation]


def described(annotation: Any) -> tuple[str, bool, tuple[str, ...]]:
    """``(kind, repeatable, choices)`` of a client annotation, in the filter table's terms."""
    members = _flat(annotation)
    sequences = [m for m in members if typing.get_origin(m) is collections.abc.Sequence]
    repeatable = bool(sequences)
    scalars = [m for m in members if m not in sequences]
    for s in sequences:
        scalars.extend(m for m in _flat(typing.get_args(s)[0]) if m not in scalars)
    literals = [m for m in scalars if typing.get_origin(m) is typing.Literal]
    if literals:
        assert len(literals) == 1, annotation
        return "enum", repeatable, tuple(typing.get_args(literals[0]))
    (scalar,) = set(scalars)
    return {str: "str", int: "int", bool: "bool"}[scalar], repeatable, ()


# ---------------------------------------------------------------------------------------------- the client


def test_the_filter_table_names_exactly_the_clients_list_parameters():
    params = client_parameters()
    assert len(params) == 48  # elevenlabs 2.78.0: a new release with more fails the next assertion, by name
    assert sorted(set(params) - HOOKS_OWN) == sorted(TABLE.names)
    assert set(TABLE.reserved) == HOOKS_OWN
    assert list(client_parameters(AsyncConversationsClient.list)) == list(params)


@pytest.mark.parametrize("name", sorted(set(client_parameters()) - HOOKS_OWN))
def test_each_filter_has_the_clients_type_repeatability_and_enum_values(name):
    kind, repeatable, choices = described(client_parameters()[name])
    spec = TABLE.get(name)
    assert spec is not None
    assert (spec.kind, spec.repeatable, spec.choices) == (kind, repeatable, choices)


def test_enums_as_the_client_declares_them():
    assert TABLE.get("call_successful").choices == ("success", "failure", "unknown", "error")  # type: ignore[union-attr]
    assert TABLE.get("conversation_product_type").choices == ("agents", "speech_engine")  # type: ignore[union-attr]
    assert len(TABLE.get("conversation_initiation_source").choices) == 27  # type: ignore[union-attr]
    assert TABLE.get("guardrail_types").repeatable  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------------- requests


@pytest.fixture
def elevenlabs(set_connection):
    set_connection("elevenlabs_default", {"conn_type": "elevenlabs", "host": "https://elevenlabs.test",
                                          "password": "xi-secret-123"})


def sent(requests_mock: Any, filters: dict[str, Any]) -> dict[str, list[str]]:
    """The query of the one request a walk with ``filters`` sends, minus page size and window."""
    requests_mock.get(URL, **EMPTY)
    list(ElevenLabsHook().iter_conversations(START, END, filters=filters))
    (request,) = requests_mock.request_history
    query = parse_qs(urlsplit(request.url).query, keep_blank_values=True)
    assert query.pop("page_size") == ["100"]
    assert (query.pop("call_start_after_unix"), query.pop("call_start_before_unix")) == ([str(T0 - 1)],
                                                                                        [str(T1 + 1)])
    return query


def test_new_filters_go_out_as_the_client_sends_them(elevenlabs, requests_mock):
    assert sent(requests_mock, {
        "visited_agent_ids": ["agent_1", "agent_2"], "triggered_procedure_ids": "proc_1",
        "call_successful": "error", "has_feedback_comment": True, "include_invalid_tool_calls": "false",
        "text_only": False, "tool_names": ["lookup", "transfer"], "tool_ids_errored": ["__system_end_call"],
        "data_collection_ids": ["email", "city"], "evaluation_criteria_ids": "resolved",
        "dynamic_variable_params": ["plan:eq:pro", "seats:gte:10", "coupon:eq:", "region:neq:"],
        "data_collection_filter": "email:exists", "dynamic_variable_filter": "tier:in:gold|silver",
        "phone_number_ids": ["pn_1"], "whatsapp_phone_number_ids": ["wa_1", "wa_2"],
        "conversation_initiation_source": "genesys_bot_connector", "conversation_product_type": "speech_engine",
        "version_id": "v_3", "parent_conversation_id": "conv_parent", "workflow_node_entered_id": "node_9",
        "termination_reasons": ["client disconnected", "end_call tool"], "guardrail_types": ["custom", "hate"],
        "custom_guardrail_names": ["no refunds"], "call_duration_min_secs": "30", "rating_max": 4,
    }) == {
        "visited_agent_ids": ["agent_1", "agent_2"], "triggered_procedure_ids": ["proc_1"],
        "call_successful": ["error"], "has_feedback_comment": ["true"], "include_invalid_tool_calls": ["false"],
        "text_only": ["false"], "tool_names": ["lookup", "transfer"], "tool_ids_errored": ["__system_end_call"],
        "data_collection_ids": ["email", "city"], "evaluation_criteria_ids": ["resolved"],
        "dynamic_variable_params": ["plan:eq:pro", "seats:gte:10", "coupon:eq:", "region:neq:"],
        "data_collection_filter": ["email:neq:"], "dynamic_variable_filter": ["tier:in:gold|silver"],
        "phone_number_ids": ["pn_1"], "whatsapp_phone_number_ids": ["wa_1", "wa_2"],
        "conversation_initiation_source": ["genesys_bot_connector"], "conversation_product_type": ["speech_engine"],
        "version_id": ["v_3"], "parent_conversation_id": ["conv_parent"], "workflow_node_entered_id": ["node_9"],
        "termination_reasons": ["client disconnected", "end_call tool"], "guardrail_types": ["custom", "hate"],
        "custom_guardrail_names": ["no refunds"], "call_duration_min_secs": ["30"], "rating_max": ["4"],
    }


@pytest.mark.parametrize(("condition", "wire"), [
    ("email:exists", "email:neq:"), ("email:exists:", "email:neq:"),  # the 2025-08 spec's words
    ("email:missing", "email:eq:"), ("email:missing:", "email:eq:"),
    ("email:eq:", "email:eq:"), ("email:neq:", "email:neq:"),  # the client's: not collected / collected
    ("city:eq:Paris", "city:eq:Paris"), ("note:eq:a:b", "note:eq:a:b"), ("total:gt:-1.5", "total:gt:-1.5"),
    ("total:lte:1e3", "total:lte:1e3"), ("city:in:Paris|Berlin", "city:in:Paris|Berlin"),
])
def test_data_collection_conditions_accept_both_grammars_and_send_the_clients(elevenlabs, requests_mock, condition,
                                                                              wire):
    assert sent(requests_mock, {"data_collection_params": [condition]}) == {"data_collection_params": [wire]}


DC = ("a string like 'id:op:value' (op: eq or neq with a value, or with an empty value for 'not collected' / "
      "'collected'; gt, gte, lt or lte with a number; in with values 'a|b|c'), or 'id:exists' / 'id:missing'")
DV = ("a string like 'name:op:value' (op: eq or neq with a value, or with an empty value for 'not set' / 'set'; gt, "
      "gte, lt or lte with a number; in with values 'a|b|c')")


@pytest.mark.parametrize(("filters", "message"), [
    ({"data_collection_params": "total:gt:ten"},
     f"ElevenLabs filter 'data_collection_params' got 'total:gt:ten'; allowed: {DC}, or a list of such values"),
    ({"data_collection_filter": "total:gte:"},
     f"ElevenLabs filter 'data_collection_filter' got 'total:gte:'; allowed: {DC}"),
    ({"data_collection_filter": ["a:eq:1", "b:eq:2"]},
     "ElevenLabs filter 'data_collection_filter' got ['a:eq:1', 'b:eq:2'] (a list, but this filter takes a single "
     f"value); allowed: {DC}"),
    ({"dynamic_variable_params": "plan:exists"},
     f"ElevenLabs filter 'dynamic_variable_params' got 'plan:exists'; allowed: {DV}, or a list of such values"),
    ({"call_successful": "errored"},
     "ElevenLabs filter 'call_successful' got 'errored'; allowed: one of 'success', 'failure', 'unknown', 'error'"),
    ({"conversation_product_type": "voice"},
     "ElevenLabs filter 'conversation_product_type' got 'voice'; allowed: one of 'agents', 'speech_engine'"),
    ({"guardrail_types": ["hate", "rude"]},
     "ElevenLabs filter 'guardrail_types' got 'rude'; allowed: one of 'custom', 'prompt_injection', "
     "'self_harm_intent', 'violence_graphic', 'sexual', 'violence', 'harassment', 'sexual_minors', 'self_harm', "
     "'self_harm_instructions', 'harassment_threatening', 'hate', 'hate_threatening', 'profanity', "
     "'religion_or_politics', 'medical_and_legal', 'guardrail', or a list of such values"),
    ({"conversation_initiation_source": "fax"}, "ElevenLabs filter 'conversation_initiation_source' got 'fax'; "
     "allowed: one of 'unknown', 'android_sdk', "),
    ({"has_feedback_comment": "yes"}, "ElevenLabs filter 'has_feedback_comment' got 'yes'; allowed: true or false"),
    ({"text_only": 1}, "ElevenLabs filter 'text_only' got 1; allowed: true or false"),
    ({"visited_agent_ids": [f"a{i}" for i in range(51)]},
     "ElevenLabs filter 'visited_agent_ids' got ['a0', 'a1', "),
    ({"visited_agent_ids": [f"a{i}" for i in range(51)]},
     "'a50'] (51 values); allowed: a non-empty string, or a list of such values (at most 50)"),
    ({"sort_direction": "asc"},
     "ElevenLabs filter 'sort_direction' cannot be passed in filters: the hook walks newest first and relies on "
     "that order to check its paging; it is not a filter"),
    ({"cursor": "abc"}, "ElevenLabs filter 'cursor' cannot be passed in filters: the hook pages; it is not a filter"),
    ({"page_size": 10}, "ElevenLabs filter 'page_size' cannot be passed in filters: the hook pages; pass page_size "
                        "to the hook instead"),
    ({"call_start_after_unix": 1}, "ElevenLabs filter 'call_start_after_unix' cannot be passed in filters: the hook "
                                   "sets it from the window; pass start/end instead"),
    ({"call_start_before_unix": 1}, "ElevenLabs filter 'call_start_before_unix' cannot be passed in filters: the "
                                    "hook sets it from the window; pass start/end instead"),
])
def test_bad_new_filters_are_refused_before_any_request(elevenlabs, requests_mock, filters, message):
    with pytest.raises(InvalidFilterError) as err:
        ElevenLabsHook().iter_conversations(START, END, filters=filters)
    assert message in str(err.value)  # most are the whole message; the long lists are checked at one end
    assert requests_mock.call_count == 0


def test_fifty_ids_are_fine(elevenlabs, requests_mock):
    ids = [f"a{i}" for i in range(50)]
    assert sent(requests_mock, {"visited_agent_branch_ids": ids}) == {"visited_agent_branch_ids": ids}


def test_search_is_not_deprecated(elevenlabs, requests_mock, logs):
    assert sent(requests_mock, {"search": "refund"}) == {"search": ["refund"]}
    assert TABLE.get("search").deprecated == ""  # type: ignore[union-attr]
    assert "deprecat" not in logs()
