"""Bad input, table-driven: every case fails with a message naming what is wrong and what is allowed, and sends
no request.

Each case says WHEN it fails:

- ``parse``: the operator's or sensor's ``__init__``, i.e. when the scheduler parses the DAG file;
- ``run``: ``execute()``/``poke()`` on a worker, before the first request (the task was built fine);
- ``init``: a hook's constructor; ``call``: a hook's ``iter_conversations()``, before its first request.

All HTTP goes through ``requests_mock`` with no URL registered: any request would be counted (and answered
with an error), so ``call_count == 0`` proves none was sent.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pytest

from airflow_provider_conversations.exceptions import ConfigurationError, InvalidFilterError
from airflow_provider_conversations.hooks import ConnectionNotFoundError, hook_class
from airflow_provider_conversations.operators.conversations import (
    ConversationsOperator,
    ConversationsToObjectStorageOperator,
)
from airflow_provider_conversations.output.storage import DestinationError
from airflow_provider_conversations.sensors.conversations import ConversationsSensor

H0 = datetime(2026, 11, 17, tzinfo=UTC)
H1 = H0 + timedelta(hours=1)
NAIVE = datetime(2026, 11, 17)
#: Airflow's secrets masker is process-wide: these keys share nothing with test_secrets.py's, so the keys
#: registered here cannot mask (and so change) what that test reads.
TOKEN = "BADINPUT-KEY-fedcba9876543210"
#: Well-formed connections per vendor (hosts nobody answers: requests_mock answers nothing).
CONNECTIONS: dict[str, dict[str, Any]] = {
    "polyai": {"conn_type": "polyai", "host": "https://polyai.test", "password": TOKEN,
               "extra": {"account_id": "acc", "project_id": "proj"}},
    "elevenlabs": {"conn_type": "elevenlabs", "host": "https://elevenlabs.test", "password": TOKEN},
    "anyreach": {"conn_type": "anyreach", "host": "https://anyreach.test", "password": f"ak_{TOKEN}"},
    "replyful": {"conn_type": "replyful", "host": "https://replyful.test", "password": "rfl_test_BADINPUT9876543210"},
    "parrotmob": {"conn_type": "parrotmob", "host": "https://parrotmob.test", "password": TOKEN},
}
MISSING = object()  # a connection that is not defined at all
FIVE = "parrotmob, anyreach, polyai, elevenlabs, replyful"
POLY_FILTERS = "channel, in_progress, include_context_state, include_latency, variant_id, variant_name"
ANYREACH_FILTERS = (
    "agent_id, agent_number, agent_version_id, channel, custom_metadata, direction, duration_above, duration_below, "
    "fields, status, user_id, user_turn_count_above, user_turn_count_below, web_widget_id"
)
ELEVEN_FILTERS = (
    "agent_id, branch_id, call_duration_max_secs, call_duration_min_secs, call_successful, "
    "conversation_initiation_source, conversation_product_type, custom_guardrail_names, "
    "data_collection_filter, data_collection_ids, data_collection_params, dynamic_variable_filter, "
    "dynamic_variable_params, evaluation_criteria_ids, evaluation_params, exclude_statuses, "
    "guardrail_types, has_feedback_comment, include_invalid_tool_calls, main_languages, "
    "parent_conversation_id, phone_number_ids, rating_max, rating_min, search, summary_mode, tag_ids, "
    "termination_reasons, text_only, tool_ids, tool_ids_errored, tool_ids_successful, tool_names, "
    "tool_names_errored, tool_names_successful, topic_ids, triggered_procedure_ids, user_id, version_id, "
    "visited_agent_branch_ids, visited_agent_ids, whatsapp_phone_number_ids, workflow_node_entered_id"
)
REPLYFUL_FILTERS = "assignedToUserId, channelId, q, status, supportLevel, tagId, topicId"
#: How every unknown-filter message ends: where a parameter newer than the provider goes.
TO_EXTRA = ". To send a query parameter this provider does not know yet, pass it in extra_params"
REPLYFUL_STATUSES = (
    "one of 'waiting_for_user', 'needs_first_response', 'needs_follow_up', 'scheduled_ai_response', "
    "'assumed_resolved', 'resolved', 'spam', 'paused', 'investigating', 'archived', or a list of such values"
)
ANYREACH_FIELDS = (
    "id, organization_id, direction, channel, status, user_id, agent_id, agent_version_id, agent_number, "
    "web_widget_id, duration, user_turn_count, created_at, updated_at, agent, summary, initial_context, "
    "custom_metadata, conversation, recording_details"
)
NAIVE_MSG = (
    "is a naive datetime; pass a timezone-aware one, e.g. pendulum.datetime(2026, 11, 20, tz='UTC') or "
    "datetime(..., tzinfo=timezone.utc)"
)
EMPTY_WINDOW = (
    "start (2026-11-17T01:00:00+00:00) must be earlier than end (2026-11-17T00:00:00+00:00): windows are half-open "
    "[start, end) and must not be empty"
)
HOST_MSG = (
    "expected a base URL such as https://api.example.com or http://127.0.0.1:8931, or a bare host name with Schema "
    "and Port"
)
SEGMENT = "expected an id, not '.' or '..' (a dot-segment would change which endpoint the request goes to)"
KEY_WHITESPACE = (
    "has an API key with leading or trailing whitespace or a control character such as a line break (the key is not "
    "shown here): paste the key alone into the Password field"
)
X = "ConversationsOperator 't': "
E = "ConversationsToObjectStorageOperator 't': "
S = "ConversationsSensor 't': "
LAYOUT = "vendor=polyai/conn_id=bad_polyai/time_key=created/start=2026-11-17T00:00:00Z/end=2026-11-17T01:00:00Z"

Target = Literal["hook", "xcom", "export", "sensor"]
When = Literal["parse", "run", "init", "call"]


@dataclass(frozen=True)
class Case:
    id: str
    target: Target
    vendor: str
    when: When
    exc: type[Exception]
    #: The exact message; ``{tmp}`` stands for the test's tmp_path. A ``re:`` prefix makes it a full-match regex.
    message: str
    #: Operator/sensor arguments, or ``iter_conversations`` arguments for hooks (``start``/``end`` default H0/H1).
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: Hook constructor arguments (target ``hook``).
    hook: dict[str, Any] = field(default_factory=dict)
    #: Changes to the vendor's good connection (``None`` deletes a key; ``extra`` replaces the extras);
    #: ``MISSING``: no connection at all.
    conn: Any = None
    #: Prepares tmp_path (destinations).
    setup: Callable[[Path], None] | None = None


def _file(path: str) -> Callable[[Path], None]:
    def make(tmp: Path) -> None:
        (tmp / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp / path).write_text("not a directory")
    return make


def _dir(path: str) -> Callable[[Path], None]:
    return lambda tmp: (tmp / path).mkdir(parents=True)


CASES: list[Case] = [
    # ------------------------------------------------------------------ PolyAI hook
    Case("unknown-filter", "hook", "polyai", "call", InvalidFilterError,
         f"unknown PolyAI filter 'agent_id'; allowed filters: {POLY_FILTERS}{TO_EXTRA}",
         {"filters": {"agent_id": "a1"}}),
    Case("wrong-type-bool", "hook", "polyai", "call", InvalidFilterError,
         "PolyAI filter 'in_progress' got 'maybe'; allowed: true or false", {"filters": {"in_progress": "maybe"}}),
    Case("mutually-exclusive", "hook", "polyai", "call", InvalidFilterError,
         "PolyAI filters 'variant_id' and 'variant_name' are mutually exclusive; pass only one of them",
         {"filters": {"variant_id": "v1", "variant_name": "spring"}}),
    Case("reserved-paging-param", "hook", "polyai", "call", InvalidFilterError,
         "PolyAI filter 'cursor' cannot be passed in filters: the hook pages; it is not a filter",
         {"filters": {"cursor": "abc"}}),
    Case("v3-filter-on-v1-connection", "hook", "polyai", "call", InvalidFilterError,
         "PolyAI filter 'channel' needs api_version v3, but connection 'bad_polyai' uses v1",
         {"filters": {"channel": ["voice"]}}, conn={"extra": {"account_id": "acc", "project_id": "proj",
                                                              "api_version": "v1"}}),
    Case("missing-account-and-project", "hook", "polyai", "call", ConfigurationError,
         "PolyAI connection 'bad_polyai' is missing account_id and project_id: set them in the connection form (they "
         "are the path of the conversations endpoint)", conn={"extra": {}}),
    Case("missing-project", "hook", "polyai", "call", ConfigurationError,
         "PolyAI connection 'bad_polyai' is missing project_id: set them in the connection form (they are the path "
         "of the conversations endpoint)", conn={"extra": {"account_id": "acc"}}),
    Case("project-id-dot-segment", "hook", "polyai", "call", ConfigurationError,
         f"PolyAI connection 'bad_polyai' has project_id='..'; {SEGMENT}",
         conn={"extra": {"account_id": "acc", "project_id": ".."}}),
    Case("bad-region", "hook", "polyai", "call", ConfigurationError,
         "PolyAI connection 'bad_polyai' has region='eu-1'; allowed: us-1, uk-1, euw-1",
         conn={"extra": {"account_id": "acc", "project_id": "proj", "region": "eu-1"}}),
    Case("bad-api-version", "hook", "polyai", "call", ConfigurationError,
         "PolyAI connection 'bad_polyai' has api_version='v2'; allowed: v3, v1",
         conn={"extra": {"account_id": "acc", "project_id": "proj", "api_version": "v2"}}),
    Case("bad-client-env", "hook", "polyai", "call", ConfigurationError,
         "PolyAI connection 'bad_polyai' has client_env='prod'; allowed: sandbox, pre-release, live",
         conn={"extra": {"account_id": "acc", "project_id": "proj", "client_env": "prod"}}),
    Case("page-size-above-v3-limit", "hook", "polyai", "call", ConfigurationError,
         "page_size=5000 is larger than PolyAI allows for connection 'bad_polyai' (at most 1000)",
         hook={"page_size": 5000}),
    Case("unsupported-time-key", "hook", "polyai", "call", ConfigurationError,
         "time_key='updated' is not supported by PolyAI; allowed: 'created' (PolyAI conversations have no update "
         "time)", {"time_key": "updated"}),
    Case("naive-start", "hook", "polyai", "call", ConfigurationError, f"start=2026-11-17T00:00:00 {NAIVE_MSG}",
         {"start": NAIVE}),
    Case("missing-connection", "hook", "polyai", "call", ConnectionNotFoundError,
         "connection 'bad_polyai' is not defined: create it (Admin > Connections, an AIRFLOW_CONN_BAD_POLYAI "
         f"environment variable or a secrets backend) with one of the types {FIVE}", conn=MISSING),
    Case("extra-not-json", "hook", "polyai", "call", ConfigurationError,
         "connection 'bad_polyai' has an Extra that is not valid JSON; expected a JSON object such as "
         '{"account_id": "..."}', conn={"extra": '{"account_id": "acc", '}),
    Case("connection-of-another-vendor", "hook", "polyai", "call", ConfigurationError,
         "connection 'bad_polyai' has type 'replyful', but PolyAIHook needs a 'polyai' connection",
         conn={"conn_type": "replyful"}),
    # ------------------------------------------------------------------ ElevenLabs hook
    Case("naive-end", "hook", "elevenlabs", "call", ConfigurationError, f"end=2026-11-17T01:00:00 {NAIVE_MSG}",
         {"end": H1.replace(tzinfo=None)}),
    Case("start-of-wrong-type", "hook", "elevenlabs", "call", ConfigurationError,
         "start must be a timezone-aware datetime (pendulum or datetime), got int 20261117", {"start": 20261117}),
    Case("no-api-key", "hook", "elevenlabs", "call", ConfigurationError,
         "connection 'bad_elevenlabs' has no API key: put the ElevenLabs API key in its Password field",
         conn={"password": None}),
    Case("host-with-unsupported-scheme", "hook", "elevenlabs", "call", ConfigurationError,
         f"connection 'bad_elevenlabs' has a malformed host 'ftp://files.example': {HOST_MSG}",
         conn={"host": "ftp://files.example"}),
    Case("bad-region", "hook", "elevenlabs", "call", ConfigurationError,
         "ElevenLabs connection 'bad_elevenlabs' has region='eu'; allowed: global, us, eu-residency, in-residency, "
         "sg-residency", conn={"host": None, "extra": {"region": "eu"}}),
    Case("out-of-range", "hook", "elevenlabs", "call", InvalidFilterError,
         "ElevenLabs filter 'rating_min' got 6 (out of range); allowed: an integer >= 1 and <= 5",
         {"filters": {"rating_min": 6}}),
    Case("empty-range", "hook", "elevenlabs", "call", InvalidFilterError,
         "ElevenLabs filter 'rating_min'=4 is greater than 'rating_max'=2; the range would be empty",
         {"filters": {"rating_min": 4, "rating_max": "2"}}),
    Case("bad-enum", "hook", "elevenlabs", "call", InvalidFilterError,
         "ElevenLabs filter 'call_successful' got 'yes'; allowed: one of 'success', 'failure', 'unknown', 'error'",
         {"filters": {"call_successful": "yes"}}),
    Case("bad-pattern", "hook", "elevenlabs", "call", InvalidFilterError,
         "ElevenLabs filter 'evaluation_params' got 'accuracy=success'; allowed: a string like 'criteria_id:result' "
         "with result success, failure or unknown, or a list of such values",
         {"filters": {"evaluation_params": ["accuracy=success"]}}),
    Case("bad-data-collection-op", "hook", "elevenlabs", "call", InvalidFilterError,
         "ElevenLabs filter 'data_collection_params' got 'age:between:18'; allowed: a string like 'id:op:value' (op: "
         "eq or neq with a value, or with an empty value for 'not collected' / 'collected'; gt, gte, lt or lte with "
         "a number; in with values 'a|b|c'), or 'id:exists' / 'id:missing', or a list of such values",
         {"filters": {"data_collection_params": "age:between:18"}}),
    Case("bad-enum-in-list", "hook", "elevenlabs", "call", InvalidFilterError,
         "ElevenLabs filter 'exclude_statuses' got 'archived'; allowed: one of 'initiated', 'in-progress', "
         "'processing', 'done', 'failed', or a list of such values",
         {"filters": {"exclude_statuses": ["done", "archived"]}}),
    Case("list-for-single-value", "hook", "elevenlabs", "call", InvalidFilterError,
         "ElevenLabs filter 'agent_id' got ['a1', 'a2'] (a list, but this filter takes a single value); allowed: a "
         "non-empty string", {"filters": {"agent_id": ["a1", "a2"]}}),
    Case("page-size-too-large", "hook", "elevenlabs", "init", ConfigurationError,
         "page_size=101 is not allowed for ElevenLabs: expected an integer from 1 to 100", hook={"page_size": 101}),
    Case("max-parallel-zero", "hook", "elevenlabs", "call", ConfigurationError,
         "max_parallel=0 is not allowed: expected an integer from 1 to 64", {"max_parallel": 0}),
    # ------------------------------------------------------------------ Anyreach hook
    Case("pat-token-without-org", "hook", "anyreach", "call", ConfigurationError,
         "Anyreach connection 'bad_anyreach' uses a personal access token (pat_...) but has no org_id: set "
         "Organisation ID in the connection form (it is sent as X-Anyreach-Org), or use an organisation API key "
         "(ak_...)", conn={"password": f"pat_{TOKEN}"}),
    Case("start-equals-end", "hook", "anyreach", "call", ConfigurationError,
         "start (2026-11-17T00:00:00+00:00) must be earlier than end (2026-11-17T00:00:00+00:00): windows are "
         "half-open [start, end) and must not be empty", {"end": H0}),
    Case("port-not-a-number", "hook", "anyreach", "call", ConfigurationError,
         f"connection 'bad_anyreach' has a malformed host 'http://anyreach.test:port': {HOST_MSG}",
         conn={"host": "http://anyreach.test:port"}),
    Case("json-filter-not-json", "hook", "anyreach", "call", InvalidFilterError,
         "Anyreach filter 'custom_metadata' got '{\"team\": ' (not valid JSON); allowed: a JSON object (a dict, or "
         "a string holding one)", {"filters": {"custom_metadata": '{"team": '}}),
    Case("unknown-projection-field", "hook", "anyreach", "call", InvalidFilterError,
         f"Anyreach filter 'fields' got 'id,transcript'; allowed: a string of comma-separated field names from: "
         f"{ANYREACH_FIELDS}", {"filters": {"fields": "id,transcript"}}),
    Case("negative-duration", "hook", "anyreach", "call", InvalidFilterError,
         "Anyreach filter 'duration_above' got -1 (out of range); allowed: an integer >= 0",
         {"filters": {"duration_above": -1}}),
    Case("window-bound-as-filter", "hook", "anyreach", "call", InvalidFilterError,
         "Anyreach filter 'created_after' cannot be passed in filters: the hook sets it from the window; pass "
         "start/end (and time_key) instead", {"filters": {"created_after": "2026-11-17T00:00:00Z"}}),
    Case("bad-enum", "hook", "anyreach", "call", InvalidFilterError,
         "Anyreach filter 'direction' got 'sideways'; allowed: one of 'inbound', 'outbound'",
         {"filters": {"direction": "sideways"}}),
    Case("empty-turn-range", "hook", "anyreach", "call", InvalidFilterError,
         "Anyreach filter 'user_turn_count_above'=5 is greater than 'user_turn_count_below'=2; the range would be "
         "empty", {"filters": {"user_turn_count_above": 5, "user_turn_count_below": 2}}),
    # ------------------------------------------------------------------ Replyful hook
    Case("key-of-another-vendor", "hook", "replyful", "call", ConfigurationError,
         "connection 'bad_replyful' has a Password that is not a Replyful API key (not shown here): Replyful keys "
         "start with rfl_live_ (live data) or rfl_test_ (test mode) and contain no spaces; paste the key alone, "
         "without 'Bearer '", conn={"password": TOKEN}),
    Case("key-with-bearer-prefix", "hook", "replyful", "call", ConfigurationError,
         "connection 'bad_replyful' has a Password that is not a Replyful API key (not shown here): Replyful keys "
         "start with rfl_live_ (live data) or rfl_test_ (test mode) and contain no spaces; paste the key alone, "
         "without 'Bearer '", conn={"password": "Bearer rfl_test_BADINPUT9876543210"}),
    Case("start-after-end", "hook", "replyful", "call", ConfigurationError, EMPTY_WINDOW, {"start": H1, "end": H0}),
    Case("host-with-space", "hook", "replyful", "call", ConfigurationError,
         f"connection 'bad_replyful' has a malformed host 'https://reply ful.test': {HOST_MSG}",
         conn={"host": "https://reply ful.test"}),
    Case("bad-enum-in-list", "hook", "replyful", "call", InvalidFilterError,
         f"Replyful filter 'status' got 'open'; allowed: {REPLYFUL_STATUSES}", {"filters": {"status": ["open"]}}),
    Case("empty-list", "hook", "replyful", "call", InvalidFilterError,
         f"Replyful filter 'status' got [] (an empty list); allowed: {REPLYFUL_STATUSES}",
         {"filters": {"status": []}}),
    Case("sort-is-the-hooks", "hook", "replyful", "call", InvalidFilterError,
         "Replyful filter 'sort' cannot be passed in filters: the hook sorts ascending on the time key so that paging "
         "is exact; pass time_key instead", {"filters": {"sort": "createdAt"}}),
    Case("bad-enum", "hook", "replyful", "call", InvalidFilterError,
         "Replyful filter 'supportLevel' got 'bot'; allowed: one of 'ai', 'human'",
         {"filters": {"supportLevel": "bot"}}),
    Case("page-size-zero", "hook", "replyful", "init", ConfigurationError,
         "page_size=0 is not allowed for Replyful: expected an integer from 1 to 100", hook={"page_size": 0}),
    Case("filters-not-a-dict", "hook", "replyful", "call", InvalidFilterError,
         "filters must be a dict of Replyful filter names to values, got str 'status=open'",
         {"filters": "status=open"}),
    # ------------------------------------------------------------------ ParrotMob hook
    Case("no-host", "hook", "parrotmob", "call", ConfigurationError,
         "connection 'bad_parrotmob' has no host, and ParrotMob has no public default base URL: set Host to the API "
         "base URL, e.g. https://api.example.com", conn={"host": None}),
    Case("parallel-without-server-bounds", "hook", "parrotmob", "call", ConfigurationError,
         "max_parallel=2 needs server-side time bounds, which ParrotMob does not have (sub-windows would each walk "
         "the same list); use max_parallel=1", {"max_parallel": 2}),
    Case("alias-and-canonical-filter", "hook", "parrotmob", "call", InvalidFilterError,
         "ParrotMob filter 'needs_support' is a deprecated alias of 'support_required'; pass only one of them",
         {"filters": {"support_required": True, "needs_support": False}}),
    Case("bad-enum", "hook", "parrotmob", "call", InvalidFilterError,
         "ParrotMob filter 'status' got 'done'; allowed: one of 'scheduled', 'ready', 'running', 'completed', "
         "'expired', 'cancelled', 'any_terminal'", {"filters": {"status": "done"}}),
    Case("limit-is-the-hooks", "hook", "parrotmob", "call", InvalidFilterError,
         "ParrotMob filter 'limit' cannot be passed in filters: the hook pages; pass page_size to the hook instead "
         "(0 would mean 'everything at once')", {"filters": {"limit": 0}}),
    Case("account-id-dot-segment", "hook", "parrotmob", "call", ConfigurationError,
         f"ParrotMob connection 'bad_parrotmob' has account_id='..'; {SEGMENT}", conn={"extra": {"account_id": ".."}}),
    Case("not-iso-8601", "hook", "parrotmob", "call", ConfigurationError,
         "start='yesterday' is not an ISO 8601 timestamp; expected e.g. '2026-11-20T00:00:00+00:00'",
         {"start": "yesterday"}),
    Case("unknown-time-key", "hook", "parrotmob", "call", ConfigurationError,
         "time_key='modified' is not supported by ParrotMob; allowed: 'created', 'updated'", {"time_key": "modified"}),
    # ------------------------------------------------------------------ operators, DAG parse time
    Case("unknown-filter", "xcom", "anyreach", "parse", InvalidFilterError,
         f"{X}unknown Anyreach filter 'agent'; allowed filters: {ANYREACH_FILTERS}{TO_EXTRA}",
         {"vendor": "anyreach", "filters": {"agent": "a1"}}),
    Case("unsupported-time-key", "xcom", "elevenlabs", "parse", ConfigurationError,
         f"{X}time_key='updated' is not supported by ElevenLabs; allowed: 'created'",
         {"vendor": "elevenlabs", "time_key": "updated"}),
    Case("naive-start", "xcom", "polyai", "parse", ConfigurationError, f"{X}start=2026-11-17T00:00:00 {NAIVE_MSG}",
         {"start": NAIVE, "end": H1}),
    Case("start-after-end", "xcom", "polyai", "parse", ConfigurationError, X + EMPTY_WINDOW,
         {"start": H1, "end": H0}),
    Case("start-without-end", "export", "polyai", "parse", ConfigurationError,
         f"{E}start and end go together; end is missing", {"start": H0}),
    Case("bad-output-format", "xcom", "polyai", "parse", ConfigurationError,
         f"{X}output_format='json' is not valid; allowed: 'raw', 'normalized'", {"output_format": "json"}),
    Case("bad-max-conversations", "xcom", "polyai", "parse", ConfigurationError,
         f"{X}max_conversations=0 is not valid; expected a positive integer", {"max_conversations": 0}),
    Case("exclude-fields-not-a-list", "xcom", "polyai", "parse", ConfigurationError,
         f"{X}exclude_fields='turns' is not valid: expected a list of dotted field paths, e.g. ['transcript', "
         "'contact.email']", {"exclude_fields": "turns"}),
    Case("exclude-fields-bad-path", "export", "polyai", "parse", ConfigurationError,
         f"{E}exclude_fields entry 'metrics..latency' is not valid: expected a dotted field path such as "
         "'contact.email' (non-empty names separated by single dots, no surrounding spaces)",
         {"exclude_fields": ["turns", "metrics..latency"]}),
    Case("max-parallel-too-large", "xcom", "polyai", "parse", ConfigurationError,
         f"{X}max_parallel=65 is not valid; expected an integer from 1 to 64", {"max_parallel": 65}),
    Case("parallel-without-server-bounds", "export", "parrotmob", "parse", ConfigurationError,
         f"{E}max_parallel=4 needs server-side time bounds, which ParrotMob does not have; use max_parallel=1",
         {"vendor": "parrotmob", "max_parallel": 4}),
    Case("finished-only-contradicts-filter", "xcom", "polyai", "parse", InvalidFilterError,
         f"{X}finished_only=True contradicts PolyAI filter in_progress=True; drop one of them",
         {"vendor": "polyai", "finished_only": True, "filters": {"in_progress": True}}),
    Case("finished-only-contradicts-filter", "export", "replyful", "parse", InvalidFilterError,
         f"{E}finished_only=True contradicts Replyful filter status=['waiting_for_user']: none of those statuses is "
         "finished (finished: assumed_resolved, resolved, spam, archived)",
         {"vendor": "replyful", "finished_only": True, "filters": {"status": "waiting_for_user"}}),
    Case("bad-compression", "export", "polyai", "parse", ConfigurationError,
         f"{E}compression='zip' is not valid; allowed: 'gzip' or None", {"compression": "zip"}),
    Case("destination-scheme-without-filesystem", "export", "polyai", "parse", ConfigurationError,
         f"{E}destination='foo://bucket/conversations/' is not valid (Unsupported filesystem: 'foo'); expected a URL "
         "whose scheme has a filesystem, e.g. 'file:///data/conversations/', 's3://bucket/conversations/' (with "
         "apache-airflow-providers-amazon) or 'memory://conversations/'",
         {"destination": "foo://bucket/conversations/"}),
    Case("bad-hook-param", "export", "polyai", "parse", ConfigurationError,
         f"{E}hook_params timeout=0 is not valid; expected seconds > 0, or a (connect, read) pair of them",
         {"hook_params": {"timeout": 0}}),
    Case("unknown-vendor", "export", "polyai", "parse", ConfigurationError,
         f"{E}vendor='zendesk' is not valid; allowed: 'parrotmob', 'anyreach', 'polyai', 'elevenlabs', 'replyful' "
         "(the connection type)", {"vendor": "zendesk"}),
    Case("page-size-too-large", "export", "anyreach", "parse", ConfigurationError,
         f"{E}page_size=1001 is not allowed for Anyreach: expected an integer from 1 to 1000",
         {"vendor": "anyreach", "page_size": 1001}),
    # ------------------------------------------------------------------ operators, run time (before any request)
    Case("missing-connection", "xcom", "polyai", "run", ConnectionNotFoundError,
         "connection 'bad_polyai' is not defined: create it (Admin > Connections, an AIRFLOW_CONN_BAD_POLYAI "
         f"environment variable or a secrets backend) with one of the types {FIVE}", conn=MISSING),
    Case("connection-not-a-vendor", "xcom", "polyai", "run", ConfigurationError,
         f"connection 'bad_polyai' has type 'http', which is not a conversations vendor; allowed types: {FIVE}",
         conn={"conn_type": "http"}),
    Case("connection-of-another-vendor", "export", "polyai", "run", ConfigurationError,
         f"{E}connection 'bad_polyai' has type 'polyai', but vendor='replyful'; use a replyful connection or change "
         "vendor", {"vendor": "replyful"}),
    Case("unknown-filter-without-vendor", "xcom", "elevenlabs", "run", InvalidFilterError,
         f"unknown ElevenLabs filter 'agent'; allowed filters: {ELEVEN_FILTERS}{TO_EXTRA}",
         {"filters": {"agent": "a1"}}),
    Case("parallel-without-server-bounds", "xcom", "parrotmob", "run", ConfigurationError,
         "max_parallel=3 needs server-side time bounds, which ParrotMob does not have (sub-windows would each walk "
         "the same list); use max_parallel=1", {"max_parallel": 3}),
    Case("page-size-above-connection-limit", "xcom", "polyai", "run", ConfigurationError,
         "page_size=2000 is larger than PolyAI allows for connection 'bad_polyai' (at most 1000)",
         {"page_size": 2000}),
    Case("api-key-with-line-break", "xcom", "polyai", "run", ConfigurationError,
         f"connection 'bad_polyai' {KEY_WHITESPACE}", conn={"password": TOKEN + "\n"}),
    Case("api-key-with-leading-space", "export", "elevenlabs", "run", ConfigurationError,
         f"connection 'bad_elevenlabs' {KEY_WHITESPACE}", conn={"password": " " + TOKEN}),
    Case("destination-parent-is-a-file", "export", "polyai", "run", DestinationError,
         f"{E}destination file://{{tmp}}/afile/lake/{LAYOUT}/conversations.jsonl.gz is not writable: {{tmp}}/afile "
         "is a regular file, not a directory", {"destination": "file://{tmp}/afile/lake/"}, setup=_file("afile")),
    Case("object-path-under-a-file", "export", "polyai", "run", DestinationError,
         f"{E}destination file://{{tmp}}/afile/out.jsonl.gz is not writable: {{tmp}}/afile is a regular file, not a "
         "directory", {"destination": "file://{tmp}/afile/out.jsonl.gz"}, setup=_file("afile")),
    Case("object-name-is-a-directory", "export", "polyai", "run", DestinationError,
         f"{E}destination file://{{tmp}}/lake/{LAYOUT}/conversations.jsonl is not writable: {{tmp}}/lake/{LAYOUT}/"
         "conversations.jsonl is a directory, not a file", {"destination": "file://{tmp}/lake/", "compression": None},
         setup=_dir(f"lake/{LAYOUT}/conversations.jsonl")),
    Case("destination-on-a-read-only-file-system", "export", "polyai", "run", DestinationError,
         rf"re:{re.escape(E)}destination file:///sys/conversations/{LAYOUT}/conversations\.jsonl\.gz is not "
         r"writable: no permission to create or write /sys/conversations \((Operation not permitted|Permission "
         r"denied)\)", {"destination": "file:///sys/conversations/"}),
    # ------------------------------------------------------------------ sensor, DAG parse time
    Case("negative-min-count", "sensor", "polyai", "parse", ConfigurationError,
         f"{S}min_count=-1 is not allowed: expected an integer >= 0 (the number of conversations the window must "
         "hold)", {"min_count": -1}),
    Case("min-count-as-string", "sensor", "polyai", "parse", ConfigurationError,
         f"{S}min_count='3' is not allowed: expected an integer >= 0 (the number of conversations the window must "
         "hold)", {"min_count": "3"}),
    Case("settled-not-bool", "sensor", "polyai", "parse", ConfigurationError,
         f"{S}settled='yes' is not allowed: expected True or False", {"settled": "yes"}),
    Case("hook-param-wrong-type", "sensor", "polyai", "parse", ConfigurationError,
         f"{S}hook_params backoff='1s' is not allowed: expected a number of seconds >= 0",
         {"hook_params": {"backoff": "1s"}}),
    Case("hook-param-out-of-range", "sensor", "polyai", "parse", ConfigurationError,
         f"{S}hook_params timeout=-1 is not allowed: expected seconds > 0, or a (connect, read) pair of them",
         {"hook_params": {"timeout": -1}}),
    Case("max-attempts-zero", "sensor", "polyai", "parse", ConfigurationError,
         f"{S}hook_params max_attempts=0 is not allowed: expected an integer >= 1",
         {"hook_params": {"max_attempts": 0}}),
    Case("mutually-exclusive", "sensor", "polyai", "parse", InvalidFilterError,
         f"{S}PolyAI filters 'variant_id' and 'variant_name' are mutually exclusive; pass only one of them",
         {"vendor": "polyai", "filters": {"variant_id": "v1", "variant_name": "spring"}}),
    Case("unsupported-time-key", "sensor", "elevenlabs", "parse", ConfigurationError,
         f"{S}time_key='updated' is not supported by ElevenLabs; allowed: 'created'",
         {"vendor": "elevenlabs", "time_key": "updated"}),
    Case("page-size-too-large", "sensor", "replyful", "parse", ConfigurationError,
         f"{S}page_size=101 is not allowed for Replyful: expected an integer from 1 to 100",
         {"vendor": "replyful", "page_size": 101}),
    Case("naive-start", "sensor", "polyai", "parse", ConfigurationError, f"{S}start=2026-11-17T00:00:00 {NAIVE_MSG}",
         {"start": NAIVE, "end": H1}),
    # ------------------------------------------------------------------ sensor, run time (before any request)
    Case("missing-connection", "sensor", "polyai", "run", ConnectionNotFoundError,
         "connection 'bad_polyai' is not defined: create it (Admin > Connections, an AIRFLOW_CONN_BAD_POLYAI "
         f"environment variable or a secrets backend) with one of the types {FIVE}", conn=MISSING),
    Case("connection-of-another-vendor", "sensor", "polyai", "run", ConfigurationError,
         "connection 'bad_polyai' has type 'polyai', but the task was declared with vendor='anyreach'; point conn_id "
         "at a connection of that type or change vendor", {"vendor": "anyreach"}),
    Case("unknown-filter-without-vendor", "sensor", "replyful", "run", InvalidFilterError,
         f"unknown Replyful filter 'state'; allowed filters: {REPLYFUL_FILTERS}{TO_EXTRA}",
         {"filters": {"state": "open"}}),
    Case("api-key-with-line-break", "sensor", "anyreach", "run", ConfigurationError,
         f"connection 'bad_anyreach' {KEY_WHITESPACE}", conn={"password": f"ak_{TOKEN}\r\n"}),
    Case("deferrable-bad-filter-fails-on-the-worker", "sensor", "polyai", "run", InvalidFilterError,
         "PolyAI filter 'in_progress' got 'sometimes'; allowed: true or false",
         {"deferrable": True, "filters": {"in_progress": "sometimes"}}),
]


def _subst(value: Any, tmp: Path) -> Any:
    return value.replace("{tmp}", str(tmp)) if isinstance(value, str) else value


def _connection(case: Case) -> dict[str, Any]:
    conn = dict(CONNECTIONS[case.vendor])
    for key, value in (case.conn or {}).items():
        if value is None:
            conn.pop(key, None)
        else:
            conn[key] = value
    return conn


def _action(case: Case, conn_id: str, tmp: Path) -> Callable[[], Any]:
    """What raises: for parse-time cases the constructor itself; otherwise the call on a task built fine."""
    kwargs = {k: _subst(v, tmp) for k, v in case.kwargs.items()}
    if case.target == "hook":
        cls = hook_class(case.vendor)
        start, end = kwargs.pop("start", H0), kwargs.pop("end", H1)
        if case.when == "init":
            return lambda: cls(conn_id, **case.hook)
        hook = cls(conn_id, max_attempts=1, **case.hook)
        return lambda: list(hook.iter_conversations(start, end, **kwargs))
    kwargs.setdefault("hook_params", {"max_attempts": 1})
    build: Callable[[], Any]
    if case.target == "xcom":
        build = lambda: ConversationsOperator(task_id="t", conn_id=conn_id, **kwargs)  # noqa: E731
    elif case.target == "export":
        kwargs.setdefault("destination", f"file://{tmp}/lake/")
        build = lambda: ConversationsToObjectStorageOperator(task_id="t", conn_id=conn_id, **kwargs)  # noqa: E731
    else:
        build = lambda: ConversationsSensor(task_id="t", conn_id=conn_id, **kwargs)  # noqa: E731
    if case.when == "parse":
        return build
    task = build()  # a run-time case: the DAG parses
    context = {"data_interval_start": H0, "data_interval_end": H1}
    return (lambda: task.poke(context)) if case.target == "sensor" and not task.deferrable \
        else (lambda: task.execute(context))


def test_case_table_covers_every_vendor_both_operators_and_the_sensor():
    assert len(CASES) >= 40
    assert {c.vendor for c in CASES if c.target == "hook"} == set(CONNECTIONS)
    assert {c.target for c in CASES} == {"hook", "xcom", "export", "sensor"}
    assert {c.when for c in CASES if c.target != "hook"} == {"parse", "run"}
    ids = [f"{c.target}-{c.vendor}-{c.when}-{c.id}" for c in CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("case", CASES, ids=[f"{c.target}-{c.vendor}-{c.when}-{c.id}" for c in CASES])
def test_bad_input_fails_clearly_before_any_request(case, set_connection, requests_mock, tmp_path, monkeypatch):
    conn_id = f"bad_{case.vendor}"
    monkeypatch.delenv(f"AIRFLOW_CONN_{conn_id.upper()}", raising=False)
    if case.conn is not MISSING:
        set_connection(conn_id, _connection(case))
    if case.setup is not None:
        case.setup(tmp_path)
    action = _action(case, conn_id, tmp_path)
    with pytest.raises(case.exc) as err:
        action()
    assert type(err.value) is case.exc
    got = str(err.value)
    if case.message.startswith("re:"):
        assert re.fullmatch(case.message[3:], got), got
    else:
        assert got == _subst(case.message, tmp_path)
    assert requests_mock.call_count == 0
    assert "BADINPUT" not in got  # no case's message shows the connection's key


def test_a_timeout_pair_given_as_a_list_reaches_requests_as_a_tuple(set_connection, requests_mock):
    """JSON (and many DAG authors) write the (connect, read) pair as a list; requests only accepts a tuple."""
    set_connection("bad_polyai", CONNECTIONS["polyai"])
    requests_mock.get("https://polyai.test/v3/acc/proj/conversations", json={"conversations": [], "cursor": None})
    op = ConversationsOperator(task_id="t", conn_id="bad_polyai", hook_params={"timeout": [5, 30]})
    assert op.execute({"data_interval_start": H0, "data_interval_end": H1}) == []
    assert requests_mock.call_count == 1
    assert requests_mock.request_history[0].timeout == (5, 30)


def test_ids_from_the_connection_stay_inside_their_path_segment(set_connection, requests_mock):
    """``acc/../other`` is percent-encoded, so the key is only ever sent to the conversations endpoint."""
    set_connection("bad_polyai", {**CONNECTIONS["polyai"], "extra": {"account_id": "acc/../other",
                                                                    "project_id": "p q"}})
    url = "https://polyai.test/v3/acc%2F..%2Fother/p%20q/conversations"
    requests_mock.get(url, json={"conversations": [], "cursor": None})
    assert list(hook_class("polyai")("bad_polyai").iter_conversations(H0, H1)) == []
    assert requests_mock.request_history[0].url.startswith(url + "?")
