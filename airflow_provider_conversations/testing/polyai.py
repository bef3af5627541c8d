"""PolyAI simulator: ``/{v1|v3}/{account}/{project}/conversations`` with ``x-api-key`` auth."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import orjson

from airflow_provider_conversations.testing import cursors, transcripts
from airflow_provider_conversations.testing.dataset import Conversation
from airflow_provider_conversations.testing.server import SimRequest, SimResponse, VendorSimulator
from airflow_provider_conversations.testing.store import SortedStore, compact_json

PATH = re.compile(r"^/(v1|v3)/([^/]+)/([^/]+)/conversations/?$")
CHANNELS = ("voice", "webchat", "sms")
CLIENT_ENVS = ("sandbox", "pre-release", "live")
#: The environments of generated conversations, picked in turn: 60% live.
ENVS = ("live", "live", "live", "sandbox", "pre-release")
LIMITS = {"v1": 5000, "v3": 1000}
DEFAULT_LIMIT = {"v1": 5, "v3": 50}


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class PolyAISimulator(VendorSimulator):
    """Conversations in ascending ``started_at`` order; ``start_time``/``end_time`` bounds.

    ``bounds`` picks how the server compares ``start_time``/``end_time`` (undocumented by PolyAI):
    ``"inclusive"`` (default) or ``"exclusive"``; the hook must be exact under both.

    Vendor faults: ``empty`` answers with no conversations and a continuation at the same position: in v3 a
    fresh cursor (a new token for the same offset), which a client must follow; in v1 ``next_offset`` equal to
    the offset asked for, an offset that does not advance, which a client must refuse rather than loop on
    (v1 has no cursor to refresh). ``stuck`` serves the page with the continuation it was asked with: the same
    cursor (v3) or the same offset (v1).
    """

    vendor = "polyai"
    auth_header = "x-api-key"
    auth_prefix = ""
    vendor_fault_kinds: ClassVar[frozenset[str]] = frozenset({"empty", "stuck"})
    items_key = "conversations"
    next_cursor_key = "cursor"
    cursor_param = "cursor"

    def __init__(
        self,
        conversations: int | list[Conversation] = 1000,
        *,
        account_id: str = "acct-1",
        project_id: str = "proj-1",
        bounds: str = "inclusive",
        precision: timedelta = timedelta(milliseconds=1),
        environments: tuple[str, ...] | list[str] = ENVS,
        transcripts: bool = True,
        **options: Any,
    ) -> None:
        #: ``False``: every conversation is listed with empty ``turns`` (as with transcripts disabled), so rows
        #: stay as small as they were before turns were generated.
        self.transcripts = transcripts
        #: client_env of the generated conversations, picked in turn (default: 60% live)
        self.environments = tuple(environments)
        self.account_id = account_id
        self.project_id = project_id
        self.bounds = bounds
        self.precision = precision
        super().__init__(conversations, **options)

    # ------------------------------------------------------------------ data

    def render(self, c: Conversation) -> dict[str, Any]:
        return {
            "id": c.extra.get("id", f"CONV-{c.index:08d}"),
            "account_id": self.account_id,
            "project_id": self.project_id,
            "environment": self.environments[c.channel % len(self.environments)],
            "started_at": _iso(c.created),
            "channel": CHANNELS[c.channel % len(CHANNELS)],
            "in_progress": c.in_progress,
            "num_turns": c.turns,
            "total_duration": c.duration,
            "variant_id": f"var-{c.agent}",
            "variant_name": f"Variant {c.agent}",
            "turns": self._turns(c) if self.transcripts else [],
            "metrics": {"latency_ms": 100 + c.rating},
            "state": {},
        }

    def _turns(self, c: Conversation) -> list[dict[str, Any]]:
        """``num_turns`` turns: each the user's input and the agent's response with their times (ascending,
        within ``total_duration``) and the agent's latency in milliseconds; the first one is the greeting,
        before the user has said anything."""
        conversation_id = c.extra.get("id", f"CONV-{c.index:08d}")
        lines = transcripts.turns(conversation_id, 2 * c.turns, c.duration, salt="polyai")
        out = []
        for i in range(c.turns):
            agent, user = lines[2 * i], lines[2 * i + 1]
            latency = 300 + (c.rating * 97 + i * 131) % 900
            said = c.created + timedelta(seconds=user.offset)
            out.append({
                "user_input": "" if i == 0 else user.text,
                "user_input_datetime": None if i == 0 else _iso(said),
                "agent_response": agent.text,
                "agent_response_datetime": _iso(said + timedelta(milliseconds=latency) if i else c.created),
                "latency": latency if i else 0,
                "intents": ["greeting"] if i == 0 else [],
                "turn_number": i + 1,
            })
        return out

    def detail(self, conversation_id: str, **options: Any) -> dict[str, Any] | None:
        """A conversation as listed, with its ``turns`` (PolyAI serves transcripts in the list: no detail
        request is made, and this is the ground truth tests compare them with)."""
        with self.lock:
            r = self.record(conversation_id)
            return None if r is None else dict(r)

    def new_store(self) -> SortedStore:
        return SortedStore(self.lock, order=lambda r: (r["started_at"], r["id"]),
                           keys={"started_at": lambda r: r["started_at"]}, blob=compact_json)

    def update(self, ids: list[str], *, at: datetime) -> int:
        """A turn is added and a live conversation ends (PolyAI lists carry no update time: ``at`` is unused)."""

        def reply(r: dict[str, Any]) -> None:
            r["in_progress"] = False
            r["num_turns"] += 1

        return self.store.mutate(ids, reply)

    def set_in_progress(self, ids: list[str], value: bool = True) -> None:
        """Mark conversations as still running (or finished), e.g. to make a sensor wait."""
        self.store.mutate(ids, lambda r: r.update(in_progress=value))

    def finish_all(self) -> None:
        self.store.mutate(None, lambda r: r.update(in_progress=False))

    def ground_truth(self, start: datetime, end: datetime, *, time_key: str = "created", client_env: str = "live",
                     **filters: Any) -> list[str]:
        """Ids of ``client_env`` conversations with ``start <= started_at < end``."""
        if time_key != "created" or filters:
            raise ValueError("PolyAI has only the 'created' time key (started_at); filters are not modelled here")
        lo, hi = _iso(start), _iso(end)
        return [r["id"] for r in self.records if r["environment"] == client_env and lo <= r["started_at"] < hi]

    def connection(self, conn_id: str | None = None, *, api_version: str = "v3", token: str | None = None,
                   ) -> dict[str, Any]:
        return {
            "conn_type": "polyai",
            "host": self.url,
            "password": token or self.token,
            "extra": {"account_id": self.account_id, "project_id": self.project_id, "api_version": api_version},
        }

    # ------------------------------------------------------------------ HTTP

    def error(self, status: int, code: str, message: str, param: str | None = None) -> SimResponse:
        if status == 422:
            return SimResponse.json(422, {"detail": [
                {"loc": ["query", param or "unknown"], "msg": message, "type": code}
            ]})
        return SimResponse.json(status, {
            "success": False, "error": message, "error_id": f"err-{status}", "error_code": code,
            "error_message": message, "data": None,
        })

    def handle(self, request: SimRequest) -> SimResponse:
        m = PATH.match(request.path)
        if not m:
            return self.error(404, "NOT_FOUND", f"no route {request.path}")
        version, account, project = m.groups()
        if (account, project) != (self.account_id, self.project_id):
            return self.error(404, "PROJECT_NOT_FOUND", f"project {account}/{project} not found")
        q = request.query
        allowed = {"client_env", "start_time", "end_time", "limit", "offset", "include_context_state",
                   "variant_id", "variant_name", "in_progress"}
        if version == "v3":
            allowed |= {"cursor", "channel", "include_latency"}
        for name in q:
            if name not in allowed:
                return self.error(422, "extra_forbidden", f"unknown query parameter {name}", name)
        # scalar parameters must not repeat
        for name, values in q.items():
            if name != "channel" and len(values) > 1:
                return self.error(422, "value_error", "parameter given more than once", name)
        try:
            limit = int(request.one("limit") or DEFAULT_LIMIT[version])
        except ValueError:
            return self.error(422, "int_parsing", "Input should be a valid integer", "limit")
        if not 1 <= limit <= LIMITS[version]:
            return self.error(422, "less_than_equal", f"Input should be between 1 and {LIMITS[version]}", "limit")
        env = request.one("client_env") or "live"
        if env not in CLIENT_ENVS:
            return self.error(422, "enum", "Input should be 'sandbox', 'pre-release' or 'live'", "client_env")
        bools: dict[str, bool] = {}
        for name in ("in_progress", "include_context_state", "include_latency"):
            value = request.one(name)
            if value is not None:
                if value not in ("true", "false"):
                    return self.error(422, "bool_parsing", "Input should be a valid boolean", name)
                bools[name] = value == "true"
        if request.one("variant_id") and request.one("variant_name"):
            return self.error(400, "INVALID_REQUEST", "Specify only one of variant_id or variant_name")
        bounds: list[str | None] = []
        for name in ("start_time", "end_time"):
            value = request.one(name)
            if value is None:
                bounds.append(None)
                continue
            try:
                ts = datetime.fromisoformat(value)
            except ValueError:
                return self.error(422, "datetime_parsing", "Input should be a valid datetime", name)
            if ts.tzinfo is None:
                return self.error(422, "timezone_aware", "Input should have timezone info", name)
            bounds.append(_iso(ts))
        channels = tuple(q.get("channel", ()))
        for ch in channels:
            if ch not in CHANNELS:
                return self.error(422, "enum", f"Input should be one of {', '.join(CHANNELS)}", "channel")
        variant_id, variant_name, in_progress = request.one("variant_id"), request.one("variant_name"), \
            bools.get("in_progress")

        def match(r: dict[str, Any]) -> bool:
            return (r["environment"] == env and (variant_id is None or r["variant_id"] == variant_id)
                    and (variant_name is None or r["variant_name"] == variant_name)
                    and (in_progress is None or r["in_progress"] == in_progress)
                    and (not channels or r["channel"] in channels))

        inclusive = self.bounds == "inclusive"
        with self.lock:
            rows = self.store.select("started_at", bounds[0], bounds[1], inclusive=(inclusive, inclusive),
                                     match=match, cache=(env, variant_id, variant_name, in_progress, channels)).rows
            blobs = self.store.blobs
            position = self._position(request, version)
            if isinstance(position, SimResponse):
                return position
            offset = position
            chunk = rows[offset: offset + limit]
            page = b",".join(blobs[i] for i in chunk)
        more = offset + limit < len(rows)
        tail: dict[str, Any] = {}
        if version == "v1":
            tail["descriptions"] = {"conversations": "conversations in ascending chronological order"}
            if more:
                tail["next_offset"] = offset + limit
        else:
            tail["cursor"] = cursors.encode((offset + limit,)) if more else None
            tail["next_offset"] = offset + limit if more else None
        body = b'{"conversations":[' + page + b"]," + orjson.dumps(tail)[1:]
        return SimResponse(200, body, {})

    def continuation_fault(self, kind: str, request: SimRequest, body: dict[str, Any]) -> bool:
        """v3: the default, and ``empty`` also sets ``next_offset`` to the offset asked for. v1 has no cursor to
        refresh or repeat: both kinds answer with a ``next_offset`` that does not advance."""
        version, offset = self._accepted(request)
        if version == "v3":
            if kind == "empty":
                body["next_offset"] = offset
            return super().continuation_fault(kind, request, body)
        if kind == "empty":
            body["conversations"] = []
        body["next_offset"] = offset
        return True

    def cursor_position(self, request: SimRequest) -> tuple[int]:
        return (self._accepted(request)[1],)

    def _accepted(self, request: SimRequest) -> tuple[str, int]:
        """The API version and offset of a request the API accepted."""
        m = PATH.match(request.path)
        assert m is not None
        offset = self._position(request, m.group(1))
        assert isinstance(offset, int)
        return m.group(1), offset

    def _position(self, request: SimRequest, version: str) -> int | SimResponse:
        """The offset a request asks for (v3: from its cursor; v1: ``offset``), or the error the API answers."""
        if version == "v3" and request.one("cursor"):
            try:
                position = cursors.decode(request.one("cursor") or "", (int,))
            except cursors.InvalidCursor:
                return self.error(400, "INVALID_CURSOR", "cursor could not be decoded")
            return 0 if position is None else int(position[0])
        if request.one("offset"):
            try:
                offset = int(request.one("offset") or 0)
            except ValueError:
                return self.error(422, "int_parsing", "Input should be a valid integer", "offset")
            if offset < 0:
                return self.error(422, "greater_than_equal", "Input should be >= 0", "offset")
            return offset
        return 0
