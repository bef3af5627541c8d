"""Pagination styles as small objects with one job: what to ask for first, and what to ask for next.

A paginator never sends a request. The walk (``engine/walk.py``) sends what it returns, so loop detection,
retries, pacing and statistics cover every request of a walk, and hands each answer back to it. State is
typed (an int offset, a cursor string, a learnt server comparison), kept on the paginator of one walk,
never re-parsed from query parameters.

- :meth:`Paginator.first` writes the paging parameters of the first request (``limit``, a first offset);
- :meth:`Paginator.next` reads an :class:`Answer` and returns the next :class:`Request`, or ``None`` when the
  walk is complete. A request marked ``probe`` asks where the walk should continue: its items are shown to the
  paginator but are not conversations of the walk (ParrotMob's seek).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal

from airflow_provider_conversations.engine.state import decode, encode
from airflow_provider_conversations.exceptions import InvalidResponseError
from airflow_provider_conversations.logs import Log
from airflow_provider_conversations.transport.session import Params

Item = dict[str, Any]
Order = Literal["asc", "desc"]


@dataclass(frozen=True)
class Context:
    """Who the walk talks to, for the messages a paginator raises or logs."""

    vendor: str
    name: str
    log: Log


@dataclass(frozen=True)
class Request:
    """One request of a walk: its query parameters, and whether it is a probe (its items are not yielded)."""

    params: Params
    probe: bool = False


@dataclass(frozen=True)
class Answer:
    """A page as the paginator sees it.

    ``times`` holds the walk's time key of each item, already parsed (an item without one fails the walk before
    any paginator sees it); ``fresh`` the items this walk had not seen before (offset paging shifts items it
    already read back onto later pages when rows are inserted).
    """

    request: Request
    body: Any
    items: list[Item]
    times: list[datetime]
    fresh: list[Item]


class Paginator(ABC):
    """The paging of one walk. Subclasses keep their state typed; ``context`` is set before the first request."""

    context: Context
    #: The attributes that change while a walk pages: what a checkpoint saves and a resumed walk restores (the
    #: rest is configuration, rebuilt identically by the hook for the same export).
    state_fields: ClassVar[tuple[str, ...]] = ()

    def to_json(self) -> dict[str, Any]:
        """The walk's position as JSON (see ``state_fields``)."""
        return {name: encode(getattr(self, name)) for name in self.state_fields}

    def from_json(self, state: dict[str, Any]) -> None:
        """Continue from a position saved by :meth:`to_json` (after :meth:`first`, which it overrides)."""
        missing = [name for name in self.state_fields if name not in state]
        if missing:
            raise ValueError(f"paginator state lacks {', '.join(missing)}")
        for name in self.state_fields:
            setattr(self, name, decode(state[name]))

    @abstractmethod
    def first(self, params: Params) -> Params:
        """The first request's parameters: ``params`` (filters, bounds, sort) plus the paging ones."""

    @abstractmethod
    def next(self, answer: Answer) -> Request | None:
        """The next request after ``answer``, or ``None`` when the walk is complete."""

    def progress_order(self, declared: Order | None) -> Order | None:
        """The order a walk's progress is judged in (see ``Walk``): the declared one unless proven otherwise."""
        return declared

    def stall_hint(self) -> str:
        """Added to the error raised when pages keep coming back without anything new."""
        return ""


@dataclass
class BodyCursorPaginator(Paginator):
    """An opaque cursor read from a body field and sent back as a query parameter.

    ``cursor`` names the body field holding the next cursor (``None``/``""``: the end); ``has_more``, when the
    vendor has one, names its boolean "more pages" flag, which wins over a cursor still present on the last
    page. A cursor that is not a string, and a page that announces more without a cursor (the walk could not
    continue and would silently miss conversations), fail here; the rest of the envelope is the vendor's to check
    (``page_items``).
    """

    limit_param: str
    page_size: int
    cursor_param: str
    cursor: str
    has_more: str | None = None

    def first(self, params: Params) -> Params:
        return {self.limit_param: str(self.page_size), **params}

    def next(self, answer: Answer) -> Request | None:
        body = answer.body
        cursor = body.get(self.cursor)
        if cursor is not None and not isinstance(cursor, str):
            raise InvalidResponseError(f"{self.context.name} returned a {self.cursor} that is not a string: "
                                       f"{cursor!r}", vendor=self.context.vendor)
        if self.has_more is not None:
            if body.get(self.has_more) is not True:
                return None
            if not cursor:
                raise InvalidResponseError(
                    f"{self.context.name} announced {self.has_more}=true without a {self.cursor}; the walk cannot "
                    "continue and would silently miss conversations", vendor=self.context.vendor,
                )
        if not cursor:
            return None
        return Request({**answer.request.params, self.cursor_param: cursor})


@dataclass
class OffsetPaginator(Paginator):
    """``limit``/``offset`` paging that ends on a short page, or where the vendor stops returning an offset.

    With ``next_offset`` (a body field) the next offset comes from the body (PolyAI v1 ``next_offset``, absent on
    the last page); otherwise it advances by the number of items received. ``first_offset`` is sent on the
    first request when the vendor wants it spelled out (``None``: the first request has no offset).
    """

    page_size: int
    limit_param: str = "limit"
    offset_param: str = "offset"
    next_offset: str | None = None
    first_offset: int | None = None
    offset: int = field(default=0, init=False)
    state_fields: ClassVar[tuple[str, ...]] = ("offset",)

    def first(self, params: Params) -> Params:
        first = {**params, self.limit_param: str(self.page_size)}
        if self.first_offset is not None:
            self.offset = self.first_offset
            first[self.offset_param] = str(self.offset)
        return first

    def next(self, answer: Answer) -> Request | None:
        if self.next_offset is not None:
            value = answer.body.get(self.next_offset) if isinstance(answer.body, dict) else None
            if not isinstance(value, int) or isinstance(value, bool):
                return None
            nxt = value
        else:
            if len(answer.items) < self.page_size:
                return None
            nxt = self.offset + len(answer.items)
        self.offset = nxt
        return Request({**answer.request.params, self.offset_param: str(nxt)})

    def stall_hint(self) -> str:
        return (f" (conversations are inserted ahead of the walk as fast as it pages; next offset {self.offset}); use "
                "a larger page_size")


__all__ = ["Answer", "BodyCursorPaginator", "Context", "Item", "OffsetPaginator", "Order", "Paginator", "Request"]
