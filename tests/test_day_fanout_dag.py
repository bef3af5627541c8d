"""dag.test() of dags_examples/day_fanout.py: eight mapped sub-window exports, checked, then one Asset event."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pendulum
from sqlalchemy import select

from airflow_provider_conversations.windows import iso_z, split_window
from tests.helpers import assert_exactly_once

EXAMPLE = Path(__file__).resolve().parent.parent / "dags_examples" / "day_fanout.py"
DAY = pendulum.datetime(2026, 11, 18, tz="UTC")


def day_events(run) -> list[tuple[str, dict]]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.execute(select(AssetModel.name, AssetEvent.extra).join(
            AssetEvent, AssetEvent.asset_id == AssetModel.id).where(
            AssetEvent.source_dag_id == run.dag_id, AssetEvent.source_run_id == run.run_id))
        return [(r[0], dict(r[1])) for r in rows]


def test_a_day_in_eight_mapped_parts_equals_the_ground_truth_and_emits_one_event(
        sim, set_connection, load_dag, tmp_path, monkeypatch):
    s = sim("polyai", conversations=1200, seed=5)
    s.finish_all()
    set_connection("polyai_default", s.connection())
    lake = tmp_path / "lake"
    monkeypatch.setenv("CONVERSATIONS_EXPORT_ROOT", lake.as_uri())
    monkeypatch.setenv("CONVERSATIONS_SENSOR_POKE_SECONDS", "1")
    dag = load_dag("conversations_day_fanout", EXAMPLE.read_text())

    run = dag.test(logical_date=DAY.add(days=1))
    assert run.state == "success"
    objects = sorted(lake.rglob("*.jsonl.gz"))
    parts = split_window(DAY, DAY.add(days=1), 8)
    assert [(o.parent.parent.name, o.parent.name) for o in objects] == [
        (f"start={p['start']}", f"end={p['end']}") for p in parts]
    ids = [orjson.loads(line)["id"] for o in objects for line in gzip.decompress(o.read_bytes()).splitlines()]
    truth = s.ground_truth(DAY, DAY.add(days=1))
    assert len(truth) > 200
    assert_exactly_once(ids, truth)

    ((name, extra),) = day_events(run)
    assert name == "conversations_polyai_day"
    assert (extra["start"], extra["end"], extra["parts"], extra["count"]) == (
        iso_z(DAY), iso_z(DAY.add(days=1)), 8, len(truth))
    assert extra["uris"] == [f"file://{o}" for o in objects]

    before = {o: o.read_bytes() for o in objects}
    assert dag.test(logical_date=DAY.add(days=1)).state == "success"
    assert {o: o.read_bytes() for o in sorted(lake.rglob("*.jsonl.gz"))} == before
