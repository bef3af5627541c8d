"""PolyAI: every hour, wait until the hour's calls have ended, then export them to object storage.

Copy this file into your dags folder. Set the Airflow Variable ``conversations_export_root`` (for example
``s3://aws_default@my-lake/conversations``) or the environment variable ``CONVERSATIONS_EXPORT_ROOT``; without
either, files go to ``/tmp/airflow-conversations`` on the worker.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import dag
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_conversations.operators.conversations import ConversationsToObjectStorageOperator
from airflow_provider_conversations.sensors.conversations import ConversationsSensor

# Rendered when the task runs (no Variable lookup while the DAG file is parsed).
EXPORT_ROOT = (
    "{{ var.value.get('conversations_export_root', '"
    + os.environ.get("CONVERSATIONS_EXPORT_ROOT", "file:///tmp/airflow-conversations")
    + "') }}"
)
# How often the settled check runs while deferred (the demo and the end-to-end test shorten it).
POKE_SECONDS = int(os.environ.get("CONVERSATIONS_SENSOR_POKE_SECONDS", "120"))


@dag(
    dag_id="conversations_polyai_hourly",
    # CronDataIntervalTimetable gives each run the hour [data_interval_start, data_interval_end); a plain cron
    # string would give Airflow 3's zero-width interval.
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=4,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["conversations", "polyai"],
)
def conversations_polyai_hourly() -> None:
    # Calls still running at the top of the hour would be exported half-finished: wait until none is in
    # progress (on the triggerer, not a worker slot). min_count=0: a quiet hour is settled too.
    settled = ConversationsSensor(
        task_id="wait_until_settled",
        conn_id="polyai_default",
        vendor="polyai",
        settled=True,
        min_count=0,
        deferrable=True,
        poke_interval=POKE_SECONDS,
        timeout=int(timedelta(hours=2).total_seconds()),
    )
    export = ConversationsToObjectStorageOperator(
        task_id="export",
        conn_id="polyai_default",
        vendor="polyai",
        destination=EXPORT_ROOT + "/",
        compression="gzip",
        # Transcripts are personal data: drop them unless the lake is cleared for PII.
        exclude_fields=["turns"],
    )
    settled >> export


conversations_polyai_hourly_dag = conversations_polyai_hourly()
