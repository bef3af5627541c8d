"""ElevenLabs simulator: ``GET /v1/convai/conversations`` with ``xi-api-key`` auth, newest first, cursor paging."""

from __future__ import annotations

import base64
import bisect
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

import orjson

from airflow_provider_conversations.testing.dataset import DEFAULT_START, EPOCH, Conversation, generate
from airflow_provider_conversations.testing.server import SimRequest, SimResponse, VendorSimulator

PATH = "/v1/convai/conversations"
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 30
IN_PROGRESS = ("initiated", "in-progress", "processing")
STATUSES = (*IN_PROGRESS, "done", "failed")
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

    def __init__(
        self,
        conversations: int | list[Conversation] = 1000,
        *,
        seed: int = 0,
        start: datetime = DEFAULT_START,
        span: timedelta = timedelta(days=3),
        bounds: str = "inclusive",
        **server: Any,
    ) -> None:
        super().__init__(**server)
        if bounds not in ("inclusive", "exclusive"):
            raise ValueError(f"bounds={bounds!r}; allowed: 'inclusive', 'exclusive'")
        self.bounds = bounds
        data = conversations if isinstance(conversations, list) else generate(
            conversations, seed=seed, start=start, span=span, precision=timedelta(seconds=1),
            in_progress_fraction=0.05,
        )
        self.records: list[dict[str, Any]] = []
        self._load([self.render(c) for c in data])

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

    def _load(self, records: list[dict[str, Any]]) -> None:
        with self.lock:
            self.records = sorted(records, key=lambda r: (r["start_time_unix_secs"], r["conversation_id"]))
            self._keys: list[Key] = [(r["start_time_unix_secs"], r["conversation_id"]) for r in self.records]
            self._times = [k[0] for k in self._keys]
            # A copy of exact size: orjson hands back a buffer with several KiB of spare capacity.
            self._blobs = [bytes(memoryview(orjson.dumps(r))) for r in self.records]
            self._cache: dict[tuple[Any, ...], Sequence[int]] = {}

    def add(self, conversations: list[Conversation]) -> None:
        """Insert conversations (e.g. while a walk is running); keyset cursors stay valid."""
        with self.lock:
            self._load([*self.records, *(self.render(c) for c in conversations)])

    def finish_all(self) -> None:
        with self.lock:
            for r in self.records:
                if r["status"] in IN_PROGRESS:
                    r["status"] = "done"
            self._load(self.records)

    def update(self, ids: list[str], *, at: datetime) -> int:
        """A message is added and a live conversation ends (ElevenLabs lists carry no update time: ``at`` is
        unused)."""
        wanted = set(ids)
        found = 0
        with self.lock:
            for i, r in enumerate(self.records):
                if r["conversation_id"] in wanted:
                    if r["status"] in IN_PROGRESS:
                        r["status"] = "done"
                    r["message_count"] += 1
                    self._blobs[i] = bytes(memoryview(orjson.dumps(r)))
                    found += 1
            self._cache = {}
        return found

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
        key = (after, before, tuple(sorted((k, tuple(v)) for k, v in filters.items())))
        with self.lock:
            rows = self._cache.get(key)
            if rows is None:
                rows = self._select(after, before, match)
                self._cache[key] = rows
            end = len(rows) if cursor is None else bisect.bisect_left(rows, bisect.bisect_left(self._keys, cursor))
            chunk = [rows[i] for i in range(end - 1, max(0, end - limit) - 1, -1)]
            if summary_mode == "include":
                page = b",".join(orjson.dumps({**self.records[i], "transcript_summary": self.summary(self.records[i])})
                                 for i in chunk)
            else:
                page = b",".join(self._blobs[i] for i in chunk)
            last = self._keys[chunk[-1]] if chunk else None
        # The cursor of the last item is sent on the last page too: has_more is what says "stop".
        tail = {"next_cursor": _encode_cursor(last) if last else None, "has_more": end - limit > 0}
        return SimResponse(200, b'{"conversations":[' + page + b"]," + orjson.dumps(tail)[1:], {})

    def vendor_fault(self, kind: str, request: SimRequest) -> SimResponse | None:
        normal = self.handle(request)
        if normal.status != 200:
            return None  # a request the API refuses gets its error, not a fault
        token = request.one("cursor")
        body = orjson.loads(normal.body)
        if kind == "empty":
            position = _decode_cursor(token) if token else None
            body.update(conversations=[], has_more=True, next_cursor=_encode_cursor(position, self.nonce()))
        else:  # stuck: the cursor it was asked with (a first page has none to repeat)
            if not token:
                return None
            body.update(has_more=True, next_cursor=token)
        return SimResponse.json(200, body)

    def _select(self, after: int | None, before: int | None, match: Match | None) -> Sequence[int]:
        times, inclusive = self._times, self.bounds == "inclusive"
        a = 0 if after is None else (bisect.bisect_left if inclusive else bisect.bisect_right)(times, after)
        b = len(times) if before is None else (bisect.bisect_right if inclusive else bisect.bisect_left)(times, before)
        if match is None:
            return range(a, b)
        records = self.records
        return [i for i in range(a, b) if match(records[i])]

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


def _encode_cursor(position: Position, nonce: int | None = None) -> str:
    """``[time, id]`` of the last item served (``[null, null]``: the top), plus a nonce for a fresh token."""
    value: list[Any] = list(position) if position is not None else [None, None]
    if nonce is not None:
        value.append(nonce)
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


def _decode_cursor(token: str) -> Position:
    try:
        t, cid, *nonce = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if len(nonce) > 1 or (nonce and not isinstance(nonce[0], int)):
            raise ValueError(token)
        if t is None and cid is None and nonce:
            return None
        if not isinstance(t, int) or not isinstance(cid, str):
            raise ValueError(token)
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise _Invalid("cursor", "invalid_cursor", "Cursor could not be decoded") from None
    return t, cid
