"""``split_window`` (sub-windows for dynamic task mapping) and ``check_partition`` (the fan-out's last check)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pendulum
import pytest

from airflow_provider_conversations.exceptions import ConfigurationError
from airflow_provider_conversations.windows import PartitionError, check_partition, split_window

DAY = datetime(2026, 11, 20, tzinfo=UTC)


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_a_day_in_eight_parts_is_exact_three_hour_windows():
    parts = split_window(DAY, DAY + timedelta(days=1), 8)
    assert parts == [
        {"start": f"2026-11-20T{h:02d}:00:00Z", "end": f"2026-11-{20 + (h + 3) // 24}T{(h + 3) % 24:02d}:00:00Z"}
        for h in range(0, 24, 3)
    ]


@pytest.mark.parametrize("parts", [1, 3, 7, 8, 13, 1000])
def test_parts_tile_the_window_with_no_gap_and_no_overlap(parts):
    start, end = DAY + timedelta(seconds=1, microseconds=7), DAY + timedelta(days=1, minutes=17)
    got = split_window(start, end, parts)
    assert len(got) == parts
    assert _dt(got[0]["start"]) == start
    assert _dt(got[-1]["end"]) == end
    for a, b in itertools.pairwise(got):
        assert a["end"] == b["start"]
    widths = {_dt(w["end"]) - _dt(w["start"]) for w in got}
    assert max(widths) - min(widths) <= timedelta(microseconds=1)


def test_every_cuts_from_start_and_the_last_piece_is_shorter():
    got = split_window("2026-11-20T00:00:00Z", "2026-11-20T10:00:00Z", every=timedelta(hours=4))
    assert got == [
        {"start": "2026-11-20T00:00:00Z", "end": "2026-11-20T04:00:00Z"},
        {"start": "2026-11-20T04:00:00Z", "end": "2026-11-20T08:00:00Z"},
        {"start": "2026-11-20T08:00:00Z", "end": "2026-11-20T10:00:00Z"},
    ]


def test_other_time_zones_and_pendulum_are_converted_to_utc():
    got = split_window(pendulum.datetime(2026, 11, 20, 1, tz="Europe/Paris"),
                       pendulum.datetime(2026, 11, 20, 3, tz="Europe/Paris"), every=pendulum.duration(hours=1))
    assert got == [{"start": "2026-11-20T00:00:00Z", "end": "2026-11-20T01:00:00Z"},
                   {"start": "2026-11-20T01:00:00Z", "end": "2026-11-20T02:00:00Z"}]


def test_the_operator_accepts_the_values():
    from airflow_provider_conversations.tasks.interval import window_for_task

    (first, *_rest) = split_window(DAY, DAY + timedelta(days=1), 8)
    w = window_for_task({}, first["start"], first["end"], task="t")
    assert (w.start, w.end) == (DAY, DAY + timedelta(hours=3))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "split_window needs exactly one of parts= or every=, got parts=None and every=None"),
    ({"parts": 2, "every": timedelta(hours=1)}, "split_window needs exactly one of parts= or every="),
    ({"parts": 0}, "parts=0 must be a whole number of sub-windows, at least 1"),
    ({"parts": 2.5}, "parts=2.5 must be a whole number of sub-windows, at least 1"),
    ({"parts": True}, "parts=True must be a whole number"),
    ({"parts": 2000}, "parts=2000 is more than max_parts=1024"),
    ({"every": timedelta(0)}, "every=datetime.timedelta(0) must be a positive timedelta"),
    ({"every": 3600}, "every=3600 must be a positive timedelta, e.g. timedelta(hours=3)"),
    ({"every": timedelta(seconds=1)}, "every=0:00:01 cuts 2026-11-20T00:00:00Z to 2026-11-21T00:00:00Z into "
                                      "86400 sub-windows, more than max_parts=1024"),
])
def test_bad_arguments_name_the_parameter_and_what_is_allowed(kwargs, message):
    with pytest.raises(ConfigurationError) as err:
        split_window(DAY, DAY + timedelta(days=1), **kwargs)
    assert str(err.value).startswith(message)


def test_bad_bounds_are_refused():
    with pytest.raises(ConfigurationError, match="must be earlier than end"):
        split_window(DAY, DAY, 2)
    with pytest.raises(ConfigurationError, match="naive datetime"):
        split_window(datetime(2026, 11, 20), DAY, 2)
    with pytest.raises(ConfigurationError, match="parts=3 is more than the window's 2 microseconds"):
        split_window(DAY, DAY + timedelta(microseconds=2), 3)


def _manifests(parts: list[dict[str, str]], count: int = 5) -> list[dict[str, object]]:
    return [{**p, "count": count} for p in parts]


def test_check_partition_returns_the_manifests_in_order():
    parts = _manifests(split_window(DAY, DAY + timedelta(days=1), 4))
    assert check_partition(list(reversed(parts)), DAY, DAY + timedelta(days=1)) == parts


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda m: m.pop(1), "gap: nothing exported from 2026-11-20T06:00:00Z to 2026-11-20T12:00:00Z"),
    (lambda m: m.pop(), "gap: nothing exported from 2026-11-20T18:00:00Z to 2026-11-21T00:00:00Z"),
    (lambda m: m.pop(0), "gap: nothing exported from 2026-11-20T00:00:00Z to 2026-11-20T06:00:00Z"),
    (lambda m: m[1].update(start="2026-11-20T05:00:00Z"),
     "overlap: 2026-11-20T05:00:00Z to 2026-11-20T06:00:00Z is exported twice"),
    (lambda m: m[3].update(end="2026-11-21T01:00:00Z"),
     "the sub-windows end at 2026-11-21T01:00:00Z, after the window's end 2026-11-21T00:00:00Z"),
    (lambda m: m[2].update(count=None),
     "sub-window 2026-11-20T12:00:00Z to 2026-11-20T18:00:00Z has count=None, not a whole number"),
    (lambda m: m.clear(), "no sub-window manifests for 2026-11-20T00:00:00Z to 2026-11-21T00:00:00Z"),
])
def test_check_partition_names_the_first_problem(mutate, message):
    manifests = _manifests(split_window(DAY, DAY + timedelta(days=1), 4))
    mutate(manifests)
    with pytest.raises(PartitionError) as err:
        check_partition(manifests, DAY, DAY + timedelta(days=1))
    assert str(err.value) == message
