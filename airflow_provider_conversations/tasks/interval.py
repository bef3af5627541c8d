"""The window a task run covers: explicit ``start``/``end``, or the run's data interval."""

from __future__ import annotations

from typing import Any

from airflow_provider_conversations.exceptions import ConfigurationError
from airflow_provider_conversations.windows import Window, ensure_aware, iso_z

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


__all__ = ["NO_INTERVAL_HINT", "window_for_task"]
