"""ElevenLabs simulator: ``GET /v1/convai/conversations`` with ``xi-api-key`` auth, newest first, cursor paging."""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar

import orjson

from airflow_provider_conversations.testing import cursors
from airflow_provider_conversations.testing.dataset import EPOCH, Conversation
from airflow_provider_conversations.testing.server import SimRequest, SimResponse, VendorSimulator
from airflow_provider_conversations.testing.store import SortedStore, compact_json

PATH = "/v1/convai/conversations"
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 30
IN_PROGRESS = ("initiated", "in-progress", "processing")
FINISHED = ("done", "failed")
STATUSES = (*IN_PROGRESS, *FINISHED)
RESULTS = ("success", "failure", "unknown")
SOURCES = ("twilio", "sip_trunk", "widget", "js_sdk", "whatsapp", "unknown")
LANGUAGES = ("en", "en", "en", "de", "fr", "es", "hi")
TOPICS = ("billing", "support", "sales", "onboarding")
TAGS = ("vip", "escalated", "follow-up")
CRITERIA = ("resolved", "polite")
CITIES = ("paris", "berlin", "madrid", "delhi")
OPS = ("eq", "neq", "gt", "gte", "lt", "lte", "in", "exists", "missing")
SCALARS = ("agent_id", "call_successful", "call_start_before_unix", "call_start_after_unix",
           "call_duration_min_secs", "call_duration_max_secs", "rating_min", "rating_max", "user_id",
           "page_size", "summary_mode", "search", "conversation_initiation_source", "branch_id", "cursor")
NOT_FILTERS = ("page_size", "cursor", "call_start_after_unix", "call_start_before_unix", "summary_mode")
LISTS = ("evaluation_params", "data_collection_params", "main_languages", "topic_ids", "exclude_statuses", "tag_ids")
EVALUATION = re.compile(r"([^:]+):(success|failure|unknown)")
DATA_COLLECTION = re.compile(r"([^:]+):([a-z]+)(?::(.*))?", re.DOTALL)

Key = tuple[int, str]
#: A cursor's position: the key of the last item served, or ``None`` for the top of the list.
Position = Key | None
Match = Callable[[dict[str, Any]], bool]


def _unix(ts: datetime) -> int:
    return (ts - EPOCH) // timedelta(seconds=1)


class _Invalid(Exception):
    def __init__(self, param: str, code: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.code = code
        self.message = message


class ElevenLabsSimulator(VendorSimulator):
    """Conversations newest first by ``start_time_unix_secs`` (ties: larger id first), keyset cursors.

    ``bounds`` picks how the server compares ``call_start_after_unix`` / ``call_start_before_unix``
    (undocumented by ElevenLabs): ``"inclusive"`` (default) or ``"exclusive"``; the hook must be exact under
    both. Filters act on simple generated attributes rendered in each record (``evaluation_results``,
    ``data_collection_results``, ``main_language``, ``topic_ids``, ``tag_ids``, ...). Repeated values of
    ``main_languages``, ``topic_ids`` and ``tag_ids`` match any; ``evaluation_params`` and
    ``data_collection_params`` must all hold.

    Vendor faults: ``empty`` answers with no conversations, ``has_more: true`` and a fresh cursor (a new token
    for the same position); ``stuck`` serves the page with ``has_more: true`` and the cursor it was asked with.
    """

    vendor = "elevenlabs"
    auth_header = "xi-api-key"
    auth_prefix = ""
    id_field = "conversation_id"
    vendor_fault_kinds: ClassVar[frozenset[str]] = frozenset({"empty", "stuck"})
    items_key = "conversations"
    next_cursor_key = "next_cursor"
    has_more_key = "has_more"
    cursor_param = "cursor"
    precision = timedelta(seconds=1)

    def __init__(self, conversations: int | list[Conversation] = 1000, *, bounds: str = "inclusive",
                 **options: Any) -> None:
        if bounds not in ("inclusive", "exclusive"):
            raise ValueError(f"bounds={bounds!r}; allowed: 'inclusive', 'exclusive'")
        self.bounds = bounds
        super().__init__(conversations, **options)

    # ------------------------------------------------------------------ data

    def render(self, c: Conversation) -> dict[str, Any]:
        bits = c.status
        in_progress = c.in_progress
        status = IN_PROGRESS[bits % 3] if in_progress else ("failed" if bits % 10 == 0 else "done")
        collected: dict[str, Any] = {"order_total": (c.channel * 7) % 500, "city": CITIES[c.user % len(CITIES)]}
        if c.turns % 3:
            collected["email"] = f"user{c.user}@example.com"
        return {
            "agent_id": f"agent_{c.agent}",
            "branch_id": f"branch_{c.agent}_{bits % 2}" if bits % 4 else None,
            "agent_name": f"Agent {c.agent}",
            "conversation_id": c.extra.get("id", f"conv_{c.index:08d}"),
            "start_time_unix_secs": _unix(c.created),
            "call_duration_secs": c.duration,
            "message_count": c.turns,
            "status": status,
            "call_successful": "unknown" if in_progress else RESULTS[(bits >> 4) % 3],
            "transcript_summary": None,
            "call_summary_title": f"Call about {TOPICS[c.channel % len(TOPICS)]}",
            "direction": ("inbound", "outbound")[c.direction],
            "rating": None if in_progress else c.rating,
            "user_id": f"user_{c.user}",
            "conversation_initiation_source": SOURCES[c.channel % len(SOURCES)],
            "main_language": LANGUAGES[(c.channel >> 3) % len(LANGUAGES)],
            "topic_ids": [TOPICS[c.channel % len(TOPICS)]] + ([TOPICS[(c.channel >> 2) % len(TOPICS)]]
                                                               if bits % 5 == 0 else []),
            "tag_ids": [t for i, t in enumerate(TAGS) if (bits >> (8 + i)) & 1],
            "evaluation_results": {k: RESULTS[(bits >> (10 + 2 * i)) % 3] for i, k in enumerate(CRITERIA)},
            "data_collection_results": collected,
        }

    @staticmethod
    def summary(record: Mapping[str, Any]) -> str:
        """The transcript summary served with ``summary_mode=include`` (and searched by ``search``)."""
        return (f"{record['user_id']} talked to {record['agent_name']} about {record['call_summary_title'][11:]} "
                f"in {record['main_language']}")

    def new_store(self) -> SortedStore:
        def key(r: dict[str, Any]) -> Key:
            return r["start_time_unix_secs"], r["conversation_id"]

        # "key" places a cursor; "start" is what the call_start_* bounds compare.
        return SortedStore(self.lock, order=key, keys={"key": key, "start": lambda r: r["start_time_unix_secs"]},
                           blob=compact_json, id_field="conversation_id")

    def finish_all(self) -> None:
        self.store.mutate(None, lambda r: r.update(status="done"), where=lambda r: r["status"] in IN_PROGRESS)

    def update(self, ids: list[str], *, at: datetime) -> int:
        """A message is added and a live conversation ends (ElevenLabs lists carry no update time: ``at`` is
        unused)."""

        def reply(r: dict[str, Any]) -> None:
            if r["status"] in IN_PROGRESS:
                r["status"] = "done"
            r["message_count"] += 1

        return self.store.mutate(ids, reply)

    def ground_truth(self, start: datetime, end: datetime, *, time_key: str = "created", **filters: Any) -> list[str]:
        """Ids with ``start <= start_time_unix_secs < end`` that match ``filters`` (given as the hook takes them)."""
        if time_key != "created":
            raise ValueError(f"ElevenLabs conversations have only the 'created' time key, not {time_key!r}")
        query = {k: [str(x) for x in v] if isinstance(v, list | tuple) else [str(v)]
                 for k, v in filters.items() if k not in NOT_FILTERS and v is not None}
        match = self._matcher(query) or (lambda r: True)
        lo, hi = start.timestamp(), end.timestamp()
        return [r["conversation_id"] for r in self.records if lo <= r["start_time_unix_secs"] < hi and match(r)]

    def connection(self, conn_id: str | None = None, *, token: str | None = None,
                   region: str | None = None) -> dict[str, Any]:
        return {
            "conn_type": "elevenlabs",
            "host": self.url,
            "password": token or self.token,
            "extra": {"region": region} if region else {},
        }

    # ------------------------------------------------------------------ HTTP

    def error(self, status: int, code: str, message: str, param: str | None = None) -> SimResponse:
        kind = {400: "invalid_request", 401: "authentication_error", 403: "authorization_error",
                404: "not_found", 422: "validation_error", 429: "rate_limit_error"}.get(status, "server_error")
        with self.lock:
            n = self.stats.requests
        return SimResponse.json(status, {"detail": {
            "type": kind, "code": code, "message": message, "request_id": f"req_{n:08d}", "param": param,
        }})

    def handle(self, request: SimRequest) -> SimResponse:
        if request.path.rstrip("/") != PATH:
            return self.error(404, "not_found", f"no route {request.path}")
        q = request.query
        for name, values in q.items():
            if name not in SCALARS and name not in LISTS:
                return self.error(422, "unknown_parameter", f"Unknown query parameter '{name}'", name)
            if name in SCALARS and len(values) > 1:
                return self.error(422, "invalid_parameter", "Parameter given more than once", name)
        filters = {k: v for k, v in q.items() if k not in NOT_FILTERS}
        try:
            limit = _int(request, "page_size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
            after = _int(request, "call_start_after_unix", None)
            before = _int(request, "call_start_before_unix", None)
            summary_mode = request.one("summary_mode") or "exclude"
            _enum("summary_mode", [summary_mode], ("exclude", "include"))
            match = self._matcher(filters)
            cursor = _decode_cursor(request.one("cursor") or "") if request.one("cursor") else None
        except _Invalid as exc:
            return self.error(422, exc.code, exc.message, exc.param)
        inclusive = self.bounds == "inclusive"
        with self.lock:
            store = self.store
            rows = store.select("start", after, before, inclusive=(inclusive, inclusive), match=match,
                                cache=tuple(sorted((k, tuple(v)) for k, v in filters.items()))).rows
            keys = store.index("key").keys
            end = len(rows) if cursor is None else bisect.bisect_left(rows, bisect.bisect_left(keys, cursor))
            chunk = [rows[i] for i in range(end - 1, max(0, end - limit) - 1, -1)]
            if summary_mode == "include":
                records = store.records
                page = b",".join(orjson.dumps({**records[i], "transcript_summary": self.summary(records[i])})
                                 for i in chunk)
            else:
                page = b",".join(store.blobs[i] for i in chunk)
            last = keys[chunk[-1]] if chunk else None
        # The cursor of the last item is sent on the last page too: has_more is what says "stop".
        tail = {"next_cursor": cursors.encode(last) if last else None, "has_more": end - limit > 0}
        return SimResponse(200, b'{"conversations":[' + page + b"]," + orjson.dumps(tail)[1:], {})

    def cursor_position(self, request: SimRequest) -> Position:
        token = request.one("cursor")
        return _decode_cursor(token) if token else None

    def _matcher(self, query: Mapping[str, list[str]]) -> Match | None:
        """One predicate for the filters in ``query`` (``None`` when there are none); raises _Invalid."""
        tests = [t for name, values in query.items() for t in _tests(name, values, self.summary)]
        if not tests:
            return None
        return lambda r: all(t(r) for t in tests)


def _tests(name: str, values: list[str], summary: Callable[[Mapping[str, Any]], str]) -> list[Match]:
    """The record predicates of one query parameter (each call is its own closure scope)."""
    value = values[-1]
    if name in ("agent_id", "user_id", "branch_id", "conversation_initiation_source"):
        return [lambda r: r[name] == value]
    if name == "call_successful":
        _enum(name, values, RESULTS)
        return [lambda r: r["call_successful"] == value]
    if name in ("call_duration_min_secs", "call_duration_max_secs", "rating_min", "rating_max"):
        duration = name.startswith("call")
        bound = _parse_int(name, value, 0 if duration else 1, None if duration else 5)
        field = "call_duration_secs" if duration else "rating"
        if "_min" in name:
            return [lambda r: r[field] is not None and r[field] >= bound]
        return [lambda r: r[field] is not None and r[field] <= bound]
    if name == "main_languages":
        languages = frozenset(values)
        return [lambda r: r["main_language"] in languages]
    if name in ("topic_ids", "tag_ids"):
        wanted = frozenset(values)
        return [lambda r: not wanted.isdisjoint(r[name])]
    if name == "exclude_statuses":
        _enum(name, values, STATUSES)
        excluded = frozenset(values)
        return [lambda r: r["status"] not in excluded]
    if name == "evaluation_params":
        return [_evaluation(v) for v in values]
    if name == "data_collection_params":
        return [_data_collection(v) for v in values]
    if name == "search":
        needle = value.lower()
        return [lambda r: needle in summary(r).lower()]
    raise _Invalid(name, "unknown_parameter", f"Unknown filter '{name}'")


def _evaluation(value: str) -> Match:
    m = EVALUATION.fullmatch(value)
    if not m:
        raise _Invalid("evaluation_params", "invalid_format", f"Expected criteria_id:result, got '{value}'")
    criteria, result = m[1], m[2]
    return lambda r: r["evaluation_results"].get(criteria) == result


# ---------------------------------------------------------------------- helpers


def _int(request: SimRequest, name: str, default: int | None, lo: int | None = None,
         hi: int | None = None) -> Any:
    value = request.one(name)
    return default if value is None else _parse_int(name, value, lo, hi)


def _parse_int(name: str, value: str, lo: int | None, hi: int | None) -> int:
    try:
        number = int(value)
    except ValueError:
        raise _Invalid(name, "invalid_integer", "Input should be a valid integer") from None
    if (lo is not None and number < lo) or (hi is not None and number > hi):
        rng = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise _Invalid(name, "out_of_range", f"Input should be {rng}, got {number}")
    return number


def _enum(name: str, values: list[str], allowed: tuple[str, ...]) -> None:
    for v in values:
        if v not in allowed:
            raise _Invalid(name, "invalid_enum_value", f"Input should be one of {', '.join(allowed)}; got '{v}'")


def _data_collection(value: str) -> Match:
    m = DATA_COLLECTION.fullmatch(value)
    if not m or m[2] not in OPS:
        raise _Invalid("data_collection_params", "invalid_format",
                       f"Expected id:op:value with op one of {'|'.join(OPS)}, got '{value}'")
    field, op, arg = m[1], m[2], m[3]
    if op in ("exists", "missing"):
        if arg:
            raise _Invalid("data_collection_params", "invalid_format", f"'{op}' takes no value, got '{value}'")
        return (lambda r: field in r["data_collection_results"]) if op == "exists" else (
            lambda r: field not in r["data_collection_results"])
    if not arg:
        raise _Invalid("data_collection_params", "invalid_format", f"'{op}' needs a value, got '{value}'")
    if op in ("in", "eq", "neq"):
        options = frozenset(arg.split("|")) if op == "in" else frozenset((arg,))

        def equal(r: dict[str, Any]) -> bool:
            collected = r["data_collection_results"]
            return field in collected and str(collected[field]) in options

        return equal if op != "neq" else (lambda r: not equal(r))
    try:
        number = float(arg)
    except ValueError:
        raise _Invalid("data_collection_params", "invalid_format", f"'{op}' needs a number, got '{value}'") from None
    compare: Callable[[float], bool] = {
        "gt": lambda x: x > number, "gte": lambda x: x >= number, "lt": lambda x: x < number,
        "lte": lambda x: x <= number,
    }[op]

    def test(r: dict[str, Any]) -> bool:
        v = r["data_collection_results"].get(field)
        return isinstance(v, int | float) and not isinstance(v, bool) and compare(v)

    return test


def _decode_cursor(token: str) -> Position:
    try:
        position = cursors.decode(token, (int, str))
    except cursors.InvalidCursor:
        raise _Invalid("cursor", "invalid_cursor", "Cursor could not be decoded") from None
    return None if position is None else (position[0], position[1])
