"""dag.test() runs of an hourly CronDataIntervalTimetable export DAG against each vendor's simulator.

Consecutive intervals partition the data exactly; a re-run of an interval rewrites a byte-identical object; a
run that fails mid-stream leaves the earlier object intact and, for a new interval, no object at all.
"""

from __future__ import annotations

import gzip
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pendulum
import pytest
from sqlalchemy import select

from airflow_provider_conversations.hooks import hook_class
from airflow_provider_conversations.testing import Faults
from airflow_provider_conversations.testing.dataset import DEFAULT_START
from airflow_provider_conversations.windows import iso_z
from tests.helpers import assert_exactly_once

VENDORS = ("parrotmob", "anyreach", "polyai", "elevenlabs", "replyful")
H = [DEFAULT_START + timedelta(hours=i) for i in range(5)]

SOURCE = '''
import pendulum
from airflow.sdk import DAG, AssetAlias
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_conversations.operators.conversations import ConversationsToObjectStorageOperator

with DAG(
    dag_id="export_{vendor}",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    default_args={{"retries": 0}},
) as dag:
    ConversationsToObjectStorageOperator(
        task_id="export",
        conn_id="{conn_id}",
        vendor="{vendor}",
        destination="{destination}",
        page_size={page_size},
        hook_params={{"max_attempts": 2, "backoff": 0.01, "backoff_max": 0.02}},
        outlets=[AssetAlias("conversations-{vendor}")],
    )
'''


def object_for(root: Path, vendor: str, conn_id: str, start: datetime, end: datetime) -> Path:
    return (root / f"vendor={vendor}" / f"conn_id={conn_id}" / "time_key=created" / f"start={iso_z(start)}"
            / f"end={iso_z(end)}" / "conversations.jsonl.gz")


def object_ids(path: Path, vendor: str) -> list[str]:
    field = hook_class(vendor).id_field
    return [str(orjson.loads(line)[field]) for line in gzip.decompress(path.read_bytes()).splitlines()]


def manifest_of(run: Any) -> dict[str, Any]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(select(XComModel).where(
            XComModel.dag_id == run.dag_id, XComModel.run_id == run.run_id, XComModel.task_id == "export",
            XComModel.key == "return_value")).one()
        value: dict[str, Any] = XComModel.deserialize_value(row)
        return value


def asset_event_uris(source_run: Any) -> list[str]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.execute(select(AssetModel.uri).join(AssetEvent, AssetEvent.asset_id == AssetModel.id).where(
            AssetEvent.source_dag_id == source_run.dag_id, AssetEvent.source_run_id == source_run.run_id))
        return [r[0] for r in rows]


@pytest.mark.parametrize("vendor", VENDORS)
def test_hourly_exports_are_exact_idempotent_and_atomic(vendor, sim, set_connection, load_dag, tmp_path):
    s = sim(vendor, conversations=1600, span=timedelta(hours=4))
    conn_id = f"{vendor}_dag"
    set_connection(conn_id, s.connection())
    lake = tmp_path / "lake"
    page_size = min(50, hook_class(vendor).max_page_size)
    dag = load_dag(f"export_{vendor}", SOURCE.format(vendor=vendor, conn_id=conn_id, destination=f"file://{lake}/",
                                                     page_size=page_size))

    # Three consecutive hourly intervals: a manual run at logical date H[i+1] covers [H[i], H[i+1]).
    pages_of: dict[int, int] = {}
    for i in range(3):
        before = s.stats.ok_pages
        run = dag.test(logical_date=pendulum.instance(H[i + 1]))
        assert run.state == "success"
        pages_of[i] = s.stats.ok_pages - before
        target = object_for(lake, vendor, conn_id, H[i], H[i + 1])
        manifest = manifest_of(run)
        assert manifest["uri"] == f"file://{target}"
        assert (manifest["start"], manifest["end"]) == (iso_z(H[i]), iso_z(H[i + 1]))
        assert manifest["count"] == len(object_ids(target, vendor))
        assert asset_event_uris(run) == [manifest["uri"]]

    objects = [object_for(lake, vendor, conn_id, H[i], H[i + 1]) for i in range(3)]
    for i, path in enumerate(objects):
        assert sorted(object_ids(path, vendor)) == sorted(s.ground_truth(H[i], H[i + 1]))
    union = [x for path in objects for x in object_ids(path, vendor)]
    assert len(union) > 300
    assert_exactly_once(union, s.ground_truth(H[0], H[3]))

    # A re-run of the middle interval rewrites the object with identical bytes.
    middle = objects[1].read_bytes()
    assert dag.test(logical_date=pendulum.instance(H[2])).state == "success"
    assert objects[1].read_bytes() == middle

    # A re-run of the first interval that fails on its last page: the earlier object stays as it was.
    assert pages_of[0] >= 2, "the interval must span several pages for a failure mid-stream"
    first = objects[0].read_bytes()
    ok, faults = s.stats.ok_pages, s.stats.faults.get("permanent 500", 0)
    s.faults = Faults(fail_after=ok + pages_of[0] - 1)
    assert dag.test(logical_date=pendulum.instance(H[1])).state == "failed"
    assert s.stats.ok_pages - ok == pages_of[0] - 1, "it failed after streaming all but the last page"
    assert s.stats.faults["permanent 500"] - faults == 2, "both attempts at the last page failed"
    assert objects[0].read_bytes() == first
    assert os.listdir(objects[0].parent) == [objects[0].name]

    # A new interval that fails after its first page: no object at all.
    ok, faults = s.stats.ok_pages, s.stats.faults["permanent 500"]
    s.faults = Faults(fail_after=ok + 1)
    assert dag.test(logical_date=pendulum.instance(H[4])).state == "failed"
    assert (s.stats.ok_pages - ok, s.stats.faults["permanent 500"] - faults) == (1, 2)
    # Nothing else anywhere in the lake: no partial object, no temp file, only the three objects.
    assert sorted(Path(root) / f for root, _, files in os.walk(lake) for f in files) == sorted(objects)
