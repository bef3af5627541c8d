"""A real kill: the export task's process gets SIGKILL after about 60% of its pages, and its retry resumes.

``airflow standalone`` runs ``dags_examples/resumable_backfill.py`` (``retries=1``, 10 conversations a page, a
checkpoint every 5 pages). The PolyAI simulator's ``kill_after`` fault kills the process that sends the request
after that many good pages (found through the request's socket). The retry must resume from the last checkpoint,
re-request at most one checkpoint interval of pages, and write the same bytes as an uninterrupted run; no
object may be visible under the final name before it is complete.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from pathlib import Path

import pendulum
import pytest

from airflow_provider_conversations.operators.conversations import ConversationsToObjectStorageOperator
from airflow_provider_conversations.testing import Faults
from airflow_provider_conversations.testing.dataset import DEFAULT_START
from tests.test_resume import DictStore

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]  # the session fixture starts Airflow first

DAG_ID = "conversations_resumable_backfill"
EVERY = 5


def test_a_killed_export_resumes_on_retry_byte_identical(airflow, tmp_path, monkeypatch):
    sim = airflow.sims["polyai"]
    start = DEFAULT_START + timedelta(days=1)
    end = start + timedelta(days=1)

    # the uninterrupted run of the same window, in this process, for the reference bytes and page count
    monkeypatch.setenv("AIRFLOW_CONN_POLYAI_DEFAULT", json.dumps(sim.connection("polyai_default")))
    reference_op = ConversationsToObjectStorageOperator(
        task_id="export", conn_id="polyai_default", vendor="polyai", destination=f"file://{tmp_path}/",
        page_size=10, checkpoint_every_pages=EVERY)
    reference = reference_op.execute({"data_interval_start": pendulum.instance(start),
                                      "data_interval_end": pendulum.instance(end),
                                      "task_state_store": DictStore()})
    pages = reference["pages"]
    assert pages >= 15, "enough pages for three checkpoints"
    reference_bytes = Path(reference["uri"].removeprefix("file://")).read_bytes()

    # Unpausing schedules the latest interval (catchup=False): let that run finish before the kill is armed, so
    # the fault counts the pages of the manual run alone.
    assert airflow.api("PATCH", f"/api/v2/dags/{DAG_ID}", json={"is_paused": False}).status_code == 200
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        runs = airflow.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns").json()["dag_runs"]
        if runs and all(r["state"] in ("success", "failed") for r in runs):
            break
        time.sleep(2)
    kill = Faults(kill_after=sim.stats.ok_pages + pages * 6 // 10)
    sim.faults = kill
    final = (airflow.output / "vendor=polyai/conn_id=polyai_default/time_key=created"
             / f"start={start:%Y-%m-%dT%H:%M:%SZ}/end={end:%Y-%m-%dT%H:%M:%SZ}/conversations.jsonl.gz")
    seen: list[bytes] = []
    stop = threading.Event()

    def watch() -> None:  # what a lake reader would see under the final name while the tries run
        while not stop.is_set():
            if final.exists():
                seen.append(final.read_bytes())
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        response = airflow.api("POST", f"/api/v2/dags/{DAG_ID}/dagRuns",
                               json={"logical_date": end.isoformat(), "conf": {}})
        assert response.status_code == 200, response.text
        run_id = response.json()["dag_run_id"]
        run = airflow.wait_for_run(DAG_ID, run_id, timeout=600)
    finally:
        stop.set()
        watcher.join()
        sim.faults = Faults()
    assert run["state"] == "success", airflow.log
    assert kill.killed, "the simulator killed the task's process"
    ti = airflow.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/export").json()
    assert ti["try_number"] == 2, "the first try was killed, the second one finished"

    manifest = airflow.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/export/xcomEntries/"
                                  "return_value").json()["value"]
    if isinstance(manifest, str):
        manifest = json.loads(manifest)
    resumed = manifest["resumed_from_page"]
    assert resumed is not None, "the retry resumed from a checkpoint"
    killed_after_pages = pages * 6 // 10
    assert killed_after_pages - (resumed - 1) <= EVERY, "at most one checkpoint interval re-requested"
    assert manifest["pages"] == pages - (resumed - 1)
    assert final.read_bytes() == reference_bytes, "byte-identical to an uninterrupted run"
    assert all(b == reference_bytes for b in seen), "no partial object was ever visible"
    assert sorted(p.name for p in final.parent.iterdir()) == ["conversations.jsonl.gz"], "nothing staged is left"

    log = json.dumps(airflow.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/export/logs/2").json())
    assert f"Resuming from page {resumed} of the window" in log, log[-3000:]
