"""ParrotMob ("Macaw" API, seed 000): account-scoped offset paging with NO server-side time filter.

Every window is cut client-side from a newest-first list, so the walk's cost is the number of conversations
newer than the window's start: a recent window costs a page or two, an old one walks down to it. The list is
asked for newest first (``order_by``) so the walk can stop at the first conversation older than the window,
but only when that order can be trusted (see :class:`NewestFirstPaginator`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from airflow_provider_conversations.exceptions import (
    ConfigurationError,
    InvalidFilterError,
    InvalidResponseError,
    PaginationError,
)
from airflow_provider_conversations.filters import Filter, FilterSet, Params
from airflow_provider_conversations.hooks import path_segment, path_segment_problem
from airflow_provider_conversations.hooks.base import ConnectionSettings, ConversationsHook, ErrorDetails, TimeKey, Walk
from airflow_provider_conversations.paging import Item, OffsetPaginator
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
class NewestFirstPaginator(OffsetPaginator):
    """Offset paging (``limit``/``offset``, ends on a short page) that stops at the first conversation older
    than the window start, once the order is known to be newest first on the window's time key.

    ``trusted=True`` (``inserted_at_desc``, what the docs really promise): a page whose last conversation is
    older than the window start ends the walk, and a first page entirely newer than the window end makes the
    walk ``seek`` ahead to where the window begins (an old window does not cost every page above it).

    ``trusted=False`` (``updated_at_desc``, which the docs say sorts by ``inserted_at``): the walk stops early
    only after the pages have PROVEN updated-at order. Consecutive conversations (in walk order, skipping
    ids already seen, which offset paging repeats when rows are inserted at the top) are compared:

    - ``updated_at`` going up is disorder: the list is not newest-updated first. One warning is logged and
      the walk goes to the end of the list (exact, just slower); it never stops early again.
    - ``updated_at`` not going up while ``inserted_at`` goes up proves the list is not in inserted-at order,
      the only other order the API is known to use: from then on the early stop is allowed, and every later
      page is still checked (within the page) for disorder.
    - anything else (one item per page, short pages, rows sorted by both keys by chance) is ambiguous: keep
      walking without stopping early. Ambiguity costs requests, never conversations.

    Every walk must also keep reaching conversations it has not read: while the order is trusted, something
    older than what was seen; otherwise, an id not seen in this walk (remembered as hashes, and only then). If
    ``max_stalled`` full pages in a row bring nothing new (conversations inserted at the top as fast as the
    walk pages shift every offset page back onto ones already read), it raises instead of paging forever.
    """

    key: TimeKey = field(kw_only=True)
    start: datetime | None = field(kw_only=True)
    trusted: bool = field(kw_only=True)
    warn: Callable[..., Any] = field(kw_only=True)
    hook_name: str = field(kw_only=True, default="ParrotMob")
    max_stalled: int = field(kw_only=True, default=50)
    #: With a trusted order: the window's end, and a search that skips the conversations newer than it
    #: (given the offset where they continue, returns the offset of the first one older than ``end``).
    end: datetime | None = field(kw_only=True, default=None)
    seek: Callable[[int], int] | None = field(kw_only=True, default=None)
    proven: bool = field(init=False, default=False)
    disordered: bool = field(init=False, default=False)
    _seen: set[int] | None = field(init=False, default_factory=set)
    _prev: tuple[str, datetime, datetime] | None = field(init=False, default=None)
    _frontier: datetime | None = field(init=False, default=None)
    _frontier_ids: set[str] = field(init=False, default_factory=set)
    _stalled: int = field(init=False, default=0)

    @property
    def ordered(self) -> bool:
        """Whether the pages are known to be newest first on the time key (so the walk may stop early)."""
        return self.trusted or (self.proven and not self.disordered)

    def next_params(self, params: Params, body: Any, items: list[Item]) -> Params | None:
        nxt = super().next_params(params, body, items)
        if nxt is None:
            return None
        fresh = self._observe(items) if not self.trusted else True
        progressed = self._progressed(items) if self.ordered else fresh
        self._stalled = 0 if progressed else self._stalled + 1
        if self._stalled >= self.max_stalled:
            raise PaginationError(
                f"{self.hook_name} pagination is not making progress: {self._stalled} full pages in a row brought "
                f"no conversation the walk had not read (new conversations are inserted at the top as fast as it "
                f"pages; next offset {nxt['offset']}); use a larger page_size"
            )
        if self.ordered and self.start is not None:
            oldest = self.key.of(items[-1])
            if oldest is not None and oldest < self.start:
                return None
        if self.trusted and self.seek is not None and self.end is not None:
            oldest = self.key.of(items[-1])
            if oldest is not None and oldest >= self.end:
                # A whole page newer than the window (none of it yielded): jump to where the window begins.
                seek, self.seek = self.seek, None
                return {**nxt, "offset": str(seek(int(str(nxt["offset"]))))}
        return nxt

    def _progressed(self, items: list[Item]) -> bool:
        """Whether the page reached further down the newest-first list than any page before it."""
        progressed = False
        for item in items:
            ts, item_id = self.key.of(item), str(item.get("id"))
            if ts is None:
                continue
            if self._frontier is None or ts < self._frontier:
                self._frontier, self._frontier_ids, progressed = ts, {item_id}, True
            elif ts == self._frontier and item_id not in self._frontier_ids:
                self._frontier_ids.add(item_id)
                progressed = True
        return progressed

    def _observe(self, items: list[Item]) -> bool:
        """Compare consecutive conversations (see the class docstring); whether the page had an unseen id."""
        if self.ordered:
            self._prev = None  # after proof, compare within a page only: a page is one consistent snapshot
        fresh = False
        for item in items:
            item_id = str(item.get("id"))
            if self._seen is not None:
                digest = hash(item_id)
                if digest in self._seen:
                    continue  # shifted back onto this page by inserts: already compared
                self._seen.add(digest)
            fresh = True
            if self.disordered:
                continue
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
                self._seen = self._seen if self._seen is not None else set()
                self.warn(
                    "%s: asked for updated_at_desc, got conversation %s (updated_at %s) after %s (updated_at %s), "
                    "so the list is not sorted by updated_at (the docs say updated_at_* sorts by inserted_at); "
                    "walking to the end of the list instead of stopping early", self.hook_name, item_id,
                    iso_z(updated), prev_id, iso_z(prev_updated),
                )
            elif inserted > prev_inserted and not self.proven:
                self.proven, self._seen = True, None
        return fresh


class ParrotMobHook(ConversationsHook):
    """Lists ParrotMob conversations by ``inserted_at`` (created) or ``updated_at`` (updated).

    Connection: Host = API base URL (required: there is no public default); Password = API token (sent as
    ``Authorization: Bearer``); extra ``account_id`` (default ``me``, the token's own account).
    """

    conn_type = "parrotmob"
    default_conn_name = "parrotmob_default"
    hook_name = "ParrotMob"
    vendor = "parrotmob"
    # ParrotMob documents neither a channel nor a duration: used only if the API sends them.
    duration_field = "duration"
    default_base_url = None
    extra_fields = ("account_id",)
    time_keys = {
        "created": TimeKey("created", "inserted_at", parse_iso),
        "updated": TimeKey("updated", "updated_at", parse_iso),
    }
    max_page_size = MAX_PAGE_SIZE
    server_bounded = False
    in_progress_statuses = IN_PROGRESS
    finished_statuses = FINISHED
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

    def validate_extras(self, extras: Mapping[str, Any], secret: str) -> None:
        if "account_id" in extras and (problem := path_segment_problem(extras["account_id"])):
            raise ConfigurationError(
                f"ParrotMob connection {self.conn_id!r} has account_id={extras['account_id']!r}; {problem}"
            )

    def auth_headers(self, settings: ConnectionSettings) -> dict[str, str]:
        return {"Authorization": f"Bearer {settings.secret}"}

    def list_path(self, settings: ConnectionSettings) -> str:
        return f"accounts/{path_segment(settings.extras.get('account_id', 'me'))}/conversations"

    def new_walk(self, window: Window | None, time_key: TimeKey, filters: Mapping[str, Any],
                 page_size: int) -> Walk:
        params: Params = {
            "limit": str(page_size),
            "offset": "0",
            "order_by": ORDER_BY[time_key.name],
            **self.filter_set.to_params(filters),
        }
        trusted = time_key.name == "created"
        paginator = NewestFirstPaginator("offset", page_size, key=time_key, trusted=trusted,
                                         start=window.start if window else None, warn=self.log.warning)
        if trusted:
            # Newest first, and rows inserted during the walk push older ones onto later pages: repeats sit
            # behind the frontier, where Dedup drops them. An old window starts where it begins, not at the top.
            if window is not None:
                paginator.end = window.end
                paginator.seek = lambda offset: self._seek(params, offset, window.end, time_key)
            return Walk(params, paginator, order="desc", repeats=True)
        return Walk(params, paginator, order=None)

    def _seek(self, params: Params, base: int, end: datetime, key: TimeKey) -> int:
        """Offset of the first conversation older than ``end``, searching from ``base`` (all newer before it).

        One-item probes gallop (``base``, +1, +3, +7, ...) past the conversations newer than the window, then
        bisect: a window far down a long history costs about 2 log2(n) tiny requests instead of every page
        above it. Conversations inserted meanwhile only push the window further down, so the offset found can
        be early (harmless: those rows are cut client-side) but never late.
        """

        def above_window(offset: int) -> bool:
            items = self.page_items(self.get_json({**params, "limit": "1", "offset": str(offset)}))
            if not items:
                return False  # past the end of the list
            ts = key.of(items[0])
            if ts is None:
                raise InvalidResponseError(
                    f"ParrotMob returned a conversation without a valid {key.field!r}: {items[0].get(key.field)!r}",
                    vendor=self.vendor,
                )
            return ts >= end

        lo, step = base - 1, 1  # lo: last offset known above the window; hi: first offset known not above it
        hi = base
        while above_window(hi):
            lo, hi, step = hi, hi + step, step * 2
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if above_window(mid):
                lo = mid
            else:
                hi = mid
        self.log.info("ParrotMob: %d conversations are newer than the window; continuing at offset %d", hi, hi)
        return hi

    def page_items(self, body: Any) -> list[Item]:
        items = body.get("data") if isinstance(body, dict) else body
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise InvalidResponseError(
                f"ParrotMob returned neither a JSON array of conversations nor an object with a 'data' array: "
                f"{str(body)[:120]!r}", vendor=self.vendor,
            )
        return items

    def error_details(self, body: Any) -> ErrorDetails:
        """Phoenix-style ``{"errors": {"detail", "code", "param"}}``; other shapes as the base reads them."""
        errors = body.get("errors") if isinstance(body, dict) else None
        if isinstance(errors, dict):
            return ErrorDetails(*(None if errors.get(k) is None else str(errors[k])
                                  for k in ("code", "detail", "param", "request_id")))
        return super().error_details(body)

    def finished_filters(self, filters: Mapping[str, Any]) -> dict[str, Any]:
        status = filters.get("status")
        if status in IN_PROGRESS:
            raise InvalidFilterError(
                f"finished_only=True contradicts ParrotMob filter status={status!r} (an in-progress status); "
                "drop one of them, or filter on completed, expired, cancelled or any_terminal"
            )
        return {"status": status or ANY_TERMINAL}
