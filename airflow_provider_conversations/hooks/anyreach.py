"""Anyreach (seed 001): bare newest-first arrays, paged by a Base64 ``created_at`` cursor without a tie-breaker.

The cursor is the trap. It holds only a timestamp, and Anyreach does not say whether the server compares it
strictly (``created_at < cursor``) or inclusively (``<=``). A client that just follows it loses the
conversations that share the last timestamp of a page (strict) or gets them again, and never leaves a page
that lies on one instant (inclusive). :class:`TieSafeCursorPaginator` below never trusts the comparison.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal

from airflow_provider_conversations.engine.details import DetailEndpoint
from airflow_provider_conversations.engine.paginators import Answer, Item, Paginator, Request
from airflow_provider_conversations.exceptions import ConfigurationError, InvalidResponseError, PaginationError
from airflow_provider_conversations.filters import Filter, FilterSet
from airflow_provider_conversations.hooks.base import ConnectionSettings, ConversationsHook, Paging, TimeKey
from airflow_provider_conversations.hooks.messages import Message, at_iso, entries, first, message
from airflow_provider_conversations.hooks.statuses import Statuses
from airflow_provider_conversations.transport.errors import detail_text, envelope, validation_errors
from airflow_provider_conversations.transport.session import Params
from airflow_provider_conversations.windows import Window, iso_z, parse_iso

MAX_LIMIT = 1000
ONE_MICROSECOND = timedelta(microseconds=1)
DIRECTIONS = ("inbound", "outbound")
CHANNELS = ("telephone", "webrtc", "email", "text")
IN_PROGRESS = ("token_created", "triggered", "ringing", "in_progress")
FINISHED = ("completed", "failed", "cancelled", "transferred", "unanswered")
#: Every field of a listed conversation (the last six are "sensitive": only for tokens with
#: ``conversations:read_sensitive``, so never required here).
FIELDS = (
    "id", "organization_id", "direction", "channel", "status", "user_id", "agent_id", "agent_version_id",
    "agent_number", "web_widget_id", "duration", "user_turn_count", "created_at", "updated_at",
    "agent", "summary", "initial_context", "custom_metadata", "conversation", "recording_details",
)
#: Fields a ``fields`` projection always gets: de-duplication needs ``id``, paging ``created_at``, and the
#: ``updated`` time key ``updated_at``.
ALWAYS_REQUESTED = ("id", "created_at", "updated_at")
_FIELD = "(?:" + "|".join(FIELDS) + ")"


def _with_required_fields(fields: str) -> str:
    """A ``fields`` projection plus what paging and de-duplication need (``ALWAYS_REQUESTED``)."""
    wanted = [f.strip() for f in fields.split(",")]
    return ",".join(dict.fromkeys([*wanted, *ALWAYS_REQUESTED]))


Comparison = Literal["strict", "inclusive"]


@dataclass
class TieSafeCursorPaginator(Paginator):
    """Anyreach's timestamp cursor, made exact whatever the server's comparison and however many ties.

    After a full page whose last conversation was created at ``T``, the next request must return every
    conversation created at or before ``T``: the ones at ``T`` already seen are dropped by de-duplication
    (which keeps the ids of the frontier instant), the others at ``T`` are exactly the ones a strict
    server would skip. How "at or before ``T``" is spelled depends on the server, learnt once per walk:

    - a one-item probe ``cursor=b64(T)&created_after=T`` (the documented inclusive bound) returns a
      conversation at ``T`` from an inclusive server and nothing from a strict one. It returns nothing
      older than ``T``, so de-duplication's frontier never moves past conversations still to come;
    - inclusive: ``cursor=b64(T)``; strict: ``cursor=b64(T + 1 µs)``, written like the vendor's own string
      (same offset style, six fractional digits). The first such strict answer must contain a conversation
      at ``T`` (the one that ended the last page), otherwise the server does not compare at microsecond
      precision and paging cannot be exact: the walk fails instead of silently losing conversations.

    A full page that lies entirely on one instant means at least ``limit`` conversations share it; asking
    "at or before ``T``" again would return the same page forever. It is asked once more with the maximum
    ``limit`` so the whole group fits; when even 1000 share one instant the API cannot page past them and
    :class:`PaginationError` says so. Each request changes the cursor or the limit, so a walk needs at most
    about two requests per page plus one probe, and a server that ignores the cursor (answers with
    conversations newer than ``T``) stops the walk at once.
    """

    page_size: int
    max_limit: int = MAX_LIMIT
    #: The server's cursor comparison, once learnt (a walk starts not knowing it).
    comparison: Comparison | None = None
    #: The ``limit`` of the request in flight.
    limit: int = field(default=0, init=False)
    #: A strict cursor has been seen to return the conversations at ``T`` (so their absence later means
    #: they were deleted meanwhile, not that the cursor skips them).
    _strict_verified: bool = field(default=False, repr=False)
    #: The probe in flight: ``T``, ``T`` as the vendor wrote it, and the request it interrupted (params, limit).
    _probing: tuple[datetime, str, Params, int] | None = field(default=None, repr=False)
    #: The last continuation asked for "at or before ``T``": ``T`` and how the vendor wrote it.
    _asked: tuple[datetime, str] | None = field(default=None, repr=False)
    state_fields: ClassVar[tuple[str, ...]] = ("comparison", "limit", "_strict_verified", "_probing", "_asked")

    def first(self, params: Params) -> Params:
        self.limit = self.page_size
        return {"limit": str(self.limit), **params}

    def next(self, answer: Answer) -> Request | None:
        params, items = answer.request.params, answer.items
        if self._probing is not None:
            t, raw, interrupted, next_limit = self._probing
            self._probing = None
            self._learn(items, t, raw)
            return self._at_or_before(interrupted, t, raw, next_limit)
        if self._asked is not None:
            self._check(items, *self._asked)
            self._asked = None
        limit = self.limit
        if len(items) < limit:
            return None
        first, last = _created(items[0]), _created(items[-1])
        raw = str(items[-1]["created_at"])
        if first == last:
            if limit >= self.max_limit:
                raise PaginationError(
                    f"at least {limit} Anyreach conversations share created_at {raw}: the API's cursor is that "
                    "timestamp alone, so it cannot page past them without losing or repeating conversations. "
                    "Narrow the request with filters (e.g. channel or direction) so that fewer than "
                    f"{self.max_limit} share one instant"
                )
            next_limit = self.max_limit  # the whole group at T must fit on one page
        else:
            next_limit = self.page_size
        if self.comparison is None:
            self._probing = (last, raw, params, next_limit)
            self.limit = 1
            return Request({**params, "limit": "1", "cursor": _b64(raw), "created_after": raw})
        return self._at_or_before(params, last, raw, next_limit)

    def _at_or_before(self, params: Params, t: datetime, raw: str, limit: int) -> Request:
        """The request for conversations created at or before ``t``, spelt for this server."""
        self._asked = (t, raw)
        self.limit = limit
        cursor = raw if self.comparison == "inclusive" else _just_after(raw, t)
        return Request({**params, "limit": str(limit), "cursor": _b64(cursor)})

    def _learn(self, items: list[Item], t: datetime, raw: str) -> None:
        newest = _created(items[0]) if items else None
        if newest is None:
            self.comparison = "strict"
        elif newest == t:
            self.comparison = "inclusive"
        else:
            raise PaginationError(
                f"Anyreach answered the probe cursor={raw}&created_after={raw} with a conversation created at "
                f"{items[0].get('created_at')}: it ignores its cursor or its created_after bound, so it cannot be "
                "paged exactly"
            )

    def _check(self, items: list[Item], t: datetime, raw: str) -> None:
        newest = _created(items[0]) if items else None
        if newest is not None and newest > t:
            raise PaginationError(
                f"Anyreach answered a cursor at {raw} with a conversation created later "
                f"({items[0].get('created_at')}): it is not walking back from the cursor; stopping instead of "
                "repeating or looping"
            )
        if self.comparison != "strict" or self._strict_verified:
            return
        if newest != t:
            raise PaginationError(
                f"Anyreach's cursor compares strictly, but cursor {_just_after(raw, t)} (one microsecond after "
                f"{raw}) did not return the conversations created at {raw}: the server does not compare cursors at "
                "microsecond precision, so conversations sharing a timestamp would be lost"
            )
        self._strict_verified = True


class AnyreachHook(ConversationsHook):
    """Lists Anyreach conversations by ``created_at`` or ``updated_at``.

    Connection: Password = organisation API key (``ak_...``) or personal access token (``pat_...``), sent as
    ``Authorization: Bearer``; a ``pat_`` token also needs extra ``org_id`` (sent as ``X-Anyreach-Org``).
    Host, when set, replaces https://api.anyreach.ai.
    """

    conn_type = "anyreach"
    hook_name = "Anyreach"
    duration_field = "duration"
    default_base_url = "https://api.anyreach.ai"
    time_keys = {
        "created": TimeKey("created", "created_at", parse_iso),
        "updated": TimeKey("updated", "updated_at", parse_iso),
    }
    id_field = "id"
    max_page_size = MAX_LIMIT
    statuses = Statuses.of("status", in_progress=IN_PROGRESS, finished=FINISHED)
    error_envelope = envelope(detail_text, validation_errors)
    #: The full conversation; its transcript (``conversation``) only with the ``conversations:read_sensitive`` scope.
    detail_endpoint = DetailEndpoint("core/conversations/{id}", scope="conversations:read_sensitive")
    filter_set = FilterSet(
        vendor="Anyreach",
        filters=(
            Filter("direction", "enum", choices=DIRECTIONS, description="who initiated the conversation"),
            Filter("channel", "enum", choices=CHANNELS, description="the conversation channel"),
            Filter("status", "enum", choices=(*IN_PROGRESS, *FINISHED), description="current state (one value)"),
            Filter("user_id", description="end user id (partial match)"),
            Filter("agent_id", description="agent id"),
            Filter("agent_version_id", description="agent version id"),
            Filter("agent_number", description="agent phone number (partial match)"),
            Filter("web_widget_id", description="web widget id"),
            Filter("duration_above", "int", minimum=0, description="lasting at least this many seconds"),
            Filter("duration_below", "int", minimum=0, description="lasting at most this many seconds"),
            Filter("user_turn_count_above", "int", minimum=0, description="at least this many user turns"),
            Filter("user_turn_count_below", "int", minimum=0, description="at most this many user turns"),
            Filter("custom_metadata", "json", description="match attached metadata (sent as a JSON string)"),
            Filter("fields", pattern=rf"\s*{_FIELD}\s*(?:,\s*{_FIELD}\s*)*",
                   pattern_hint="of comma-separated field names from: " + ", ".join(FIELDS),
                   description="projection; id, created_at and updated_at are always added",
                   normalize=_with_required_fields),
        ),
        ordered=(("duration_above", "duration_below"), ("user_turn_count_above", "user_turn_count_below")),
        reserved={
            "limit": "the hook pages; pass page_size to the hook instead",
            "cursor": "the hook pages; it is not a filter",
            **{f"{key}_{side}": "the hook sets it from the window; pass start/end (and time_key) instead"
               for key in ("created", "updated") for side in ("after", "before")},
        },
    )

    def validate_extras(self, extras: Mapping[str, Any], secret: str) -> None:
        if secret.startswith("pat_") and not extras.get("org_id"):
            raise ConfigurationError(
                f"Anyreach connection {self.conn_id!r} uses a personal access token (pat_...) but has no org_id: "
                "set Organisation ID in the connection form (it is sent as X-Anyreach-Org), or use an "
                "organisation API key (ak_...)"
            )

    def auth_headers(self, settings: ConnectionSettings) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {settings.secret}"}
        if settings.secret.startswith("pat_"):  # an ak_ key carries its organisation itself
            headers["X-Anyreach-Org"] = str(settings.extras["org_id"])
        return headers

    def list_path(self, settings: ConnectionSettings) -> str:
        return "core/conversations"

    def window_params(self, window: Window, key: TimeKey) -> Params:
        # Both bounds are inclusive: [start, end - 1 µs] is the half-open window at microsecond precision.
        return {f"{key.name}_after": iso_z(window.start), f"{key.name}_before": iso_z(window.end - ONE_MICROSECOND)}

    def paging(self, key: TimeKey, page_size: int, window: Window | None) -> Paging:
        # The walk is ordered by created_at whatever the time key; for updated_at it has no order.
        return Paging(TieSafeCursorPaginator(page_size), order="desc" if key.name == "created" else None)

    def page_items(self, body: Any) -> list[Item]:
        if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
            raise InvalidResponseError(
                f"Anyreach returned something other than a JSON array of conversations: {str(body)[:120]!r}",
                vendor=self.vendor,
            )
        return body

    def messages_of(self, record: Item) -> list[Message] | None:
        detail = record.get("detail")
        source = detail if isinstance(detail, dict) else record
        found = entries(source.get("conversation"), "turns", "messages", "transcript")
        if found is None:
            return None
        return [message(first(t, ("role", "speaker", "sender")), first(t, ("text", "content", "message")),
                        at_iso(first(t, ("timestamp", "created_at", "time", "at")))) for t in found]

    @classmethod
    def finished_filters(cls, filters: Mapping[str, Any]) -> dict[str, Any]:
        # ``status`` takes one value, so "any finished status" cannot be asked for: records are checked instead.
        cls.refuse_in_progress_status(filters)
        return {}

    @classmethod
    def in_progress_filters(cls, filters: Mapping[str, Any]) -> dict[str, Any] | None:
        return None  # four in-progress statuses, one status filter: the sensor checks every record


def _created(item: Item) -> datetime:
    ts = parse_iso(item.get("created_at"))
    if ts is None:
        raise InvalidResponseError(
            f"Anyreach returned a conversation (id={item.get('id')!r}) without a valid 'created_at' "
            f"({item.get('created_at')!r}); it is needed to page",
            vendor="anyreach",
        )
    return ts


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _just_after(raw: str, t: datetime) -> str:
    """``t`` + 1 µs written like the vendor wrote ``raw``: same offset style, six fractional digits."""
    parsed = datetime.fromisoformat(raw)
    nxt = t + ONE_MICROSECOND
    sep = raw[10] if len(raw) > 10 and raw[10] in "Tt " else "T"
    if parsed.tzinfo is None:  # the vendor documents UTC; keep its offset-less spelling
        return nxt.replace(tzinfo=None).isoformat(sep=sep, timespec="microseconds")
    text = nxt.astimezone(parsed.tzinfo).isoformat(sep=sep, timespec="microseconds")
    return text.removesuffix("+00:00") + "Z" if raw.endswith(("Z", "z")) else text
