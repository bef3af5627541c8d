"""ElevenLabs Agents Platform conversations (seed 003): regional bases, newest-first cursor paging."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_conversations.exceptions import ConfigurationError, InvalidFilterError, InvalidResponseError
from airflow_provider_conversations.filters import Filter, FilterSet, Params
from airflow_provider_conversations.hooks.base import (
    ConnectionSettings,
    ConversationsHook,
    TimeKey,
    Walk,
    unix_bounds,
)
from airflow_provider_conversations.paging import BodyCursorPaginator, Item
from airflow_provider_conversations.windows import Window, parse_unix

REGIONS = {
    "global": "https://api.elevenlabs.io",
    "us": "https://api.us.elevenlabs.io",
    "eu-residency": "https://api.eu.residency.elevenlabs.io",
    "in-residency": "https://api.in.residency.elevenlabs.io",
    "sg-residency": "https://api.sg.residency.elevenlabs.io",
}
IN_PROGRESS = ("initiated", "in-progress", "processing")
FINISHED = ("done", "failed")
STATUSES = (*IN_PROGRESS, *FINISHED)
EVALUATION_RESULTS = ("success", "failure", "unknown")
DATA_COLLECTION_OPS = ("eq", "neq", "gt", "gte", "lt", "lte", "in", "exists", "missing")
#: ``id:op:value``; ``in`` takes ``a|b|c``; ``exists``/``missing`` take no value (``id:exists`` or ``id:exists:``).
DATA_COLLECTION_PATTERN = (
    r"[^:\s]+:(?:(?:eq|neq|gt|gte|lt|lte):.+|in:[^|]+(?:\|[^|]+)*|(?:exists|missing):?)"
)


class ElevenLabsHook(ConversationsHook):
    """Lists ElevenLabs Agents conversations by ``start_time_unix_secs``.

    Connection: Password = API key (sent as ``xi-api-key``); extra ``region`` (``global`` default, ``us``,
    ``eu-residency``, ``in-residency``, ``sg-residency``). Host, when set, replaces the regional base URL.
    """

    conn_type = "elevenlabs"
    default_conn_name = "elevenlabs_default"
    hook_name = "ElevenLabs"
    vendor = "elevenlabs"
    duration_field = "call_duration_secs"
    extra_fields = ("region",)
    time_keys = {"created": TimeKey("created", "start_time_unix_secs", parse_unix)}
    id_field = "conversation_id"
    max_page_size = 100
    in_progress_statuses = frozenset(IN_PROGRESS)
    finished_statuses = frozenset(FINISHED)
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
                   description="data collection conditions (repeatable)"),
            Filter("main_languages", repeatable=True, description="detected main language codes (repeatable)"),
            Filter("summary_mode", "enum", choices=("exclude", "include"),
                   description="include transcript summaries in the records (vendor default: exclude)"),
            Filter("search", description="deprecated by ElevenLabs: full-text search over transcripts"),
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

    def resolve_default_base_url(self, extras: Mapping[str, Any]) -> str | None:
        return REGIONS[extras.get("region", "global")]

    def validate_extras(self, extras: Mapping[str, Any], secret: str) -> None:
        region = extras.get("region", "global")
        if region not in REGIONS:
            raise ConfigurationError(
                f"ElevenLabs connection {self.conn_id!r} has region={region!r}; allowed: {', '.join(REGIONS)}"
            )

    def auth_headers(self, settings: ConnectionSettings) -> dict[str, str]:
        return {"xi-api-key": settings.secret}

    def list_path(self, settings: ConnectionSettings) -> str:
        return "v1/convai/conversations"

    def validate_filters(self, filters: Mapping[str, Any] | None) -> dict[str, Any]:
        validated = super().validate_filters(filters)
        if "search" in validated:
            self.log.warning(
                "ElevenLabs has deprecated the 'search' filter (full-text search over transcripts); it is still "
                "sent, but may stop working or be ignored by the API"
            )
        if "data_collection_params" in validated:
            # The documented form is id:op:value: 'id:exists' is sent as 'id:exists:' (an empty value).
            validated["data_collection_params"] = [
                f"{v}:" if v.count(":") == 1 else v for v in validated["data_collection_params"]
            ]
        return validated

    def new_walk(self, window: Window | None, time_key: TimeKey, filters: Mapping[str, Any],
                 page_size: int) -> Walk:
        params: Params = {"page_size": str(page_size), **self.filter_set.to_params(filters)}
        if window is not None:
            # Whole seconds of undocumented inclusivity: ask for a second more each side, cut exactly here.
            after, before = unix_bounds(window)
            params["call_start_after_unix"] = str(after)
            params["call_start_before_unix"] = str(before)
        paginator = BodyCursorPaginator("cursor", lambda body: body.get("next_cursor"),
                                        has_more_of=lambda body: body.get("has_more") is True)
        # ElevenLabs lists newest first (Decision); Dedup falls back to every id if that ever breaks.
        return Walk(params, paginator, order="desc")

    def page_items(self, body: Any) -> list[Item]:
        items = body.get("conversations") if isinstance(body, dict) else None
        if not isinstance(items, list) or not isinstance(body.get("has_more"), bool):
            raise InvalidResponseError(
                f"ElevenLabs returned a body without a 'conversations' list and a boolean 'has_more': "
                f"{str(body)[:120]!r}", vendor=self.vendor,
            )
        if body["has_more"] and not body.get("next_cursor"):
            raise InvalidResponseError(
                "ElevenLabs announced has_more=true without a next_cursor; the walk cannot continue and would "
                "silently miss conversations", vendor=self.vendor,
            )
        return items

    def finished_filters(self, filters: Mapping[str, Any]) -> dict[str, Any]:
        excluded = _merge(filters.get("exclude_statuses"), IN_PROGRESS)
        if set(FINISHED) <= set(excluded):
            raise InvalidFilterError(
                "finished_only=True contradicts ElevenLabs filter exclude_statuses="
                f"{_as_list(filters.get('exclude_statuses'))!r}: every finished status (done, failed) is excluded"
            )
        return {"exclude_statuses": excluded}

    def in_progress_filters(self, filters: Mapping[str, Any]) -> dict[str, Any] | None:
        excluded = _merge(filters.get("exclude_statuses"), FINISHED)
        if set(STATUSES) <= set(excluded):
            return None
        return {"exclude_statuses": excluded}

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
