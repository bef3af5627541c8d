"""The example DAGs import cleanly, without network I/O at parse time, and follow our own advice."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "dags_examples"


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    real_connect = socket.socket.connect

    def refuse(self, address):  # parse time must not talk to anything, not even loopback
        raise AssertionError(f"network I/O while parsing DAGs: connect to {address!r}")

    socket.socket.connect = refuse
    try:
        return DagBag(dag_folder=str(EXAMPLES), safe_mode=False)
    finally:
        socket.socket.connect = real_connect


def test_every_example_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    files = sorted(p.name for p in EXAMPLES.glob("*.py"))
    assert len(dagbag.dags) == len(files) == 10


def test_one_dag_per_vendor_plus_the_combined_ones(dagbag):
    assert set(dagbag.dags) == {
        "conversations_polyai_hourly", "conversations_elevenlabs_hourly", "conversations_anyreach_hourly",
        "conversations_parrotmob_hourly", "conversations_replyful_hourly", "conversations_all_vendors_hourly",
        "conversations_fanout_subwindows", "conversations_xcom_report", "conversations_day_fanout",
        "conversations_resumable_backfill",
    }


def test_every_example_uses_data_interval_timetables(dagbag):
    from airflow.timetables.interval import CronDataIntervalTimetable

    for dag_id, dag in dagbag.dags.items():
        assert isinstance(dag.timetable, CronDataIntervalTimetable), dag_id


def test_sensors_in_examples_defer(dagbag):
    from airflow_provider_conversations.sensors.conversations import ConversationsSensor

    sensors = [t for d in dagbag.dags.values() for t in d.tasks if isinstance(t, ConversationsSensor)]
    assert len(sensors) >= 5
    assert all(s.deferrable for s in sensors)
