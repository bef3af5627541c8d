"""Replyful simulator: ``GET /v1/conversations`` with Bearer ``rfl_...`` keys, keyset cursors and bracketed bounds."""

from __future__ import annotations

import base64
import bisect
import itertools
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import orjson

from airflow_provider_conversations.testing.dataset import DEFAULT_START, Conversation, generate
from airflow_provider_conversations.testing.server import SimRequest, SimResponse, VendorSimulator

PATH = re.compile(r"^/v1/conversations/?$")
STATUSES = (
    "waiting_for_user", "needs_first_response", "needs_follow_up", "scheduled_ai_response", "assumed_resolved",
    "resolved", "spam", "paused", "investigating", "archived",
)
FINISHED = ("assumed_resolved", "resolved", "spam", "archived")
IN_PROGRESS = tuple(s for s in STATUSES if s not in FINISHED)
WAITING = ("waiting_for_user", "needs_first_response", "needs_follow_up")
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

    def __init__(
        self,
        conversations: int | list[Conversation] = 1000,
        *,
        seed: int = 0,
        start: datetime = DEFAULT_START,
        span: timedelta = timedelta(days=3),
        token: str = "rfl_test_simulator",
        truncate_bounds: bool = False,
        cursor_on_last_page: bool = False,
        in_progress_fraction: float = 0.05,
        **server: Any,
    ) -> None:
        super().__init__(token=token, **server)
        self.truncate_bounds = truncate_bounds
        self.cursor_on_last_page = cursor_on_last_page
        data = conversations if isinstance(conversations, list) else generate(
            conversations, seed=seed, start=start, span=span, precision=timedelta(milliseconds=1),
            in_progress_fraction=in_progress_fraction,
        )
        self._request_ids = itertools.count(1)
        self.records: list[dict[str, Any]] = []
        self._load([self.render(c) for c in data])

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
            "supportLevel": ("ai", "human")[c.direction],
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

    def _load(self, records: list[dict[str, Any]]) -> None:
        with self.lock:
            self.records = sorted(records, key=lambda r: (r["createdAt"], r["id"]))
            self._blobs = [orjson.dumps(r) for r in self.records]
            # Per sort field: row numbers in ascending (time, id) order, and their keys for bisection.
            self._order: dict[str, tuple[list[int], list[tuple[str, str]]]] = {}
            for field in ("createdAt", "updatedAt"):
                keys = [(_record_key(r[field]), r["id"]) for r in self.records]
                rows = sorted(range(len(keys)), key=keys.__getitem__)
                self._order[field] = (rows, [keys[i] for i in rows])
            self._cache: dict[tuple[Any, ...], tuple[list[int], list[tuple[str, str]]]] = {}

    def add(self, conversations: list[Conversation]) -> None:
        """Insert conversations (thread-safe; usable while a walk is running)."""
        with self.lock:
            self._load([*self.records, *(self.render(c) for c in conversations)])

    def finish_all(self) -> None:
        """Resolve every conversation still in progress (``updatedAt`` is left alone, for stable windows)."""
        with self.lock:
            for r in self.records:
                if r["status"] in IN_PROGRESS:
                    r["status"] = "resolved"
                    r["waitingSince"] = None
            self._load(self.records)

    def update(self, ids: list[str], *, at: datetime) -> int:
        """A reply: ``updatedAt`` becomes ``at`` and an open conversation is resolved (``createdAt`` unchanged)."""
        wanted = set(ids)
        found = 0
        with self.lock:
            for r in self.records:
                if r["id"] in wanted:
                    r["updatedAt"] = _iso(at)
                    if r["status"] in IN_PROGRESS:
                        r["status"] = "resolved"
                    r["waitingSince"] = None
                    found += 1
            if found:
                self._load(self.records)
        return found

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
        if request.one("supportLevel") not in (None, "ai", "human"):
            return self._invalid("supportLevel", "'supportLevel' must be one of ai, human")
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
        cache_key = (field, bound_field, bounds.get("gte"), bounds.get("lte"), criteria)
        with self.lock:
            selection = self._cache.get(cache_key)
            if selection is None:
                selection = self._select(field, bound_field, bounds.get("gte"), bounds.get("lte"), criteria)
                self._cache[cache_key] = selection
            rows, keys = selection
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
            page = b",".join(self._blobs[i] for i in chunk)
        cursor = _encode_cursor(sort, last) if last is not None and (more or self.cursor_on_last_page) else None
        tail = orjson.dumps({"hasMore": more, "nextCursor": cursor, "url": "/v1/conversations"})
        return SimResponse(200, b'{"object":"list","data":[' + page + b"]," + tail[1:], {})

    def vendor_fault(self, kind: str, request: SimRequest) -> SimResponse | None:
        normal = self.handle(request)
        if normal.status != 200:
            return None  # a request the API refuses gets its error, not a fault
        token = request.one("startingAfter")
        body = orjson.loads(normal.body)
        if kind == "empty":
            sort = request.one("sort") or "-updatedAt"
            # The same position: after the cursor asked with, or before the first item (the top of the list).
            after = _decode_cursor(token, sort) if token else ("\uffff" if sort.startswith("-") else "", "")
            assert after is not None
            body.update(data=[], hasMore=True, nextCursor=_encode_cursor(sort, after, self.nonce()))
        else:  # stuck: the cursor it was asked with (a first page has none to repeat)
            if not token:
                return None
            body.update(hasMore=True, nextCursor=token)
        return SimResponse.json(200, body)

    def _select(self, field: str, bound_field: str, lo: str | None, hi: str | None,
                criteria: tuple[Any, ...]) -> tuple[list[int], list[tuple[str, str]]]:
        """Rows matching the bounds (on ``bound_field``) and filters, in ascending ``field`` order."""
        rows, keys = self._order[field]
        if bound_field == field:
            a = 0 if lo is None else bisect.bisect_left(keys, (lo,))
            b = len(keys) if hi is None else bisect.bisect_right(keys, (hi, "\uffff"))
            rows, keys = rows[a:b], keys[a:b]
        elif lo is not None or hi is not None:
            picked = [j for j, i in enumerate(rows)
                      if (lo is None or lo <= _record_key(self.records[i][bound_field]))
                      and (hi is None or _record_key(self.records[i][bound_field]) <= hi)]
            rows, keys = [rows[j] for j in picked], [keys[j] for j in picked]
        if not any(criteria):
            return rows, keys
        picked = [j for j, i in enumerate(rows) if _matches(self.records[i], criteria)]
        return [rows[j] for j in picked], [keys[j] for j in picked]


def _criteria(query: dict[str, list[str]]) -> tuple[Any, ...]:
    """The filters of a query as a hashable tuple (repeated values match any of them)."""

    def many(name: str) -> frozenset[str] | None:
        return frozenset(query[name]) if name in query else None

    def one(name: str) -> str | None:
        return query[name][-1] if name in query else None

    q = one("q")
    return (many("status"), many("channelId"), one("assignedToUserId"), one("supportLevel"), many("topicId"),
            many("tagId"), q.lower() if q else None)


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


def _encode_cursor(sort: str, key: tuple[str, str], nonce: int | None = None) -> str:
    """The (key, id) to continue after; a nonce makes a new token for the same position."""
    obj: dict[str, Any] = {"v": 1, "sort": sort, "at": key[0], "id": key[1]}
    if nonce is not None:
        obj["n"] = nonce
    raw = orjson.dumps(obj)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: str) -> tuple[str, str] | None:
    """The (key, id) a cursor points after, or ``None`` if it is malformed or was issued for another sort."""
    try:
        obj = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        return None
    if not isinstance(obj, dict) or obj.get("v") != 1 or obj.get("sort") != sort:
        return None
    at, conv_id = obj.get("at"), obj.get("id")
    if not isinstance(at, str) or not isinstance(conv_id, str):
        return None
    return at, conv_id
