"""ElevenLabs simulator: ``GET /v1/convai/conversations`` with ``xi-api-key`` auth, newest first, cursor paging."""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar

import orjson

from airflow_provider_conversations.testing import cursors, transcripts
from airflow_provider_conversations.testing.dataset import EPOCH, Conversation
from airflow_provider_conversations.testing.server import SimRequest, SimResponse, VendorSimulator
from airflow_provider_conversations.testing.store import SortedStore, compact_json

PATH = "/v1/convai/conversations"
DETAIL_PATH = re.compile(r"^/v1/convai/conversations/([^/]+)/?$")
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 30
IN_PROGRESS = ("initiated", "in-progress", "processing")
FINISHED = ("done", "failed")
STATUSES = (*IN_PROGRESS, *FINISHED)
RESULTS = ("success", "failure", "unknown")
#: ``call_successful`` as a filter also takes ``error`` (the client's ``EvaluationResultFilter``): here the
#: conversations whose call failed (status ``failed``).
RESULT_FILTERS = (*RESULTS, "error")
#: The client's ``ConversationInitiationSource`` (2.78.0), of which generated conversations use the first six.
SOURCES = ("twilio", "sip_trunk", "widget", "js_sdk", "whatsapp", "unknown", "android_sdk", "node_js_sdk",
           "react_native_sdk", "react_sdk", "python_sdk", "exotel", "genesys", "avaya", "audiocodes", "swift_sdk",
           "twilio_sms", "flutter_sdk", "zendesk_integration", "slack_integration", "telegram_integration",
           "intercom_integration", "freshdesk_integration", "salesforce_integration", "template_preview",
           "genesys_bot_connector", "subagent_tool")
PRODUCTS = ("agents", "speech_engine")
#: The client's ``GuardrailType`` (2.78.0).
GUARDRAIL_TYPES = ("custom", "prompt_injection", "self_harm_intent", "violence_graphic", "sexual", "violence",
                   "harassment", "sexual_minors", "self_harm", "self_harm_instructions", "harassment_threatening",
                   "hate", "hate_threatening", "profanity", "religion_or_politics", "medical_and_legal", "guardrail")
CUSTOM_GUARDRAILS = ("no_competitor_talk", "no_pricing_promises")
LANGUAGES = ("en", "en", "en", "de", "fr", "es", "hi")
TOPICS = ("billing", "support", "sales", "onboarding")
TAGS = ("vip", "escalated", "follow-up")
CRITERIA = ("resolved", "polite")
CITIES = ("paris", "berlin", "madrid", "delhi")
TOOLS = (("lookup_order", "tool_lookup_order"), ("refund", "tool_refund"), ("end_call", "__system_end_call"),
         ("transfer_to_agent", "__system_transfer_to_agent"))
TERMINATIONS = ("end_call tool was called.", "Client disconnected: 1000", "Call ended by remote party",
                "Max duration exceeded")
NODES = ("node_greeting", "node_identify", "node_resolve", "node_handoff")
OPS = ("eq", "neq", "gt", "gte", "lt", "lte", "in", "exists", "missing")
#: Every query parameter ``client.conversational_ai.conversations.list(...)`` of ``elevenlabs`` 2.78.0 sends:
#: the ones that take one value, and the repeatable ones (a sequence is sent as the parameter repeated).
SCALARS = ("cursor", "agent_id", "call_successful", "call_start_before_unix", "call_start_after_unix",
           "call_duration_min_secs", "call_duration_max_secs", "rating_max", "rating_min", "has_feedback_comment",
           "user_id", "data_collection_filter", "dynamic_variable_filter", "include_invalid_tool_calls",
           "page_size", "summary_mode", "search", "conversation_initiation_source", "text_only",
           "conversation_product_type", "branch_id", "version_id", "parent_conversation_id",
           "workflow_node_entered_id", "sort_direction")
LISTS = ("visited_agent_ids", "visited_agent_branch_ids", "triggered_procedure_ids", "evaluation_params",
         "data_collection_params", "dynamic_variable_params", "data_collection_ids", "evaluation_criteria_ids",
         "tool_names", "tool_names_successful", "tool_names_errored", "tool_ids", "tool_ids_successful",
         "tool_ids_errored", "main_languages", "phone_number_ids", "whatsapp_phone_number_ids", "topic_ids",
         "exclude_statuses", "tag_ids", "termination_reasons", "guardrail_types", "custom_guardrail_names")
#: Parameters that page, bound, order or shape the answer rather than select conversations.
NOT_FILTERS = ("page_size", "cursor", "call_start_after_unix", "call_start_before_unix", "summary_mode",
               "sort_direction", "data_collection_ids", "evaluation_criteria_ids", "include_invalid_tool_calls")
#: Lists the API caps at 50 values.
CAPPED = ("visited_agent_ids", "visited_agent_branch_ids", "triggered_procedure_ids")
#: FastAPI's boolean query values.
TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
EVALUATION = re.compile(r"([^:]+):(success|failure|unknown)")
CONDITION = re.compile(r"([^:]+):([a-z]+)(?::(.*))?", re.DOTALL)
#: The fields of ``ConversationSummaryResponseModel`` a list item carries (internal attributes the filters act
#: on are stored under keys starting with ``_`` and never served).
SUMMARY_FIELDS = ("agent_id", "branch_id", "version_id", "agent_name", "conversation_id", "start_time_unix_secs",
                  "call_duration_secs", "cost", "message_count", "user_message_count", "agent_message_count",
                  "status", "termination_reason", "call_successful", "transcript_summary", "call_summary_title",
                  "main_language", "conversation_initiation_source", "tool_names", "direction", "rating", "tag_ids")

Key = tuple[int, str]
#: A cursor's position: the key of the last item served, or ``None`` for the top of the list.
Position = Key | None
Match = Callable[[dict[str, Any]], bool]


def _unix(ts: datetime) -> int:
    return (ts - EPOCH) // timedelta(seconds=1)


def public(record: Mapping[str, Any]) -> dict[str, Any]:
    """A stored record as the list serves it: without the internal ``_`` attributes."""
    return {k: v for k, v in record.items() if k[0] != "_"}


class _Invalid(Exception):
    def __init__(self, param: str, code: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.code = code
        self.message = message


class ElevenLabsSimulator(VendorSimulator):
    """Conversations newest first by ``start_time_unix_secs`` (ties: larger id first), keyset cursors.

    ``bounds`` picks how the server compares ``call_start_after_unix`` / ``call_start_before_unix``
    (undocumented by ElevenLabs): ``"inclusive"`` (default) or ``"exclusive"``; the hook must be exact under
    both. Every parameter the vendor's client sends is accepted and applied (see :data:`SCALARS` and
    :data:`LISTS`); parameters the client does not know are ignored, as the API ignores them. The filters act
    on generated attributes stored with each record under ``_`` keys (``_evaluation``, ``_collected``,
    ``_topics``, ``_tools``, ...), which are never served: list items carry exactly the fields of the client's
    ``ConversationSummaryResponseModel``, plus ``data_collection_results`` / ``evaluation_criteria_results``
    for the ids ``data_collection_ids`` / ``evaluation_criteria_ids`` ask for. Repeated values of a list filter
    match any; ``evaluation_params``, ``data_collection_params`` and ``dynamic_variable_params`` must all hold.

    ``GET /v1/convai/conversations/{conversation_id}`` serves the client's ``GetConversationResponseModel``
    (see :meth:`detail`), with ``otlp_traces`` for ``format=opentelemetry``.

    Vendor faults: ``empty`` answers with no conversations, ``has_more: true`` and a fresh cursor (a new token
    for the same position); ``stuck`` serves the page with ``has_more: true`` and the cursor it was asked with.
    """

    vendor = "elevenlabs"
    auth_header = "xi-api-key"
    auth_prefix = ""
    id_field = "conversation_id"
    vendor_fault_kinds: ClassVar[frozenset[str]] = frozenset({"empty", "stuck"})
    items_key = "conversations"
    next_cursor_key = "next_cursor"
    has_more_key = "has_more"
    cursor_param = "cursor"
    precision = timedelta(seconds=1)
    detail_path = DETAIL_PATH

    def __init__(self, conversations: int | list[Conversation] = 1000, *, bounds: str = "inclusive",
                 **options: Any) -> None:
        if bounds not in ("inclusive", "exclusive"):
            raise ValueError(f"bounds={bounds!r}; allowed: 'inclusive', 'exclusive'")
        self.bounds = bounds
        super().__init__(conversations, **options)

    # ------------------------------------------------------------------ data

    def render(self, c: Conversation) -> dict[str, Any]:
        bits = c.status
        in_progress = c.in_progress
        status = IN_PROGRESS[bits % 3] if in_progress else ("failed" if bits % 10 == 0 else "done")
        collected: dict[str, Any] = {"order_total": (c.channel * 7) % 500, "city": CITIES[c.user % len(CITIES)]}
        if c.turns % 3:
            collected["email"] = f"user{c.user}@example.com"
        conversation_id = c.extra.get("id", f"conv_{c.index:08d}")
        source = SOURCES[c.channel % 6]
        user_turns = c.turns // 2  # transcripts alternate, agent first
        tools = [[name, tool_id, ("ok", "error", "invalid")[(bits >> (3 + i)) % 3]]
                 for i, (name, tool_id) in enumerate(TOOLS) if (c.channel >> (4 + i)) & 1]
        guardrails: list[list[str | None]] = []
        if bits % 7 == 0:
            guardrails.append([GUARDRAIL_TYPES[1 + (c.user % 4)], None])
        if bits % 11 == 0:
            guardrails.append(["custom", CUSTOM_GUARDRAILS[c.user % 2]])
        return {
            "agent_id": f"agent_{c.agent}",
            "branch_id": f"branch_{c.agent}_{bits % 2}" if bits % 4 else None,
            "version_id": f"agtvrsn_{c.agent}_{(bits >> 2) % 3}",
            "agent_name": f"Agent {c.agent}",
            "conversation_id": conversation_id,
            "start_time_unix_secs": _unix(c.created),
            "call_duration_secs": c.duration,
            "cost": c.duration * 10 + c.turns,
            "message_count": c.turns,
            "user_message_count": user_turns,
            "agent_message_count": c.turns - user_turns,
            "status": status,
            "termination_reason": None if in_progress else TERMINATIONS[(bits >> 6) % len(TERMINATIONS)],
            "call_successful": "unknown" if in_progress else RESULTS[(bits >> 4) % 3],
            "transcript_summary": None,
            "call_summary_title": f"Call about {TOPICS[c.channel % len(TOPICS)]}",
            "main_language": LANGUAGES[(c.channel >> 3) % len(LANGUAGES)],
            "conversation_initiation_source": source,
            "tool_names": sorted({t[0] for t in tools if t[2] != "invalid"}),
            "direction": ("inbound", "outbound")[c.direction],
            "rating": None if in_progress else c.rating,
            "tag_ids": [t for i, t in enumerate(TAGS) if (bits >> (8 + i)) & 1],
            "_user_id": f"user_{c.user}",
            "_topics": [TOPICS[c.channel % len(TOPICS)]] + ([TOPICS[(c.channel >> 2) % len(TOPICS)]]
                                                            if bits % 5 == 0 else []),
            "_evaluation": {} if in_progress else {k: RESULTS[(bits >> (10 + 2 * i)) % 3]
                                                    for i, k in enumerate(CRITERIA)},
            "_collected": {} if in_progress else collected,
            "_dynamic": {"customer_tier": ("gold", "silver", "bronze")[c.rating % 3], "attempt": 1 + c.user % 3},
            "_tools": tools,
            "_visited": sorted({f"agent_{c.agent}", f"agent_{(c.agent + c.user) % 5}"}),
            "_visited_branches": [f"branch_{c.agent}_{bits % 2}"] if bits % 4 else [],
            "_procedures": [f"proc_{c.user % 4}"] if c.user % 3 == 0 else [],
            "_feedback_comment": not in_progress and c.rating <= 2 and bits % 2 == 0,
            "_phone_number_id": f"phnum_{c.agent}" if source in ("twilio", "sip_trunk") else None,
            "_whatsapp_number_id": f"wanum_{c.agent}" if source == "whatsapp" else None,
            "_text_only": source in ("widget", "js_sdk", "whatsapp") and c.user % 2 == 0,
            "_product": PRODUCTS[1 if bits % 9 == 0 else 0],
            "_parent": f"conv_{c.index - 1:08d}" if bits % 13 == 0 and c.index else None,
            "_nodes": list(NODES[: 1 + c.turns % len(NODES)]),
            "_guardrails": guardrails,
        }

    @staticmethod
    def _turns(conversation_id: str, count: int, duration: int) -> list[transcripts.Turn]:
        return transcripts.turns(conversation_id, count, duration, salt="elevenlabs")

    @classmethod
    def searchable(cls, record: Mapping[str, Any]) -> str:
        """What ``search`` looks in, lower case: the transcript's messages (the client documents "search over
        transcript messages") and the summary."""
        turns = cls._turns(record["conversation_id"], record["message_count"], record["call_duration_secs"])
        return "\n".join([cls.summary(record), *(t.text for t in turns)]).lower()

    @staticmethod
    def summary(record: Mapping[str, Any]) -> str:
        """The transcript summary served with ``summary_mode=include`` (and searched by ``search``)."""
        return (f"{record['_user_id']} talked to {record['agent_name']} about {record['call_summary_title'][11:]} "
                f"in {record['main_language']}")

    def new_store(self) -> SortedStore:
        def key(r: dict[str, Any]) -> Key:
            return r["start_time_unix_secs"], r["conversation_id"]

        # "key" places a cursor; "start" is what the call_start_* bounds compare.
        return SortedStore(self.lock, order=key, keys={"key": key, "start": lambda r: r["start_time_unix_secs"]},
                           blob=lambda r: compact_json(public(r)), id_field="conversation_id")

    def finish_all(self) -> None:
        self.store.mutate(None, lambda r: r.update(status="done"), where=lambda r: r["status"] in IN_PROGRESS)

    def update(self, ids: list[str], *, at: datetime) -> int:
        """A message is added and a live conversation ends (ElevenLabs lists carry no update time: ``at`` is
        unused)."""

        def reply(r: dict[str, Any]) -> None:
            if r["status"] in IN_PROGRESS:
                r["status"] = "done"
            r["message_count"] += 1
            users = r["message_count"] // 2
            r["user_message_count"], r["agent_message_count"] = users, r["message_count"] - users

        return self.store.mutate(ids, reply)

    def ground_truth(self, start: datetime, end: datetime, *, time_key: str = "created", **filters: Any) -> list[str]:
        """Ids with ``start <= start_time_unix_secs < end`` that match ``filters`` (given as the hook takes them)."""
        if time_key != "created":
            raise ValueError(f"ElevenLabs conversations have only the 'created' time key, not {time_key!r}")
        query = {k: [_wire(x) for x in v] if isinstance(v, list | tuple) else [_wire(v)]
                 for k, v in filters.items() if v is not None}
        match = self._matcher(query) or (lambda r: True)
        lo, hi = start.timestamp(), end.timestamp()
        return [r["conversation_id"] for r in self.records if lo <= r["start_time_unix_secs"] < hi and match(r)]

    def detail(self, conversation_id: str, *, format: str = "json", **options: Any) -> dict[str, Any] | None:
        """The ``GetConversationResponseModel`` body of a conversation (``None``: unknown or vanished, a 404).

        ``transcript`` has ``message_count`` turns (``role`` ``user``/``agent``, ``message``, ascending
        ``time_in_call_secs``), the same on every call; ``analysis`` is there once the call is over.
        """
        if self.vanished(conversation_id):
            return None
        with self.lock:
            stored = self.record(conversation_id)
            r = None if stored is None else dict(stored)
        if r is None:
            return None
        finished = r["status"] not in IN_PROGRESS
        turns = self._turns(conversation_id, r["message_count"], r["call_duration_secs"])
        start = r["start_time_unix_secs"]
        body: dict[str, Any] = {
            "agent_id": r["agent_id"],
            "agent_name": r["agent_name"],
            "conversation_product": r["_product"],
            "status": r["status"],
            "user_id": r["_user_id"],
            "branch_id": r["branch_id"],
            "version_id": r["version_id"],
            "metadata": {
                "start_time_unix_secs": start,
                "accepted_time_unix_secs": start,
                "call_duration_secs": r["call_duration_secs"],
                "cost": r["cost"],
                "termination_reason": r["termination_reason"],
                "main_language": r["main_language"],
                "conversation_initiation_source": r["conversation_initiation_source"],
                "text_only": r["_text_only"],
                "timezone": "UTC",
            },
            "analysis": {
                "evaluation_criteria_results": {
                    k: {"criteria_id": k, "result": v, "rationale": f"The agent was judged {v} on {k}."}
                    for k, v in r["_evaluation"].items()},
                "data_collection_results": {
                    k: {"data_collection_id": k, "value": v, "rationale": f"The user stated their {k}."}
                    for k, v in r["_collected"].items()},
                "call_successful": r["call_successful"],
                "transcript_summary": self.summary(r),
                "call_summary_title": r["call_summary_title"],
            } if finished else None,
            "user_message_count": r["user_message_count"],
            "agent_message_count": r["agent_message_count"],
            "environment": "production",
            "conversation_id": conversation_id,
            "has_audio": not r["_text_only"],
            "has_user_audio": not r["_text_only"],
            "has_response_audio": not r["_text_only"],
            "has_auxiliary_audio": False,
            "transcript": [{"role": t.role, "message": t.text, "time_in_call_secs": t.offset,
                            "interrupted": False, "created_at_unix_ms": (start + t.offset) * 1000}
                           for t in turns],
            "tag_ids": r["tag_ids"],
        }
        if format == "opentelemetry":
            body["otlp_traces"] = {"resourceSpans": [{
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "convai"}}]},
                "scopeSpans": [{"spans": [{
                    "traceId": conversation_id, "name": f"turn.{t.role}",
                    "startTimeUnixNano": str((start + t.offset) * 10**9)} for t in turns]}],
            }]}
        return body

    def connection(self, conn_id: str | None = None, *, token: str | None = None,
                   region: str | None = None) -> dict[str, Any]:
        return {
            "conn_type": "elevenlabs",
            "host": self.url,
            "password": token or self.token,
            "extra": {"region": region} if region else {},
        }

    # ------------------------------------------------------------------ HTTP

    def error(self, status: int, code: str, message: str, param: str | None = None) -> SimResponse:
        kind = {400: "invalid_request", 401: "authentication_error", 403: "authorization_error",
                404: "not_found", 422: "validation_error", 429: "rate_limit_error"}.get(status, "server_error")
        with self.lock:
            n = self.stats.requests
        return SimResponse.json(status, {"detail": {
            "type": kind, "code": code, "message": message, "request_id": f"req_{n:08d}", "param": param,
        }})

    def handle_detail(self, conversation_id: str, request: SimRequest) -> SimResponse:
        fmt = request.one("format") or "json"
        if fmt not in ("json", "opentelemetry"):
            return self.error(422, "invalid_enum_value",
                              f"Input should be one of json, opentelemetry; got '{fmt}'", "format")
        body = self.detail(conversation_id, format=fmt)
        if body is None:
            return self.error(404, "conversation_not_found", f"Conversation {conversation_id} not found")
        return SimResponse.json(200, body)

    def handle(self, request: SimRequest) -> SimResponse:
        if request.path.rstrip("/") != PATH:
            return self.error(404, "not_found", f"no route {request.path}")
        q = {name: values for name, values in request.query.items() if name in SCALARS or name in LISTS}
        for name, values in q.items():
            if name in SCALARS and len(values) > 1:
                return self.error(422, "invalid_parameter", "Parameter given more than once", name)
        filters = {k: v for k, v in q.items() if k not in NOT_FILTERS}
        try:
            limit = _int(request, "page_size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
            after = _int(request, "call_start_after_unix", None)
            before = _int(request, "call_start_before_unix", None)
            summary_mode = request.one("summary_mode") or "exclude"
            _enum("summary_mode", [summary_mode], ("exclude", "include"))
            ascending = (request.one("sort_direction") or "desc") == "asc"
            _enum("sort_direction", q.get("sort_direction", []), ("asc", "desc"))
            invalid_tools = _bool("include_invalid_tool_calls", request.one("include_invalid_tool_calls"))
            if invalid_tools:
                filters["include_invalid_tool_calls"] = ["true"]
            match = self._matcher(filters)
            cursor = _decode_cursor(request.one("cursor") or "") if request.one("cursor") else None
        except _Invalid as exc:
            return self.error(422, exc.code, exc.message, exc.param)
        collect_ids = q.get("data_collection_ids")
        criteria_ids = q.get("evaluation_criteria_ids")
        inclusive = self.bounds == "inclusive"
        with self.lock:
            store = self.store
            rows = store.select("start", after, before, inclusive=(inclusive, inclusive), match=match,
                                cache=tuple(sorted((k, tuple(v)) for k, v in filters.items()))).rows
            keys = store.index("key").keys
            if ascending:
                begin = 0 if cursor is None else bisect.bisect_left(rows, bisect.bisect_right(keys, cursor))
                chunk = [rows[i] for i in range(begin, min(len(rows), begin + limit))]
                more = begin + limit < len(rows)
            else:
                end = len(rows) if cursor is None else bisect.bisect_left(rows, bisect.bisect_left(keys, cursor))
                chunk = [rows[i] for i in range(end - 1, max(0, end - limit) - 1, -1)]
                more = end - limit > 0
            if summary_mode == "include" or collect_ids is not None or criteria_ids is not None:
                records = store.records
                page = b",".join(orjson.dumps(self._item(records[i], summary_mode == "include", collect_ids,
                                                         criteria_ids)) for i in chunk)
            else:
                page = b",".join(store.blobs[i] for i in chunk)
            last = keys[chunk[-1]] if chunk else None
        # The cursor of the last item is sent on the last page too: has_more is what says "stop".
        tail = {"next_cursor": cursors.encode(last) if last else None, "has_more": more}
        return SimResponse(200, b'{"conversations":[' + page + b"]," + orjson.dumps(tail)[1:], {})

    def _item(self, r: dict[str, Any], summary: bool, collect_ids: list[str] | None,
              criteria_ids: list[str] | None) -> dict[str, Any]:
        """A list item shaped by ``summary_mode`` and the ``*_ids`` parameters, as the client documents them."""
        item = public(r)
        if summary:
            item["transcript_summary"] = self.summary(r)
        if collect_ids is not None:
            item["data_collection_results"] = {k: r["_collected"][k] for k in collect_ids if k in r["_collected"]}
        if criteria_ids is not None:
            evaluation = r["_evaluation"]
            item["evaluation_criteria_results"] = {
                k: {"result": evaluation[k]} if k in evaluation else None for k in criteria_ids}
        return item

    def cursor_position(self, request: SimRequest) -> Position:
        token = request.one("cursor")
        return _decode_cursor(token) if token else None

    def _matcher(self, query: Mapping[str, list[str]]) -> Match | None:
        """One predicate for the filters in ``query`` (``None`` when there are none); raises _Invalid."""
        query = dict(query)
        invalid = query.pop("include_invalid_tool_calls", None)
        invalid_tools = _bool("include_invalid_tool_calls", invalid[-1] if invalid else None)
        for single, repeated in (("data_collection_filter", "data_collection_params"),
                                 ("dynamic_variable_filter", "dynamic_variable_params")):
            if single in query:  # combined with the repeatable form, as the client documents
                query[repeated] = [*query.get(repeated, []), *query.pop(single)]
        tests = [t for name, values in query.items() if name not in NOT_FILTERS
                 for t in _tests(name, values, self.searchable, bool(invalid_tools))]
        if not tests:
            return None
        return lambda r: all(t(r) for t in tests)


#: Equality filters: parameter -> record field.
_EQUAL = {"agent_id": "agent_id", "user_id": "_user_id", "branch_id": "branch_id", "version_id": "version_id",
          "parent_conversation_id": "_parent"}
#: Any-of filters on a list attribute: parameter -> record field.
_ANY_OF = {"visited_agent_ids": "_visited", "visited_agent_branch_ids": "_visited_branches",
           "triggered_procedure_ids": "_procedures", "topic_ids": "_topics", "tag_ids": "tag_ids"}
#: Any-of filters on a single attribute: parameter -> record field.
_ONE_OF = {"main_languages": "main_language", "phone_number_ids": "_phone_number_id",
           "whatsapp_phone_number_ids": "_whatsapp_number_id", "termination_reasons": "termination_reason"}
#: Tool filters: parameter -> (position in a ``_tools`` entry: 0 name, 1 id; outcomes that match).
_TOOLS = {"tool_names": (0, ("ok", "error")), "tool_names_successful": (0, ("ok",)),
          "tool_names_errored": (0, ("error",)), "tool_ids": (1, ("ok", "error")),
          "tool_ids_successful": (1, ("ok",)), "tool_ids_errored": (1, ("error",))}


def _wire(value: Any) -> str:
    """A filter value as the client puts it on the wire (booleans lower case)."""
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _tests(name: str, values: list[str], searchable: Callable[[Mapping[str, Any]], str],
           invalid_tools: bool = False) -> list[Match]:
    """The record predicates of one query parameter (each call is its own closure scope)."""
    value = values[-1]
    if name in CAPPED and len(values) > 50:
        raise _Invalid(name, "too_many_values", f"Can not exceed 50 values, got {len(values)}")
    if name in _EQUAL:
        field = _EQUAL[name]
        return [lambda r: r[field] == value]
    if name == "conversation_initiation_source":
        _enum(name, values, SOURCES)
        return [lambda r: r[name] == value]
    if name == "conversation_product_type":
        _enum(name, values, PRODUCTS)
        return [lambda r: r["_product"] == value]
    if name == "workflow_node_entered_id":
        return [lambda r: value in r["_nodes"]]
    if name == "call_successful":
        _enum(name, values, RESULT_FILTERS)
        if value == "error":
            return [lambda r: r["status"] == "failed"]
        return [lambda r: r["call_successful"] == value]
    if name in ("has_feedback_comment", "text_only"):
        flag = _bool(name, value)
        field = "_feedback_comment" if name == "has_feedback_comment" else "_text_only"
        return [lambda r: r[field] is flag]
    if name in ("call_duration_min_secs", "call_duration_max_secs", "rating_min", "rating_max"):
        duration = name.startswith("call")
        bound = _parse_int(name, value, 0 if duration else 1, None if duration else 5)
        field = "call_duration_secs" if duration else "rating"
        if "_min" in name:
            return [lambda r: r[field] is not None and r[field] >= bound]
        return [lambda r: r[field] is not None and r[field] <= bound]
    if name in _ONE_OF:
        field, wanted = _ONE_OF[name], frozenset(values)
        return [lambda r: r[field] in wanted]
    if name in _ANY_OF:
        field, wanted = _ANY_OF[name], frozenset(values)
        return [lambda r: not wanted.isdisjoint(r[field])]
    if name in _TOOLS:
        position, outcomes = _TOOLS[name]
        if invalid_tools:
            outcomes = (*outcomes, "invalid")
        wanted = frozenset(values)
        return [lambda r: any(t[position] in wanted and t[2] in outcomes for t in r["_tools"])]
    if name == "guardrail_types":
        _enum(name, values, GUARDRAIL_TYPES)
        wanted = frozenset(values)
        return [lambda r: any(g[0] in wanted for g in r["_guardrails"])]
    if name == "custom_guardrail_names":
        wanted = frozenset(values)
        return [lambda r: any(g[0] == "custom" and g[1] in wanted for g in r["_guardrails"])]
    if name == "exclude_statuses":
        _enum(name, values, STATUSES)
        excluded = frozenset(values)
        return [lambda r: r["status"] not in excluded]
    if name == "evaluation_params":
        return [_evaluation(v) for v in values]
    if name == "data_collection_params":
        return [_condition(name, "_collected", v) for v in values]
    if name == "dynamic_variable_params":
        return [_condition(name, "_dynamic", v) for v in values]
    if name == "search":
        needle = value.lower()
        return [lambda r: needle in searchable(r)]
    raise _Invalid(name, "unknown_parameter", f"Unknown filter '{name}'")


def _evaluation(value: str) -> Match:
    m = EVALUATION.fullmatch(value)
    if not m:
        raise _Invalid("evaluation_params", "invalid_format", f"Expected criteria_id:result, got '{value}'")
    criteria, result = m[1], m[2]
    return lambda r: r["_evaluation"].get(criteria) == result


def _bool(name: str, value: str | None) -> bool | None:
    if value is None:
        return None
    if value.lower() in TRUE:
        return True
    if value.lower() in FALSE:
        return False
    raise _Invalid(name, "bool_parsing", f"Input should be a valid boolean, got '{value}'")


# ---------------------------------------------------------------------- helpers


def _int(request: SimRequest, name: str, default: int | None, lo: int | None = None,
         hi: int | None = None) -> Any:
    value = request.one(name)
    return default if value is None else _parse_int(name, value, lo, hi)


def _parse_int(name: str, value: str, lo: int | None, hi: int | None) -> int:
    try:
        number = int(value)
    except ValueError:
        raise _Invalid(name, "invalid_integer", "Input should be a valid integer") from None
    if (lo is not None and number < lo) or (hi is not None and number > hi):
        rng = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise _Invalid(name, "out_of_range", f"Input should be {rng}, got {number}")
    return number


def _enum(name: str, values: list[str], allowed: tuple[str, ...]) -> None:
    for v in values:
        if v not in allowed:
            raise _Invalid(name, "invalid_enum_value", f"Input should be one of {', '.join(allowed)}; got '{v}'")


def _condition(param: str, field: str, value: str) -> Match:
    """One ``id:op:value`` condition on the dict ``field`` (collected data or dynamic variables).

    The client's grammar: ``eq``/``neq``/``in`` compare as text (``in`` values pipe-delimited), an empty
    value after ``eq`` means "not collected" and after ``neq`` "collected"; ``gt``/``gte``/``lt``/``lte`` need
    a number. The seed's ``exists``/``missing`` (no value) are accepted too.
    """
    m = CONDITION.fullmatch(value)
    if not m or m[2] not in OPS:
        raise _Invalid(param, "invalid_format",
                       f"Expected id:op:value with op one of {'|'.join(OPS)}, got '{value}'")
    key, op, arg = m[1], m[2], m[3]
    if op in ("exists", "missing"):
        if arg:
            raise _Invalid(param, "invalid_format", f"'{op}' takes no value, got '{value}'")
        return (lambda r: key in r[field]) if op == "exists" else (lambda r: key not in r[field])
    if arg is None or (arg == "" and op not in ("eq", "neq")):
        raise _Invalid(param, "invalid_format", f"'{op}' needs a value, got '{value}'")
    if arg == "":
        return (lambda r: key not in r[field]) if op == "eq" else (lambda r: key in r[field])
    if op in ("in", "eq", "neq"):
        options = frozenset(arg.split("|")) if op == "in" else frozenset((arg,))

        def equal(r: dict[str, Any]) -> bool:
            values = r[field]
            return key in values and str(values[key]) in options

        return equal if op != "neq" else (lambda r: not equal(r))
    try:
        number = float(arg)
    except ValueError:
        raise _Invalid(param, "invalid_format", f"'{op}' needs a number, got '{value}'") from None
    compare: Callable[[float], bool] = {
        "gt": lambda x: x > number, "gte": lambda x: x >= number, "lt": lambda x: x < number,
        "lte": lambda x: x <= number,
    }[op]

    def test(r: dict[str, Any]) -> bool:
        v = r[field].get(key)
        return isinstance(v, int | float) and not isinstance(v, bool) and compare(v)

    return test


def _decode_cursor(token: str) -> Position:
    try:
        position = cursors.decode(token, (int, str))
    except cursors.InvalidCursor:
        raise _Invalid("cursor", "invalid_cursor", "Cursor could not be decoded") from None
    return None if position is None else (position[0], position[1])
