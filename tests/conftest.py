"""Shared fixtures: env-var connections, simulators that are always stopped, a scratch AIRFLOW_HOME."""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Airflow reads its configuration at import time: point it at a scratch home before anything imports it.
_HOME = tempfile.mkdtemp(prefix="conversations-airflow-home-")
os.environ.setdefault("AIRFLOW_HOME", _HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
# dag.test() syncs the DAG's bundle to the metadata DB: DAG-level tests write their DAG files here.
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", os.path.join(os.environ["AIRFLOW_HOME"], "dags"))
os.makedirs(os.environ["AIRFLOW__CORE__DAGS_FOLDER"], exist_ok=True)

from airflow_provider_conversations.testing import simulator as make_simulator  # noqa: E402
from airflow_provider_conversations.testing.server import VendorSimulator  # noqa: E402


@pytest.fixture
def set_connection(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, dict[str, Any]], None]:
    """Define an Airflow connection for this test only (``AIRFLOW_CONN_<ID>`` as JSON)."""

    def _set(conn_id: str, conn: dict[str, Any]) -> None:
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))

    return _set


@pytest.fixture
def sim() -> Iterator[Callable[..., VendorSimulator]]:
    """Start simulators for a test; every one is stopped afterwards, also on failure."""
    started: list[VendorSimulator] = []

    def _start(vendor: str, **kwargs: Any) -> VendorSimulator:
        kwargs.setdefault("max_seconds", 300)
        s = make_simulator(vendor, **kwargs).start()
        started.append(s)
        return s

    yield _start
    for s in started:
        s.stop()


class FakeClock:
    """Monotonic time that only moves when someone sleeps: retry and pacing waits cost no real time."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_clock() -> Callable[[Any], FakeClock]:
    """``fake_clock(hook)``: the hook's retry and throttle waits advance a fake clock instead of sleeping."""

    def _install(hook: Any) -> FakeClock:
        clock = FakeClock()
        hook.throttle._clock = clock.monotonic
        hook.throttle._sleep = clock.sleep
        return clock

    return _install


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> Callable[[], str]:
    """Everything logged so far: Airflow's structlog writes to stdout, plain logging goes to caplog."""
    import logging

    caplog.set_level(logging.DEBUG)
    seen: list[str] = []

    def _text() -> str:
        captured = capsys.readouterr()
        seen.append(captured.out + captured.err)
        return "".join(seen) + caplog.text

    return _text


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata DB in the scratch AIRFLOW_HOME (once per session); returns the dags folder."""
    from airflow.utils import db

    db.initdb()
    return Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])


@pytest.fixture
def load_dag(airflow_db: Path) -> Callable[[str, str], Any]:
    """``load_dag(name, source)``: write a DAG file into the dags folder and return its DAG object.

    DAG files must not call ``dag.test()`` at import time (the bundle sync would re-run it): guard such calls
    with ``if __name__ == "__main__":``.
    """

    def _load(name: str, source: str) -> Any:
        path = airflow_db / f"{name}.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location(f"dags_{name}", path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        from airflow.sdk import DAG

        dags = [v for v in vars(module).values() if isinstance(v, DAG)]
        assert len(dags) == 1, f"{path} must assign exactly one DAG to a module variable, found {len(dags)}"
        return dags[0]

    return _load
