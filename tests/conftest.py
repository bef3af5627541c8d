"""Shared fixtures: env-var connections, simulators that are always stopped, a scratch AIRFLOW_HOME."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

# Airflow reads its configuration at import time: point it at a scratch home before anything imports it.
_HOME = tempfile.mkdtemp(prefix="conversations-airflow-home-")
os.environ.setdefault("AIRFLOW_HOME", _HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")

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
