"""The page loop of one walk over one window: send what the paginator asks for, keep each in-window
conversation once, and stop a walk that cannot make progress.

Exactly once within a walk:

- the half-open window ``[start, end)`` is cut client-side on the parsed time key (server bounds are inclusive,
  coarse or absent);
- :class:`Dedup` drops repeats. With an order guarantee it keeps only the ids at the frontier instant (flat
  memory however large the window); without one, every id.

A walk that cannot make progress fails loudly instead of paging forever:

- every request of the walk is fingerprinted, and one sent twice is a loop (a repeated cursor, an offset that
  does not advance), whatever lies between the two;
- a run of pages that bring nothing the walk had not seen is a stall: empty pages that still announce more, or
  (offset paging under inserts) full pages shifted back onto conversations already read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from airflow_provider_conversations.engine.paginators import Answer, Context, Item, Order, Paginator, Request
from airflow_provider_conversations.engine.plan import TimeKey
from airflow_provider_conversations.engine.state import decode, encode
from airflow_provider_conversations.exceptions import InvalidResponseError, PaginationError
from airflow_provider_conversations.stats import HookStats
from airflow_provider_conversations.transport.session import Params
from airflow_provider_conversations.windows import Window

#: Pages in a row without anything new after which a walk is declared stuck.
MAX_STALLED_PAGES = 50
#: Version of the walk state a checkpoint holds; a checkpoint of another version is not resumed.
STATE_VERSION = 1


@dataclass(frozen=True)
class Walk:
    """One pass over a window: the first request's parameters, its paginator, and what the order guarantees.

    ``order`` is the order the vendor guarantees on the time key for this request (documented, or asked for with
    a sort parameter). It lets de-duplication keep only the ids at the frontier instead of every id. ``repeats``
    says whether the pagination itself can serve an item twice behind the frontier (offset paging while rows
    are inserted); such a walk also proves progress by new conversations, not just by non-empty pages.
    """

    params: Params
    paginator: Paginator
    order: Order | None = None
    repeats: bool = False


class Page(list[Item]):
    """The in-window, not-yet-seen conversations of one vendor page.

    ``number`` counts pages within a (sub-)window walk; ``part`` is the sub-window's index when the window is
    fetched in parallel (0 otherwise), and ``descending`` says the walk goes newest first: together they let
    :func:`~airflow_provider_conversations.engine.parallel.in_walk_order` restore a sequential walk's order.
    """

    def __init__(self, items: list[Item], *, number: int, fetched: int, part: int = 0,
                 descending: bool = False) -> None:
        super().__init__(items)
        self.number = number
        self.fetched = fetched
        self.part = part
        self.descending = descending
        #: The walk's position right after this page (JSON, see :func:`run_walk`); built only when called.
        self.resume_state: Callable[[], dict[str, Any]] | None = None


class Dedup:
    """Exactly-once within one walk.

    In a walk whose order on the time key is guaranteed, a repeat can only sit at or behind the frontier (the
    newest instant seen in an ascending walk, the oldest in a descending one), so only the ids at the frontier
    instant are kept. Without an order guarantee, every id is kept.

    An item behind the frontier is a repeat when the pagination can repeat (offset paging under inserts). When it
    cannot (cursors), the vendor broke the order we rely on: the item is kept, ``on_disorder`` is told, and
    de-duplication falls back to remembering every id, so nothing is lost and nothing doubled.
    """

    def __init__(self, order: Order | None, *, repeats: bool = False,
                 on_disorder: Callable[[str, datetime, datetime], None] | None = None) -> None:
        self.order = order
        self.repeats = repeats
        self._on_disorder = on_disorder
        self._frontier: datetime | None = None
        self._ids: set[str] = set()

    def first_time(self, item_id: str, ts: datetime) -> bool:
        if self.order is None:
            if item_id in self._ids:
                return False
            self._ids.add(item_id)
            return True
        f = self._frontier
        if f is None or (ts > f if self.order == "asc" else ts < f):
            self._frontier = ts
            self._ids = {item_id}
            return True
        if ts == f or not self.repeats:
            if item_id in self._ids:
                return False
            self._ids.add(item_id)
            if ts != f:
                if self._on_disorder is not None:
                    self._on_disorder(item_id, ts, f)
                self.order = None  # keep every id from now on
            return True
        return False

    def to_json(self) -> dict[str, Any]:
        """What de-duplication knows (the frontier and its ids, or every id without an order), as JSON."""
        return {"order": self.order, "frontier": encode(self._frontier), "ids": sorted(self._ids)}

    def from_json(self, state: Mapping[str, Any]) -> None:
        self.order = state["order"]
        self._frontier = decode(state["frontier"])
        self._ids = set(state["ids"])


class Progress:
    """Whether a walk's pages still bring conversations it has not seen (all of a page, not just the window).

    A cursor walk moves on with every non-empty page (a repeated cursor is a loop, caught by fingerprints). An
    offset walk that can repeat must bring a new conversation: with an order, one beyond the frontier (the
    frontier of a :class:`Dedup` over every item); without, an id not seen before (remembered as hashes, and only
    in such walks).
    """

    def __init__(self, order: Order | None, repeats: bool) -> None:
        self.repeats = repeats
        self.order: Order | None = None
        self._frontier: Dedup | None = None
        self._seen: set[int] = set()
        self._judge_by(order)

    def reorder(self, order: Order | None) -> None:
        """Judge progress in ``order`` from now on (a paginator may learn the walk's real order)."""
        if order != self.order:
            self._judge_by(order)

    def _judge_by(self, order: Order | None) -> None:
        self.order = order
        self._frontier = Dedup(order, repeats=True) if order is not None else None
        self._seen = set()

    def fresh(self, items: list[Item], times: list[datetime], id_field: str) -> list[Item]:
        if not self.repeats:
            return items
        if self._frontier is not None:
            advance = self._frontier.first_time
            return [item for item, ts in zip(items, times, strict=True) if advance(str(item.get(id_field)), ts)]
        out = []
        seen = self._seen
        for item in items:
            digest = _stable_hash(str(item.get(id_field)))
            if digest not in seen:
                seen.add(digest)
                out.append(item)
        return out


    def to_json(self) -> dict[str, Any]:
        return {"order": self.order, "frontier": self._frontier.to_json() if self._frontier is not None else None,
                "seen": sorted(self._seen)}

    def from_json(self, state: Mapping[str, Any]) -> None:
        self._judge_by(state["order"])
        if self._frontier is not None and state["frontier"] is not None:
            self._frontier.from_json(state["frontier"])
        self._seen = set(state["seen"])


def _stable_hash(text: str) -> int:
    """64 bits of an id, the same in every process (``hash()`` is salted per process; a checkpoint is not)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def run_walk(walk: Walk, window: Window, key: TimeKey, *, fetch: Callable[[Params], Any],
             items_of: Callable[[Any], list[Item]], id_field: str, context: Context, stats: HookStats,
             max_stalled: int = MAX_STALLED_PAGES, resume: Mapping[str, Any] | None = None) -> Iterator[Page]:
    """Yield, page by page, the conversations of ``window`` on ``key`` that this walk had not yielded yet.

    ``fetch`` sends one request (retried, paced) and returns the decoded body; ``items_of`` reads the vendor's
    conversations from a body (checking its envelope).

    Every page carries ``resume_state()``: the walk's position after it (the next request, the paginator's
    typed state, de-duplication's frontier, progress and page counts) as JSON. ``resume`` continues a walk
    from such a position, exactly as the original walk would have gone on: same requests, same pages. Loop
    detection starts afresh from there (the fingerprints of requests sent before are not kept).
    """
    paginator = walk.paginator
    paginator.context = context
    dedup = Dedup(walk.order, repeats=walk.repeats, on_disorder=_disorder_logger(walk, key, context))
    progress = Progress(paginator.progress_order(walk.order), walk.repeats)
    request: Request | None = Request(paginator.first(walk.params))
    sent: set[tuple[Any, ...]] = set()
    number = stalled = 0
    stalled_empty = True
    nxt: Request | None = None
    if resume is not None:
        paginator.from_json(resume["paginator"])
        dedup.from_json(resume["dedup"])
        progress.from_json(resume["progress"])
        number, stalled, stalled_empty = resume["number"], resume["stalled"], resume["stalled_empty"]
        saved = resume["next"]
        request = None if saved is None else Request(saved["params"], probe=saved["probe"])

    def resume_state() -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "number": number, "stalled": stalled, "stalled_empty": stalled_empty,
            "next": None if nxt is None else {"params": nxt.params, "probe": nxt.probe},
            "paginator": paginator.to_json(), "dedup": dedup.to_json(), "progress": progress.to_json(),
        }
    field, parse, lo, hi = key.field, key.parse, window.start, window.end
    while request is not None:
        fingerprint = (request.probe, *_fingerprint(request.params))
        if fingerprint in sent:
            raise PaginationError(
                f"{context.name} pagination is not making progress: the request {_show(request.params)} was "
                f"already sent in this walk (page {number + 1}); stopping instead of looping forever"
            )
        sent.add(fingerprint)
        body = fetch(request.params)
        items = items_of(body)
        # The per-conversation hot path: locals instead of attribute lookups.
        times: list[datetime] = []
        for item in items:
            ts = parse(item.get(field))
            if ts is None:
                raise InvalidResponseError(
                    f"{context.name} returned a conversation ({id_field}={item.get(id_field)!r}) without a valid "
                    f"{field!r}: {item.get(field)!r}", vendor=context.vendor,
                )
            times.append(ts)
        if request.probe:
            request = paginator.next(Answer(request, body, items, times, items))
            continue
        fresh = progress.fresh(items, times, id_field)
        nxt = paginator.next(Answer(request, body, items, times, fresh))
        progress.reorder(paginator.progress_order(walk.order))
        number += 1
        kept: list[Item] = []
        duplicates = 0
        first_time = dedup.first_time
        for item, ts in zip(items, times, strict=True):
            if lo <= ts < hi:
                if first_time(str(item.get(id_field)), ts):
                    kept.append(item)
                else:
                    duplicates += 1
        stats.add(pages=1, fetched=len(items), yielded=len(kept), duplicates=duplicates)
        if fresh:
            stalled, stalled_empty = 0, True
        else:
            stalled, stalled_empty = stalled + 1, stalled_empty and not items
        if nxt is not None and stalled >= max_stalled:
            raise PaginationError(_stall_message(context.name, stalled, stalled_empty, paginator))
        page = Page(kept, number=number, fetched=len(items), descending=walk.order == "desc")
        page.resume_state = resume_state
        yield page
        request = nxt


def _stall_message(name: str, pages: int, empty: bool, paginator: Paginator) -> str:
    if empty:
        return (f"{name} returned {pages} empty pages in a row while still announcing more; stopping instead of "
                "paging forever")
    return (f"{name} pagination is not making progress: {pages} full pages in a row brought no conversation the "
            f"walk had not read{paginator.stall_hint()}")


def _disorder_logger(walk: Walk, key: TimeKey, context: Context) -> Callable[[str, datetime, datetime], None]:
    def log(item_id: str, ts: datetime, frontier: datetime) -> None:
        context.log.warning(
            "%s returned conversation %s (%s=%s) after %s, against the %s order this walk relies on; "
            "keeping it and remembering every id from now on", context.name, item_id, key.field,
            ts.isoformat(), frontier.isoformat(), "ascending" if walk.order == "asc" else "descending",
        )
    return log


def _fingerprint(params: Params) -> tuple[Any, ...]:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in params.items()))


def _show(params: Params) -> str:
    return "&".join(f"{k}={v}" for k, v in sorted(params.items()))


__all__ = ["MAX_STALLED_PAGES", "STATE_VERSION", "Dedup", "Page", "Progress", "Walk", "run_walk"]
