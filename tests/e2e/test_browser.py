"""A real browser against the real Airflow: the connection form of each vendor, a successful run in the grid,
and a task log with the export's progress lines. Headless Debian Chromium driven by Playwright.

Screenshots are saved under ``.scratch/screenshots/`` (the README shows copies from ``tests/e2e/screenshots/``).
"""

from __future__ import annotations

import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from airflow_provider_conversations.get_provider_info import get_provider_info
from airflow_provider_conversations.testing.dataset import DEFAULT_START

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[2] / ".scratch" / "screenshots"
# The flags a sandboxed, offline machine needs (no background network, no GPU, no setuid sandbox as root).
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def page(airflow):
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(f"{airflow.url}/")
        page.get_by_label("Username").fill("admin")
        page.get_by_label("Password").fill(airflow.password)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("link", name="Dags").first.wait_for()
        yield page
        browser.close()


@pytest.mark.parametrize("entry", get_provider_info()["connection-types"], ids=lambda e: e["connection-type"])
def test_connection_form_shows_the_vendor_fields(airflow, page, entry):
    page.goto(f"{airflow.url}/connections")
    page.get_by_role("button", name=re.compile("Add Connection")).click()
    box = page.get_by_role("combobox", name="Connection Type")
    box.click()
    box.fill(entry["hook-name"].split(" (")[0])
    page.get_by_role("option", name=entry["hook-name"]).click()
    behaviour = entry["ui-field-behaviour"]
    for standard in ("host", "password"):
        assert page.get_by_text(behaviour["relabeling"][standard], exact=True).is_visible()
    assert page.get_by_text("Login", exact=True).count() == 0  # hidden: no vendor uses it
    page.get_by_text("Extra Fields", exact=True).click()
    for field in entry["conn-fields"].values():
        page.get_by_text(field["label"], exact=True).wait_for()
    page.screenshot(path=str(SHOTS / f"connection-form-{entry['connection-type']}.png"), full_page=True)
    page.keyboard.press("Escape")


def test_a_successful_run_in_the_grid_and_its_progress_log(airflow, page):
    dag_id = "conversations_replyful_hourly"
    end = DEFAULT_START + timedelta(hours=40)
    assert airflow.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False}).status_code == 200
    response = airflow.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": end.isoformat()})
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]
    assert airflow.wait_for_run(dag_id, run_id)["state"] == "success"

    page.goto(f"{airflow.url}/dags/{dag_id}/runs/{run_id}")
    page.get_by_text(run_id).first.wait_for()
    # The grid fills in after the run id shows: wait for the state rather than read it at once (a race otherwise).
    page.get_by_text("Success").first.wait_for(state="visible")
    page.get_by_role("link", name="export").first.wait_for()
    page.screenshot(path=str(SHOTS / "run-success.png"))

    page.goto(f"{airflow.url}/dags/{dag_id}/runs/{run_id}/tasks/export")
    page.get_by_text(re.compile(r"conversations so far")).first.wait_for()
    page.get_by_text(re.compile(r"Exported \d+ conversations to file://")).first.wait_for()
    page.screenshot(path=str(SHOTS / "task-log-progress.png"))
