"""Replyful simulator: ``GET /v1/conversations`` with Bearer ``rfl_...`` keys, keyset cursors and bracketed bounds."""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import orjson

from airflow_provider_conversations.testing import cursors, transcripts
from airflow_provider_conversations.testing.dataset import Conversation
from airflow_provider_conversations.testing.server import SimRequest, SimResponse, VendorSimulator
from airflow_provider_conversations.testing.store import SortedStore

PATH = re.compile(r"^/v1/conversations/?$")
DETAIL_PATH = re.compile(r"^/v1/conversations/([^/]+)/?$")
STATUSES = (
    "waiting_for_user", "needs_first_response", "needs_follow_up", "scheduled_ai_response", "assumed_resolved",
    "resolved", "spam", "paused", "investigating", "archived",
)
FINISHED = ("assumed_resolved", "resolved", "spam", "archived")
IN_PROGRESS = tuple(s for s in STATUSES if s not in FINISHED)
WAITING = ("waiting_for_user", "needs_first_response", "needs_follow_up")
SUPPORT_LEVELS = ("ai", "human")
SORTS = ("createdAt", "-createdAt", "updatedAt", "-updatedAt")
BOUNDS = ("createdAt[gte]", "createdAt[lte]", "updatedAt[gte]", "updatedAt[lte]")
REPEATABLE = ("status", "channelId", "topicId", "tagId")
SCALAR = ("limit", "startingAfter", "sort", "assignedToUserId", "supportLevel", "q", *BOUNDS)
DEFAULT_LIMIT, MAX_LIMIT = 20, 100
CHANNELS = (("email", "Support email"), ("chat", "Website chat"), ("whatsapp", "WhatsApp"), ("sms", "SMS"),
            ("instagram", "Instagram DMs"))
TOPICS = ("Billing", "Shipping", "Returns")
TAGS = ("vip", "bug")
SUBJECTS = ("Where is my order", "Refund request", "Cannot log in", "Invoice question", "Change of address",
            "Damaged parcel")
#: Shared nested objects (never mutated): rendering a million records must not build a million copies.
_CHANNEL_OBJS = tuple({"id": f"ch_{i:03d}", "name": name, "type": kind} for i, (kind, name) in enumerate(CHANNELS))
_TOPIC_LISTS = tuple([{"id": f"top_{i:03d}", "name": name}] for i, name in enumerate(TOPICS))
_TAG_LISTS = tuple([{"id": f"tag_{name}", "name": name} for i, name in enumerate(TAGS) if bits >> i & 1]
                   for bits in range(1 << len(TAGS)))
ERROR_TYPES = {401: "authentication_error", 404: "invalid_request_error", 422: "invalid_request_error",
               429: "rate_limit_error"}


def _iso(ts: datetime) -> str:
    """Replyful's wire format: ISO 8601 UTC, millisecond precision, ``Z``."""
    if ts.tzinfo is not UTC:
        ts = ts.astimezone(UTC)
    return ts.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def _key(ts: datetime) -> str:
    """A sortable microsecond key; a rendered record's key is its ``_iso`` string with ``000Z`` -> ``000``."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _ceil_hour(ts: datetime) -> datetime:
    floor = ts.replace(minute=0, second=0, microsecond=0)
    return floor if floor == ts else floor + timedelta(hours=1)


def _record_key(rendered: str) -> str:
    return rendered[:-1] + "000"


def _sort_key(field: str) -> Callable[[dict[str, Any]], tuple[str, str]]:
    """A record's place in the ``field`` order: its microsecond key, then its id (the cursor's position)."""
    return lambda r: (_record_key(r[field]), r["id"])


class ReplyfulSimulator(VendorSimulator):
    """Conversations sorted by ``sort`` (default ``-updatedAt``), paged with an opaque keyset cursor.

    The cursor names the last item's (sort value, id), so inserts during a walk never shift it. Switches:
    ``truncate_bounds`` makes the server compare its inclusive bounds at whole seconds (Replyful does not
    document the precision; the hook must be exact either way); ``cursor_on_last_page`` returns a
    ``nextCursor`` with ``hasMore: false`` on the last page (the client must trust ``hasMore``).

    Vendor faults: ``empty`` answers with no conversations, ``hasMore: true`` and a fresh ``nextCursor`` (a new
    token for the same position); ``stuck`` serves the page with ``hasMore: true`` and the ``startingAfter``
    cursor it was asked with as ``nextCursor``.
    """

    vendor = "replyful"
    vendor_fault_kinds: ClassVar[frozenset[str]] = frozenset({"empty", "stuck"})
    default_token = "rfl_test_simulator"
    items_key = "data"
    next_cursor_key = "nextCursor"
    has_more_key = "hasMore"
    cursor_param = "startingAfter"
    precision = timedelta(milliseconds=1)
    detail_path = DETAIL_PATH

    def __init__(
        self,
        conversations: int | list[Conversation] = 1000,
        *,
        truncate_bounds: bool = False,
        cursor_on_last_page: bool = False,
        in_progress_fraction: float = 0.05,
        **options: Any,
    ) -> None:
        self.truncate_bounds = truncate_bounds
        self.cursor_on_last_page = cursor_on_last_page
        self.in_progress_fraction = in_progress_fraction
        self._request_ids = itertools.count(1)
        super().__init__(conversations, **options)

    # ------------------------------------------------------------------ data

    def render(self, c: Conversation) -> dict[str, Any]:
        status = c.extra.get("status") or (
            IN_PROGRESS[c.status % len(IN_PROGRESS)] if c.in_progress else FINISHED[c.status % len(FINISHED)]
        )
        subject = SUBJECTS[(c.status >> 6) % len(SUBJECTS)]
        updated_at = c.updated
        if (c.status >> 8) % 8 == 0:  # an eighth updated exactly on an hour edge: updated windows meet edges too
            updated_at = _ceil_hour(updated_at)
        updated = _iso(updated_at)
        return {
            "id": c.extra.get("id", f"conv_{c.index:08d}"),
            "object": "conversation",
            "title": f"{subject} #{c.user}",
            "status": status,
            "supportLevel": SUPPORT_LEVELS[c.direction],
            "channel": _CHANNEL_OBJS[c.channel % len(CHANNELS)],
            "contact": {"id": f"ct_{c.user:05d}", "name": f"Customer {c.user}",
                        "email": f"customer{c.user}@example.com"},
            "assignedToUser": None if c.agent == 0 else {"id": f"usr_{c.agent:03d}", "name": f"Agent {c.agent}"},
            "topics": _TOPIC_LISTS[c.rating % len(TOPICS)],
            "tags": _TAG_LISTS[(c.status >> 4) % len(_TAG_LISTS)],
            "lastMessagePreview": f"{c.turns} messages so far about {subject.lower()}",
            "createdAt": _iso(c.created),
            "updatedAt": updated,
            "waitingSince": updated if status in WAITING else None,
        }

    def new_store(self) -> SortedStore:
        # Per sort field, (time, id) keys: a cursor names the last one served, so inserts never shift it.
        return SortedStore(self.lock, order=lambda r: (r["createdAt"], r["id"]),
                           keys={field: _sort_key(field) for field in ("createdAt", "updatedAt")})

    def finish_all(self) -> None:
        """Resolve every conversation still in progress (``updatedAt`` is left alone, for stable windows)."""
        self.store.mutate(None, lambda r: r.update(status="resolved", waitingSince=None),
                          where=lambda r: r["status"] in IN_PROGRESS)

    def update(self, ids: list[str], *, at: datetime) -> int:
        """A reply: ``updatedAt`` becomes ``at`` and an open conversation is resolved (``createdAt`` unchanged)."""

        def reply(r: dict[str, Any]) -> None:
            r["updatedAt"] = _iso(at)
            if r["status"] in IN_PROGRESS:
                r["status"] = "resolved"
            r["waitingSince"] = None

        return self.store.mutate(ids, reply)

    def ground_truth(self, start: datetime, end: datetime, *, time_key: str = "created", **filters: Any) -> list[str]:
        """Ids whose ``createdAt`` (or ``updatedAt``) is in ``[start, end)`` and that match the vendor filters."""
        field = {"created": "createdAt", "updated": "updatedAt"}[time_key]
        unknown = set(filters) - {*REPEATABLE, "assignedToUserId", "supportLevel", "q"}
        if unknown:
            raise ValueError(f"unknown Replyful filters {sorted(unknown)}")
        criteria = _criteria({k: [v] if isinstance(v, str) else list(v) for k, v in filters.items()})
        lo, hi = _key(start), _key(end)
        return [r["id"] for r in self.records
                if lo <= _record_key(r[field]) < hi and _matches(r, criteria)]

    def detail(self, conversation_id: str, **options: Any) -> dict[str, Any] | None:
        """The body of ``GET /v1/conversations/{id}``: the Conversation object plus ``messages``, ascending
        ``createdAt`` (``None``: unknown, archived or vanished, a 404 ``conversation_not_found``).

        A message: ``id``, ``object`` (``message``), ``conversationId``, ``role`` (``contact`` for the customer,
        ``agent`` for replies), ``author`` {``type`` (``contact``, ``ai`` or ``human``), ``id``, ``name``},
        ``body`` and ``createdAt``; as many as the conversation's ``c.turns`` (tens for most), spread from its
        creation to its last update.
        """
        if self.vanished(conversation_id):
            return None
        with self.lock:
            stored = self.record(conversation_id)
            r = None if stored is None else dict(stored)
        if r is None or r["status"] == "archived":
            return None
        return {**r, "messages": self._messages(r)}

    def _messages(self, r: dict[str, Any]) -> list[dict[str, Any]]:
        created = datetime.fromisoformat(r["createdAt"])
        span = max(1, int((datetime.fromisoformat(r["updatedAt"]) - created) / timedelta(milliseconds=1)))
        count = int(r["lastMessagePreview"].split(" ", 1)[0])  # the generated turn count the preview announces
        agent = r["assignedToUser"]
        out = []
        for i, turn in enumerate(transcripts.turns(r["id"], count, span, salt="replyful")):
            if turn.role == "agent":
                author = ({"type": "human", "id": agent["id"], "name": agent["name"]} if agent is not None
                          and r["supportLevel"] == "human" else {"type": "ai", "id": "ai_agent", "name": "Replyful AI"})
            else:
                author = {"type": "contact", **r["contact"]}
            out.append({"id": f"msg_{r['id'].removeprefix('conv_')}_{i:03d}", "object": "message",
                        "conversationId": r["id"], "role": "agent" if turn.role == "agent" else "contact",
                        "author": author, "body": turn.text,
                        "createdAt": _iso(created + timedelta(milliseconds=turn.offset))})
        return out

    def handle_detail(self, conversation_id: str, request: SimRequest) -> SimResponse:
        body = self.detail(conversation_id)
        if body is None:
            return self.error(404, "conversation_not_found", f"No conversation with id '{conversation_id}'", "id")
        return SimResponse.json(200, body)

    def connection(self, conn_id: str | None = None, *, token: str | None = None) -> dict[str, Any]:
        return {"conn_type": "replyful", "host": self.url, "password": token or self.token}

    # ------------------------------------------------------------------ HTTP

    def error(self, status: int, code: str, message: str, param: str | None = None) -> SimResponse:
        with self.lock:
            request_id = f"req_{next(self._request_ids):012d}"
        return SimResponse.json(status, {"error": {
            "type": ERROR_TYPES.get(status, "api_error"), "code": code, "message": message, "param": param,
            "docUrl": f"https://docs.replyful.com/errors#{code}", "requestId": request_id,
        }})

    def _invalid(self, param: str, message: str) -> SimResponse:
        return self.error(422, "invalid_query_parameter", message, param)

    def handle(self, request: SimRequest) -> SimResponse:
        if not PATH.match(request.path):
            return self.error(404, "not_found", f"No route for GET {request.path}")
        q = request.query
        for name, values in q.items():
            if name not in SCALAR and name not in REPEATABLE:
                return self._invalid(name, f"Unknown query parameter '{name}'")
            if name in SCALAR and len(values) > 1:
                return self._invalid(name, f"'{name}' may be given only once")
            if any(v == "" for v in values):
                return self._invalid(name, f"'{name}' must not be empty")
        if any(k.startswith("createdAt[") for k in q) and any(k.startswith("updatedAt[") for k in q):
            return self.error(422, "conflicting_date_range",
                              "Use either createdAt or updatedAt ranges, not both")
        limit_text = request.one("limit") or str(DEFAULT_LIMIT)
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIMIT:
            return self._invalid("limit", f"'limit' must be an integer from 1 to {MAX_LIMIT}")
        limit = int(limit_text)
        sort = request.one("sort") or "-updatedAt"
        if sort not in SORTS:
            return self._invalid("sort", f"'sort' must be one of {', '.join(SORTS)}")
        for bad in q.get("status", []):
            if bad not in STATUSES:
                return self._invalid("status", f"'status' must be one of {', '.join(STATUSES)}")
        if request.one("supportLevel") not in (None, *SUPPORT_LEVELS):
            return self._invalid("supportLevel", f"'supportLevel' must be one of {', '.join(SUPPORT_LEVELS)}")
        bounds: dict[str, str] = {}
        for name in BOUNDS:
            value = request.one(name)
            if value is None:
                continue
            try:
                ts = datetime.fromisoformat(value)
            except ValueError:
                ts = None
            if ts is None or ts.tzinfo is None:
                return self._invalid(name, f"'{name}' must be an ISO 8601 timestamp with a time zone")
            if self.truncate_bounds:
                ts = ts.replace(microsecond=0)
            bounds[name.split("[")[1].rstrip("]")] = _key(ts)
        field = sort.lstrip("-")
        bound_field = next((k.split("[")[0] for k in BOUNDS if k in q), field)
        criteria = _criteria({k: q[k] for k in (*REPEATABLE, "assignedToUserId", "supportLevel", "q") if k in q})
        after: tuple[str, str] | None = None
        if request.one("startingAfter"):
            after = _decode_cursor(request.one("startingAfter") or "", sort)
            if after is None:
                return self.error(422, "invalid_cursor", "The startingAfter cursor could not be decoded",
                                  "startingAfter")
        lo, hi = bounds.get("gte"), bounds.get("lte")

        def in_bounds(r: dict[str, Any]) -> bool:
            at = _record_key(r[bound_field])
            return (lo is None or lo <= at) and (hi is None or at <= hi) and _matches(r, criteria)

        with self.lock:
            if bound_field == field:  # the bounds narrow the sort index itself, whose keys are (time, id)
                selection = self.store.select(field, None if lo is None else (lo,),
                                              None if hi is None else (hi, "\uffff"),
                                              match=_matcher(criteria), cache=criteria)
            else:
                selection = self.store.select(field, match=in_bounds, cache=(bound_field, lo, hi, criteria))
            rows, keys = selection.rows, selection.keys
            if sort.startswith("-"):
                end = len(rows) if after is None else bisect.bisect_left(keys, after)
                begin = max(0, end - limit)
                chunk = rows[begin:end][::-1]
                last = keys[begin] if chunk else None
                more = begin > 0
            else:
                begin = 0 if after is None else bisect.bisect_right(keys, after)
                chunk = rows[begin:begin + limit]
                last = keys[begin + len(chunk) - 1] if chunk else None
                more = begin + limit < len(rows)
            page = b",".join(self.store.blobs[i] for i in chunk)
        cursor = _encode_cursor(sort, last) if last is not None and (more or self.cursor_on_last_page) else None
        tail = orjson.dumps({"hasMore": more, "nextCursor": cursor, "url": "/v1/conversations"})
        return SimResponse(200, b'{"object":"list","data":[' + page + b"]," + tail[1:], {})

    def cursor_position(self, request: SimRequest) -> tuple[str, str, str]:
        sort = request.one("sort") or "-updatedAt"
        token = request.one("startingAfter")
        # The cursor asked with, or before the first item (the top of the list).
        after = _decode_cursor(token, sort) if token else ("\uffff" if sort.startswith("-") else "", "")
        assert after is not None
        return (sort, *after)


def _criteria(query: dict[str, list[str]]) -> tuple[Any, ...]:
    """The filters of a query as a hashable tuple (repeated values match any of them)."""

    def many(name: str) -> frozenset[str] | None:
        return frozenset(query[name]) if name in query else None

    def one(name: str) -> str | None:
        return query[name][-1] if name in query else None

    q = one("q")
    return (many("status"), many("channelId"), one("assignedToUserId"), one("supportLevel"), many("topicId"),
            many("tagId"), q.lower() if q else None)


def _matcher(criteria: tuple[Any, ...]) -> Callable[[dict[str, Any]], bool] | None:
    """The record predicate of the filters (``None`` when there are none: the selection is then a slice)."""
    return (lambda r: _matches(r, criteria)) if any(criteria) else None


def _ids(objects: Iterable[dict[str, Any]] | None) -> set[str]:
    return {o["id"] for o in objects or ()}


def _matches(r: dict[str, Any], criteria: tuple[Any, ...]) -> bool:
    statuses, channels, assignee, level, topics, tags, text = criteria
    if statuses is not None and r["status"] not in statuses:
        return False
    if channels is not None and r["channel"]["id"] not in channels:
        return False
    if assignee is not None:
        user = r["assignedToUser"]
        if (user is not None) if assignee == "unassigned" else (user is None or user["id"] != assignee):
            return False
    if level is not None and r["supportLevel"] != level:
        return False
    if topics is not None and not topics & _ids(r["topics"]):
        return False
    if tags is not None and not tags & _ids(r["tags"]):
        return False
    return text is None or text in r["title"].lower() or text in (r["lastMessagePreview"] or "").lower()


def _encode_cursor(sort: str, key: tuple[str, str]) -> str:
    """The (key, id) to continue after, for one sort order."""
    return cursors.encode((sort, *key))


def _decode_cursor(cursor: str, sort: str) -> tuple[str, str] | None:
    """The (key, id) a cursor points after, or ``None`` if it is malformed or was issued for another sort."""
    try:
        position = cursors.decode(cursor, (str, str, str))
    except cursors.InvalidCursor:
        return None
    if position is None or position[0] != sort:
        return None
    return position[1], position[2]
