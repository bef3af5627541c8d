"""ParrotMob: every hour, export the hour's conversations once they have reached a terminal status.

ParrotMob's API has no time filter: the hook walks newest-first and stops at the window's start, so an hourly
export costs a few pages however long the account's history is.

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
POKE_SECONDS = int(os.environ.get("CONVERSATIONS_SENSOR_POKE_SECONDS", "300"))


@dag(
    dag_id="conversations_parrotmob_hourly",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=2,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["conversations", "parrotmob"],
)
def conversations_parrotmob_hourly() -> None:
    # scheduled / ready / running conversations are not final yet.
    settled = ConversationsSensor(
        task_id="wait_until_settled",
        conn_id="parrotmob_default",
        vendor="parrotmob",
        settled=True,
        min_count=0,
        deferrable=True,
        poke_interval=POKE_SECONDS,
        timeout=int(timedelta(hours=3).total_seconds()),
    )
    export = ConversationsToObjectStorageOperator(
        task_id="export",
        conn_id="parrotmob_default",
        vendor="parrotmob",
        destination=EXPORT_ROOT + "/",
        compression="gzip",
    )
    settled >> export


conversations_parrotmob_hourly_dag = conversations_parrotmob_hourly()
