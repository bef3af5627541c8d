"""All five vendors in one DAG: one settled wait (where the vendor has live conversations) and one export each.

Each export writes its own object per window (``vendor=<vendor>/conn_id=<conn>/...``), so the five never collide,
and a failure of one vendor does not block the others. Connections: ``<vendor>_default``.
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
#: vendor -> (time key, wait until settled first)
VENDORS = {
    "polyai": ("created", True),
    "elevenlabs": ("created", True),
    "anyreach": ("created", True),
    "parrotmob": ("created", True),
    "replyful": ("updated", False),
}


@dag(
    dag_id="conversations_all_vendors_hourly",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["conversations"],
)
def conversations_all_vendors_hourly() -> None:
    for vendor, (time_key, settle) in VENDORS.items():
        export = ConversationsToObjectStorageOperator(
            task_id=f"export_{vendor}",
            conn_id=f"{vendor}_default",
            vendor=vendor,
            time_key=time_key,
            destination=EXPORT_ROOT + "/all/",
            compression="gzip",
            output_format="normalized",
        )
        if settle:
            ConversationsSensor(
                task_id=f"wait_{vendor}",
                conn_id=f"{vendor}_default",
                vendor=vendor,
                settled=True,
                min_count=0,
                deferrable=True,
                poke_interval=POKE_SECONDS,
                timeout=int(timedelta(hours=2).total_seconds()),
            ) >> export


conversations_all_vendors_hourly_dag = conversations_all_vendors_hourly()
