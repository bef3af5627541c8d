"""Chatterbox, a fictional vendor declared in one file. Unlike the built-ins, its bounds ``since``/``until`` are
inclusive whole seconds, as its times are: they select a window exactly, with no margin to cut."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from airflow_provider_conversations.catalog import FormField
from airflow_provider_conversations.engine.paginators import BodyCursorPaginator, Item
from airflow_provider_conversations.exceptions import ConfigurationError, InvalidFilterError, InvalidResponseError
from airflow_provider_conversations.filters import Filter, FilterSet
from airflow_provider_conversations.hooks.base import ConnectionSettings, ConversationsHook, Paging, TimeKey
from airflow_provider_conversations.hooks.statuses import Statuses
from airflow_provider_conversations.transport.connection import path_segment
from airflow_provider_conversations.transport.errors import envelope, phoenix_errors
from airflow_provider_conversations.transport.session import Params
from airflow_provider_conversations.windows import Window, iso_z, parse_iso

PHASES = {"live": ("open", "on_hold"), "wrapped": ("closed", "abandoned")}
_BOUND = "the hook sets it from the window and time_key; pass start/end instead"


class ChatterboxHook(ConversationsHook):
    conn_type = "chatterbox"
    hook_name = "Chatterbox"
    form_fields = (FormField("workspace", "Workspace", "Workspace id (a segment of the endpoint's URL path).",
                             path_segment=True),)
    default_base_url = "https://api.chatterbox.example"
    time_keys = {"created": TimeKey("created", "opened_at", parse_iso),
                 "updated": TimeKey("updated", "last_activity_at", parse_iso)}
    id_field = "uid"
    duration_field = "talk_seconds"
    max_page_size = 250
    error_envelope = envelope(phoenix_errors)
    statuses = Statuses.of("state", in_progress=PHASES["live"], finished=PHASES["wrapped"])
    filter_set = FilterSet(
        vendor="Chatterbox",
        filters=(
            Filter("phase", "enum", choices=tuple(PHASES), description="live (open, on_hold) or wrapped"),
            Filter("label", repeatable=True, description="conversations with any of these labels (repeatable)"),
            Filter("min_messages", "int", minimum=1, description="at least this many messages"),
            Filter("max_messages", "int", minimum=1, description="at most this many messages"),
        ),
        ordered=(("min_messages", "max_messages"),),
        reserved={"page_token": "the hook pages; it is not a filter",
                  "page_size": "the hook pages; pass page_size to the hook instead",
                  "sort_by": "the hook sorts oldest first on the time key; pass time_key instead",
                  "since": _BOUND, "until": _BOUND},
    )

    def validate_extras(self, extras: Mapping[str, Any], secret: str) -> None:
        if not extras.get("workspace"):
            raise ConfigurationError(f"Chatterbox connection {self.conn_id!r} has no workspace: set it in the "
                                     "connection form (it is part of the conversations endpoint's path)")

    def auth_headers(self, settings: ConnectionSettings) -> dict[str, str]:
        return {"X-Chatterbox-Key": settings.secret}

    def list_path(self, settings: ConnectionSettings) -> str:
        return f"v2/workspaces/{path_segment(settings.extras['workspace'])}/conversations"

    def fixed_params(self, key: TimeKey) -> Params:
        return {"sort_by": key.field}

    def window_params(self, window: Window, key: TimeKey) -> Params:
        # [start, end) is [floor(start), the last whole second before end], both inclusive.
        last = window.end - timedelta(microseconds=1)
        return {"since": iso_z(window.start.replace(microsecond=0)), "until": iso_z(last.replace(microsecond=0))}

    def paging(self, key: TimeKey, page_size: int, window: Window | None) -> Paging:
        return Paging(BodyCursorPaginator("page_size", page_size, "page_token", cursor="next_page_token",
                                          has_more="has_more"), order="asc")

    def page_items(self, body: Any) -> list[Item]:
        items = body.get("results") if isinstance(body, dict) else None
        if not (isinstance(items, list) and isinstance(body.get("has_more"), bool)
                and all(isinstance(item, dict) for item in items)):
            raise InvalidResponseError(f"Chatterbox returned a body that is not a page of 'results' objects with a "
                                       f"boolean 'has_more': {str(body)[:120]!r}", vendor=self.vendor)
        return items

    @classmethod
    def finished_filters(cls, filters: Mapping[str, Any]) -> dict[str, Any]:
        if filters.get("phase") == "live":
            raise InvalidFilterError("finished_only=True contradicts Chatterbox filter phase='live'; drop one of them")
        return {"phase": "wrapped"}

    @classmethod
    def in_progress_filters(cls, filters: Mapping[str, Any]) -> dict[str, Any] | None:
        return None if filters.get("phase") == "wrapped" else {"phase": "live"}
