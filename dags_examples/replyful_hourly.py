"""Replyful: every hour, export the support threads that changed during the hour (time_key="updated").

Support threads live for days, so "settled" does not apply: each hourly file holds the threads updated in that
hour, in their state at export time. Downstream, keep the latest version of each id. The hook paces itself to
Replyful's 100 requests per minute from the RateLimit-* headers, so parallel DAG runs do not trip it.

Destination: Airflow Variable ``conversations_export_root``, else env ``CONVERSATIONS_EXPORT_ROOT``, else
``/tmp/airflow-conversations``.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import dag
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_conversations.operators.conversations import ConversationsToObjectStorageOperator

EXPORT_ROOT = (
    "{{ var.value.get('conversations_export_root', '"
    + os.environ.get("CONVERSATIONS_EXPORT_ROOT", "file:///tmp/airflow-conversations")
    + "') }}"
)


@dag(
    dag_id="conversations_replyful_hourly",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    # One key, one rate limit: runs one at a time.
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["conversations", "replyful"],
)
def conversations_replyful_hourly() -> None:
    ConversationsToObjectStorageOperator(
        task_id="export",
        conn_id="replyful_default",
        vendor="replyful",
        time_key="updated",
        destination=EXPORT_ROOT + "/",
        compression="gzip",
    )


conversations_replyful_hourly_dag = conversations_replyful_hourly()
