"""``extra_params`` on the operators, the sensor and the trigger: checked once at the edge, templated like
``filters``, sent on every request, carried through a deferral, recorded in the manifest."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred

from airflow_provider_conversations.exceptions import ConfigurationError, InvalidFilterError
from airflow_provider_conversations.operators.conversations import (
    ConversationsOperator,
    ConversationsToObjectStorageOperator,
)
from airflow_provider_conversations.sensors.conversations import ConversationsSensor
from airflow_provider_conversations.triggers.conversations import ConversationsTrigger

START = datetime(2026, 11, 20, 10, tzinfo=UTC)
END = START + timedelta(hours=1)
URL = "https://elevenlabs.test/v1/convai/conversations"
EMPTY = {"json": {"conversations": [], "next_cursor": None, "has_more": False}}
XCOM = "ConversationsOperator 't': "
EXPORT = "ConversationsToObjectStorageOperator 't': "
SENSOR = "ConversationsSensor 't': "
SORT = ("extra_params 'sort_direction' is refused: it is one of the paging, window or order parameters the "
        "ElevenLabs hook sets itself (the hook walks newest first and relies on that order to check its paging; "
        "it is not a filter)")
VALUE = ("extra_params 'new' got {'a': 1}; allowed: a string, a number, true or false, or a non-empty list of them "
         "(sent to {vendor} as a repeated query parameter)")


@pytest.fixture
def el(set_connection):
    set_connection("el", {"conn_type": "elevenlabs", "host": "https://elevenlabs.test", "password": "xi-key-123456"})


def task(kind: str, **kwargs: Any) -> Any:
    args: dict[str, Any] = {"task_id": "t", "conn_id": "el", "start": START, "end": END, **kwargs}
    if kind == "export":
        return ConversationsToObjectStorageOperator(destination=kwargs.pop("destination", "file:///tmp/x/"),
                                                    **{k: v for k, v in args.items() if k != "destination"})
    if kind == "sensor":
        return ConversationsSensor(**args)
    return ConversationsOperator(**args)


LABELS = {"xcom": XCOM, "export": EXPORT, "sensor": SENSOR}
KINDS = pytest.mark.parametrize("kind", list(LABELS))


@KINDS
@pytest.mark.parametrize(("kwargs", "exc", "message"), [
    ({"vendor": "elevenlabs", "extra_params": {"sort_direction": "asc"}}, InvalidFilterError, SORT),
    ({"vendor": "elevenlabs", "extra_params": {"agent_id": "a"}}, InvalidFilterError,
     "extra_params 'agent_id' is a known ElevenLabs filter; pass it in filters, where its value is checked "
     "(allowed: a non-empty string)"),
    ({"vendor": "elevenlabs", "extra_params": {"new": {"a": 1}}}, InvalidFilterError,
     VALUE.replace("{vendor}", "ElevenLabs")),
    # without vendor= the names wait for the connection's type, but a value's shape is known now
    ({"extra_params": {"new": {"a": 1}}}, InvalidFilterError, VALUE.replace("{vendor}", "the vendor")),
])
def test_bad_extra_params_fail_when_the_dag_is_parsed(kind, kwargs, exc, message):
    with pytest.raises(exc) as err:
        task(kind, **kwargs)
    assert type(err.value) is exc
    assert str(err.value) == LABELS[kind] + message


@pytest.mark.parametrize(("kind", "message"), [
    ("xcom", XCOM + "extra_params=['new'] is not valid; expected a dict of query parameter names to strings, "
             "numbers, booleans or lists of them"),
    ("sensor", SENSOR + "extra_params=['new'] is not allowed: expected a dict of query parameter names to strings, "
               "numbers, booleans or lists of them (or a Jinja template rendering to one)"),
])
def test_extra_params_that_are_not_a_dict_fail_when_the_dag_is_parsed(kind, message):
    with pytest.raises(ConfigurationError) as err:
        task(kind, extra_params=["new"])
    assert str(err.value) == message


@KINDS
def test_extra_params_are_a_template_field(kind):
    assert "extra_params" in type(task(kind)).template_fields
    assert type(task(kind)).template_fields_renderers["extra_params"] == "json"


def test_templated_extra_params_are_rendered_then_checked_before_any_request(el, requests_mock):
    requests_mock.get(URL, **EMPTY)
    context: dict[str, Any] = {"params": {"new": "v1", "extra": {"new": "v1"}}}
    # a whole-dict template renders to a string (without render_template_as_native_obj): refused, nothing sent
    op = task("xcom", vendor="elevenlabs", extra_params="{{ params.extra }}")
    op.render_template_fields(context)
    with pytest.raises(InvalidFilterError) as err:
        op.execute(context)
    assert str(err.value) == ("extra_params must be a dict of query parameter names to values (strings, numbers, "
                              "booleans, or lists of them), got str \"{'new': 'v1'}\"")
    assert requests_mock.call_count == 0

    op = task("xcom", vendor="elevenlabs", extra_params={"new": "{{ params.new }}"})
    op.render_template_fields(context)
    assert op.execute(context) == []
    assert requests_mock.last_request.qs["new"] == ["v1"]


def test_without_vendor_reserved_names_fail_at_run_time_before_any_request(el, requests_mock):
    op = task("xcom", extra_params={"cursor": "abc"})  # the connection's type is not known yet
    with pytest.raises(InvalidFilterError) as err:
        op.execute({})
    assert str(err.value) == ("extra_params 'cursor' is refused: it is one of the paging, window or order parameters "
                              "the ElevenLabs hook sets itself (the hook pages; it is not a filter)")
    assert requests_mock.call_count == 0


@pytest.mark.parametrize("vendor", [None, "elevenlabs"])
def test_export_sends_extra_params_on_every_sub_window_and_records_them(el, requests_mock, tmp_path, vendor):
    requests_mock.get(URL, **EMPTY)
    op = task("export", vendor=vendor, destination=f"file://{tmp_path}/", max_parallel=2,
              extra_params={"new": ["a", "b"], "flag": False})
    manifest = op.execute({})
    assert manifest["extra_params"] == {"new": ["a", "b"], "flag": False}
    assert manifest["filters"] == {}
    assert requests_mock.call_count > 1
    for request in requests_mock.request_history:
        assert (request.qs["new"], request.qs["flag"]) == (["a", "b"], ["false"])


def test_the_deferrable_sensor_hands_extra_params_to_its_trigger_which_sends_them(el, requests_mock):
    requests_mock.get(URL, **EMPTY)
    sensor = task("sensor", vendor="elevenlabs", deferrable=True, min_count=1, poke_interval=5, timeout=60,
                  extra_params={"new": "v1", "ids": ["x", "y"]})
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, ConversationsTrigger)
    _path, kwargs = trigger.serialize()
    assert kwargs["extra_params"] == {"new": "v1", "ids": ["x", "y"]}
    assert requests_mock.call_count == 1
    assert requests_mock.last_request.qs["ids"] == ["x", "y"]

    # the triggerer rebuilds it from those kwargs; its checks send them too
    requests_mock.get(URL, json={"conversations": [{"conversation_id": "c1", "start_time_unix_secs": int(
        START.timestamp()) + 60, "status": "done"}], "next_cursor": None, "has_more": False})
    revived = ConversationsTrigger(**kwargs)

    async def first() -> Any:
        gen = revived.run()
        try:
            return await asyncio.wait_for(anext(gen), 20)
        finally:
            await gen.aclose()

    event = asyncio.run(first())
    assert event.payload["status"] == "success", event.payload
    assert requests_mock.call_count == 2
    assert requests_mock.last_request.qs["new"] == ["v1"]
    assert requests_mock.last_request.qs["ids"] == ["x", "y"]


def test_a_trigger_with_reserved_extra_params_reports_an_error_event(el, requests_mock):
    trigger = ConversationsTrigger(conn_id="el", start=START.isoformat(), end=END.isoformat(),
                                   extra_params={"page_size": 5})

    async def first() -> Any:
        gen = trigger.run()
        try:
            return await asyncio.wait_for(anext(gen), 20)
        finally:
            await gen.aclose()

    event = asyncio.run(first())
    assert event.payload["status"] == "error"
    assert event.payload["message"] == (
        "InvalidFilterError: extra_params 'page_size' is refused: it is one of the paging, window or order "
        "parameters the ElevenLabs hook sets itself (the hook pages; pass page_size to the hook instead)")
    assert requests_mock.call_count == 0


DAG_FILE = '''
from datetime import datetime, timezone
from airflow.sdk import DAG
from airflow_provider_conversations.operators.conversations import ConversationsToObjectStorageOperator

with DAG("bad_extra_params", schedule=None, start_date=datetime(2026, 11, 1, tzinfo=timezone.utc)) as dag:
    ConversationsToObjectStorageOperator(task_id="export", conn_id="elevenlabs_default", vendor="elevenlabs",
                                         destination="file:///tmp/lake/", extra_params={EXTRA})
'''


@pytest.mark.parametrize(("extra", "message"), [
    ('"cursor": "abc"', "extra_params 'cursor' is refused: it is one of the paging, window or order parameters the "
                        "ElevenLabs hook sets itself (the hook pages; it is not a filter)"),
    ('"new": [[1]]', "extra_params 'new' got [[1]]; allowed: a string, a number, true or false, or a non-empty list "
                     "of them (sent to ElevenLabs as a repeated query parameter)"),
])
def test_a_dag_file_with_bad_extra_params_is_an_import_error(tmp_path, extra, message):
    from airflow.dag_processing.dagbag import DagBag

    path = tmp_path / "bad_extra_params.py"
    path.write_text(DAG_FILE.replace("{EXTRA}", "{" + extra + "}"))
    bag = DagBag(dag_folder=str(path))
    assert bag.dags == {}
    (error,) = bag.import_errors.values()
    assert f"InvalidFilterError: ConversationsToObjectStorageOperator 'export': {message}" in error


def test_a_dag_file_with_templated_extra_params_parses(tmp_path):
    from airflow.dag_processing.dagbag import DagBag

    path = tmp_path / "templated_extra_params.py"
    path.write_text(DAG_FILE.replace("{EXTRA}", '{"new": "{{ ds }}"}'))
    bag = DagBag(dag_folder=str(path))
    assert bag.import_errors == {}
    assert bag.dags["bad_extra_params"].get_task("export").extra_params == {"new": "{{ ds }}"}
