"""Half-open time windows and timestamp handling shared by every layer (no Airflow knowledge here)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
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


#: Airflow's default ``[core] max_map_length``: a mapped task with more map indexes fails when the run starts.
MAX_SUBWINDOWS = 1024


def split_window(start: Any, end: Any, parts: int | None = None, *, every: timedelta | None = None,
                 max_parts: int = MAX_SUBWINDOWS) -> list[dict[str, str]]:
    """Cut ``[start, end)`` into contiguous sub-windows for dynamic task mapping, as ``{"start", "end"}`` dicts.

    Give either ``parts`` (that many sub-windows of equal width, to the microsecond) or ``every`` (sub-windows of
    that width from ``start``; the last one is shorter when ``every`` does not divide the window). Each sub-window
    starts exactly where the previous one ends and the first and last keep the exact bounds, so the mapped
    exports cover the window with no gap and no overlap, and a re-run maps to the same sub-windows (the same
    objects). The values are ISO 8601 ``Z`` strings, which XCom stores as they are and the operators' templated
    ``start``/``end`` arguments accept::

        ConversationsToObjectStorageOperator.partial(task_id="export", ...).expand_kwargs(subwindows())

    where ``subwindows`` is a ``@task`` returning ``split_window(<the run's interval start>, <its end>, 8)``.
    ``max_parts`` (Airflow's default ``[core] max_map_length``, 1024) turns an accidental million-way split into
    an error here rather than a failed run.
    """
    window = Window.of(start, end)
    if (parts is None) == (every is None):
        raise ConfigurationError(
            f"split_window needs exactly one of parts= or every=, got parts={parts!r} and every={every!r}"
        )
    total = window.end - window.start
    if parts is not None:
        if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
            raise ConfigurationError(f"parts={parts!r} must be a whole number of sub-windows, at least 1")
        if parts > total // timedelta(microseconds=1):
            raise ConfigurationError(
                f"parts={parts} is more than the window's {total // timedelta(microseconds=1)} microseconds "
                f"({iso_z(window.start)} to {iso_z(window.end)}): sub-windows cannot be empty"
            )
        pieces = window.split(parts)
    else:
        if not isinstance(every, timedelta) or every <= timedelta(0):
            raise ConfigurationError(f"every={every!r} must be a positive timedelta, e.g. timedelta(hours=3)")
        count = -(total // -every)  # ceiling division of timedeltas
        if count > max_parts:
            raise ConfigurationError(
                f"every={every} cuts {iso_z(window.start)} to {iso_z(window.end)} into {count} sub-windows, "
                f"more than max_parts={max_parts}; choose a larger every= or raise max_parts (and Airflow's "
                "[core] max_map_length)"
            )
        edges = [window.start + every * i for i in range(count)] + [window.end]
        pieces = [Window(a, b) for a, b in itertools.pairwise(edges)]
    if len(pieces) > max_parts:
        raise ConfigurationError(
            f"parts={parts} is more than max_parts={max_parts}; raise max_parts (and Airflow's "
            "[core] max_map_length) or split into fewer sub-windows"
        )
    return [{"start": iso_z(w.start), "end": iso_z(w.end)} for w in pieces]


class PartitionError(ValueError):
    """Exported sub-windows do not tile their window exactly (a gap, an overlap, a bound or a count is off)."""


def check_partition(manifests: Iterable[Mapping[str, Any]], start: Any, end: Any) -> list[Mapping[str, Any]]:
    """The manifests of one window's sub-window exports, sorted by start, once they tile ``[start, end)``.

    Raises :class:`PartitionError` naming the first gap, overlap or wrong bound; each manifest needs ``start``,
    ``end`` (ISO 8601) and a non-negative integer ``count``. A last task of a mapped fan-out calls it before it
    announces the whole window as done.
    """
    window = Window.of(start, end)
    found = sorted(manifests, key=lambda m: ensure_aware(m["start"], "start"))
    if not found:
        raise PartitionError(f"no sub-window manifests for {iso_z(window.start)} to {iso_z(window.end)}")
    at = window.start
    for m in found:
        s, e = ensure_aware(m["start"], "start"), ensure_aware(m["end"], "end")
        count = m.get("count")
        if s > at:
            raise PartitionError(f"gap: nothing exported from {iso_z(at)} to {iso_z(s)}")
        if s < at:
            raise PartitionError(f"overlap: {iso_z(s)} to {iso_z(min(at, e))} is exported twice")
        if e <= s:
            raise PartitionError(f"empty sub-window {iso_z(s)} to {iso_z(e)}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise PartitionError(f"sub-window {iso_z(s)} to {iso_z(e)} has count={count!r}, not a whole number")
        at = e
    if at != window.end:
        if at < window.end:
            raise PartitionError(f"gap: nothing exported from {iso_z(at)} to {iso_z(window.end)}")
        raise PartitionError(f"the sub-windows end at {iso_z(at)}, after the window's end {iso_z(window.end)}")
    return found


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
