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
DATA_COLLECTION_OPS = ("eq", "neq", "gt", "gte", "lt", "lte", "in", "exists", "missing")
#: ``id:op:value``; ``in`` takes ``a|b|c``; ``exists``/``missing`` take no value (``id:exists`` or ``id:exists:``).
DATA_COLLECTION_PATTERN = (
    r"[^:\s]+:(?:(?:eq|neq|gt|gte|lt|lte):.+|in:[^|]+(?:\|[^|]+)*|(?:exists|missing):?)"
)


def _three_parts(condition: str) -> str:
    """The documented form is ``id:op:value``: ``id:exists`` is sent as ``id:exists:`` (an empty value)."""
    return f"{condition}:" if condition.count(":") == 1 else condition


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
    filter_set = FilterSet(
        vendor="ElevenLabs",
        filters=(
            Filter("agent_id", description="only conversations of this agent"),
            Filter("call_successful", "enum", choices=EVALUATION_RESULTS,
                   description="result of the success evaluation"),
            Filter("call_duration_min_secs", "int", minimum=0, description="minimum call duration in seconds"),
            Filter("call_duration_max_secs", "int", minimum=0, description="maximum call duration in seconds"),
            Filter("rating_min", "int", minimum=1, maximum=5, description="minimum overall rating (1-5)"),
            Filter("rating_max", "int", minimum=1, maximum=5, description="maximum overall rating (1-5)"),
            Filter("user_id", description="only conversations initiated by this user id"),
            Filter("evaluation_params", repeatable=True, pattern=r"[^:\s]+:(?:success|failure|unknown)",
                   pattern_hint="like 'criteria_id:result' with result success, failure or unknown",
                   description="evaluation criteria results, all of which must match (repeatable)"),
            Filter("data_collection_params", repeatable=True, pattern=DATA_COLLECTION_PATTERN,
                   pattern_hint="like 'id:op:value' (op: eq, neq, gt, gte, lt, lte, or in with values 'a|b|c'), "
                   "or 'id:exists' / 'id:missing' (no value)",
                   description="data collection conditions (repeatable)", normalize=_three_parts),
            Filter("main_languages", repeatable=True, description="detected main language codes (repeatable)"),
            Filter("summary_mode", "enum", choices=("exclude", "include"),
                   description="include transcript summaries in the records (vendor default: exclude)"),
            Filter("search", description="deprecated by ElevenLabs: full-text search over transcripts",
                   deprecated="ElevenLabs has deprecated the 'search' filter (full-text search over transcripts); "
                   "it is still sent, but may stop working or be ignored by the API"),
            Filter("conversation_initiation_source", description="e.g. twilio, sip_trunk, widget, js_sdk"),
            Filter("branch_id", description="only conversations of this agent branch"),
            Filter("topic_ids", repeatable=True, description="topic ids from topic discovery (repeatable)"),
            Filter("exclude_statuses", "enum", choices=STATUSES, repeatable=True,
                   description="leave out conversations with these statuses (repeatable)"),
            Filter("tag_ids", repeatable=True, description="conversation tag ids (repeatable)"),
        ),
        ordered=(("call_duration_min_secs", "call_duration_max_secs"), ("rating_min", "rating_max")),
        reserved={
            "call_start_after_unix": "the hook sets it from the window; pass start/end instead",
            "call_start_before_unix": "the hook sets it from the window; pass start/end instead",
            "page_size": "the hook pages; pass page_size to the hook instead",
            "cursor": "the hook pages; it is not a filter",
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
