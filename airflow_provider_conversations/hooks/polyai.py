"""PolyAI Conversations API (seed 002): regional bases, v3 cursor paging (default) or v1 offset paging."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from airflow_provider_conversations.catalog import BY_CONN_TYPE, POLYAI_REGIONS
from airflow_provider_conversations.engine.paginators import BodyCursorPaginator, Item, OffsetPaginator
from airflow_provider_conversations.exceptions import ConfigurationError, InvalidFilterError, InvalidResponseError
from airflow_provider_conversations.filters import Filter, FilterSet
from airflow_provider_conversations.hooks.base import ConnectionSettings, ConversationsHook, Paging, TimeKey
from airflow_provider_conversations.hooks.messages import Message, at_iso, entries, message
from airflow_provider_conversations.hooks.statuses import BooleanStatus
from airflow_provider_conversations.transport.connection import path_segment
from airflow_provider_conversations.transport.errors import envelope, flat_error, validation_errors
from airflow_provider_conversations.transport.session import Params
from airflow_provider_conversations.windows import Window, iso_z, parse_iso, widen

REGIONS = POLYAI_REGIONS
CLIENT_ENVS = BY_CONN_TYPE["polyai"].field("client_env").choices
#: API version -> largest page (``limit``) it accepts.
API_VERSIONS = {"v3": 1000, "v1": 5000}
#: Filters that only the v3 API understands.
V3_ONLY = ("channel", "include_latency")


class PolyAIHook(ConversationsHook):
    """Lists PolyAI conversations by ``started_at``.

    Connection: Password = API key (sent as ``x-api-key``); extras ``account_id`` and ``project_id``
    (required), ``region`` (``us-1`` default, ``uk-1``, ``euw-1``), ``client_env`` (``live`` default),
    ``api_version`` (``v3`` default, or ``v1``). Host, when set, replaces the regional base URL.
    """

    conn_type = "polyai"
    hook_name = "PolyAI"
    duration_field = "total_duration"
    time_keys = {"created": TimeKey("created", "started_at", parse_iso)}
    id_field = "id"
    max_page_size = max(API_VERSIONS.values())
    # No status field: the boolean in_progress is read as the status "in_progress" or "finished".
    statuses = BooleanStatus.of("in_progress")
    error_envelope = envelope(flat_error, validation_errors)
    #: The list items carry ``turns``; the documented detail endpoints disagree on host and casing: no request.
    details_inline = True
    filter_set = FilterSet(
        vendor="PolyAI",
        filters=(
            Filter("variant_id", description="only conversations of this variant id"),
            Filter("variant_name", description="only conversations of this variant name"),
            Filter("in_progress", "bool", description="true: live only; false: finished only"),
            Filter("include_context_state", "bool", description="include the agent's context_state"),
            Filter("channel", repeatable=True, description="v3 only: channels to include (repeatable)"),
            Filter("include_latency", "bool", description="v3 only: include latency metrics"),
        ),
        exclusive=(("variant_id", "variant_name"),),
        reserved={
            "start_time": "the hook sets it from the window; pass start/end instead",
            "end_time": "the hook sets it from the window; pass start/end instead",
            "limit": "the hook pages; pass page_size to the hook instead",
            "offset": "the hook pages; it is not a filter",
            "cursor": "the hook pages; it is not a filter",
            "client_env": "it comes from the connection's client_env field",
        },
    )
    #: Bounds of undocumented inclusivity and precision: ask for a little more, cut exactly client-side.
    bound_margin = timedelta(seconds=1)

    def validate_extras(self, extras: Mapping[str, Any], secret: str) -> None:
        missing = [f for f in ("account_id", "project_id") if not extras.get(f)]
        if missing:
            raise ConfigurationError(
                f"PolyAI connection {self.conn_id!r} is missing {' and '.join(missing)}: set them in the "
                "connection form (they are the path of the conversations endpoint)"
            )

    def auth_headers(self, settings: ConnectionSettings) -> dict[str, str]:
        return {"x-api-key": settings.secret}

    @property
    def api_version(self) -> str:
        version: str = self.settings.extras.get("api_version", "v3")
        return version

    def page_limit(self) -> int:
        return API_VERSIONS[self.api_version]

    def list_path(self, settings: ConnectionSettings) -> str:
        account, project = path_segment(settings.extras["account_id"]), path_segment(settings.extras["project_id"])
        return f"{self.api_version}/{account}/{project}/conversations"

    def check_connection_filters(self, filters: Mapping[str, Any]) -> None:
        if self.api_version == "v1":
            for name in V3_ONLY:
                if name in filters:
                    raise InvalidFilterError(
                        f"PolyAI filter {name!r} needs api_version v3, but connection {self.conn_id!r} uses v1"
                    )

    def fixed_params(self, key: TimeKey) -> Params:
        return {"client_env": self.settings.extras.get("client_env", "live")}

    def window_params(self, window: Window, key: TimeKey) -> Params:
        lo, hi = widen(window, self.bound_margin)
        return {"start_time": iso_z(lo), "end_time": iso_z(hi)}

    def paging(self, key: TimeKey, page_size: int, window: Window | None) -> Paging:
        if self.api_version == "v1":
            # Ascending and offset-based: rows inserted during the walk land after it, never shift it.
            return Paging(OffsetPaginator(page_size, next_offset="next_offset"), order="asc", repeats=True)
        return Paging(BodyCursorPaginator("limit", page_size, "cursor", cursor="cursor"), order="asc")

    def page_items(self, body: Any) -> list[Item]:
        items = body.get("conversations") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise InvalidResponseError(
                f"PolyAI returned a body without a 'conversations' list: {str(body)[:120]!r}", vendor=self.vendor
            )
        return items

    def messages_of(self, record: Item) -> list[Message] | None:
        turns = entries(record.get("turns"))
        if turns is None:
            return None
        out: list[Message] = []
        for turn in turns:
            if "role" in turn:  # one message per entry
                out.append(message(turn.get("role"), turn.get("text"), at_iso(turn.get("at"))))
                continue
            # A turn is the user's input and the agent's response to it; either may be missing or empty (the
            # greeting has no user input): an empty side is no message.
            if turn.get("user_input"):
                out.append(message("user", turn["user_input"], at_iso(turn.get("user_input_datetime"))))
            if turn.get("agent_response"):
                out.append(message("agent", turn["agent_response"], at_iso(turn.get("agent_response_datetime"))))
        return out

    @classmethod
    def finished_filters(cls, filters: Mapping[str, Any]) -> dict[str, Any]:
        if filters.get("in_progress") is True:
            raise InvalidFilterError(
                "finished_only=True contradicts PolyAI filter in_progress=True; drop one of them"
            )
        return {"in_progress": False}

    @classmethod
    def in_progress_filters(cls, filters: Mapping[str, Any]) -> dict[str, Any] | None:
        if filters.get("in_progress") is False:
            return None
        return {"in_progress": True}
