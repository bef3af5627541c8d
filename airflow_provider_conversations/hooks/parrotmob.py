"""ParrotMob ("Macaw" API, seed 000): account-scoped offset paging with NO server-side time filter.

Every window is cut client-side from a newest-first list, so the walk's cost is the number of conversations
newer than the window's start: a recent window costs a page or two, an old one walks down to it. The list is
asked for newest first (``order_by``) so the walk can stop at the first conversation older than the window,
but only when that order can be trusted (see :class:`NewestFirstPaginator`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from airflow_provider_conversations.engine.paginators import Answer, Item, OffsetPaginator, Order, Request
from airflow_provider_conversations.engine.state import decode, encode
from airflow_provider_conversations.exceptions import InvalidResponseError
from airflow_provider_conversations.filters import Filter, FilterSet
from airflow_provider_conversations.hooks.base import ConnectionSettings, ConversationsHook, Paging, TimeKey
from airflow_provider_conversations.hooks.statuses import Statuses
from airflow_provider_conversations.transport.connection import path_segment
from airflow_provider_conversations.transport.errors import ANY_SHAPE, envelope, phoenix_errors
from airflow_provider_conversations.transport.session import Params
from airflow_provider_conversations.windows import Window, iso_z, parse_iso

#: The docs give no maximum (``limit=0`` even means "everything"); 500 keeps responses modest while a
#: recent window still fits in one or two requests. ``page_size`` can lower it.
MAX_PAGE_SIZE = 500
#: Newest first on the walk's time key: the only orders that let a walk stop early.
ORDER_BY = {"created": "inserted_at_desc", "updated": "updated_at_desc"}
IN_PROGRESS = frozenset({"scheduled", "ready", "running"})
FINISHED = frozenset({"completed", "expired", "cancelled"})
ANY_TERMINAL = "any_terminal"
STATUSES = ("scheduled", "ready", "running", "completed", "expired", "cancelled", ANY_TERMINAL)


@dataclass
class _Seek:
    """A search for the first offset older than the window's end: ``lo`` is known newer, ``hi`` not."""

    lo: int
    hi: int
    end: datetime
    params: Params
    step: int = 1
    bisecting: bool = False
    at: int = 0


@dataclass
class NewestFirstPaginator(OffsetPaginator):
    """Offset paging (``limit``/``offset``, ends on a short page) that stops at the first conversation older
    than the window start, once the order is known to be newest first on the window's time key.

    ``trusted=True`` (``inserted_at_desc``, what the docs really promise): a page whose last conversation is
    older than the window start ends the walk, and a first page entirely newer than the window end makes the
    walk seek ahead to where the window begins, so an old window does not cost every page above it. The seek
    is a search of one-item probe requests (galloping ``base``, +1, +3, +7, ..., then bisecting: about 2 log2(n)
    tiny requests), each returned to the walk like any request. Conversations inserted meanwhile only push the
    window further down, so the offset found can be early (harmless: those rows are cut client-side) but never
    late.

    ``trusted=False`` (``updated_at_desc``, which the docs say sorts by ``inserted_at``): the walk stops early
    only after the pages have PROVEN updated-at order. Consecutive conversations new to the walk (offset paging
    repeats ids when rows are inserted at the top) are compared:

    - ``updated_at`` going up is disorder: the list is not newest-updated first. One warning is logged and
      the walk goes to the end of the list (exact, just slower); it never stops early again.
    - ``updated_at`` not going up while ``inserted_at`` goes up proves the list is not in inserted-at order,
      the only other order the API is known to use: from then on the early stop is allowed, and every later
      page is still checked (within the page) for disorder.
    - anything else (one item per page, short pages, rows sorted by both keys by chance) is ambiguous: keep
      walking without stopping early. Ambiguity costs requests, never conversations.

    Progress (the walk must keep reaching conversations it has not read) is the engine's: judged newest first
    once the order is trusted or proven, by ids never seen before otherwise (:meth:`progress_order`).
    """

    start: datetime | None = field(kw_only=True)
    trusted: bool = field(kw_only=True)
    #: With a trusted order: the window's end, past which the walk may seek (once).
    end: datetime | None = field(kw_only=True, default=None)
    proven: bool = field(init=False, default=False)
    disordered: bool = field(init=False, default=False)
    _prev: tuple[str, datetime, datetime] | None = field(init=False, default=None)
    _seek: _Seek | None = field(init=False, default=None)
    state_fields: ClassVar[tuple[str, ...]] = ("offset", "end", "proven", "disordered", "_prev")

    def to_json(self) -> dict[str, Any]:
        state = super().to_json()
        state["_seek"] = encode(asdict(self._seek)) if self._seek is not None else None
        return state

    def from_json(self, state: dict[str, Any]) -> None:
        super().from_json(state)
        seek = decode(state.get("_seek"))
        self._seek = _Seek(**seek) if seek is not None else None

    @property
    def ordered(self) -> bool:
        """Whether the pages are known to be newest first on the time key (so the walk may stop early)."""
        return self.trusted or (self.proven and not self.disordered)

    def progress_order(self, declared: Order | None) -> Order | None:
        return "desc" if self.ordered else None

    def stall_hint(self) -> str:
        return (f" (new conversations are inserted at the top as fast as it pages; next offset {self.offset}); use "
                "a larger page_size")

    def next(self, answer: Answer) -> Request | None:
        if answer.request.probe:
            return self._probed(answer)
        nxt = super().next(answer)
        if nxt is None:
            return None
        if not self.trusted:
            self._observe(answer.fresh)
        oldest = answer.times[-1]
        if self.ordered and self.start is not None and oldest < self.start:
            return None
        if self.end is not None and oldest >= self.end:
            # A whole page newer than the window (none of it yielded): search where the window begins.
            self._seek = _Seek(lo=self.offset - 1, hi=self.offset, end=self.end, params=nxt.params)
            self.end = None  # once per walk
            return self._probe(self._seek.hi)
        return nxt

    def _probe(self, offset: int) -> Request:
        assert self._seek is not None
        self._seek.at = offset
        return Request({**self._seek.params, self.limit_param: "1", self.offset_param: str(offset)}, probe=True)

    def _probed(self, answer: Answer) -> Request:
        seek = self._seek
        assert seek is not None
        above = bool(answer.items) and answer.times[0] >= seek.end
        if not seek.bisecting:
            if above:
                seek.lo, seek.hi, seek.step = seek.hi, seek.hi + seek.step, seek.step * 2
                return self._probe(seek.hi)
            seek.bisecting = True
        elif above:
            seek.lo = seek.at
        else:
            seek.hi = seek.at
        if seek.hi - seek.lo > 1:
            return self._probe((seek.lo + seek.hi) // 2)
        self._seek = None
        self.offset = seek.hi
        self.context.log.info("%s: %d conversations are newer than the window; continuing at offset %d",
                              self.context.name, seek.hi, seek.hi)
        return Request({**seek.params, self.offset_param: str(seek.hi)})

    def _observe(self, fresh: list[Item]) -> None:
        """Compare consecutive new conversations for the updated-at order (see the class docstring)."""
        if self.ordered:
            self._prev = None  # after proof, compare within a page only: a page is one consistent snapshot
        for item in fresh:
            if self.disordered:
                return
            item_id = str(item.get("id"))
            inserted, updated = parse_iso(item.get("inserted_at")), parse_iso(item.get("updated_at"))
            prev, self._prev = self._prev, None
            if inserted is None or updated is None:
                continue
            self._prev = (item_id, inserted, updated)
            if prev is None:
                continue
            prev_id, prev_inserted, prev_updated = prev
            if updated > prev_updated:
                self.disordered = True
                self.context.log.warning(
                    "%s: asked for updated_at_desc, got conversation %s (updated_at %s) after %s (updated_at %s), "
                    "so the list is not sorted by updated_at (the docs say updated_at_* sorts by inserted_at); "
                    "walking to the end of the list instead of stopping early", self.context.name, item_id,
                    iso_z(updated), prev_id, iso_z(prev_updated),
                )
            elif inserted > prev_inserted and not self.proven:
                self.proven = True


class ParrotMobHook(ConversationsHook):
    """Lists ParrotMob conversations by ``inserted_at`` (created) or ``updated_at`` (updated).

    Connection: Host = API base URL (required: there is no public default); Password = API token (sent as
    ``Authorization: Bearer``); extra ``account_id`` (default ``me``, the token's own account).
    """

    conn_type = "parrotmob"
    hook_name = "ParrotMob"
    # ParrotMob documents neither a channel nor a duration: used only if the API sends them.
    duration_field = "duration"
    time_keys = {
        "created": TimeKey("created", "inserted_at", parse_iso),
        "updated": TimeKey("updated", "updated_at", parse_iso),
    }
    max_page_size = MAX_PAGE_SIZE
    server_bounded = False
    statuses = Statuses.of("status", in_progress=IN_PROGRESS, finished=FINISHED)
    error_envelope = envelope(phoenix_errors, *ANY_SHAPE.readers)
    filter_set = FilterSet(
        vendor="ParrotMob",
        filters=(
            Filter("audience_membership_id", description="only conversations of this audience membership"),
            Filter("conversation_graph_id", description="only conversations of this conversation graph"),
            Filter("support_required", "bool", description="true: waiting for a reply from customer support"),
            Filter("needs_support", "bool", alias_of="support_required",
                   description="deprecated spelling of support_required (sent as support_required)"),
            Filter("status", "enum", choices=STATUSES,
                   description="one status, or any_terminal (completed, expired or cancelled)"),
        ),
        reserved={
            "limit": "the hook pages; pass page_size to the hook instead (0 would mean 'everything at once')",
            "offset": "the hook pages; it is not a filter",
            "order_by": "the hook sorts newest first on the time key so it can stop early; pass time_key instead",
        },
    )
    # in_progress_filters stays None: "in progress" is three statuses and the API filters on one.

    def auth_headers(self, settings: ConnectionSettings) -> dict[str, str]:
        return {"Authorization": f"Bearer {settings.secret}"}

    def list_path(self, settings: ConnectionSettings) -> str:
        return f"accounts/{path_segment(settings.extras.get('account_id', 'me'))}/conversations"

    def fixed_params(self, key: TimeKey) -> Params:
        return {"order_by": ORDER_BY[key.name]}

    def paging(self, key: TimeKey, page_size: int, window: Window | None) -> Paging:
        trusted = key.name == "created"
        paginator = NewestFirstPaginator(page_size, first_offset=0, trusted=trusted,
                                         start=window.start if window else None,
                                         end=window.end if window and trusted else None)
        # Newest first, and rows inserted during the walk push older ones onto later pages: with a trusted
        # order, repeats sit behind the frontier, where Dedup drops them; otherwise every id is remembered.
        return Paging(paginator, order="desc" if trusted else None, repeats=True)

    def page_items(self, body: Any) -> list[Item]:
        items = body.get("data") if isinstance(body, dict) else body
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise InvalidResponseError(
                f"ParrotMob returned neither a JSON array of conversations nor an object with a 'data' array: "
                f"{str(body)[:120]!r}", vendor=self.vendor,
            )
        return items

    @classmethod
    def finished_filters(cls, filters: Mapping[str, Any]) -> dict[str, Any]:
        cls.refuse_in_progress_status(filters, ", or filter on completed, expired, cancelled or any_terminal")
        return {"status": filters.get("status") or ANY_TERMINAL}
