"""The one list of vendors (the catalog) is what the registry, the provider info, the simulators and the tooling
serve: a vendor added to it and forgotten elsewhere fails here."""

from __future__ import annotations

from pathlib import Path

from airflow_provider_conversations.catalog import CONN_TYPES
from airflow_provider_conversations.get_provider_info import get_provider_info
from airflow_provider_conversations.hooks import HOOK_CLASSES, hook_class
from airflow_provider_conversations.testing import SIMULATORS, simulator_class
from tools.demo import VENDOR_DAGS
from tools.reliability import PROFILES

EXAMPLES = Path(__file__).resolve().parents[1] / "dags_examples"


def test_every_vendor_has_a_hook_a_connection_form_and_a_simulator():
    assert tuple(HOOK_CLASSES) == tuple(SIMULATORS) == CONN_TYPES
    assert [e["connection-type"] for e in get_provider_info()["connection-types"]] == list(CONN_TYPES)
    for conn_type in CONN_TYPES:
        assert hook_class(conn_type).conn_type == conn_type == hook_class(conn_type).vendor
        assert hook_class(conn_type).default_conn_name == f"{conn_type}_default"
        assert simulator_class(conn_type).vendor == conn_type


def test_every_vendor_has_an_example_dag_a_demo_run_and_a_reliability_profile():
    assert tuple(VENDOR_DAGS) == CONN_TYPES
    assert {p.vendor for p in PROFILES.values()} == set(CONN_TYPES)
    declared = {p.name: p.read_text() for p in EXAMPLES.glob("*.py")}
    for dag_id, _time_key in VENDOR_DAGS.values():
        assert any(f'dag_id="{dag_id}"' in text for text in declared.values()), f"no example DAG {dag_id}"
