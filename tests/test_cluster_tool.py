"""tools/cluster.py's configuration, without starting anything (tests/e2e/test_cluster.py starts the cluster)."""

from __future__ import annotations

import json
from pathlib import Path

from tools.cluster import _importable, cluster_env
from tools.hostname import node_name


def test_every_component_shares_one_db_broker_secret_and_reaches_only_loopback(tmp_path: Path):
    env = cluster_env(tmp_path / "home", tmp_path / "out", 8123, 5433, 6380, concurrency=3)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "postgresql+psycopg2://airflow@127.0.0.1:5433/airflow"
    # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3: the Celery result backend names its driver too
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+postgresql+psycopg2://airflow@127.0.0.1:5433/airflow"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://127.0.0.1:6380/0"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:8123/execution/"
    assert (env["AIRFLOW__API__HOST"], env["AIRFLOW__API__PORT"]) == ("127.0.0.1", "8123")
    assert env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] == "3"
    assert env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] == "tools.hostname.node_name"
    assert len(env["AIRFLOW__API_AUTH__JWT_SECRET"]) >= 32
    assert env["AIRFLOW__CORE__FERNET_KEY"] != cluster_env(tmp_path, tmp_path, 1, 2, 3, 1)["AIRFLOW__CORE__FERNET_KEY"]


def test_worker_hostname_comes_from_its_node_name(monkeypatch):
    monkeypatch.setenv("CONVERSATIONS_NODE_NAME", "worker-2")
    assert node_name() == "worker-2"
    monkeypatch.delenv("CONVERSATIONS_NODE_NAME")
    import socket

    assert node_name() == socket.getfqdn()


def test_connections_are_written_as_airflow_connections_import_reads_them():
    conn = {"conn_type": "polyai", "host": "http://127.0.0.1:1", "password": "k", "extra": {"account_id": "a"}}
    assert _importable(conn) == {**conn, "extra": json.dumps({"account_id": "a"})}
    assert _importable({"conn_type": "replyful"})["extra"] == "{}"
