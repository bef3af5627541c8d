"""A real Airflow for the end-to-end tests: ``airflow standalone`` (scheduler, dag-processor, api-server,
triggerer) on 127.0.0.1 with a scratch home, the five simulators and the example DAGs.

Bounded in time, and every process it starts is stopped (its whole process group), also on failure.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_conversations.testing.server import VendorSimulator
from tests.helpers import stop_process_group
from tools.demo import free_port, simulators, standalone_env

STARTUP_SECONDS = 420


@dataclass
class Airflow:
    url: str
    home: Path
    output: Path
    log: Path
    sims: dict[str, VendorSimulator]
    password: str = ""
    session: requests.Session = field(default_factory=requests.Session)

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 60)
        return self.session.request(method, f"{self.url}{path}", **kwargs)

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()
            if run.get("state") in ("success", "failed"):
                return dict(run)
            time.sleep(2)
        raise AssertionError(f"{dag_id} run {run_id} did not finish in {timeout:g} s; log: {self.log}")


@pytest.fixture(scope="session")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Airflow]:
    base = tmp_path_factory.mktemp("e2e")
    home, output = base / "airflow-home", base / "output"
    home.mkdir()
    output.mkdir()
    port = free_port()
    with simulators(800, seed=21, max_seconds=1800) as sims:
        env = {
            **standalone_env(home, output, port),
            "CONVERSATIONS_SENSOR_POKE_SECONDS": "2",
            # dags_examples/resumable_backfill.py: many pages and checkpoints in a small window (test_resume_kill)
            "CONVERSATIONS_RESUME_PAGE_SIZE": "10",
            "CONVERSATIONS_RESUME_CHECKPOINT_EVERY_PAGES": "5",
            **{f"AIRFLOW_CONN_{v.upper()}_DEFAULT": json.dumps(s.connection(f"{v}_default")) for v, s in sims.items()},
        }
        log = base / "standalone.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([str(Path(sys.executable).parent / "airflow"), "standalone"], env=env,
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        af = Airflow(f"http://127.0.0.1:{port}", home, output, log, sims)
        try:
            deadline = time.monotonic() + STARTUP_SECONDS
            healthy = False
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    health = requests.get(f"{af.url}/api/v2/monitor/health", timeout=5).json()
                    healthy = all(health.get(c, {}).get("status") == "healthy"
                                  for c in ("metadatabase", "scheduler", "triggerer", "dag_processor"))
                except (requests.RequestException, ValueError):
                    healthy = False
                if healthy:
                    break
                time.sleep(3)
            if not healthy:
                raise AssertionError(f"airflow standalone not healthy after {STARTUP_SECONDS} s; log tail:\n"
                                     + log.read_text(errors="replace")[-4000:])
            passwords = home / "simple_auth_manager_passwords.json.generated"
            af.password = json.loads(passwords.read_text())["admin"]
            token = requests.post(f"{af.url}/auth/token", json={"username": "admin", "password": af.password},
                                  timeout=30).json()["access_token"]
            af.session.headers["Authorization"] = f"Bearer {token}"
            yield af
        finally:
            stop_process_group(proc)
