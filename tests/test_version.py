"""One version, set in one place (``airflow_provider_conversations.__version__``), everywhere it is shown."""

from __future__ import annotations

import importlib
import importlib.metadata
import tomllib
from pathlib import Path

import requests

import airflow_provider_conversations
from airflow_provider_conversations.get_provider_info import get_provider_info

VERSION = airflow_provider_conversations.__version__
PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def test_pyproject_reads_the_version_from_the_package():
    config = tomllib.loads(PYPROJECT.read_text())
    assert "version" not in config["project"], "the version is set in airflow_provider_conversations/__init__.py"
    assert "version" in config["project"]["dynamic"]
    assert config["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "airflow_provider_conversations.__version__"}


def test_package_metadata_and_provider_info_show_the_version():
    # The installed metadata is computed at install time: `make install` re-installs when __init__.py changes.
    assert importlib.metadata.version("airflow-provider-conversations") == VERSION
    assert get_provider_info()["versions"] == [VERSION]


def test_user_agent_carries_the_version(sim, set_connection):
    """What a vendor sees: one request through the hook the provider info declares for the connection type."""
    server = sim("replyful", conversations=3)
    set_connection("replyful_default", server.connection())
    (entry,) = [c for c in get_provider_info()["connection-types"] if c["connection-type"] == "replyful"]
    module, _, name = entry["hook-class-name"].rpartition(".")
    ok, message = getattr(importlib.import_module(module), name)().test_connection()
    assert ok, message
    agents = {r.headers["User-Agent"] for r in server.requests}
    assert agents == {f"airflow-provider-conversations/{VERSION} python-requests/{requests.__version__}"}
