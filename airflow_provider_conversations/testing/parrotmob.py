"""ParrotMob ("Macaw") simulator: ``/accounts/{me|account_id}/conversations``, Bearer auth, offset paging.

What it reproduces from the docs (seed 000): ``limit`` (default 50, ``0`` = everything), ``offset``, the four
``order_by`` values, the filters (``status`` incl. ``any_terminal``, ``support_required`` and its deprecated
spelling ``needs_support``), and NO time filter. Switches for the traps:

- ``updated_order_bug=True``: ``updated_at_*`` sort by ``inserted_at``, as the docs literally say;
- ``inserts_per_request=k``: every list request first inserts ``k`` brand-new conversations (inserted "now",
  newer than everything), shifting the offset pages under a running walk;
- ``envelope="data"``: ``{"data": [...]}`` instead of the bare array.

Error bodies are Phoenix-style ``{"errors": {"code", "detail", "param"}}`` (the API's ``inserted_at`` naming
suggests Phoenix/Ecto, whose default error JSON is ``{"errors": {"detail": ...}}``). Another account than
``me`` or the token's own answers 404, so the existence of other accounts is not revealed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal
from urllib.parse import unquote

from airflow_provider_conversations.testing.dataset import DEFAULT_START, Conversation
from airflow_provider_conversations.testing.server import SimRequest, SimResponse, VendorSimulator
from airflow_provider_conversations.testing.store import SortedStore

PATH = re.compile(r"^/accounts/([^/]+)/conversations/?$")
ORDERS = ("inserted_at_asc", "inserted_at_desc", "updated_at_asc", "updated_at_desc")
IN_PROGRESS = ("scheduled", "ready", "running")
FINISHED = ("completed", "expired", "cancelled")
ANY_TERMINAL = "any_terminal"
STATUSES = (*IN_PROGRESS, *FINISHED, ANY_TERMINAL)
#: The deprecated spelling of ``support_required`` (the seed shows the flag but not its name).
DEPRECATED_SUPPORT = "needs_support"
BOOLS = ("support_required", DEPRECATED_SUPPORT)
STRINGS = ("audience_membership_id", "conversation_graph_id")
PARAMS = frozenset({"limit", "offset", "order_by", "status", *BOOLS, *STRINGS})
DEFAULT_LIMIT = 50


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _sort_key(field: str) -> Callable[[dict[str, Any]], tuple[str, str]]:
    """A record's place in the ``field`` order: ``field``, then id (ISO strings of one format sort
    chronologically)."""
    return lambda r: (r[field], r["id"])


def _uuid(n: int, prefix: str) -> str:
    return f"{prefix}-0000-4000-8000-{n:012x}"


class ParrotMobSimulator(VendorSimulator):
    """ParrotMob's list endpoint; see the module docstring for the switches.

    Neither vendor fault applies: the offset of the next page is computed by the client (there is no
    continuation to repeat, so nothing can be ``stuck``; inserts at the top are what stall an offset walk, see
    ``inserts_per_request``), and a page shorter than ``limit`` is the end of the list by the API's own
    contract, so an ``empty`` page in the middle of a walk cannot be told from the end of the list.
    """

    vendor = "parrotmob"
    vendor_fault_reasons: ClassVar[dict[str, str]] = {
        "empty": "a short (or empty) page is the end of a ParrotMob list by the API's contract, so an empty page "
                 "in the middle of a walk cannot be told from the end of the list",
        "stuck": "the client computes the next offset itself, so there is no continuation to repeat (use "
                 "inserts_per_request to stall an offset walk)",
    }

    def __init__(
        self,
        conversations: int | list[Conversation] = 1000,
        *,
        start: datetime = DEFAULT_START,
        account_id: str = "acct_7f3c2a",
        updated_order_bug: bool = False,
        inserts_per_request: int = 0,
        envelope: Literal["array", "data"] = "array",
        precision: timedelta = timedelta(microseconds=1),
        **options: Any,
    ) -> None:
        if envelope not in ("array", "data"):
            raise ValueError(f"envelope={envelope!r}; allowed: 'array', 'data'")
        self.account_id = account_id
        self.updated_order_bug = updated_order_bug
        self.inserts_per_request = inserts_per_request
        self.envelope = envelope
        self.precision = precision
        self.inserted = 0
        #: The latest instant of any record: "now" for :meth:`insert_now`.
        self._newest = _iso(start)
        super().__init__(conversations, start=start, **options)

    # ------------------------------------------------------------------ data

    def render(self, c: Conversation) -> dict[str, Any]:
        if "status" in c.extra:
            status = c.extra["status"]
        elif c.in_progress:
            status = IN_PROGRESS[c.status % len(IN_PROGRESS)]
        else:  # mostly completed, some expired or cancelled
            status = FINISHED[0 if c.status % 10 < 7 else 1 if c.status % 10 < 9 else 2]
        return {
            "id": c.extra.get("id", _uuid(c.index, "c0a1e2b3")),
            "account_id": self.account_id,
            "status": status,
            "audience_membership_id": _uuid(c.user % 50, "5fbeb6aa"),
            "conversation_graph_id": _uuid(c.agent, "9d1c0b7e"),
            "support_required": c.turns % 5 == 0,
            "inserted_at": _iso(c.created),
            "updated_at": _iso(self._updated(c)),
        }

    @staticmethod
    def _updated(c: Conversation) -> datetime:
        """The update time; about 5% land exactly on the next hour edge, where updated windows go wrong."""
        if c.rating == 5 and c.turns % 4 == 0:
            return c.created.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        return c.updated

    def new_store(self) -> SortedStore:
        # No order of its own: records stay in insertion order, and each order_by field has its index.
        return SortedStore(self.lock, keys={field: _sort_key(field) for field in ("inserted_at", "updated_at")})

    def add(self, conversations: list[Conversation]) -> None:
        """Insert conversations (thread-safe; usable while a walk is running)."""
        new = [self.render(c) for c in conversations]
        with self.lock:
            self.store.add(new)
            self._newest = max([self._newest, *(max(r["inserted_at"], r["updated_at"]) for r in new)])

    def insert_now(self, k: int) -> None:
        """``k`` new conversations, inserted (and updated) after everything that exists: "now"."""
        with self.lock:
            t = datetime.fromisoformat(self._newest) + timedelta(seconds=1)
            batch = []
            for _ in range(k):
                self.inserted += 1
                batch.append(Conversation(index=10**9 + self.inserted, created=t, updated=t, status=0, channel=0,
                                          direction=0, duration=0, agent=0, user=0, turns=1, rating=0,
                                          in_progress=True, extra={"id": _uuid(self.inserted, "1e5e47ed")}))
                t += timedelta(milliseconds=1)
            self.add(batch)

    def update(self, ids: list[str], *, at: datetime) -> int:
        """``updated_at`` becomes ``at`` and a live conversation completes (``inserted_at`` unchanged)."""

        def reply(r: dict[str, Any]) -> None:
            r["updated_at"] = _iso(at)
            if r["status"] in IN_PROGRESS:
                r["status"] = "completed"
            self._newest = max(self._newest, r["updated_at"])

        return self.store.mutate(ids, reply)

    def finish_all(self) -> None:
        """Every in-progress conversation becomes ``completed`` (timestamps unchanged, so ground truths hold)."""
        self.store.mutate(None, lambda r: r.update(status="completed"), where=lambda r: r["status"] in IN_PROGRESS)

    def ground_truth(self, start: datetime, end: datetime, *, time_key: str = "created", **filters: Any) -> list[str]:
        """Ids whose ``inserted_at`` (created) or ``updated_at`` (updated) lies in ``[start, end)``."""
        field = {"created": "inserted_at", "updated": "updated_at"}[time_key]
        lo, hi = _iso(start), _iso(end)
        wanted = {k: ("true" if v else "false") if isinstance(v, bool) else v for k, v in filters.items()}
        return [r["id"] for r in self.records if lo <= r[field] < hi and self._matches(r, wanted)]

    def connection(self, conn_id: str | None = None, *, token: str | None = None,
                   account_id: str | None = None) -> dict[str, Any]:
        return {
            "conn_type": "parrotmob",
            "host": self.url,
            "password": token or self.token,
            "extra": {"account_id": account_id} if account_id else {},
        }

    # ------------------------------------------------------------------ HTTP

    def error(self, status: int, code: str, message: str, param: str | None = None) -> SimResponse:
        body: dict[str, Any] = {"code": code, "detail": message}
        if param is not None:
            body["param"] = param
        return SimResponse.json(status, {"errors": body})

    def handle(self, request: SimRequest) -> SimResponse:
        m = PATH.match(request.path)
        if not m:
            return self.error(404, "not_found", f"no route for GET {request.path}")
        account = unquote(m.group(1))
        if account not in ("me", self.account_id):
            return self.error(404, "not_found", f"account {account!r} not found", "account_id")
        q = request.query
        for name, values in q.items():
            if name not in PARAMS:
                return self.error(400, "invalid_parameter", f"unknown query parameter {name!r}", name)
            if len(values) > 1:
                return self.error(400, "invalid_parameter", f"query parameter {name!r} given more than once", name)
        numbers: dict[str, int] = {}
        for name, default in (("limit", DEFAULT_LIMIT), ("offset", 0)):
            raw = request.one(name)
            if raw is None:
                numbers[name] = default
            elif not raw.isdigit():
                return self.error(400, "invalid_parameter", f"{name} must be a non-negative integer", name)
            else:
                numbers[name] = int(raw)
        order = request.one("order_by") or "inserted_at_desc"
        if order not in ORDERS:
            return self.error(400, "invalid_parameter", f"order_by must be one of {', '.join(ORDERS)}", "order_by")
        status = request.one("status")
        if status is not None and status not in STATUSES:
            return self.error(400, "invalid_parameter", f"status must be one of {', '.join(STATUSES)}", "status")
        for name in BOOLS:
            value = request.one(name)
            if value is not None and value not in ("true", "false"):
                return self.error(400, "invalid_parameter", f"{name} must be true or false", name)
        if self.inserts_per_request:
            self.insert_now(self.inserts_per_request)
        wanted = {name: q[name][-1] for name in ("status", *BOOLS, *STRINGS) if name in q}
        key = (order, self.updated_order_bug, *sorted(wanted.items()))
        limit, offset = numbers["limit"], numbers["offset"]
        with self.lock:
            rows = self.store.cached(key, lambda: self._select(order, wanted))
            chunk = rows[offset:] if limit == 0 else rows[offset: offset + limit]
            page = b"[" + b",".join(self.store.blobs[i] for i in chunk) + b"]"
        return SimResponse(200, page if self.envelope == "array" else b'{"data":' + page + b"}", {})

    def _select(self, order: str, wanted: Mapping[str, str]) -> Sequence[int]:
        field, _, direction = order.rpartition("_")
        # The bug: updated_at_* sort by inserted_at, as the docs literally say.
        base = self.store.index("inserted_at" if self.updated_order_bug else field).rows
        ordered = base if direction == "asc" else base[::-1]
        if not wanted:
            return ordered
        records = self.records
        return [i for i in ordered if self._matches(records[i], wanted)]

    @staticmethod
    def _matches(r: Mapping[str, Any], wanted: Mapping[str, str]) -> bool:
        for name, value in wanted.items():
            if name == "status":
                if r["status"] not in (FINISHED if value == ANY_TERMINAL else (value,)):
                    return False
            elif name in BOOLS:
                if r["support_required"] != (value == "true"):
                    return False
            elif r.get(name) != value:
                return False
        return True


__all__ = ["ParrotMobSimulator"]
