"""A big window on many workers: one day of PolyAI calls in 8 mapped exports, checked, then one Asset event.

Each mapped task exports one three-hour sub-window (``split_window``) to its own deterministic object, so the
eight run on as many workers as are free (``make cluster`` starts two Celery workers), retry on their own, and a
re-run rewrites the same eight objects byte for byte. The last task checks the manifests tile the day exactly (no
gap, no overlap), re-counts every object and finds no conversation twice, and only then emits one event for the
``conversations_polyai_day`` Asset, with the day's totals as extra: downstream DAGs schedule on the whole day, never
on a partial one. See "Scaling" in the README for sizing the split, pools and the rate budget.
"""

from __future__ import annotations

import gzip
import os
from datetime import timedelta
from typing import Any

import orjson
import pendulum
from airflow.sdk import Asset, ObjectStoragePath, dag, task
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_conversations.operators.conversations import ConversationsToObjectStorageOperator
from airflow_provider_conversations.sensors.conversations import ConversationsSensor
from airflow_provider_conversations.windows import check_partition, split_window

EXPORT_ROOT = (
    "{{ var.value.get('conversations_export_root', '"
    + os.environ.get("CONVERSATIONS_EXPORT_ROOT", "file:///tmp/airflow-conversations")
    + "') }}"
)
POKE_SECONDS = int(os.environ.get("CONVERSATIONS_SENSOR_POKE_SECONDS", "120"))
PARTS = 8
DAY = Asset(name="conversations_polyai_day", uri="file:///conversations/polyai/day")


@dag(
    dag_id="conversations_day_fanout",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["conversations", "polyai", "mapping"],
)
def conversations_day_fanout() -> None:
    # The whole day must be settled (no call still in progress) before any part is exported; on the triggerer.
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

    @task
    def subwindows(data_interval_start: Any = None, data_interval_end: Any = None) -> list[dict[str, str]]:
        """The day's eight contiguous [start, end) sub-windows, as ISO strings (XCom-friendly)."""
        return split_window(data_interval_start, data_interval_end, PARTS)

    parts = subwindows()
    export = ConversationsToObjectStorageOperator.partial(
        task_id="export_part",
        conn_id="polyai_default",
        vendor="polyai",
        destination=EXPORT_ROOT + "/day_fanout/",
        compression="gzip",
        exclude_fields=["turns"],
    ).expand_kwargs(parts)

    @task(outlets=[DAY])
    def check_day(manifests: list[dict[str, Any]], data_interval_start: Any = None, data_interval_end: Any = None,
                  outlet_events: Any = None) -> dict[str, Any]:
        """Fail unless the parts tile the day and their objects hold exactly the counted, distinct conversations."""
        ordered = check_partition(manifests, data_interval_start, data_interval_end)
        seen: set[str] = set()
        for m in ordered:
            lines = gzip.decompress(ObjectStoragePath(m["uri"], conn_id=m["destination_conn_id"]).read_bytes())
            ids = [orjson.loads(line)["id"] for line in lines.splitlines()]
            if len(ids) != m["count"]:
                raise ValueError(f"{m['uri']} holds {len(ids)} conversations, its manifest says {m['count']}")
            twice = seen.intersection(ids)
            if twice or len(set(ids)) != len(ids):
                raise ValueError(f"{m['uri']}: conversations exported twice, e.g. {sorted(twice)[:3]}")
            seen.update(ids)
        day = {"start": ordered[0]["start"], "end": ordered[-1]["end"], "parts": len(ordered), "count": len(seen),
               "uris": [m["uri"] for m in ordered]}
        outlet_events[DAY].extra = day
        return day

    settled >> parts
    check_day(export.output)


conversations_day_fanout_dag = conversations_day_fanout()
