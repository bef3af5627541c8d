"""Provider registration: the dict validates against Airflow's own schemas and resolves every hook."""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import json

import jsonschema
import pytest

from airflow_provider_conversations.get_provider_info import get_provider_info
from airflow_provider_conversations.hooks import HOOK_CLASSES, hook_class
from airflow_provider_conversations.transport.throttle import RateLimit

PRESENT = ["polyai", "elevenlabs", "parrotmob", "anyreach", "replyful"]


def _schema(name: str) -> dict:
    return json.loads(importlib.resources.files("airflow").joinpath(name).read_text())


def test_validates_against_airflow_runtime_schema():
    jsonschema.validate(get_provider_info(), _schema("provider_info.schema.json"))


def test_connection_types_validate_against_the_strict_provider_yaml_schema():
    strict = _schema("provider.yaml.schema.json")
    jsonschema.validate(get_provider_info()["connection-types"], strict["properties"]["connection-types"])


def test_package_name_is_the_distribution_and_entry_point_is_registered():
    info = get_provider_info()
    dist = importlib.metadata.distribution("airflow-provider-conversations")
    assert info["package-name"] == dist.metadata["Name"]
    (ep,) = [e for e in dist.entry_points if e.group == "apache_airflow_provider"]
    assert ep.load() is get_provider_info


def test_connection_types_match_the_hook_registry():
    declared = {c["connection-type"]: c["hook-class-name"] for c in get_provider_info()["connection-types"]}
    assert declared == HOOK_CLASSES


@pytest.mark.parametrize("conn_type", PRESENT)
def test_providers_manager_resolves_each_connection_type(conn_type):
    try:
        cls = hook_class(conn_type)
    except (ImportError, AttributeError):
        pytest.fail(f"hook for {conn_type} does not import")
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    assert "airflow-provider-conversations" in ProvidersManager().providers
    # Workers resolve connection types through the task SDK's runtime manager.
    hook_info = ProvidersManagerTaskRuntime().hooks[conn_type]
    assert hook_info is not None
    assert hook_info.hook_class_name == f"{cls.__module__}.{cls.__name__}"
    assert hook_info.connection_type == conn_type
    assert hook_info.connection_testable
    assert cls.conn_type == conn_type
    assert cls.default_conn_name == f"{conn_type}_default"


COMMON_FIELDS = {"verify_ssl", "rate_limit", "rate_limit_storage"}
EXPECTED_FIELDS = {
    "polyai": {"region", "account_id", "project_id", "client_env", "api_version", *COMMON_FIELDS},
    "elevenlabs": {"region", *COMMON_FIELDS},
    "parrotmob": {"account_id", *COMMON_FIELDS},
    "anyreach": {"org_id", *COMMON_FIELDS},
    "replyful": set(COMMON_FIELDS),
}


@pytest.mark.parametrize("conn_type", PRESENT)
def test_connection_form_as_the_api_server_builds_it(conn_type):
    """What ``GET /ui/connections/hook_meta`` returns: Airflow 3.3 reads it from provider info alone."""
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    (meta,) = [m for m in HookMetaService.hook_meta_data() if m.connection_type == conn_type]
    assert meta.hook_name.endswith("(conversations)")
    assert set(meta.extra_fields or {}) == EXPECTED_FIELDS[conn_type]
    standard = meta.standard_fields
    assert standard is not None
    assert standard.login.hidden is True
    assert standard.password.hidden is False
    assert standard.password.title.startswith("API")
    assert standard.host.title.startswith("Base URL")


@pytest.mark.parametrize("conn_type", PRESENT)
def test_form_hides_unused_fields_and_relabels_the_key(conn_type):
    (entry,) = [c for c in get_provider_info()["connection-types"] if c["connection-type"] == conn_type]
    behaviour = entry["ui-field-behaviour"]
    assert "login" in behaviour["hidden-fields"]
    assert behaviour["relabeling"]["password"].startswith("API")
    assert "verify_ssl" in entry["conn-fields"]


@pytest.mark.parametrize("conn_type", PRESENT)
def test_every_form_offers_the_rate_budget_with_the_vendors_default(conn_type):
    """Replyful documents 100 requests per 60 s per key; the others document no limit, so no default."""
    (entry,) = [c for c in get_provider_info()["connection-types"] if c["connection-type"] == conn_type]
    rate_limit, storage = entry["conn-fields"]["rate_limit"], entry["conn-fields"]["rate_limit_storage"]
    assert rate_limit["schema"].get("default") == ("100/60" if conn_type == "replyful" else None)
    assert "requests/seconds" in rate_limit["label"]
    assert "redis://" in storage["description"]
    assert hook_class(conn_type).default_rate_limit == (RateLimit(100, 60) if conn_type == "replyful" else None)
