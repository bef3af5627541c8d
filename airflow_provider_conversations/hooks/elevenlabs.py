"""ElevenLabs Agents Platform conversations (seed 003): regional bases, newest-first cursor paging."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_conversations.catalog import ELEVENLABS_REGIONS
from airflow_provider_conversations.engine.details import DetailEndpoint
from airflow_provider_conversations.engine.paginators import BodyCursorPaginator, Item
from airflow_provider_conversations.exceptions import InvalidFilterError, InvalidResponseError
from airflow_provider_conversations.filters import Filter, FilterSet
from airflow_provider_conversations.hooks.base import ConnectionSettings, ConversationsHook, Paging, TimeKey
from airflow_provider_conversations.hooks.messages import Message, at_offset, entries, message
from airflow_provider_conversations.hooks.statuses import Statuses
from airflow_provider_conversations.transport.errors import detail_object, envelope, validation_errors
from airflow_provider_conversations.transport.session import Params
from airflow_provider_conversations.windows import Window, parse_unix, unix_bounds

REGIONS = ELEVENLABS_REGIONS
IN_PROGRESS = ("initiated", "in-progress", "processing")
FINISHED = ("done", "failed")
STATUSES = (*IN_PROGRESS, *FINISHED)
EVALUATION_RESULTS = ("success", "failure", "unknown")
#: ``call_successful`` as the vendor's client declares it (``EvaluationResultFilter``): also ``error``.
CALL_SUCCESSFUL = (*EVALUATION_RESULTS, "error")
#: The client's ``ConversationInitiationSource``, ``ConversationProduct`` and ``GuardrailType`` (elevenlabs 2.78.0).
INITIATION_SOURCES = (
    "unknown", "android_sdk", "node_js_sdk", "react_native_sdk", "react_sdk", "js_sdk", "python_sdk", "widget",
    "sip_trunk", "twilio", "exotel", "genesys", "avaya", "audiocodes", "swift_sdk", "whatsapp", "twilio_sms",
    "flutter_sdk", "zendesk_integration", "slack_integration", "telegram_integration", "intercom_integration",
    "freshdesk_integration", "salesforce_integration", "template_preview", "genesys_bot_connector", "subagent_tool",
)
PRODUCT_TYPES = ("agents", "speech_engine")
GUARDRAIL_TYPES = (
    "custom", "prompt_injection", "self_harm_intent", "violence_graphic", "sexual", "violence", "harassment",
    "sexual_minors", "self_harm", "self_harm_instructions", "harassment_threatening", "hate", "hate_threatening",
    "profanity", "religion_or_politics", "medical_and_legal", "guardrail",
)
SUMMARY_MODES = ("exclude", "include")
#: The client's comparison grammar, ``id:op:value``: ``eq``/``neq`` take any value, an empty one meaning "not
#: collected" / "collected"; ``gt``/``gte``/``lt``/``lte`` take a number; ``in`` takes ``a|b|c``.
_NUMBER = r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_COMPARISON = rf"(?:(?:eq|neq):.*|(?:gt|gte|lt|lte):{_NUMBER}|in:[^|]+(?:\|[^|]+)*)"
#: Data collection conditions: the client's grammar, plus the 2025-08 spec's ``id:exists`` / ``id:missing``.
DATA_COLLECTION_PATTERN = rf"[^:\s]+:(?:{_COMPARISON}|(?:exists|missing):?)"
DATA_COLLECTION_HINT = ("like 'id:op:value' (op: eq or neq with a value, or with an empty value for 'not collected' "
                        "/ 'collected'; gt, gte, lt or lte with a number; in with values 'a|b|c'), or 'id:exists' / "
                        "'id:missing'")
#: Dynamic variables: the client's grammar only (a name cannot contain ':').
DYNAMIC_VARIABLE_PATTERN = rf"[^:]+:{_COMPARISON}"
DYNAMIC_VARIABLE_HINT = ("like 'name:op:value' (op: eq or neq with a value, or with an empty value for 'not set' / "
                         "'set'; gt, gte, lt or lte with a number; in with values 'a|b|c')")
#: The client caps these lists at 50 values.
MAX_IDS = 50


def _client_form(condition: str) -> str:
    """The 2025-08 spec's ``id:exists`` / ``id:missing`` in the client's grammar, which the API now documents:
    ``id:neq:`` (collected) and ``id:eq:`` (not collected). Other conditions are sent as given."""
    field, _, rest = condition.partition(":")
    if rest in ("exists", "missing", "exists:", "missing:"):
        return f"{field}:{'neq' if rest.startswith('exists') else 'eq'}:"
    return condition


def _ids(name: str, what: str, *, limit: int | None = None) -> Filter:
    return Filter(name, repeatable=True, max_values=limit, description=f"{what}")


class ElevenLabsHook(ConversationsHook):
    """Lists ElevenLabs Agents conversations by ``start_time_unix_secs``.

    Connection: Password = API key (sent as ``xi-api-key``); extra ``region`` (``global`` default, ``us``,
    ``eu-residency``, ``in-residency``, ``sg-residency``). Host, when set, replaces the regional base URL.
    """

    conn_type = "elevenlabs"
    hook_name = "ElevenLabs"
    duration_field = "call_duration_secs"
    time_keys = {"created": TimeKey("created", "start_time_unix_secs", parse_unix)}
    id_field = "conversation_id"
    max_page_size = 100
    statuses = Statuses.of("status", in_progress=IN_PROGRESS, finished=FINISHED)
    error_envelope = envelope(detail_object, validation_errors)
    #: The transcript: ``transcript`` turns (``role``, ``message``, ``time_in_call_secs``), JSON by default.
    detail_endpoint = DetailEndpoint("v1/convai/conversations/{id}", id_field="conversation_id")
    #: Every query parameter elevenlabs' client sends for ``conversations.list`` (2.78.0), with its wire name,
    #: type, repeatability and enum values; tests/test_elevenlabs_filters.py compares it with the client itself.
    filter_set = FilterSet(
        vendor="ElevenLabs",
        filters=(
            Filter("agent_id", description="only conversations of this agent (agent_... or speech engine seng_...)"),
            _ids("visited_agent_ids", "conversations where any of these agents participated", limit=MAX_IDS),
            _ids("visited_agent_branch_ids", "conversations where any of these agent branches participated",
                 limit=MAX_IDS),
            _ids("triggered_procedure_ids", "conversations where any of these procedures were triggered",
                 limit=MAX_IDS),
            Filter("call_successful", "enum", choices=CALL_SUCCESSFUL, description="result of the success evaluation"),
            Filter("call_duration_min_secs", "int", minimum=0, description="minimum call duration in seconds"),
            Filter("call_duration_max_secs", "int", minimum=0, description="maximum call duration in seconds"),
            Filter("rating_max", "int", minimum=1, maximum=5, description="maximum overall rating (1-5)"),
            Filter("rating_min", "int", minimum=1, maximum=5, description="minimum overall rating (1-5)"),
            Filter("has_feedback_comment", "bool", description="conversations with user feedback comments"),
            Filter("user_id", description="only conversations initiated by this user id"),
            Filter("evaluation_params", repeatable=True, pattern=r"[^:\s]+:(?:success|failure|unknown)",
                   pattern_hint="like 'criteria_id:result' with result success, failure or unknown",
                   description="evaluation criteria results, all of which must match"),
            Filter("data_collection_params", repeatable=True, pattern=DATA_COLLECTION_PATTERN,
                   pattern_hint=DATA_COLLECTION_HINT, normalize=_client_form,
                   description="data collection conditions, all of which must hold; 'id:exists' and "
                   "'id:missing' are sent as 'id:neq:' and 'id:eq:'"),
            Filter("dynamic_variable_params", repeatable=True, pattern=DYNAMIC_VARIABLE_PATTERN,
                   pattern_hint=DYNAMIC_VARIABLE_HINT, description="dynamic variable conditions"),
            Filter("data_collection_filter", pattern=DATA_COLLECTION_PATTERN, pattern_hint=DATA_COLLECTION_HINT,
                   normalize=_client_form,
                   description="one data collection condition, combined with data_collection_params"),
            Filter("dynamic_variable_filter", pattern=DYNAMIC_VARIABLE_PATTERN, pattern_hint=DYNAMIC_VARIABLE_HINT,
                   description="one dynamic variable condition, combined with dynamic_variable_params"),
            _ids("data_collection_ids", "data collection field ids whose data_collection_results each record carries"),
            _ids("evaluation_criteria_ids",
                 "evaluation criteria ids whose evaluation_criteria_results each record carries"),
            _ids("tool_names", "conversations that used these tools, by name"),
            _ids("tool_names_successful", "conversations with successful calls of these tools, by name"),
            _ids("tool_names_errored", "conversations with errored calls of these tools, by name"),
            _ids("tool_ids", "conversations that used these tools, by id ('__system_<tool_name>' for system tools)"),
            _ids("tool_ids_successful", "conversations with successful calls of these tools, by id"),
            _ids("tool_ids_errored", "conversations with errored calls of these tools, by id"),
            Filter("include_invalid_tool_calls", "bool", description="also match tool calls that never ran"),
            _ids("main_languages", "detected main language codes"),
            _ids("phone_number_ids", "the agent's phone number ids"),
            _ids("whatsapp_phone_number_ids", "the agent's WhatsApp number ids"),
            Filter("summary_mode", "enum", choices=SUMMARY_MODES,
                   description="include transcript summaries in the records (vendor default: exclude)"),
            Filter("search", description="full-text or fuzzy search over transcript messages"),
            Filter("conversation_initiation_source", "enum", choices=INITIATION_SOURCES,
                   description="how the conversation was started"),
            Filter("text_only", "bool", description="text-only conversations (or, with false, the others)"),
            Filter("conversation_product_type", "enum", choices=PRODUCT_TYPES,
                   description="a single conversation product surface"),
            Filter("branch_id", description="only conversations of this agent branch"),
            Filter("version_id", description="only conversations of this agent version"),
            Filter("parent_conversation_id", description="subagent conversations of this parent conversation"),
            _ids("topic_ids", "topic ids from topic discovery"),
            Filter("exclude_statuses", "enum", choices=STATUSES, repeatable=True,
                   description="leave out conversations with these statuses"),
            _ids("tag_ids", "conversation tag ids"),
            Filter("workflow_node_entered_id", description="only conversations that entered this workflow node"),
            _ids("termination_reasons", "any of these stored termination reasons"),
            Filter("guardrail_types", "enum", choices=GUARDRAIL_TYPES, repeatable=True,
                   description="conversations where a guardrail of any of these types triggered"),
            _ids("custom_guardrail_names", "conversations where a custom guardrail of any of these names triggered"),
        ),
        ordered=(("call_duration_min_secs", "call_duration_max_secs"), ("rating_min", "rating_max")),
        #: The paging, window and order parameters: refused in filters and in extra_params.
        reserved={
            "call_start_after_unix": "the hook sets it from the window; pass start/end instead",
            "call_start_before_unix": "the hook sets it from the window; pass start/end instead",
            "page_size": "the hook pages; pass page_size to the hook instead",
            "cursor": "the hook pages; it is not a filter",
            "sort_direction": "the hook walks newest first and relies on that order to check its paging; "
                              "it is not a filter",
        },
    )

    def auth_headers(self, settings: ConnectionSettings) -> dict[str, str]:
        return {"xi-api-key": settings.secret}

    def list_path(self, settings: ConnectionSettings) -> str:
        return "v1/convai/conversations"

    def window_params(self, window: Window, key: TimeKey) -> Params:
        # Whole seconds of undocumented inclusivity: ask for a second more each side, cut exactly later.
        after, before = unix_bounds(window)
        return {"call_start_after_unix": str(after), "call_start_before_unix": str(before)}

    def paging(self, key: TimeKey, page_size: int, window: Window | None) -> Paging:
        # ElevenLabs lists newest first (an assumption): Dedup falls back to every id if that ever breaks.
        return Paging(BodyCursorPaginator("page_size", page_size, "cursor", cursor="next_cursor", has_more="has_more"),
                      order="desc")

    def page_items(self, body: Any) -> list[Item]:
        items = body.get("conversations") if isinstance(body, dict) else None
        if not isinstance(items, list) or not isinstance(body.get("has_more"), bool):
            raise InvalidResponseError(
                f"ElevenLabs returned a body without a 'conversations' list and a boolean 'has_more': "
                f"{str(body)[:120]!r}", vendor=self.vendor,
            )
        return items

    @classmethod
    def finished_filters(cls, filters: Mapping[str, Any]) -> dict[str, Any]:
        excluded = _merge(filters.get("exclude_statuses"), IN_PROGRESS)
        if set(FINISHED) <= set(excluded):
            raise InvalidFilterError(
                "finished_only=True contradicts ElevenLabs filter exclude_statuses="
                f"{_as_list(filters.get('exclude_statuses'))!r}: every finished status (done, failed) is excluded"
            )
        return {"exclude_statuses": excluded}

    @classmethod
    def in_progress_filters(cls, filters: Mapping[str, Any]) -> dict[str, Any] | None:
        excluded = _merge(filters.get("exclude_statuses"), FINISHED)
        if set(STATUSES) <= set(excluded):
            return None
        return {"exclude_statuses": excluded}

    def messages_of(self, record: Item) -> list[Message] | None:
        detail = record.get("detail")
        turns = entries(detail.get("transcript")) if isinstance(detail, dict) else None
        if turns is None:
            return None
        metadata = detail.get("metadata") if isinstance(detail, dict) else None
        start = parse_unix((metadata or {}).get("start_time_unix_secs", record.get("start_time_unix_secs")))
        return [message(t.get("role"), t.get("message"), at_offset(start, t.get("time_in_call_secs")))
                for t in turns]

    def channel_of(self, item: Item) -> str | None:
        # The closest thing to a channel ElevenLabs has (twilio, sip_trunk, widget, ...); often absent.
        source = item.get("conversation_initiation_source")
        return source if isinstance(source, str) else None


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _merge(user: Any, statuses: tuple[str, ...]) -> list[str]:
    """The union of the user's excluded statuses and ``statuses``, in the vendor's status order."""
    wanted = {*_as_list(user), *statuses}
    return [s for s in STATUSES if s in wanted]
