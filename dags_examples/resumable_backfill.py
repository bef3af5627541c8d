"""A daily backfill whose exports resume: a worker lost mid-window (OOM, preemption, a deploy) costs the retry
at most one checkpoint interval of pages, not the whole window, and the object is the same, byte for byte.

Needs Airflow 3.3+ (the task state store keeps the checkpoint between tries). Backfill a range with
``airflow backfill create --dag-id conversations_resumable_backfill --from-date ... --to-date ...``.
Set ``conversations_export_root`` (Variable) or ``CONVERSATIONS_EXPORT_ROOT`` as for the other examples.
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
# The end-to-end test shortens pages and checkpoint intervals so a small window has many of both.
PAGE_SIZE = int(os.environ.get("CONVERSATIONS_RESUME_PAGE_SIZE", "0")) or None
CHECKPOINT_EVERY_PAGES = int(os.environ.get("CONVERSATIONS_RESUME_CHECKPOINT_EVERY_PAGES", "100"))


@dag(
    dag_id="conversations_resumable_backfill",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=4,
    # A retry resumes from the last checkpoint: retry soon, the staged parts are waiting.
    default_args={"retries": 1, "retry_delay": timedelta(seconds=10)},
    tags=["conversations", "polyai", "backfill"],
)
def conversations_resumable_backfill() -> None:
    ConversationsToObjectStorageOperator(
        task_id="export",
        conn_id="polyai_default",
        vendor="polyai",
        destination=EXPORT_ROOT + "/",
        page_size=PAGE_SIZE,
        checkpoint_every_pages=CHECKPOINT_EVERY_PAGES,
    )


conversations_resumable_backfill()
