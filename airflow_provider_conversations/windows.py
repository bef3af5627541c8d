"""Half-open time windows and timestamp handling shared by hooks, operators and sensors."""

from __future__ import annotations

import itertools
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


NO_INTERVAL_HINT = (
    "use schedule=CronDataIntervalTimetable(...) (from airflow.timetables.interval) so each run covers "
    "[data_interval_start, data_interval_end), or pass start= and end= to the task"
)


def window_for_task(context: Any, start: Any = None, end: Any = None, *, task: str = "this task") -> Window:
    """The window a task exports: explicit ``start``/``end`` if given, else the run's data interval.

    Runs without a logical date (manual or asset-triggered) have no data interval, and a cron string in
    ``schedule=`` gives a zero-width one in Airflow 3: both are errors that say what to do, never an
    export of nothing.
    """
    if (start is None) != (end is None):
        missing = "end" if end is None else "start"
        raise ConfigurationError(f"{task}: start and end go together; {missing} is missing")
    if start is not None:
        return Window.of(start, end)
    get = context.get if hasattr(context, "get") else (lambda key: None)
    s, e = get("data_interval_start"), get("data_interval_end")
    if s is None or e is None:
        raise ConfigurationError(
            f"{task}: this run has no data interval (it was triggered without a logical date); " + NO_INTERVAL_HINT
        )
    window_start, window_end = ensure_aware(s, "data_interval_start"), ensure_aware(e, "data_interval_end")
    if window_start >= window_end:
        raise ConfigurationError(
            f"{task}: the data interval is empty ({iso_z(window_start)} to {iso_z(window_end)}): in Airflow 3 a "
            "cron string or timedelta in schedule= runs at a point in time with no interval; " + NO_INTERVAL_HINT
        )
    return Window(window_start, window_end)
