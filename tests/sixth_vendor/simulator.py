"""Chatterbox's loopback simulator: ``GET /v2/workspaces/<workspace>/conversations``, oldest first by ``sort_by``.

Records are kept in the shared :class:`SortedStore`, one index per sortable time field keyed by (time, uid), so
a ``page_token`` (the shared :mod:`cursors` codec) names the last record served and inserts during a walk never
shift it. ``since``/``until`` are inclusive and compared at whole seconds, like the records' own times. The
``empty`` and ``stuck`` continuation faults come from the base, through the four declarations below.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import unquote

import orjson

from airflow_provider_conversations.testing import cursors
from airflow_provider_conversations.testing.dataset import Conversation
from airflow_provider_conversations.testing.server import SimRequest, SimResponse, VendorSimulator
from airflow_provider_conversations.testing.store import SortedStore

PREFIX, SUFFIX = "/v2/workspaces/", "/conversations"
LIVE, WRAPPED = ("open", "on_hold"), ("closed", "abandoned")
SORT_FIELDS = ("opened_at", "last_activity_at")
LABELS = ("refund", "vip", "bug", "praise")
CHANNELS = ("chat", "voice", "email")
ONCE = ("page_size", "page_token", "sort_by", "since", "until", "phase", "min_messages", "max_messages")
MANY = ("label",)
PAGE_DEFAULT, PAGE_MAX = 50, 250
Record = dict[str, Any]
Match = Callable[[Record], bool]
#: A token's position: the sort field, then the (time, uid) key of the last record served ("" before the first).
Position = tuple[str, str, str]


class Refused(Exception):
    """A query parameter the API refuses (422 in Chatterbox's error body)."""

    def __init__(self, param: str, code: str, message: str) -> None:
        super().__init__(message)
        self.param, self.code, self.message = param, code, message


def stamp(ts: datetime) -> str:
    """Chatterbox's wire time: UTC, whole seconds (truncated), ``Z``; fixed width, so strings sort as times."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ChatterboxSimulator(VendorSimulator):
    """Switch: ``workspace`` is the only workspace that exists (any other path segment is a 404)."""

    vendor = "chatterbox"
    auth_header = "X-Chatterbox-Key"
    auth_prefix = ""
    default_token = "cbx-simulator-key"
    id_field = "uid"
    precision = timedelta(seconds=1)
    vendor_fault_kinds: ClassVar[frozenset[str]] = frozenset({"empty", "stuck"})
    items_key, next_cursor_key, has_more_key, cursor_param = "results", "next_page_token", "has_more", "page_token"

    def __init__(self, conversations: int | list[Conversation] = 1000, *, workspace: str = "ws-main",
                 **options: Any) -> None:
        self.workspace = workspace
        super().__init__(conversations, **options)

    # ------------------------------------------------------------------ data

    def render(self, c: Conversation) -> Record:
        states = LIVE if c.in_progress else WRAPPED
        return {
            "uid": c.extra.get("id", f"cbx-{c.index:07d}"),
            "state": c.extra.get("state") or states[c.status % 2],
            "opened_at": stamp(c.created),
            "last_activity_at": stamp(c.updated),
            "channel": CHANNELS[c.channel % len(CHANNELS)],
            "messages": c.turns,
            "talk_seconds": c.duration,
            "labels": [label for bit, label in enumerate(LABELS) if c.status >> (bit + 3) & 1],
            "agent": {"handle": f"agent-{c.agent}"},
        }

    def new_store(self) -> SortedStore:
        keys = {name: (lambda r, name=name: (r[name], r["uid"])) for name in SORT_FIELDS}
        return SortedStore(self.lock, keys=keys, order=keys["opened_at"], id_field="uid")

    def finish_all(self) -> None:
        """Close every live conversation (``last_activity_at`` stays, so windows by it stay put)."""
        self.store.mutate(None, lambda r: r.update(state="closed"), where=lambda r: r["state"] in LIVE)

    def update(self, ids: list[str], *, at: datetime) -> int:
        """A new message: ``last_activity_at`` becomes ``at`` and a live conversation is closed."""

        def message(r: Record) -> None:
            r.update(last_activity_at=stamp(at), messages=r["messages"] + 1)
            if r["state"] in LIVE:
                r["state"] = "closed"

        return self.store.mutate(ids, message)

    def ground_truth(self, start: datetime, end: datetime, *, time_key: str = "created", **filters: Any) -> list[str]:
        """Uids whose ``opened_at`` (``last_activity_at`` for ``updated``) is in ``[start, end)`` and that match the
        filters, given as the hook takes them."""
        field = {"created": "opened_at", "updated": "last_activity_at"}[time_key]
        query = {k: [str(x) for x in (v if isinstance(v, list | tuple) else [v])] for k, v in filters.items()}
        match = matcher(query)
        return [r["uid"] for r in self.records
                if start <= datetime.fromisoformat(r[field]) < end and (match is None or match(r))]

    def connection(self, conn_id: str | None = None, *, token: str | None = None,
                   workspace: str | None = None) -> dict[str, Any]:
        return {"conn_type": "chatterbox", "host": self.url, "password": token or self.token,
                "extra": {"workspace": workspace or self.workspace}}

    # ------------------------------------------------------------------ HTTP

    def error(self, status: int, code: str, message: str, param: str | None = None) -> SimResponse:
        with self.lock:
            n = self.stats.requests
        return SimResponse.json(status, {"errors": {"code": code, "detail": message, "param": param,
                                                    "request_id": f"cbx-req-{n:06d}"}})

    def handle(self, request: SimRequest) -> SimResponse:
        path = request.path.rstrip("/")
        if not (path.startswith(PREFIX) and path.endswith(SUFFIX)):
            return self.error(404, "no_route", f"There is no GET {request.path}")
        if unquote(path[len(PREFIX):-len(SUFFIX)]) != self.workspace:
            return self.error(404, "unknown_workspace", "No such workspace for this key")
        try:
            size, position, lo, hi, match = self._parse(request.query)
        except Refused as exc:
            return self.error(422, exc.code, exc.message, exc.param)
        sort_by, after = position[0], position[1:]
        criteria = tuple(sorted((k, tuple(v)) for k, v in request.query.items() if k in ("phase", *MANY)
                                or k.endswith("_messages")))
        with self.lock:
            selection = self.store.select(sort_by, lo, hi, match=match, cache=criteria)
            keys = selection.keys
            first = bisect.bisect_right(keys, after)
            rows = selection.rows[first:first + size]
            more = first + size < len(keys)
            page = b",".join(self.store.blobs[i] for i in rows)
            last = keys[first + len(rows) - 1] if rows else None
        token = cursors.encode((sort_by, *last)) if more and last else None
        return SimResponse(200, b'{"results":[' + page + b"]," + orjson.dumps(
            {"has_more": more, "next_page_token": token})[1:])

    def _parse(self, query: Mapping[str, list[str]]) -> tuple[int, Position, Any, Any, Match | None]:
        """Page size, position, the store's inclusive bounds and the filters' predicate; raises Refused."""
        for name, values in query.items():
            if name not in ONCE and name not in MANY:
                raise Refused(name, "unknown_parameter", f"{name} is not a parameter of this endpoint")
            if name in ONCE and len(values) > 1:
                raise Refused(name, "repeated_parameter", f"{name} may be given only once")
            if not all(v.strip() for v in values):
                raise Refused(name, "blank_value", f"{name} must not be blank")
        size = number(query, "page_size", 1, PAGE_MAX) or PAGE_DEFAULT
        sort_by = one(query, "sort_by") or "opened_at"
        if sort_by not in SORT_FIELDS:
            raise Refused("sort_by", "invalid_value", f"sort_by must be one of {', '.join(SORT_FIELDS)}")
        since, until = (bound(query, name) for name in ("since", "until"))
        # (time, uid) keys: (since,) sorts before every uid at that second, (until, "~") after every one.
        lo, hi = (None if since is None else (since,)), (None if until is None else (until, "~"))
        return size, self._position(query, sort_by), lo, hi, matcher(query)

    def _position(self, query: Mapping[str, list[str]], sort_by: str) -> Position:
        token = one(query, "page_token")
        if token is None:
            return sort_by, "", ""
        try:
            position = cursors.decode(token, (str, str, str))
        except cursors.InvalidCursor:
            position = None
        if position is None or position[0] != sort_by:
            raise Refused("page_token", "invalid_page_token", "page_token is not a token of this listing")
        return sort_by, position[1], position[2]

    def cursor_position(self, request: SimRequest) -> Position:
        return self._position(request.query, one(request.query, "sort_by") or "opened_at")


def one(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def number(query: Mapping[str, list[str]], name: str, lo: int, hi: int | None = None) -> int | None:
    text = one(query, name)
    if text is None:
        return None
    if not text.isdigit() or int(text) < lo or (hi is not None and int(text) > hi):
        raise Refused(name, "invalid_value", f"{name} must be a whole number from {lo}" + (f" to {hi}" if hi else ""))
    return int(text)


def bound(query: Mapping[str, list[str]], name: str) -> str | None:
    """An inclusive bound, compared at whole seconds (fractions are dropped)."""
    text = one(query, name)
    if text is None:
        return None
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        ts = None
    if ts is None or ts.tzinfo is None:
        raise Refused(name, "invalid_time", f"{name} must be an ISO 8601 time with an offset")
    return stamp(ts)


def matcher(query: Mapping[str, list[str]]) -> Match | None:
    """The predicate of the filters in ``query`` (``None`` without any); raises Refused for a bad value."""
    tests: list[Match] = []
    phase = one(query, "phase")
    if phase is not None:
        states = {"live": LIVE, "wrapped": WRAPPED}.get(phase)
        if states is None:
            raise Refused("phase", "invalid_value", "phase must be live or wrapped")
        tests.append(lambda r: r["state"] in states)
    if "label" in query:
        wanted = frozenset(query["label"])
        tests.append(lambda r: not wanted.isdisjoint(r["labels"]))
    least, most = number(query, "min_messages", 1), number(query, "max_messages", 1)
    if least is not None:
        tests.append(lambda r: r["messages"] >= least)
    if most is not None:
        tests.append(lambda r: r["messages"] <= most)
    return (lambda r: all(test(r) for test in tests)) if tests else None
