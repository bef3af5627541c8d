"""End to end on a real CeleryExecutor cluster (tools/cluster.py: PostgreSQL, Redis, two Celery workers).

One day of PolyAI calls in eight mapped sub-window exports (dags_examples/day_fanout.py): the parts run on both
workers, the deferrable sensor waits on the triggerer, the objects hold exactly the simulator's ground truth, and
a cleared and re-run day rewrites every object with the same bytes.
"""

from __future__ import annotations

import gzip
import json
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_conversations.testing.dataset import DEFAULT_START
from airflow_provider_conversations.windows import iso_z, split_window
from tests.helpers import assert_exactly_once
from tools.cluster import Cluster, cluster
from tools.demo import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

DAG_ID = "conversations_day_fanout"
DAY = DEFAULT_START + timedelta(days=1)


@pytest.fixture(scope="module")
def celery_cluster() -> Iterator[Cluster]:
    # Under the checkout, not pytest's tmp_path: PostgreSQL runs as another user and must reach its folder.
    with cluster(REPO / ".scratch" / "e2e-cluster", conversations=800, seed=21, bound_seconds=900,
                 # only the runs the test triggers: unpausing must not start a scheduled run of another day
                 extra_env={"CONVERSATIONS_SENSOR_POKE_SECONDS": "2",
                            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"}) as c:
        yield c


def task_instances(c: Cluster, run_id: str, task_id: str) -> list[dict[str, Any]]:
    body = c.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances",
                 params={"task_id": task_id, "limit": 100}).json()
    return sorted(body["task_instances"], key=lambda t: t["map_index"])


def wait_for_state(c: Cluster, run_id: str, task_id: str, state: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tis = task_instances(c, run_id, task_id)
        if tis and tis[0]["state"] == state:
            return
        if tis and tis[0]["state"] in ("success", "failed"):
            raise AssertionError(f"{task_id} ended {tis[0]['state']} before it was {state}")
        time.sleep(1)
    raise AssertionError(f"{task_id} not {state} after {timeout:g} s; logs in {c.logs}")


def objects(c: Cluster) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(c.output.rglob("*.jsonl.gz"))}


def test_a_day_fans_out_over_both_workers_exactly_and_reruns_byte_identical(celery_cluster):
    c = celery_cluster
    sim = c.sims["polyai"]
    end = DAY + timedelta(days=1)
    # a call still running in the day: the sensor must hand the wait to the triggerer
    running = next(r for r in sim.records if r["started_at"].startswith(DAY.strftime("%Y-%m-%d"))
                   and r["environment"] == "live")
    sim.set_in_progress([running["id"]])
    c.wait_for_dag(DAG_ID)
    assert c.api("PATCH", f"/api/v2/dags/{DAG_ID}", json={"is_paused": False}).status_code == 200
    response = c.api("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": end.isoformat(), "conf": {}})
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]

    wait_for_state(c, run_id, "wait_until_settled", "deferred")
    sim.finish_all()
    run = c.wait_for_run(DAG_ID, run_id, timeout=400)
    assert run["state"] == "success", c.log_tail("scheduler")

    # the sensor checked once on a worker, deferred, and the triggerer's checks released it
    sensor_log = json.dumps(c.api(
        "GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/wait_until_settled/logs/1").json())
    assert "deferring to the triggerer" in sensor_log, sensor_log[-3000:]
    checks = re.search(r"condition met after (\d+) check", sensor_log)
    assert checks, sensor_log[-3000:]
    assert int(checks.group(1)) > 1

    # eight mapped parts, on both workers (the hostnames the task instances recorded)
    parts = task_instances(c, run_id, "export_part")
    assert [t["map_index"] for t in parts] == list(range(8))
    assert {t["state"] for t in parts} == {"success"}
    assert {t["hostname"] for t in parts} == {"worker-1", "worker-2"}, [t["hostname"] for t in parts]

    # the union of the eight objects is exactly the simulator's ground truth for the day
    first = objects(c)
    expected = split_window(DAY, end, 8)
    assert [(p.parent.parent.name, p.parent.name) for p in first] == [
        (f"start={w['start']}", f"end={w['end']}") for w in expected]
    ids = [json.loads(line)["id"] for data in first.values() for line in gzip.decompress(data).splitlines()]
    truth = sim.ground_truth(DAY, end)
    assert len(truth) > 100
    assert_exactly_once(ids, truth)
    day = c.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/check_day/xcomEntries/"
                       "return_value").json()["value"]
    day = json.loads(day) if isinstance(day, str) else day
    assert (day["start"], day["end"], day["parts"], day["count"]) == (iso_z(DAY), iso_z(end), 8, len(truth))

    # clear the whole run and let it run again: every object is rewritten with the same bytes
    cleared = c.api("POST", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/clear", json={"dry_run": False})
    assert cleared.status_code == 200, cleared.text
    rerun = c.wait_for_run(DAG_ID, run_id, timeout=400)
    assert rerun["state"] == "success"
    assert {t["try_number"] for t in task_instances(c, run_id, "export_part")} == {2}
    assert objects(c) == first

    events = c.api("GET", "/api/v2/assets/events", params={"source_dag_id": DAG_ID}).json()["asset_events"]
    assert [e["source_run_id"] for e in events] == [run_id, run_id]
    assert {e["extra"]["count"] for e in events} == {len(truth)}
