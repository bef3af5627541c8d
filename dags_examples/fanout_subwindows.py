"""Dynamic task mapping: one mapped export per quarter of the day's window, for a busy ElevenLabs account.

Each mapped task exports its own sub-window to its own deterministic object, retries on its own, and shows up as
one row in the grid. The quarters are computed when the run starts, from its data interval, so backfills and
re-runs map to the same four objects. (For a single task that fetches sub-windows concurrently into one file, use
the operators' ``max_parallel`` instead.)
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import dag, task
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_conversations.operators.conversations import ConversationsToObjectStorageOperator
from airflow_provider_conversations.windows import split_window

EXPORT_ROOT = (
    "{{ var.value.get('conversations_export_root', '"
    + os.environ.get("CONVERSATIONS_EXPORT_ROOT", "file:///tmp/airflow-conversations")
    + "') }}"
)
PARTS = 4


@dag(
    dag_id="conversations_fanout_subwindows",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["conversations", "elevenlabs", "mapping"],
)
def conversations_fanout_subwindows() -> None:
    @task
    def subwindows(data_interval_start: Any = None, data_interval_end: Any = None) -> list[dict[str, str]]:
        """Contiguous [start, end) pieces of the run's interval, as ISO strings (XCom-friendly)."""
        return split_window(data_interval_start, data_interval_end, PARTS)

    ConversationsToObjectStorageOperator.partial(
        task_id="export_part",
        conn_id="elevenlabs_default",
        vendor="elevenlabs",
        destination=EXPORT_ROOT + "/fanout/",
        compression="gzip",
    ).expand_kwargs(subwindows())


conversations_fanout_subwindows_dag = conversations_fanout_subwindows()
