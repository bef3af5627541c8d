"""ElevenLabs Agents: every hour, wait for the hour's calls to finish processing, then export them.

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
from airflow_provider_conversations.sensors.conversations import ConversationsSensor

EXPORT_ROOT = (
    "{{ var.value.get('conversations_export_root', '"
    + os.environ.get("CONVERSATIONS_EXPORT_ROOT", "file:///tmp/airflow-conversations")
    + "') }}"
)
# How often the settled check runs while deferred (the demo and the end-to-end test shorten it).
POKE_SECONDS = int(os.environ.get("CONVERSATIONS_SENSOR_POKE_SECONDS", "120"))


@dag(
    dag_id="conversations_elevenlabs_hourly",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=4,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["conversations", "elevenlabs"],
)
def conversations_elevenlabs_hourly() -> None:
    # ElevenLabs keeps a call 'processing' for a while after it ends (analysis, summary): wait for that.
    settled = ConversationsSensor(
        task_id="wait_until_settled",
        conn_id="elevenlabs_default",
        vendor="elevenlabs",
        settled=True,
        min_count=0,
        deferrable=True,
        poke_interval=POKE_SECONDS,
        timeout=int(timedelta(hours=2).total_seconds()),
    )
    export = ConversationsToObjectStorageOperator(
        task_id="export",
        conn_id="elevenlabs_default",
        vendor="elevenlabs",
        destination=EXPORT_ROOT + "/",
        compression="gzip",
        output_format="normalized",
    )
    settled >> export


conversations_elevenlabs_hourly_dag = conversations_elevenlabs_hourly()
