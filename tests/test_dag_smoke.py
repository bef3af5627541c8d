"""The DAG-level test harness works: dag.test() runs a CronDataIntervalTimetable DAG with its interval."""

from __future__ import annotations

import pendulum

SOURCE = '''
import pendulum
from airflow.sdk import dag, task
from airflow.timetables.interval import CronDataIntervalTimetable


@dag(schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
     start_date=pendulum.datetime(2026, 11, 1, tz="UTC"), catchup=False)
def harness_probe():
    @task
    def window(**context):
        return [context["data_interval_start"].isoformat(), context["data_interval_end"].isoformat()]

    window()


probe_dag = harness_probe()
'''


def test_dag_test_gives_the_hourly_interval(load_dag):
    dag = load_dag("harness_probe", SOURCE)
    run = dag.test(logical_date=pendulum.datetime(2026, 11, 20, 5, tz="UTC"))
    assert run.state == "success"
