"""Pagination styles as tiny objects with one job: given the last request and page, what comes next.

A vendor hook picks one per walk. The page loop in ``hooks/base.py`` owns everything else (sending,
retries, windowing, de-duplication, loop detection).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow_provider_conversations.filters import Params

Item = dict[str, Any]


class Paginator(ABC):
    """Decides the parameters of the next page, or ``None`` when the walk is complete."""

    @abstractmethod
    def next_params(self, params: Params, body: Any, items: list[Item]) -> Params | None: ...


@dataclass
class BodyCursorPaginator(Paginator):
    """An opaque cursor read from the body and sent back as a query parameter.

    ``cursor_of`` returns the next cursor or ``None``; ``has_more_of`` (optional) is the vendor's own
    "more pages" flag, which wins over a cursor that is present on the last page.
    """

    param: str
    cursor_of: Callable[[Any], str | None]
    has_more_of: Callable[[Any], bool] | None = None

    def next_params(self, params: Params, body: Any, items: list[Item]) -> Params | None:
        if self.has_more_of is not None and not self.has_more_of(body):
            return None
        cursor = self.cursor_of(body)
        if cursor in (None, ""):
            return None
        return {**params, self.param: str(cursor)}


@dataclass
class OffsetPaginator(Paginator):
    """``offset``/``limit`` paging that ends on a short page, or where the vendor stops returning an offset.

    With ``next_offset_of`` the next offset comes from the body (PolyAI v1 ``next_offset``, absent on the
    last page); otherwise it advances by the number of items received.
    """

    offset_param: str
    limit: int
    next_offset_of: Callable[[Any], int | None] | None = None

    def next_params(self, params: Params, body: Any, items: list[Item]) -> Params | None:
        current = int(str(params.get(self.offset_param, 0)))
        if self.next_offset_of is not None:
            nxt = self.next_offset_of(body)
            if nxt is None:
                return None
        else:
            if len(items) < self.limit:
                return None
            nxt = current + len(items)
        return {**params, self.offset_param: str(nxt)}
