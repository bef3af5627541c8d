"""Anyreach simulator: ``GET /core/conversations``, bare newest-first arrays, Base64(created_at) cursors.

Switches for the two things Anyreach leaves open, so a client can be tested against both:

- ``cursor_compare``: ``"strict"`` (default; ``created_at < cursor``) or ``"inclusive"`` (``<=``);
- ``tie_groups``: ``[(instant, count), ...]`` puts ``count`` extra conversations on one ``created_at``
  (hundreds, more than a page); ``tie_order="shuffled"`` serves each instant's conversations in a new
  random order on every request (the API promises no order within an instant).

Timestamps are ISO 8601 UTC with a ``Z`` and microseconds (``2026-11-17T10:00:00.123456Z``), the precision
of the Python/PostgreSQL stack behind the real API; ``precision=timedelta(milliseconds=1)`` renders and
stores milliseconds instead. Cursors and bounds are compared as instants, not as strings.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import orjson

from airflow_provider_conversations.testing import transcripts
from airflow_provider_conversations.testing.dataset import Conversation
from airflow_provider_conversations.testing.server import SimRequest, SimResponse, VendorSimulator
from airflow_provider_conversations.testing.store import SortedStore

PATHS = ("/core/conversations", "/core/conversations/")
DETAIL_PATH = re.compile(r"^/core/conversations/([^/]+)/?$")
#: The scope a token needs for the transcript (``conversation``) and ``recording_details`` of a detail.
SCOPE = "conversations:read_sensitive"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
DIRECTIONS = ("inbound", "outbound")
CHANNELS = ("telephone", "webrtc", "email", "text")
IN_PROGRESS = ("token_created", "triggered", "ringing", "in_progress")
FINISHED = ("completed", "failed", "cancelled", "transferred", "unanswered")
STATUSES = (*IN_PROGRESS, *FINISHED)
TIERS = ("gold", "silver", "bronze")
SENSITIVE = ("agent", "summary", "initial_context", "custom_metadata", "conversation", "recording_details")
FIELDS = (
    "id", "organization_id", "direction", "channel", "status", "user_id", "agent_id", "agent_version_id",
    "agent_number", "web_widget_id", "duration", "user_turn_count", "created_at", "updated_at", *SENSITIVE,
)
ENUMS = {"direction": DIRECTIONS, "channel": CHANNELS, "status": STATUSES}
STRINGS = ("user_id", "agent_id", "agent_version_id", "agent_number", "web_widget_id")
INTS = ("duration_above", "duration_below", "user_turn_count_above", "user_turn_count_below")
BOUNDS = ("created_after", "created_before", "updated_after", "updated_before")
ALLOWED = {*ENUMS, *STRINGS, *INTS, *BOUNDS, "custom_metadata", "fields", "limit", "cursor"}


def _key(ts: datetime) -> str:
    """Canonical sortable form of an instant: fixed width, so string order is time order."""
    if ts.tzinfo is not UTC:
        ts = ts.astimezone(UTC)
    return ts.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _canonical(rendered: str) -> str:
    """The canonical key of a rendered timestamp (a millisecond one gets its three zeros back)."""
    return rendered if len(rendered) == 27 else rendered[:23] + "000Z"


def _created(r: dict[str, Any]) -> str:
    return _canonical(r["created_at"])


def _updated(r: dict[str, Any]) -> str:
    return _canonical(r["updated_at"])


def tie_group(instant: datetime, count: int, *, first_index: int, seed: int = 0) -> list[Conversation]:
    """``count`` finished conversations all created at ``instant`` (indexes from ``first_index``)."""
    rng = random.Random(f"{seed}-{first_index}-{instant.isoformat()}")
    out = []
    for i in range(first_index, first_index + count):
        duration = rng.randint(5, 1800)
        out.append(Conversation(
            index=i, created=instant, updated=instant + timedelta(seconds=duration + rng.randint(0, 3600)),
            status=rng.randrange(1 << 16), channel=rng.randrange(1 << 16), direction=rng.randrange(2),
            duration=duration, agent=rng.randrange(5), user=rng.randrange(1000), turns=rng.randint(1, 40),
            rating=rng.randint(1, 5),
        ))
    return out


class _Invalid(Exception):
    def __init__(self, response: SimResponse) -> None:
        super().__init__(response.status)
        self.response = response


class AnyreachSimulator(VendorSimulator):
    """Anyreach's list endpoint on 127.0.0.1 (see the module docstring for the switches).

    ``token`` is the only credential accepted: an ``ak_`` key alone, or a ``pat_`` token together with
    ``X-Anyreach-Org: <org_id>`` (missing: 401 "Token is missing organization claim."; another org: 403).
    ``sensitive=False`` serves what a token without ``conversations:read_sensitive`` sees.

    ``GET /core/conversations/{conversation_id}`` serves the list item plus the transcript ``conversation``
    (``{"turns": [{"role": "agent" | "user", "text", "timestamp"}, ...]}``, agent first, twice
    ``user_turn_count`` turns) and ``recording_details``, those two only for tokens with the scope
    :data:`SCOPE`: ``read_sensitive`` says which (``None``: the same as ``sensitive``; ``True``/``False``: every
    token or none; a collection: those tokens). ``tokens`` are more keys accepted besides ``token``. A token
    without the scope gets the detail without them (``missing_scope="omit"``, default) or a 403
    (``missing_scope="refuse"``). Unknown ids answer 404. The list never carries these two fields.

    Vendor faults: ``stuck`` ignores the cursor (the request is answered from the newest conversation again).
    ``empty`` does not apply: a page shorter than ``limit`` is the end of an Anyreach list by the API's own
    contract (there is no "more" flag and no separate continuation), so an empty page in the middle of a walk
    cannot be told from the end of the list by any client.
    """

    vendor = "anyreach"
    vendor_fault_kinds: ClassVar[frozenset[str]] = frozenset({"stuck"})
    vendor_fault_reasons: ClassVar[dict[str, str]] = {
        "empty": "a short (or empty) page is the end of an Anyreach list by the API's contract, so an empty page "
                 "in the middle of a walk cannot be told from the end of the list",
    }

    default_token = "ak_sim.0123456789abcdef"
    detail_path = DETAIL_PATH
    #: The header naming the organisation, which a ``pat_`` token needs besides ``Authorization``.
    org_header: ClassVar[str] = "X-Anyreach-Org"

    def __init__(
        self,
        conversations: int | list[Conversation] = 1000,
        *,
        seed: int = 0,
        cursor_compare: str = "strict",
        tie_groups: Iterable[tuple[datetime, int]] = (),
        tie_order: str = "stable",
        precision: timedelta = timedelta(microseconds=1),
        sensitive: bool = True,
        org_id: str = "org_sim",
        read_sensitive: bool | Iterable[str] | None = None,
        missing_scope: str = "omit",
        tokens: Iterable[str] = (),
        **options: Any,
    ) -> None:
        if missing_scope not in ("omit", "refuse"):
            raise ValueError(f"missing_scope={missing_scope!r}; allowed: 'omit', 'refuse'")
        self.read_sensitive = read_sensitive if read_sensitive is None or isinstance(read_sensitive, bool) \
            else frozenset(read_sensitive)
        self.missing_scope = missing_scope
        self.extra_tokens = tuple(tokens)
        if cursor_compare not in ("strict", "inclusive"):
            raise ValueError(f"cursor_compare={cursor_compare!r}; allowed: 'strict', 'inclusive'")
        if tie_order not in ("stable", "shuffled"):
            raise ValueError(f"tie_order={tie_order!r}; allowed: 'stable', 'shuffled'")
        if precision not in (timedelta(microseconds=1), timedelta(milliseconds=1)):
            raise ValueError("precision must be 1 microsecond or 1 millisecond")
        self.cursor_compare = cursor_compare
        self.tie_order = tie_order
        self.precision = precision
        self.sensitive = sensitive
        self.org_id = org_id
        self._rng = random.Random(seed)
        self._tie_groups = list(tie_groups)
        super().__init__(conversations, seed=seed, **options)

    # ------------------------------------------------------------------ data

    def _truncate(self, ts: datetime) -> datetime:
        if self.precision == timedelta(microseconds=1):
            return ts
        return ts.replace(microsecond=ts.microsecond - ts.microsecond % 1000)

    def _fmt(self, ts: datetime) -> str:
        key = _key(self._truncate(ts))
        return key if self.precision == timedelta(microseconds=1) else key[:23] + "Z"

    def render(self, c: Conversation) -> dict[str, Any]:
        channel = CHANNELS[c.channel % len(CHANNELS)]
        status = IN_PROGRESS[c.status % len(IN_PROGRESS)] if c.in_progress else FINISHED[c.status % len(FINISHED)]
        agent_id = f"agt_{c.agent}"
        tier = TIERS[c.rating % 3]
        return {
            "id": c.extra.get("id", f"cnv_{c.index:08d}"),
            "organization_id": self.org_id,
            "direction": DIRECTIONS[c.direction % 2],
            "channel": channel,
            "status": status,
            "user_id": f"+1555{c.user:07d}" if channel == "telephone" else f"user-{c.user:04d}",
            "agent_id": agent_id,
            "agent_version_id": f"agv_{c.agent}_{c.rating % 2}",
            "agent_number": f"+1800555{c.agent:04d}" if channel == "telephone" else None,
            "web_widget_id": f"wgt_{c.agent}" if channel == "webrtc" else None,
            "duration": c.duration,
            "user_turn_count": c.turns,
            "created_at": self._fmt(c.created),
            "updated_at": self._fmt(c.updated),
            "agent": {"id": agent_id, "name": f"Agent {c.agent}"},
            "summary": f"User {c.user} talked to agent {c.agent} for {c.duration} s.",
            "initial_context": f"customer tier {tier}",
            "custom_metadata": {"order_id": str(c.user % 50), "tier": tier},
        }

    def data_set(self, conversations: int | list[Conversation], *, seed: int, start: datetime,
                 span: timedelta) -> list[Conversation]:
        """The conversations, and ``tie_groups`` more on their instants."""
        data = list(super().data_set(conversations, seed=seed, start=start, span=span))
        for instant, count in self._tie_groups:
            data += tie_group(self._truncate(instant), count, first_index=len(data), seed=seed)
        return data

    def new_store(self) -> SortedStore:
        # A second index, by updated_at, so updated_* windows do not scan every conversation.
        return SortedStore(self.lock, order=lambda r: (_created(r), r["id"]),
                           keys={"created": _created, "updated": _updated},
                           blob=lambda r: orjson.dumps(self._visible(r)))

    def _visible(self, r: dict[str, Any]) -> dict[str, Any]:
        return r if self.sensitive else {k: v for k, v in r.items() if k not in SENSITIVE}

    def finish_all(self) -> None:
        """Every in-progress conversation completes."""
        self.store.mutate(None, lambda r: r.update(status="completed"), where=lambda r: r["status"] in IN_PROGRESS)

    def update(self, ids: list[str], *, at: datetime) -> int:
        """``updated_at`` becomes ``at`` and a live conversation completes (``created_at`` unchanged)."""

        def reply(r: dict[str, Any]) -> None:
            r["updated_at"] = self._fmt(at)
            if r["status"] in IN_PROGRESS:
                r["status"] = "completed"

        return self.store.mutate(ids, reply)

    def ground_truth(self, start: datetime, end: datetime, *, time_key: str = "created",
                     **filters: Any) -> list[str]:
        """Ids of the conversations matching ``filters`` whose time key lies in ``[start, end)``."""
        unknown = set(filters) - {*ENUMS, *STRINGS, *INTS, "custom_metadata"}
        if unknown:
            raise ValueError(f"ground_truth got unknown filters {sorted(unknown)}")
        query = {k: orjson.dumps(v).decode() if isinstance(v, dict) else str(v) for k, v in filters.items()}
        crit = self._criteria(query.get)
        lo, hi = _key(start), _key(end)
        if time_key not in ("created", "updated"):
            raise ValueError(f"time_key={time_key!r}; allowed: 'created', 'updated'")
        key = _created if time_key == "created" else _updated
        return [r["id"] for r in self.records if lo <= key(r) < hi and self._match(r, crit)]

    def connection(self, conn_id: str | None = None, *, token: str | None = None,
                   org_id: str | None = None) -> dict[str, Any]:
        """A ``pat_`` token gets this simulator's ``org_id`` unless one is given."""
        token = token or self.token
        if org_id is None and token.startswith("pat_"):
            org_id = self.org_id
        return {"conn_type": "anyreach", "host": self.url, "password": token,
                "extra": {"org_id": org_id} if org_id else {}}

    # ------------------------------------------------------------------ HTTP

    def error(self, status: int, code: str, message: str, param: str | None = None) -> SimResponse:
        if status == 422:
            return SimResponse.json(422, {"detail": [{"loc": ["query", param or "unknown"], "msg": message,
                                                      "type": code}]})
        return SimResponse.json(status, {"detail": message})

    @staticmethod
    def _header(request: SimRequest, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in request.headers.items() if k.lower() == name), None)

    def _token(self, request: SimRequest) -> str | None:
        """The accepted key a request carries, or ``None``."""
        auth = self._header(request, self.auth_header) or ""
        token = auth.removeprefix(self.auth_prefix) if auth.startswith(self.auth_prefix) else None
        return token if token in (self.token, *self.extra_tokens) else None

    def _authorized(self, request: SimRequest) -> bool:
        token = self._token(request)
        if token is None:
            return False
        return not token.startswith("pat_") or self._header(request, self.org_header) == self.org_id

    def has_scope(self, token: str) -> bool:
        """Whether ``token`` carries :data:`SCOPE`."""
        if self.read_sensitive is None:
            return self.sensitive
        if isinstance(self.read_sensitive, bool):
            return self.read_sensitive
        return token in self.read_sensitive

    def detail(self, conversation_id: str, *, scoped: bool = True, **options: Any) -> dict[str, Any] | None:
        """The detail body of a conversation as a token with (``scoped``) or without the scope sees it
        (``None``: unknown or vanished, a 404)."""
        if self.vanished(conversation_id):
            return None
        with self.lock:
            stored = self.record(conversation_id)
            r = None if stored is None else dict(stored)
        if r is None:
            return None
        body = self._visible(r)
        if scoped:
            created = datetime.fromisoformat(r["created_at"])
            turns = transcripts.turns(conversation_id, 2 * r["user_turn_count"], r["duration"], salt="anyreach")
            body["conversation"] = {"turns": [
                {"role": t.role, "text": t.text, "timestamp": self._fmt(created + timedelta(seconds=t.offset))}
                for t in turns]}
            index = int(conversation_id.rsplit("_", 1)[-1]) if conversation_id[-1].isdigit() else 0
            body["recording_details"] = {
                "recording_url": f"https://recordings.invalid/{conversation_id}.wav?expires=3600",
                "duration": r["duration"], "format": "wav", "channels": 2, "recording_id": f"rec_{index:08d}"}
        return body

    def handle_detail(self, conversation_id: str, request: SimRequest) -> SimResponse:
        token = self._token(request)
        scoped = token is not None and self.has_scope(token)
        if not scoped and self.missing_scope == "refuse":
            return self.error(403, "missing_scope", f"Token is missing required scope: {SCOPE}")
        body = self.detail(conversation_id, scoped=scoped)
        if body is None:
            return self.error(404, "not_found", "Conversation not found")
        return SimResponse.json(200, body)

    def unauthorized(self, request: SimRequest) -> SimResponse:
        auth = self._header(request, self.auth_header)
        if auth is None or not auth.startswith(self.auth_prefix):
            return self.error(401, "not_authenticated", "Not authenticated")
        if self._token(request) is None:
            return self.error(401, "invalid_token", "Invalid authentication credentials")
        org = self._header(request, self.org_header)
        if org is None:
            return self.error(401, "missing_org", "Token is missing organization claim.")
        return self.error(403, "forbidden_org", f"Token has no access to organization {org!r}.")

    def handle(self, request: SimRequest) -> SimResponse:
        if request.path not in PATHS:
            return self.error(404, "not_found", "Not Found")
        try:
            return self._list(request)
        except _Invalid as bad:
            return bad.response

    def vendor_fault(self, kind: str, request: SimRequest) -> SimResponse | None:
        if kind != "stuck" or request.one("cursor") is None:
            return None  # a first page has no cursor to ignore
        response = self.handle(replace(request, query={k: v for k, v in request.query.items() if k != "cursor"}))
        return response if response.status == 200 else None

    def _list(self, request: SimRequest) -> SimResponse:
        for name, values in request.query.items():
            if name not in ALLOWED:
                raise _Invalid(self.error(422, "extra_forbidden", "Extra inputs are not permitted", name))
            if len(values) > 1:
                raise _Invalid(self.error(422, "value_error", "Parameter given more than once", name))
        one = request.one
        limit = self._int(one("limit"), "limit")
        limit = DEFAULT_LIMIT if limit is None else limit
        if limit < 1:
            raise _Invalid(self.error(422, "greater_than_equal", "Input should be greater than or equal to 1",
                                      "limit"))
        if limit > MAX_LIMIT:
            raise _Invalid(self.error(422, "less_than_equal",
                                      f"Input should be less than or equal to {MAX_LIMIT}", "limit"))
        fields = self._fields(one("fields"))
        crit = self._criteria(one)
        cursor = one("cursor")
        with self.lock:
            sel, keys = self._selection(crit)
            if cursor is None:
                pos = len(sel)
            else:
                c = self._cursor(cursor)
                pos = bisect.bisect_left(keys, c) if self.cursor_compare == "strict" else bisect.bisect_right(keys, c)
            rows = self._page(sel, keys, pos, limit)
            if fields is None:
                body = b"[" + b",".join(self.store.blobs[i] for i in rows) + b"]"
            else:
                body = orjson.dumps([{k: v for k, v in self._visible(self.records[i]).items() if k in fields}
                                     for i in rows])
        return SimResponse(200, body, {})

    def _page(self, sel: list[int], keys: list[str], pos: int, limit: int) -> list[int]:
        """Indexes of the page ending (newest first) just below ``pos``."""
        lo = max(0, pos - limit)
        if self.tie_order == "stable" or lo == 0:
            return sel[lo:pos][::-1]
        last = keys[lo]
        start, end = bisect.bisect_left(keys, last), min(pos, bisect.bisect_right(keys, last))
        if start == lo:
            return sel[lo:pos][::-1]
        # The oldest instant on the page does not fit whole: which of its conversations make it is arbitrary.
        chosen = self._rng.sample(sel[start:end], end - lo)
        return [*sel[end:pos][::-1], *chosen]

    # ------------------------------------------------------------------ validation and selection

    def _int(self, value: str | None, name: str) -> int | None:
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            raise _Invalid(self.error(422, "int_parsing",
                                      "Input should be a valid integer, unable to parse string as an integer",
                                      name)) from None

    def _time(self, value: str | None, name: str) -> str | None:
        if value is None:
            return None
        try:
            ts = datetime.fromisoformat(value)
        except ValueError:
            raise _Invalid(self.error(422, "datetime_from_date_parsing",
                                      "Input should be a valid datetime or date", name)) from None
        return _key(ts if ts.tzinfo else ts.replace(tzinfo=UTC))

    def _cursor(self, value: str) -> str:
        try:
            text = base64.b64decode(value.replace("-", "+").replace("_", "/"), validate=True).decode()
            ts = datetime.fromisoformat(text)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise _Invalid(self.error(400, "invalid_cursor", "Invalid cursor")) from None
        return _key(ts if ts.tzinfo else ts.replace(tzinfo=UTC))

    def _fields(self, value: str | None) -> set[str] | None:
        if value is None:
            return None
        names = [f.strip() for f in value.split(",")]
        unknown = [n for n in names if n not in FIELDS]
        if unknown:
            raise _Invalid(self.error(422, "value_error", f"Unknown field {unknown[0]!r}", "fields"))
        return set(names)

    def _criteria(self, one: Callable[[str], str | None]) -> tuple[Any, ...]:
        enums = []
        for name, choices in ENUMS.items():
            value = one(name)
            if value is not None and value not in choices:
                raise _Invalid(self.error(422, "enum", "Input should be " + ", ".join(repr(c) for c in choices),
                                          name))
            enums.append(value)
        strings = [one(name) for name in STRINGS]
        ints = [self._int(one(name), name) for name in INTS]
        meta = one("custom_metadata")
        meta_items: tuple[tuple[str, Any], ...] | None = None
        if meta is not None:
            try:
                obj = orjson.loads(meta)
            except orjson.JSONDecodeError:
                obj = None
            if not isinstance(obj, dict):
                raise _Invalid(self.error(422, "value_error", "custom_metadata must be a JSON object string",
                                          "custom_metadata"))
            meta_items = tuple(sorted((k, orjson.dumps(v)) for k, v in obj.items()))
        bounds = [self._time(one(name), name) for name in BOUNDS]
        return (*enums, *strings, *ints, meta_items, *bounds)

    def _selection(self, crit: tuple[Any, ...]) -> tuple[list[int], list[str]]:
        """Indexes (ascending created_at) matching everything but the cursor, cached per criteria."""
        return self.store.cached(crit, lambda: self._select(crit))

    def _select(self, crit: tuple[Any, ...]) -> tuple[list[int], list[str]]:
        """Walks the narrower of the two time indexes."""
        created_after, created_before, updated_after, updated_before = crit[-4:]
        store, match = self.store, self._match
        # The created index follows the store's own order: its positions are row numbers.
        a, b = store.span("created", created_after, created_before)
        ua, ub = store.span("updated", updated_after, updated_before)
        records = store.records
        if ub - ua < b - a:
            sel = sorted(i for i in store.index("updated").rows[ua:ub] if a <= i < b and match(records[i], crit))
        else:
            sel = [i for i in range(a, b) if match(records[i], crit)]
        created = store.index("created").keys
        return sel, [created[i] for i in sel]

    @staticmethod
    def _match(r: dict[str, Any], crit: tuple[Any, ...]) -> bool:
        (direction, channel, status, user_id, agent_id, agent_version_id, agent_number, web_widget_id,
         d_above, d_below, t_above, t_below, meta, c_after, c_before, u_after, u_before) = crit
        created, updated = _created(r), _updated(r)
        if (c_after is not None and created < c_after) or (c_before is not None and created > c_before):
            return False
        if (u_after is not None and updated < u_after) or (u_before is not None and updated > u_before):
            return False
        for name, want in (("direction", direction), ("channel", channel), ("status", status),
                           ("agent_id", agent_id), ("agent_version_id", agent_version_id),
                           ("web_widget_id", web_widget_id)):
            if want is not None and r[name] != want:
                return False
        for name, part in (("user_id", user_id), ("agent_number", agent_number)):
            if part is not None and (r[name] is None or part not in r[name]):
                return False
        for name, low, high in (("duration", d_above, d_below), ("user_turn_count", t_above, t_below)):
            value = r[name]
            if (low is not None and value < low) or (high is not None and value > high):
                return False
        if meta is not None:
            have = r["custom_metadata"]
            if any(k not in have or orjson.dumps(have[k]) != v for k, v in meta):
                return False
        return True


__all__ = ["AnyreachSimulator", "tie_group"]
