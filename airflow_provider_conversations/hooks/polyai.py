"""PolyAI Conversations API (seed 002): regional bases, v3 cursor paging (default) or v1 offset paging."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from airflow_provider_conversations.exceptions import (
    ConfigurationError,
    InvalidFilterError,
    InvalidResponseError,
)
from airflow_provider_conversations.filters import Filter, FilterSet, Params
from airflow_provider_conversations.hooks import path_segment, path_segment_problem
from airflow_provider_conversations.hooks.base import (
    ConnectionSettings,
    ConversationsHook,
    TimeKey,
    Walk,
    widen,
)
from airflow_provider_conversations.paging import BodyCursorPaginator, Item, OffsetPaginator
from airflow_provider_conversations.windows import Window, iso_z, parse_iso

REGIONS = {
    "us-1": "https://api.us-1.platform.polyai.app",
    "uk-1": "https://api.uk-1.platform.polyai.app",
    "euw-1": "https://api.euw-1.platform.polyai.app",
}
CLIENT_ENVS = ("sandbox", "pre-release", "live")
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
    default_conn_name = "polyai_default"
    hook_name = "PolyAI"
    vendor = "polyai"
    duration_field = "total_duration"
    extra_fields = ("region", "account_id", "project_id", "client_env", "api_version")
    time_keys = {"created": TimeKey("created", "started_at", parse_iso)}
    id_field = "id"
    max_page_size = max(API_VERSIONS.values())
    status_field = None
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

    def resolve_default_base_url(self, extras: Mapping[str, Any]) -> str | None:
        return REGIONS[extras.get("region", "us-1")]

    def validate_extras(self, extras: Mapping[str, Any], secret: str) -> None:
        missing = [f for f in ("account_id", "project_id") if not extras.get(f)]
        if missing:
            raise ConfigurationError(
                f"PolyAI connection {self.conn_id!r} is missing {' and '.join(missing)}: set them in the "
                "connection form (they are the path of the conversations endpoint)"
            )
        for name in ("account_id", "project_id"):
            problem = path_segment_problem(extras[name])
            if problem:
                raise ConfigurationError(f"PolyAI connection {self.conn_id!r} has {name}={extras[name]!r}; {problem}")
        for name, allowed in (("region", tuple(REGIONS)), ("client_env", CLIENT_ENVS),
                              ("api_version", tuple(API_VERSIONS))):
            if name in extras and extras[name] not in allowed:
                raise ConfigurationError(
                    f"PolyAI connection {self.conn_id!r} has {name}={extras[name]!r}; allowed: "
                    + ", ".join(allowed)
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
        e = settings.extras
        account, project = path_segment(e["account_id"]), path_segment(e["project_id"])
        return f"{e.get('api_version', 'v3')}/{account}/{project}/conversations"

    def new_walk(self, window: Window | None, time_key: TimeKey, filters: Mapping[str, Any],
                 page_size: int) -> Walk:
        version = self.api_version
        if version == "v1":
            for name in V3_ONLY:
                if name in filters:
                    raise InvalidFilterError(
                        f"PolyAI filter {name!r} needs api_version v3, but connection {self.conn_id!r} uses v1"
                    )
        params: Params = {
            "client_env": self.settings.extras.get("client_env", "live"),
            "limit": str(page_size),
            **self.filter_set.to_params(filters),
        }
        if window is not None:
            lo, hi = widen(window, self.bound_margin)
            params["start_time"] = iso_z(lo)
            params["end_time"] = iso_z(hi)
        if version == "v1":
            # Ascending and offset-based: rows inserted during the walk land after it, never shift it.
            return Walk(params, OffsetPaginator("offset", page_size, next_offset_of=_next_offset),
                        order="asc", repeats=True)
        return Walk(params, BodyCursorPaginator("cursor", lambda body: body.get("cursor")), order="asc")

    def page_items(self, body: Any) -> list[Item]:
        items = body.get("conversations") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise InvalidResponseError(
                f"PolyAI returned a body without a 'conversations' list: {str(body)[:120]!r}", vendor=self.vendor
            )
        return items

    def finished_filters(self, filters: Mapping[str, Any]) -> dict[str, Any]:
        if filters.get("in_progress") is True:
            raise InvalidFilterError(
                "finished_only=True contradicts PolyAI filter in_progress=True; drop one of them"
            )
        return {"in_progress": False}

    def in_progress_filters(self, filters: Mapping[str, Any]) -> dict[str, Any] | None:
        if filters.get("in_progress") is False:
            return None
        return {"in_progress": True}

    def is_finished(self, item: Item) -> bool:
        return item.get("in_progress") is False

    def is_in_progress(self, item: Item) -> bool:
        return item.get("in_progress") is True

    def status_of(self, item: Item) -> Any:
        return "in_progress" if item.get("in_progress") else "finished"

    def finished_of(self, item: Item) -> bool | None:
        return not item["in_progress"] if isinstance(item.get("in_progress"), bool) else None


def _next_offset(body: Any) -> int | None:
    value = body.get("next_offset") if isinstance(body, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
