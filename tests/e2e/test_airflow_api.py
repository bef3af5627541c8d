"""End to end through a real Airflow's REST API: registration, connection forms and tests, and an example DAG
run whose deferrable sensor waits on the real triggerer before the export runs."""

from __future__ import annotations

import gzip
import json
import re
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from airflow_provider_conversations.testing.dataset import DEFAULT_START

pytestmark = pytest.mark.e2e

#: Every form also offers the rate budget extras (rate_limit, rate_limit_storage).
BUDGET = {"rate_limit", "rate_limit_storage"}
FIELDS = {
    "polyai": {"region", "account_id", "project_id", "client_env", "api_version", "verify_ssl", *BUDGET},
    "elevenlabs": {"region", "verify_ssl", *BUDGET},
    "parrotmob": {"account_id", "verify_ssl", *BUDGET},
    "anyreach": {"org_id", "verify_ssl", *BUDGET},
    "replyful": {"verify_ssl", *BUDGET},
}


def test_provider_is_listed(airflow):
    providers = airflow.api("GET", "/api/v2/providers").json()["providers"]
    (ours,) = [p for p in providers if p["package_name"] == "airflow-provider-conversations"]
    assert ours["version"] == "0.1.0"


def test_connection_form_offers_each_vendor_with_its_own_fields(airflow):
    meta = {m["connection_type"]: m for m in airflow.api("GET", "/ui/connections/hook_meta").json()}
    for conn_type, fields in FIELDS.items():
        form = meta[conn_type]
        assert form["hook_name"].endswith("(conversations)")
        assert set(form["extra_fields"]) == fields
        assert form["standard_fields"]["login"]["hidden"] is True
        assert form["standard_fields"]["password"]["title"].startswith("API")


@pytest.mark.parametrize("vendor", list(FIELDS))
def test_test_connection_button(airflow, vendor):
    conn = airflow.sims[vendor].connection(f"{vendor}_check")
    body = {"connection_id": f"{vendor}_check", "conn_type": conn["conn_type"], "host": conn["host"],
            "password": conn["password"], "extra": json.dumps(conn.get("extra", {}))}
    good = airflow.api("POST", "/api/v2/connections/test", json=body).json()
    assert good["status"] is True, good
    assert "the API key was accepted" in good["message"]
    bad_key = "rfl_test_wrong_key_123" if vendor == "replyful" else "wrong-key-123456"
    bad = airflow.api("POST", "/api/v2/connections/test", json={**body, "password": bad_key}).json()
    assert bad["status"] is False
    assert "rejected the API key of connection" in bad["message"]
    assert bad_key not in bad["message"]


def test_example_dag_run_defers_on_the_triggerer_then_exports_exactly(airflow):
    dag_id = "conversations_polyai_hourly"
    sim = airflow.sims["polyai"]
    start = DEFAULT_START + timedelta(hours=30)
    end = start + timedelta(hours=1)
    # a call still running in the window: the sensor must wait until the simulator finishes it
    in_window = [r for r in sim.records if start.strftime("%Y-%m-%dT%H") in r["started_at"]
                 and r["environment"] == "live"]
    assert in_window
    sim.set_in_progress([in_window[0]["id"]])
    assert airflow.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False}).status_code == 200
    response = airflow.api("POST", f"/api/v2/dags/{dag_id}/dagRuns",
                           json={"logical_date": end.isoformat(), "conf": {}})
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]
    timer = threading.Timer(25, sim.finish_all)
    timer.start()
    try:
        run = airflow.wait_for_run(dag_id, run_id, timeout=400)
    finally:
        timer.cancel()
    assert run["state"] == "success", airflow.log
    assert run["data_interval_start"].startswith(start.strftime("%Y-%m-%dT%H:00:00"))

    tis = {t["task_id"]: t for t in airflow.api(
        "GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances").json()["task_instances"]}
    assert tis["wait_until_settled"]["state"] == "success"
    sensor_log = json.dumps(airflow.api(
        "GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/wait_until_settled/logs/1").json())
    # the worker checked once, handed the wait to the triggerer, and resumed with the trigger's event
    assert "deferring to the triggerer" in sensor_log, sensor_log[-3000:]
    checks = re.search(r"condition met after (\d+) check", sensor_log)
    assert checks, sensor_log[-3000:]
    assert int(checks.group(1)) > 1

    manifest = airflow.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/export/xcomEntries/"
                                  "return_value").json()["value"]
    if isinstance(manifest, str):
        manifest = json.loads(manifest)
    path = Path(manifest["uri"].removeprefix("file://"))
    assert path.is_relative_to(airflow.output)
    ids = sorted(json.loads(line)["id"] for line in gzip.decompress(path.read_bytes()).splitlines())
    assert ids == sorted(sim.ground_truth(start, end))
    assert manifest["count"] == len(ids) > 0
