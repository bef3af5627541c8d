"""Half-open time windows and timestamp handling shared by every layer (no Airflow knowledge here)."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_provider_conversations.exceptions import ConfigurationError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ensure_aware(value: Any, name: str) -> datetime:
    """Return ``value`` as an aware UTC datetime; naive datetimes are refused, never guessed."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ConfigurationError(
                f"{name}={value!r} is not an ISO 8601 timestamp; expected e.g. '2026-11-20T00:00:00+00:00'"
            ) from None
    if not isinstance(value, datetime):
        raise ConfigurationError(
            f"{name} must be a timezone-aware datetime (pendulum or datetime), got {type(value).__name__} "
            f"{value!r}"
        )
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ConfigurationError(
            f"{name}={value.isoformat()} is a naive datetime; pass a timezone-aware one, "
            "e.g. pendulum.datetime(2026, 11, 20, tz='UTC') or datetime(..., tzinfo=timezone.utc)"
        )
    # A plain stdlib datetime in UTC: pendulum subclasses compare and hash the same way.
    return datetime(
        value.year, value.month, value.day, value.hour, value.minute, value.second, value.microsecond,
        tzinfo=value.tzinfo,
    ).astimezone(UTC)


@dataclass(frozen=True)
class Window:
    """``[start, end)`` in UTC: consecutive windows partition the time line exactly."""

    start: datetime
    end: datetime

    @classmethod
    def of(cls, start: Any, end: Any) -> Window:
        s = ensure_aware(start, "start")
        e = ensure_aware(end, "end")
        if s >= e:
            raise ConfigurationError(
                f"start ({s.isoformat()}) must be earlier than end ({e.isoformat()}): windows are half-open "
                "[start, end) and must not be empty"
            )
        return cls(s, e)

    def __contains__(self, ts: datetime) -> bool:
        return self.start <= ts < self.end

    def split(self, parts: int) -> list[Window]:
        """Cut into ``parts`` contiguous sub-windows of (almost) equal width, at whole microseconds."""
        if parts <= 1:
            return [self]
        total_us = (self.end - self.start) // timedelta(microseconds=1)
        parts = min(parts, max(1, total_us))
        edges = [self.start + timedelta(microseconds=total_us * i // parts) for i in range(parts)]
        edges.append(self.end)
        return [Window(a, b) for a, b in itertools.pairwise(edges) if a < b]


def iso_z(ts: datetime, *, timespec: str = "auto") -> str:
    """UTC ISO 8601 with a ``Z`` suffix, the form every vendor here accepts."""
    return ts.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def parse_iso(value: Any) -> datetime | None:
    """Parse a vendor ISO 8601 timestamp to an aware datetime; ``None`` for missing or unparsable values.

    Runs once per conversation, so it stays lean: an aware result keeps the vendor's offset (comparisons and
    equality of aware datetimes are by instant), and only output formatting (``iso_z``) converts to UTC.
    """
    if value.__class__ is not str:
        return None
    try:
        ts = _fromisoformat(value)
    except ValueError:
        return None
    # Vendors document UTC; a timestamp without an offset is UTC, not local time.
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


_fromisoformat = datetime.fromisoformat


def parse_unix(value: Any) -> datetime | None:
    """Unix seconds (int or float) to aware UTC; ``None`` for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return EPOCH + timedelta(seconds=value)


def widen(window: Window, margin: timedelta) -> tuple[datetime, datetime]:
    """Server bounds a little wider than the window, for bounds of undocumented inclusivity or precision."""
    return window.start - margin, window.end + margin


def unix_bounds(window: Window) -> tuple[int, int]:
    """Whole-second bounds that contain ``[start, end)`` whether the vendor treats them as inclusive or not."""
    return math.floor(window.start.timestamp()) - 1, math.ceil(window.end.timestamp()) + 1
