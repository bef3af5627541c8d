"""Each value is checked once, at the edge, and passed inward typed: what a user notices of it.

Before the redesign a DAG's filters were validated three times per export (so ElevenLabs' then ``search``
deprecation warning was logged two or three times per task; today the ``extra_params`` log line is the one to
count), and operators and the sensor built a hook while the DAG was being parsed just to call one of its methods.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from airflow_provider_conversations.filters import FilterSet
from airflow_provider_conversations.hooks.base import ConversationsHook
from airflow_provider_conversations.operators.conversations import (
    ConversationsOperator,
    ConversationsToObjectStorageOperator,
)
from airflow_provider_conversations.sensors.conversations import ConversationsSensor

START = datetime(2026, 11, 20, 10, tzinfo=UTC)
END = START + timedelta(hours=1)
URL = "https://elevenlabs.test/v1/convai/conversations"
EXTRA_LINE = "ElevenLabs: sending extra query parameters this provider does not know, unchecked: brand_new"
EMPTY = {"json": {"conversations": [], "next_cursor": None, "has_more": False}}


@pytest.fixture
def elevenlabs(set_connection):
    set_connection("el", {"conn_type": "elevenlabs", "host": "https://elevenlabs.test", "password": "xi-key-123456"})


@pytest.mark.parametrize("vendor", [None, "elevenlabs"])
def test_extra_params_are_logged_once_per_export_and_search_is_not_deprecated(elevenlabs, requests_mock, logs,
                                                                              vendor):
    requests_mock.get(URL, **EMPTY)
    op = ConversationsOperator(task_id="t", conn_id="el", vendor=vendor, filters={"search": "refund"},
                               extra_params={"brand_new": "x"}, start=START, end=END)
    assert op.execute({}) == []
    assert requests_mock.request_history[0].qs["search"] == ["refund"]
    assert requests_mock.request_history[0].qs["brand_new"] == ["x"]
    assert logs().count(EXTRA_LINE) == 1
    assert "deprecat" not in logs()


def test_extra_params_are_logged_once_per_sensor_check(elevenlabs, requests_mock, logs):
    requests_mock.get(URL, **EMPTY)
    sensor = ConversationsSensor(task_id="s", conn_id="el", vendor="elevenlabs", filters={"search": "refund"},
                                 extra_params={"brand_new": "x"}, start=START, end=END, min_count=0, settled=True)
    assert sensor.poke({}).is_done
    assert logs().count(EXTRA_LINE) == 1


@pytest.mark.parametrize("vendor", [None, "elevenlabs"])
def test_filters_are_validated_once_per_export(elevenlabs, requests_mock, monkeypatch, tmp_path, vendor):
    requests_mock.get(URL, **EMPTY)
    calls: list[str] = []
    validate = FilterSet.validate

    def counted(self: FilterSet, filters: Any) -> dict[str, Any]:
        calls.append(self.vendor)
        return validate(self, filters)

    monkeypatch.setattr(FilterSet, "validate", counted)
    op = ConversationsToObjectStorageOperator(
        task_id="t", conn_id="el", vendor=vendor, filters={"agent_id": "a1"}, finished_only=True, start=START,
        end=END, destination=f"file://{tmp_path}/",
    )
    parsed = len(calls)
    op.execute({})
    # With vendor= the DAG's filters are checked when it is parsed and not again; without, once at run time.
    assert (parsed, len(calls)) == ((1, 1) if vendor else (0, 1))


def test_no_hook_is_built_while_the_dag_is_parsed(monkeypatch, tmp_path):
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a hook was instantiated at DAG parse time")

    monkeypatch.setattr(ConversationsHook, "__init__", refuse)
    common = {"conn_id": "any", "start": START, "end": END, "page_size": 50, "hook_params": {"max_attempts": 2}}
    for vendor, filters in (("polyai", {"in_progress": False}), ("parrotmob", {"status": "completed"}),
                            ("replyful", {"status": ["resolved"]}), ("elevenlabs", {"exclude_statuses": ["done"]}),
                            ("anyreach", {"status": "completed"})):
        ConversationsOperator(task_id=f"x_{vendor}", vendor=vendor, filters=filters, finished_only=True, **common)
        ConversationsToObjectStorageOperator(task_id=f"e_{vendor}", vendor=vendor, filters=filters,
                                             finished_only=True, destination=f"file://{tmp_path}/", **common)
        ConversationsSensor(task_id=f"s_{vendor}", vendor=vendor, filters=filters, settled=True, **common)
