"""What one walk is asked to do, checked once at the edge and passed inward frozen."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from airflow_provider_conversations.windows import Window

TimeKeyName = Literal["created", "updated"]


@dataclass(frozen=True)
class TimeKey:
    """A vendor field that places a conversation in time, and how to read it."""

    name: TimeKeyName
    field: str
    parse: Callable[[Any], datetime | None]

    def of(self, item: Mapping[str, Any]) -> datetime | None:
        return self.parse(item.get(self.field))


@dataclass(frozen=True)
class WalkPlan:
    """One export's request to a hook: the window, its time key, validated filters, page size, parallel workers,
    and the checked ``extra_params`` (query parameters the provider does not know, sent on every request).

    Built by :meth:`ConversationsHook.plan` (from a DAG's raw values, each checked once) or by the task layer from
    values it already checked; the walk re-checks nothing.
    """

    window: Window
    key: TimeKey
    filters: Mapping[str, Any]
    page_size: int
    workers: int = 1
    extra_params: Mapping[str, Any] = field(default_factory=dict)


__all__ = ["TimeKey", "TimeKeyName", "WalkPlan"]
