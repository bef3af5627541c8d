"""ConversationsTrigger and the sensor's deferrable path: serialisation, run() against simulators, events."""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowSkipException, TaskDeferred
from airflow.triggers.base import TriggerEvent

from airflow_provider_conversations.triggers.conversations import ConversationsTrigger
from tests.test_sensor import DAY, HOUR, VENDORS, in_progress_ids, interval, new_conversations, sensor, start_vendor

CLASSPATH = "airflow_provider_conversations.triggers.conversations.ConversationsTrigger"


def trigger(conn_id: str = "sensor_polyai", window: Any = DAY, **kwargs: Any) -> ConversationsTrigger:
    kwargs.setdefault("poke_interval", 0.05)
    return ConversationsTrigger(conn_id=conn_id, start=window.start.isoformat(), end=window.end.isoformat(),
                                **kwargs)


async def first_event(t: ConversationsTrigger, *, limit: float = 20.0) -> TriggerEvent:
    gen = t.run()
    try:
        return await asyncio.wait_for(anext(gen), limit)
    finally:
        await gen.aclose()


# ---------------------------------------------------------------------- serialisation


def test_serialize_round_trips_as_plain_json():
    t = ConversationsTrigger(
        conn_id="polyai_default", start="2026-11-20T00:00:00Z", end="2026-11-20T01:00:00Z", time_key="created",
        filters={"variant_id": "v1", "channel": ["voice", "sms"]}, min_count=3, settled=True, poke_interval=30,
        hook_kwargs={"page_size": 100, "timeout": [5, 30]}, vendor="polyai", checks_before=1,
        extra_params={"new_filter": ["a", "b"], "flag": True},
    )
    path, kwargs = t.serialize()
    assert path == CLASSPATH
    assert kwargs == {
        "conn_id": "polyai_default", "start": "2026-11-20T00:00:00Z", "end": "2026-11-20T01:00:00Z",
        "time_key": "created", "filters": {"variant_id": "v1", "channel": ["voice", "sms"]}, "min_count": 3,
        "settled": True, "poke_interval": 30.0, "hook_kwargs": {"page_size": 100, "timeout": [5, 30]},
        "vendor": "polyai", "checks_before": 1, "extra_params": {"new_filter": ["a", "b"], "flag": True},
    }
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert ConversationsTrigger(**kwargs).serialize() == (path, kwargs)
    from airflow.sdk.serde import deserialize, serialize  # what the task runner does since Airflow 3.2

    assert deserialize(serialize(kwargs)) == kwargs
    from importlib import import_module

    module, _, name = path.rpartition(".")
    assert getattr(import_module(module), name) is ConversationsTrigger


def test_trigger_refuses_a_malformed_window_or_hook_kwargs():
    from airflow_provider_conversations.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError, match="must be earlier than end"):
        ConversationsTrigger(conn_id="c", start="2026-11-20T01:00:00Z", end="2026-11-20T00:00:00Z")
    with pytest.raises(ConfigurationError, match="hook_kwargs has unknown argument 'session'"):
        ConversationsTrigger(conn_id="c", start="2026-11-20T00:00:00Z", end="2026-11-20T01:00:00Z",
                             hook_kwargs={"session": 1})


# ---------------------------------------------------------------------- run() against the simulators


@pytest.mark.asyncio
@pytest.mark.parametrize("vendor", VENDORS)
async def test_run_waits_for_the_window_to_settle(sim, set_connection, vendor):
    s = start_vendor(sim, set_connection, vendor)
    truth = s.ground_truth(DAY.start, DAY.end)
    assert in_progress_ids(s, f"sensor_{vendor}", DAY)
    timer = threading.Timer(0.4, s.finish_all)
    timer.start()
    started = time.monotonic()
    try:
        event = await first_event(trigger(f"sensor_{vendor}", settled=True, min_count=len(truth)))
    finally:
        timer.cancel()
    assert time.monotonic() - started >= 0.4
    payload = event.payload
    assert payload["status"] == "success"
    assert payload["checks"] >= 2
    assert (payload["count"], payload["in_progress"], payload["vendor"]) == (len(truth), 0, vendor)
    assert (payload["start"], payload["end"]) == ("2026-11-17T00:00:00Z", "2026-11-18T00:00:00Z")
    json.dumps(payload)


@pytest.mark.asyncio
async def test_run_waits_for_enough_conversations(sim, set_connection):
    s = start_vendor(sim, set_connection, "polyai")
    before = len(s.ground_truth(HOUR.start, HOUR.end))
    timer = threading.Timer(0.3, s.add, args=(new_conversations(HOUR, 6),))
    timer.start()
    try:
        event = await first_event(trigger(window=HOUR, min_count=before + 4))
    finally:
        timer.cancel()
    assert event.payload["status"] == "success"
    assert event.payload["count"] >= before + 4
    assert event.payload["checks"] >= 2


@pytest.mark.asyncio
async def test_run_counts_checks_on_from_the_sensors_first_check(sim, set_connection):
    start_vendor(sim, set_connection, "polyai")
    event = await first_event(trigger(window=HOUR, checks_before=1))
    assert (event.payload["status"], event.payload["checks"]) == ("success", 2)


@pytest.mark.asyncio
async def test_run_passes_filters_and_hook_kwargs_to_the_vendor(sim, set_connection):
    s = start_vendor(sim, set_connection, "polyai")
    event = await first_event(trigger(window=HOUR, filters={"variant_id": "var-2"}, min_count=0,
                                      hook_kwargs={"page_size": 7, "timeout": [3, 9]}))
    assert event.payload["status"] == "success"
    assert s.requests[-1].query["variant_id"] == ["var-2"]
    assert s.requests[-1].query["limit"] == ["7"]


@pytest.mark.asyncio
async def test_run_never_blocks_the_event_loop(sim, set_connection):
    start_vendor(sim, set_connection, "polyai", latency_ms=300)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        event = await first_event(trigger(window=HOUR))
    finally:
        task.cancel()
    assert event.payload["status"] == "success"
    assert ticks >= 15  # the loop kept running during the 300 ms request


@pytest.mark.asyncio
async def test_run_resolves_the_connection_with_the_async_helpers(sim, set_connection, monkeypatch):
    from airflow.sdk import BaseHook
    from airflow.sdk.definitions.connection import Connection

    real_get_connection = BaseHook.get_connection.__func__  # type: ignore[attr-defined]
    real_extra_dejson = Connection.extra_dejson

    def on_the_loop() -> bool:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return False  # a worker thread (asyncio.to_thread / sync_to_async): blocking is fine there
        return True

    def get_connection(cls: Any, conn_id: str) -> Any:
        if on_the_loop():
            raise AssertionError("a blocking connection call ran on the triggerer's event loop")
        return real_get_connection(cls, conn_id)

    def extra_dejson(conn: Any) -> Any:
        # Airflow 3.3.0's own async lookup still calls it on the loop (fixed in 3.3.2); this provider must not.
        caller = inspect.stack()[1].frame.f_globals.get("__name__", "")
        if on_the_loop() and caller.startswith("airflow_provider_conversations"):
            raise AssertionError("a blocking connection call ran on the triggerer's event loop")
        return real_extra_dejson.fget(conn)  # type: ignore[attr-defined]

    start_vendor(sim, set_connection, "polyai")
    monkeypatch.setattr(BaseHook, "get_connection", classmethod(get_connection))
    monkeypatch.setattr(Connection, "extra_dejson", property(extra_dejson))
    event = await first_event(trigger(window=HOUR))
    assert event.payload["status"] == "success"


# ---------------------------------------------------------------------- error events


@pytest.mark.asyncio
async def test_a_rejected_key_gives_one_error_event_without_the_key(sim, set_connection):
    s = sim("polyai", conversations=50)
    set_connection("bad_key", {**s.connection(), "password": "pk-wrong-secret-4711"})
    event = await first_event(trigger("bad_key"))
    payload = event.payload
    assert payload["status"] == "error"
    assert payload["message"].startswith("AuthenticationError: PolyAI rejected the API key of connection 'bad_key'")
    assert "pk-wrong-secret-4711" not in json.dumps(payload)
    assert s.token not in json.dumps(payload)
    assert len(s.requests) == 1  # a 401 is not retried


@pytest.mark.asyncio
async def test_an_error_event_never_carries_the_key_even_if_an_exception_does(sim, set_connection, monkeypatch):
    from airflow_provider_conversations.triggers import conversations as module

    s = start_vendor(sim, set_connection, "polyai")

    def leaky(hook: Any, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"something printed the key {hook.settings.secret} by mistake")

    monkeypatch.setattr(module, "check_plan", leaky)
    event = await first_event(trigger(window=HOUR))
    assert event.payload["message"] == "RuntimeError: something printed the key *** by mistake"
    assert s.token not in json.dumps(event.payload)


@pytest.mark.asyncio
async def test_an_unknown_connection_gives_an_error_event():
    event = await first_event(trigger("no_such_conn_anywhere"))
    assert event.payload["status"] == "error"
    assert "no_such_conn_anywhere" in event.payload["message"]


@pytest.mark.asyncio
async def test_a_connection_of_another_type_gives_an_error_event(set_connection):
    set_connection("an_http_conn", {"conn_type": "http", "host": "http://127.0.0.1:9", "password": "x"})
    event = await first_event(trigger("an_http_conn"))
    assert event.payload == {
        "status": "error", "conn_id": "an_http_conn", "checks": 0,
        "message": "ConfigurationError: connection 'an_http_conn' has type 'http', which is not a conversations "
                   "vendor; allowed types: parrotmob, anyreach, polyai, elevenlabs, replyful",
    }


@pytest.mark.asyncio
async def test_a_failing_vendor_gives_an_error_event_after_the_hooks_retries(sim, set_connection):
    from airflow_provider_conversations.testing import Faults

    s = start_vendor(sim, set_connection, "polyai", faults=Faults(fail_after=0, fail_status=503))
    event = await first_event(trigger(window=HOUR, hook_kwargs={"max_attempts": 3, "backoff": 0.01,
                                                                 "backoff_max": 0.02}))
    assert event.payload["status"] == "error"
    assert event.payload["message"].startswith("RetriesExhaustedError: PolyAI request to ")
    assert "failed after 3 attempts" in event.payload["message"]
    assert len(s.requests) == 3


@pytest.mark.asyncio
async def test_a_bad_filter_gives_an_error_event_before_any_request(sim, set_connection):
    s = start_vendor(sim, set_connection, "polyai")
    event = await first_event(trigger(filters={"colour": "red"}))
    assert event.payload["status"] == "error"
    assert event.payload["message"].startswith("InvalidFilterError: unknown PolyAI filter 'colour'")
    assert s.requests == []


# ---------------------------------------------------------------------- the sensor's deferring path


def test_deferrable_sensor_defers_to_the_trigger(sim, set_connection):
    s = start_vendor(sim, set_connection, "polyai")
    assert in_progress_ids(s, "sensor_polyai", DAY)
    task = sensor("polyai", deferrable=True, settled=True, min_count=2, filters={"channel": {"sms", "voice"}},
                  poke_interval=15, timeout=3600, page_size=200, hook_params={"max_attempts": 2})
    with pytest.raises(TaskDeferred) as exc:
        task.execute(interval(DAY))
    deferred = exc.value
    assert isinstance(deferred.trigger, ConversationsTrigger)
    assert deferred.method_name == "execute_complete"
    assert deferred.kwargs is None
    assert deferred.timeout == timedelta(hours=1)
    path, kwargs = deferred.trigger.serialize()
    assert path == CLASSPATH
    assert kwargs == {
        "conn_id": "sensor_polyai", "start": "2026-11-17T00:00:00Z", "end": "2026-11-18T00:00:00Z",
        "time_key": "created", "filters": {"channel": ["sms", "voice"]}, "min_count": 2, "settled": True,
        "poke_interval": 15.0, "hook_kwargs": {"max_attempts": 2, "page_size": 200},
        "vendor": None, "checks_before": 1, "extra_params": {},
    }
    assert s.token not in json.dumps(kwargs)


def test_deferrable_sensor_does_not_defer_when_the_window_is_already_ready(sim, set_connection):
    start_vendor(sim, set_connection, "polyai")
    task = sensor("polyai", deferrable=True, min_count=1)
    seen = task.execute(interval(DAY))
    assert seen["count"] >= 1
    assert seen["checks"] == 1


SUCCESS = {
    "status": "success", "conn_id": "sensor_polyai", "vendor": "polyai", "start": "2026-11-17T00:00:00Z",
    "end": "2026-11-18T00:00:00Z", "time_key": "created", "min_count": 1, "settled": True, "count": 42,
    "count_exact": False, "in_progress": 0, "requests": 2, "message": "PolyAI window ...", "checks": 4,
}


def test_execute_complete_returns_what_the_trigger_saw():
    task = sensor("polyai", settled=True)
    assert task.execute_complete({}, event=SUCCESS) == {
        "conn_id": "sensor_polyai", "vendor": "polyai", "start": "2026-11-17T00:00:00Z",
        "end": "2026-11-18T00:00:00Z", "time_key": "created", "min_count": 1, "settled": True, "count": 42,
        "count_exact": False, "in_progress": 0, "checks": 4,
    }


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"status": "error", "message": "AuthenticationError: PolyAI rejected the API key", "checks": 1},
         "ConversationsSensor 'wait': the trigger failed after 1 check\\(s\\): AuthenticationError: PolyAI rejected"),
        (None, "ConversationsSensor 'wait': the trigger returned no valid event: None"),
        ({"count": 3}, "the trigger returned no valid event: \\{'count': 3\\}"),
        ({"status": "maybe"}, "the trigger returned an event with unknown status 'maybe'"),
        ({"status": "success", "count": 3}, "the trigger's success event lacks conn_id, vendor, start, end"),
    ],
)
def test_execute_complete_fails_loudly_on_anything_but_success(event, message):
    with pytest.raises(AirflowException, match=message):
        sensor("polyai").execute_complete({}, event=event)


def test_soft_fail_turns_an_error_event_into_a_skip():
    error = {"status": "error", "message": "RetriesExhaustedError: PolyAI request failed", "checks": 2}
    with pytest.raises(AirflowSkipException):
        sensor("polyai", soft_fail=True).resume_execution("execute_complete", {"event": error}, {})
    with pytest.raises(AirflowException, match="RetriesExhaustedError: PolyAI request failed") as exc:
        sensor("polyai").resume_execution("execute_complete", {"event": error}, {})
    assert not isinstance(exc.value, AirflowSkipException)


def test_a_trigger_timeout_fails_as_a_sensor_timeout_or_skips_with_soft_fail():
    from airflow.sdk.bases.operator import TriggerFailureReason
    from airflow.sdk.exceptions import AirflowSensorTimeout

    timeout = {"error": TriggerFailureReason.TRIGGER_TIMEOUT, "traceback": None}
    with pytest.raises(AirflowSensorTimeout):
        sensor("polyai").resume_execution("__fail__", timeout, {})
    with pytest.raises(AirflowSkipException):
        sensor("polyai", soft_fail=True).resume_execution("__fail__", timeout, {})
