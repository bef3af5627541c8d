"""Replyful conversations (seed 004): bracketed date bounds, startingAfter/nextCursor paging, a 100/60 s limit."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar

from airflow_provider_conversations.engine.details import DetailEndpoint
from airflow_provider_conversations.engine.paginators import BodyCursorPaginator, Item
from airflow_provider_conversations.exceptions import ConfigurationError, InvalidFilterError, InvalidResponseError
from airflow_provider_conversations.filters import Filter, FilterSet
from airflow_provider_conversations.hooks.base import ConnectionSettings, ConversationsHook, Paging, TimeKey
from airflow_provider_conversations.hooks.messages import Message, at_iso, entries, first, message
from airflow_provider_conversations.hooks.statuses import Statuses
from airflow_provider_conversations.transport.errors import envelope, nested_error
from airflow_provider_conversations.transport.session import Params
from airflow_provider_conversations.transport.throttle import RateLimitHeaders
from airflow_provider_conversations.windows import Window, iso_z, parse_iso, widen

#: Replyful's own status list, in its documented order (requests and error messages use this order).
STATUSES = (
    "waiting_for_user", "needs_first_response", "needs_follow_up", "scheduled_ai_response", "assumed_resolved",
    "resolved", "spam", "paused", "investigating", "archived",
)
#: An assumption (Replyful does not document it): nobody has to act on these any more. ``assumed_resolved``
#: counts as finished (Replyful closed it for lack of a reply); a later reply reopens it with a new status and
#: updatedAt.
FINISHED = ("assumed_resolved", "resolved", "spam", "archived")
IN_PROGRESS = tuple(s for s in STATUSES if s not in FINISHED)
SUPPORT_LEVELS = ("ai", "human")
#: Where a Replyful message says who wrote it, and what it says (first present wins).
MESSAGE_ROLE = ("role", "authorType", "author.type", "sender.type", "senderType", "from")
MESSAGE_TEXT = ("text", "body", "content", "message")
_WINDOW = "the hook sets it from the window and time_key; pass start/end instead"


class ReplyfulHook(ConversationsHook):
    """Lists Replyful conversations by ``createdAt`` (time_key ``created``) or ``updatedAt`` (``updated``).

    Connection: Password = API key (``rfl_live_...`` or ``rfl_test_...``, sent as ``Authorization: Bearer``).
    Host, when set, replaces ``https://api.replyful.com``. The hook sorts ascending on the time key itself and
    sends only that key's ``[gte]``/``[lte]`` bounds, since Replyful refuses created and updated bounds together.
    Requests are paced from the ``RateLimit-*`` headers (100 requests per 60 s per key).
    """

    conn_type = "replyful"
    hook_name = "Replyful"
    duration_field = None  # threads, not calls: Replyful has no duration
    default_base_url = "https://api.replyful.com"
    time_keys = {
        "created": TimeKey("created", "createdAt", parse_iso),
        "updated": TimeKey("updated", "updatedAt", parse_iso),
    }
    id_field = "id"
    max_page_size = 100
    rate_limit_headers = RateLimitHeaders()
    error_envelope = envelope(nested_error)
    #: The conversation plus ``messages`` (ascending ``createdAt``); archived ones answer 404. Counted in the limit.
    detail_endpoint = DetailEndpoint("v1/conversations/{id}")
    statuses = Statuses.of("status", in_progress=IN_PROGRESS, finished=FINISHED)
    filter_set = FilterSet(
        vendor="Replyful",
        filters=(
            Filter("status", "enum", choices=STATUSES, repeatable=True,
                   description="conversations in any of these statuses (repeatable)"),
            Filter("channelId", repeatable=True, description="conversations of any of these channels (repeatable)"),
            Filter("assignedToUserId", description="the assignee's user id, or 'unassigned' for no assignee"),
            Filter("supportLevel", "enum", choices=SUPPORT_LEVELS,
                   description="who currently handles the conversation"),
            Filter("topicId", repeatable=True, description="conversations tagged with these topics (repeatable)"),
            Filter("tagId", repeatable=True, description="conversations with these tags (repeatable)"),
            Filter("q", description="full-text search over the title and message content"),
        ),
        reserved={
            "limit": "the hook pages; pass page_size to the hook instead",
            "startingAfter": "the hook pages; it is not a filter",
            "sort": "the hook sorts ascending on the time key so that paging is exact; pass time_key instead",
            "createdAt[gte]": _WINDOW,
            "createdAt[lte]": _WINDOW,
            "updatedAt[gte]": _WINDOW,
            "updatedAt[lte]": _WINDOW,
        },
    )
    #: Keys are ``rfl_live_...`` or ``rfl_test_...``; anything else is refused before a request is sent.
    #: A subclass may set this to ``None`` should Replyful introduce other key shapes.
    api_key_pattern: ClassVar[re.Pattern[str] | None] = re.compile(r"rfl_(?:live|test)_\S+")
    #: The precision at which Replyful compares its inclusive bounds is undocumented: ask for a second more on
    #: each side (bounds are sent at millisecond precision, like Replyful's own timestamps); the base cuts
    #: ``[start, end)`` exactly.
    bound_margin: ClassVar[timedelta] = timedelta(seconds=1)

    def validate_extras(self, extras: Mapping[str, Any], secret: str) -> None:
        pattern = self.api_key_pattern
        if pattern is not None and not pattern.fullmatch(secret):
            raise ConfigurationError(
                f"connection {self.conn_id!r} has a Password that is not a Replyful API key (not shown here): "
                "Replyful keys start with rfl_live_ (live data) or rfl_test_ (test mode) and contain no spaces; "
                "paste the key alone, without 'Bearer '"
            )
        if secret.startswith("rfl_test_"):
            self.log.info("connection %r uses a Replyful test-mode key: it sees test-mode data only", self.conn_id)

    def auth_headers(self, settings: ConnectionSettings) -> dict[str, str]:
        return {"Authorization": f"Bearer {settings.secret}"}

    def list_path(self, settings: ConnectionSettings) -> str:
        return "v1/conversations"

    def fixed_params(self, key: TimeKey) -> Params:
        return {"sort": key.field}  # ascending on the time key, with an opaque keyset cursor: no repeats

    def window_params(self, window: Window, key: TimeKey) -> Params:
        lo, hi = widen(window, self.bound_margin)
        # Only this time key's bounds: mixing createdAt and updatedAt bounds is a 422 conflicting_date_range.
        return {f"{key.field}[gte]": iso_z(lo, timespec="milliseconds"),
                f"{key.field}[lte]": iso_z(hi, timespec="milliseconds")}

    def paging(self, key: TimeKey, page_size: int, window: Window | None) -> Paging:
        return Paging(BodyCursorPaginator("limit", page_size, "startingAfter", cursor="nextCursor", has_more="hasMore"),
                      order="asc")

    def page_items(self, body: Any) -> list[Item]:
        if not (isinstance(body, dict) and body.get("object") == "list" and isinstance(body.get("data"), list)
                and isinstance(body.get("hasMore"), bool)):
            raise InvalidResponseError(
                "Replyful returned a body that is not a list envelope "
                f"({{'object': 'list', 'data': [...], 'hasMore': bool, 'nextCursor': ...}}): {str(body)[:120]!r}",
                vendor=self.vendor,
            )
        items: list[Item] = body["data"]
        if not all(isinstance(item, dict) for item in items):
            raise InvalidResponseError(
                f"Replyful returned a 'data' list holding something other than objects: {str(items)[:120]!r}",
                vendor=self.vendor,
            )
        return items

    @classmethod
    def finished_filters(cls, filters: Mapping[str, Any]) -> dict[str, Any]:
        return {"status": _narrow(filters, FINISHED, "finished", "finished_only=True")}

    @classmethod
    def in_progress_filters(cls, filters: Mapping[str, Any]) -> dict[str, Any] | None:
        user = filters.get("status")
        if user is not None and not set([user] if isinstance(user, str) else user) & set(IN_PROGRESS):
            return None  # only finished statuses selected: nothing in the window can be in progress
        return {"status": _narrow(filters, IN_PROGRESS, "in progress", "looking for in-progress conversations")}

    def messages_of(self, record: Item) -> list[Message] | None:
        detail = record.get("detail")
        found = entries(detail.get("messages"), "data") if isinstance(detail, dict) else None
        if found is None:
            return None
        return [message(first(m, MESSAGE_ROLE), first(m, MESSAGE_TEXT), at_iso(m.get("createdAt"))) for m in found]

    def channel_of(self, item: Item) -> str | None:
        channel = item.get("channel")
        return (channel.get("type") or channel.get("name")) if isinstance(channel, dict) else None


def _narrow(filters: Mapping[str, Any], statuses: tuple[str, ...], kind: str, purpose: str) -> list[str]:
    """``statuses`` intersected with the user's own ``status`` filter, in Replyful's order."""
    user = filters.get("status")
    if user is None:
        return list(statuses)
    chosen = [user] if isinstance(user, str) else list(user)
    kept = [s for s in statuses if s in chosen]
    if not kept:
        raise InvalidFilterError(
            f"{purpose} contradicts Replyful filter status={chosen!r}: none of those statuses is {kind} "
            f"({kind}: {', '.join(statuses)})"
        )
    return kept
