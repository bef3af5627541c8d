"""Small windows straight to Python: conversations via XCom into a downstream @task.

``ConversationsOperator`` returns the window's conversations (normalized: one record shape for every vendor) as
its XCom value. Good for small volumes and quick reports; it refuses windows above ``max_conversations`` instead of
bloating the metadata DB - use ``ConversationsToObjectStorageOperator`` for exports.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import dag, task
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_conversations.operators.conversations import ConversationsOperator


@dag(
    dag_id="conversations_xcom_report",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=5)},
    tags=["conversations", "polyai", "xcom"],
)
def conversations_xcom_report() -> None:
    conversations = ConversationsOperator(
        task_id="fetch",
        conn_id="polyai_default",
        vendor="polyai",
        output_format="normalized",
        finished_only=True,
        max_conversations=5_000,
        exclude_fields=["raw.turns"],
    )

    @task
    def report(records: list[dict[str, Any]]) -> dict[str, Any]:
        by_channel = Counter(r["channel"] or "unknown" for r in records)
        durations = [r["duration_seconds"] for r in records if r["duration_seconds"] is not None]
        summary = {
            "conversations": len(records),
            "by_channel": dict(sorted(by_channel.items())),
            "average_duration_seconds": round(sum(durations) / len(durations), 1) if durations else None,
        }
        print(f"hourly report: {summary}")
        return summary

    report(conversations.output)


conversations_xcom_report_dag = conversations_xcom_report()
