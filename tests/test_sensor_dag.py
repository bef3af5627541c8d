"""dag.test(): a deferrable sensor waits while the vendor finishes its calls, then the export runs."""

from __future__ import annotations

import gzip
import json
import threading

import pendulum

from airflow_provider_conversations.windows import Window
from tests.test_sensor import in_progress_ids

SOURCE = '''
import json
from pathlib import Path

import pendulum
from airflow.sdk import dag, task
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_conversations.operators.conversations import ConversationsToObjectStorageOperator
from airflow_provider_conversations.sensors.conversations import ConversationsSensor


@dag(schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
     start_date=pendulum.datetime(2026, 11, 1, tz="UTC"), catchup=False)
def conversations_settle_then_export():
    settled = ConversationsSensor(task_id="settled", conn_id="sensor_dag_polyai", settled=True, deferrable=True,
                                  poke_interval=0.5, timeout=120)
    export = ConversationsToObjectStorageOperator(task_id="export", conn_id="sensor_dag_polyai",
                                                  destination="DESTINATION")

    @task
    def record(seen, manifest):
        Path("RECORD").write_text(json.dumps({"seen": seen, "manifest": manifest}, default=str))

    settled >> export
    record(settled.output, export.output)


settle_then_export = conversations_settle_then_export()
'''


def test_deferrable_sensor_waits_for_the_window_to_settle_then_export_runs(sim, set_connection, load_dag, tmp_path):
    s = sim("polyai", conversations=1000, seed=11)
    set_connection("sensor_dag_polyai", s.connection())
    day = Window(pendulum.datetime(2026, 11, 18, tz="UTC"), pendulum.datetime(2026, 11, 19, tz="UTC"))
    assert in_progress_ids(s, "sensor_dag_polyai", day), "the window must start with calls still in progress"
    truth = s.ground_truth(day.start, day.end)
    destination, record = tmp_path / "export", tmp_path / "record.json"
    destination.mkdir()
    dag = load_dag("conversations_settle_then_export",
                   SOURCE.replace("DESTINATION", f"file://{destination}/").replace("RECORD", str(record)))

    finished = threading.Event()
    stop = threading.Event()

    def finish_two_seconds_after_the_first_check() -> None:
        # dag.test() spends a while starting its in-process API before the first task runs: time the vendor
        # from the sensor's first request, not from the start of the run.
        while not s.requests and not stop.wait(0.05):
            pass
        if not stop.wait(2.0):
            s.finish_all()
            finished.set()

    finisher = threading.Thread(target=finish_two_seconds_after_the_first_check, daemon=True)
    finisher.start()
    try:
        run = dag.test(logical_date=day.end)  # a run at the end of the day covers that day
    finally:
        stop.set()
        finisher.join()

    assert run.state == "success"
    assert finished.is_set()
    recorded = json.loads(record.read_text())
    seen, manifest = recorded["seen"], recorded["manifest"]
    assert seen["checks"] >= 3  # one on the worker, then the trigger checked more than once
    assert (seen["start"], seen["end"], seen["settled"], seen["in_progress"]) == (
        "2026-11-18T00:00:00Z", "2026-11-19T00:00:00Z", True, 0)

    (exported,) = [p for p in destination.rglob("*") if p.is_file()]
    assert exported.name == "conversations.jsonl.gz"  # the export's default compression
    assert manifest["uri"].endswith(exported.relative_to(destination).as_posix())
    assert manifest["count"] == len(truth)
    records = [json.loads(line) for line in gzip.decompress(exported.read_bytes()).decode().splitlines()]
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)) == len(truth)
    assert set(ids) == set(truth)
    assert not any(r["in_progress"] for r in records)  # exported after the window settled
