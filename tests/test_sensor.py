"""ConversationsSensor: the poke condition per vendor against the simulators, and every parse-time check."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from airflow_provider_conversations.exceptions import ConfigurationError, InvalidFilterError
from airflow_provider_conversations.hooks import hook_for_connection
from airflow_provider_conversations.sensors.conversations import ConversationsSensor
from airflow_provider_conversations.tasks.window_check import check_window
from airflow_provider_conversations.testing.dataset import DEFAULT_START, Conversation
from airflow_provider_conversations.windows import Window

VENDORS = ("polyai", "elevenlabs", "anyreach", "replyful", "parrotmob")
DAY = Window(DEFAULT_START, DEFAULT_START + timedelta(days=1))
SPAN = Window(DEFAULT_START, DEFAULT_START + timedelta(days=3))
HOUR = Window(DEFAULT_START + timedelta(hours=6), DEFAULT_START + timedelta(hours=7))


# ---------------------------------------------------------------------- helpers (also used by test_trigger.py)


def start_vendor(sim: Any, set_connection: Any, vendor: str, conn_id: str | None = None, **kwargs: Any) -> Any:
    """A running simulator of ``vendor`` and an env-var connection ``conn_id`` pointing at it."""
    kwargs.setdefault("conversations", 400)
    s = sim(vendor, **kwargs)
    set_connection(conn_id or f"sensor_{vendor}", s.connection())
    return s


def new_conversations(window: Window, n: int, *, first_index: int = 900_000,
                      in_progress: bool = False) -> list[Conversation]:
    """``n`` conversations spread inside ``window`` whose ids cannot collide with the generated ones."""
    step = (window.end - window.start) / (n + 1)
    return [
        Conversation(index=first_index + i, created=window.start + step * (i + 1),
                     updated=window.start + step * (i + 1) + timedelta(seconds=30), status=0, channel=0, direction=0,
                     duration=30, agent=0, user=i, turns=3, rating=5, in_progress=in_progress)
        for i in range(n)
    ]


def in_progress_ids(s: Any, conn_id: str, window: Window) -> list[str]:
    """The window's conversations the vendor's hook calls in progress, straight from the simulator's records."""
    hook = hook_for_connection(conn_id)
    truth = set(s.ground_truth(window.start, window.end))
    return [str(r[hook.id_field]) for r in s.records
            if str(r[hook.id_field]) in truth and hook.is_in_progress(r)]


def interval(window: Window) -> dict[str, Any]:
    return {"data_interval_start": window.start, "data_interval_end": window.end}


def sensor(conn_vendor: str, /, **kwargs: Any) -> ConversationsSensor:
    """A sensor on the connection ``sensor_<conn_vendor>`` that :func:`start_vendor` defines."""
    kwargs.setdefault("task_id", "wait")
    kwargs.setdefault("conn_id", f"sensor_{conn_vendor}")
    return ConversationsSensor(**kwargs)


# ---------------------------------------------------------------------- poke logic, per vendor


@pytest.mark.parametrize("vendor", VENDORS)
def test_not_enough_yet_then_enough(sim, set_connection, vendor):
    s = start_vendor(sim, set_connection, vendor)
    before = len(s.ground_truth(HOUR.start, HOUR.end))
    task = sensor(vendor, min_count=before + 5)

    first = task.poke(interval(HOUR))
    assert not first
    assert first.xcom_value is None

    s.add(new_conversations(HOUR, 12))
    after = len(s.ground_truth(HOUR.start, HOUR.end))
    assert after >= before + 5  # the simulator shows the new conversations in this window

    second = task.poke(interval(HOUR))
    assert second
    seen = second.xcom_value
    assert before + 5 <= seen["count"] <= after
    assert seen["start"] == "2026-11-17T06:00:00Z"
    assert seen["end"] == "2026-11-17T07:00:00Z"
    assert seen["conn_id"] == f"sensor_{vendor}"
    assert seen["vendor"] == vendor
    assert seen["checks"] == 2
    assert (seen["min_count"], seen["settled"], seen["time_key"]) == (before + 5, False, "created")


@pytest.mark.parametrize("vendor", VENDORS)
def test_not_enough_counts_the_whole_window_exactly(sim, set_connection, vendor):
    s = start_vendor(sim, set_connection, vendor)
    truth = s.ground_truth(HOUR.start, HOUR.end)
    hook = hook_for_connection(f"sensor_{vendor}")
    result = check_window(hook, HOUR, min_count=len(truth) + 1)
    assert (result.done, result.count, result.count_exact) == (False, len(truth), True)
    assert result.message.endswith(f"{len(truth)} conversations so far, need {len(truth) + 1}")


@pytest.mark.parametrize("vendor", VENDORS)
def test_in_progress_then_settled(sim, set_connection, vendor):
    s = start_vendor(sim, set_connection, vendor)
    truth = s.ground_truth(DAY.start, DAY.end)
    live = in_progress_ids(s, f"sensor_{vendor}", DAY)
    assert live, f"the {vendor} simulator should generate some in-progress conversations by default"
    task = sensor(vendor, settled=True, min_count=len(truth))

    waiting = task.poke(interval(DAY))
    assert not waiting
    hook = hook_for_connection(f"sensor_{vendor}")
    result = check_window(hook, DAY, settled=True, min_count=len(truth))
    assert not result.done
    assert 1 <= result.in_progress <= len(live)
    assert "still in progress" in result.message

    s.finish_all()
    assert in_progress_ids(s, f"sensor_{vendor}", DAY) == []
    done = task.poke(interval(DAY))
    assert done
    assert done.xcom_value["count"] == len(truth)
    assert done.xcom_value["in_progress"] == 0
    assert done.xcom_value["settled"] is True


@pytest.mark.parametrize("vendor", VENDORS)
def test_settled_also_waits_for_new_in_progress_conversations(sim, set_connection, vendor):
    s = start_vendor(sim, set_connection, vendor)
    s.finish_all()
    task = sensor(vendor, settled=True, min_count=0)
    assert task.poke(interval(HOUR))
    s.add(new_conversations(HOUR, 2, in_progress=True))
    assert len(in_progress_ids(s, f"sensor_{vendor}", HOUR)) == 2
    assert not task.poke(interval(HOUR))


@pytest.mark.parametrize("vendor", VENDORS)
def test_min_count_stops_paging_early(sim, set_connection, vendor):
    s = start_vendor(sim, set_connection, vendor)
    truth = s.ground_truth(SPAN.start, SPAN.end)
    hook = hook_for_connection(f"sensor_{vendor}", page_size=10)

    result = check_window(hook, SPAN, min_count=25)
    assert result.done
    assert 25 <= result.count < len(truth)
    assert result.count_exact is False
    # ten per page: three pages hold 25, one more at most if the vendor's paging repeats a boundary item
    assert 3 <= result.requests <= 4
    assert result.requests == hook.stats.requests

    full = check_window(hook, SPAN, min_count=len(truth))
    assert full.count == len(truth)
    assert full.requests >= len(truth) // 10


@pytest.mark.parametrize("vendor", VENDORS)
def test_filters_reach_the_vendor_and_are_validated(sim, set_connection, vendor):
    start_vendor(sim, set_connection, vendor)
    task = sensor(vendor, filters={"no_such_filter": "x"})
    with pytest.raises(InvalidFilterError, match=r"unknown .* filter 'no_such_filter'; allowed filters: "):
        task.poke(interval(HOUR))


# ---------------------------------------------------------------------- how "settled" is checked (PolyAI)


def test_settled_asks_the_vendor_for_in_progress_conversations_in_one_query(sim, set_connection):
    s = start_vendor(sim, set_connection, "polyai", conversations=1000)
    assert in_progress_ids(s, "sensor_polyai", DAY)
    s.reset_log()
    result = check_window(hook_for_connection("sensor_polyai"), DAY, settled=True)
    assert not result.done
    (request,) = s.requests
    assert request.query["in_progress"] == ["true"]


def test_settled_reads_every_record_when_the_vendor_cannot_filter(sim, set_connection, monkeypatch):
    from airflow_provider_conversations.hooks.polyai import PolyAIHook

    monkeypatch.setattr(PolyAIHook, "in_progress_filters", lambda self, filters: None)
    s = start_vendor(sim, set_connection, "polyai", conversations=1000)
    hook = hook_for_connection("sensor_polyai", page_size=5)
    first_live = next(i for i, c in enumerate(hook.iter_conversations(DAY.start, DAY.end)) if hook.is_in_progress(c))
    s.reset_log()
    hook = hook_for_connection("sensor_polyai", page_size=5)
    result = check_window(hook, DAY, settled=True)
    assert not result.done
    assert result.in_progress >= 1
    # read up to the page holding the first in-progress conversation, not one page further
    assert len(s.requests) == first_live // 5 + 1
    assert all("in_progress" not in r.query for r in s.requests)

    s.finish_all()
    truth = s.ground_truth(DAY.start, DAY.end)
    result = check_window(hook, DAY, settled=True)
    assert (result.done, result.count, result.count_exact, result.in_progress) == (True, len(truth), True, 0)


def test_settled_respects_a_users_in_progress_false_filter(sim, set_connection):
    s = start_vendor(sim, set_connection, "polyai", conversations=1000)
    truth_live = len(in_progress_ids(s, "sensor_polyai", DAY))
    assert truth_live
    task = sensor("polyai", settled=True, filters={"in_progress": False})
    # every conversation the user selects is finished: the window counts as settled
    assert task.poke(interval(DAY))


# ---------------------------------------------------------------------- poke mode end to end


def test_poke_mode_waits_until_the_window_fills(sim, set_connection):
    s = start_vendor(sim, set_connection, "polyai")
    before = len(s.ground_truth(HOUR.start, HOUR.end))
    task = sensor("polyai", min_count=before + 3, poke_interval=0.1, timeout=30, mode="poke")
    timer = threading.Timer(0.35, s.add, args=(new_conversations(HOUR, 5),))
    timer.start()
    try:
        seen = task.execute(interval(HOUR))
    finally:
        timer.cancel()
    assert seen["count"] >= before + 3
    assert seen["checks"] >= 3


def test_poke_mode_times_out(sim, set_connection):
    from airflow.sdk.exceptions import AirflowSensorTimeout

    start_vendor(sim, set_connection, "polyai")
    task = sensor("polyai", min_count=10_000, poke_interval=0.05, timeout=0.2)
    with pytest.raises(AirflowSensorTimeout):
        task.execute(interval(HOUR))


# ---------------------------------------------------------------------- the window


def test_explicit_start_and_end_override_the_interval(sim, set_connection):
    s = start_vendor(sim, set_connection, "polyai")
    truth = s.ground_truth(HOUR.start, HOUR.end)
    task = sensor("polyai", start=HOUR.start, end=HOUR.end, min_count=len(truth) + 1)
    s.reset_log()
    assert not task.poke(interval(DAY))
    assert s.requests[0].query["start_time"] == ["2026-11-17T05:59:59Z"]  # the hook's one-second margin


def test_templated_start_end_and_conn_id_are_rendered(sim, set_connection):
    s = start_vendor(sim, set_connection, "polyai", conn_id="templated_polyai")
    truth = s.ground_truth(HOUR.start, HOUR.end)
    task = sensor("polyai", conn_id="{{ params.conn }}", start="{{ params.start }}", end="{{ params.end }}",
                  min_count=len(truth))
    context = {"params": {"conn": "templated_polyai", "start": HOUR.start.isoformat(),
                          "end": HOUR.end.isoformat()}}
    task.render_template_fields(context)
    result = task.poke(context)
    assert result
    assert result.xcom_value["count"] == len(truth)
    assert result.xcom_value["conn_id"] == "templated_polyai"


def test_a_run_without_a_data_interval_says_what_to_do():
    task = sensor("polyai")
    with pytest.raises(ConfigurationError, match=r"this run has no data interval .*CronDataIntervalTimetable"):
        task.poke({})


def test_a_zero_width_interval_says_what_to_do():
    task = sensor("polyai")
    at = datetime(2026, 11, 20, 5, tzinfo=UTC)
    with pytest.raises(ConfigurationError, match=r"the data interval is empty .*CronDataIntervalTimetable"):
        task.poke({"data_interval_start": at, "data_interval_end": at})


# ---------------------------------------------------------------------- connection checks at run time


def test_connection_of_another_vendor_than_declared_fails(sim, set_connection):
    start_vendor(sim, set_connection, "polyai")
    task = sensor("polyai", vendor="replyful")
    with pytest.raises(ConfigurationError, match=r"connection 'sensor_polyai' has type 'polyai', but the task was "
                                                 r"declared with vendor='replyful'"):
        task.poke(interval(HOUR))


def test_a_rejected_key_fails_the_poke_at_once(sim, set_connection):
    from airflow_provider_conversations.exceptions import AuthenticationError

    s = sim("polyai", conversations=50)
    set_connection("sensor_polyai", {**s.connection(), "password": "pk-wrong-key-0815"})
    with pytest.raises(AuthenticationError, match="PolyAI rejected the API key of connection 'sensor_polyai'") as exc:
        sensor("polyai").poke(interval(HOUR))
    assert "pk-wrong-key-0815" not in str(exc.value)
    assert len(s.requests) == 1


def test_connection_that_is_not_a_conversations_vendor_fails(set_connection):
    set_connection("not_a_vendor", {"conn_type": "http", "host": "http://127.0.0.1:9", "password": "x"})
    task = sensor("polyai", conn_id="not_a_vendor")
    with pytest.raises(ConfigurationError, match="has type 'http', which is not a conversations vendor"):
        task.poke(interval(HOUR))


# ---------------------------------------------------------------------- parse-time validation


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_count": -1}, "min_count=-1 is not allowed: expected an integer >= 0"),
        ({"min_count": "3"}, "min_count='3' is not allowed: expected an integer >= 0"),
        ({"min_count": True}, "min_count=True is not allowed: expected an integer >= 0"),
        ({"time_key": "started"}, "time_key='started' is not allowed; allowed: 'created', 'updated'"),
        ({"settled": "yes"}, "settled='yes' is not allowed: expected True or False"),
        ({"deferrable": 1}, "deferrable=1 is not allowed: expected True or False"),
        ({"conn_id": ""}, "conn_id='' must be a non-empty connection id"),
        ({"filters": ["agent_id"]}, r"filters=\['agent_id'\] is not allowed: expected a dict"),
        ({"start": "2026-11-20T00:00:00+00:00"}, "start and end go together; end is missing"),
        ({"end": "2026-11-20T00:00:00+00:00"}, "start and end go together; start is missing"),
        ({"start": datetime(2026, 11, 20), "end": datetime(2026, 11, 21)}, "start=2026-11-20T00:00:00 is a naive"),
        ({"start": "2026-11-21T00:00:00Z", "end": "2026-11-20T00:00:00Z"}, "must be earlier than end"),
        ({"page_size": 0}, "page_size=0 is not allowed: expected a positive integer, or None"),
        ({"hook_params": {"retries": 3}}, "hook_params key 'retries' is not allowed; allowed: timeout, max_attempts, "
                                          "max_retry_seconds, backoff, backoff_max, retry_after_cap$"),
        ({"hook_params": {"page_size": 3}}, "page_size is an argument of its own"),
        ({"hook_params": {"backoff": timedelta(seconds=1)}},
         r"hook_params=.* must hold plain JSON values \(a deferrable sensor hands them to its trigger\)"),
        ({"vendor": "zendesk"}, "vendor='zendesk' is not allowed; allowed: parrotmob, anyreach, polyai, "),
        ({"vendor": "polyai", "time_key": "updated"}, "time_key='updated' is not supported by PolyAI; allowed: "
                                                      "'created'"),
        ({"vendor": "polyai", "page_size": 5001},
         "page_size=5001 is not allowed for PolyAI: expected an integer from 1 to 5000"),
    ],
)
def test_bad_arguments_fail_when_the_dag_is_parsed(kwargs, message):
    with pytest.raises(ConfigurationError, match=f"^ConversationsSensor 'wait': .*{message}"):
        sensor("polyai", **kwargs)


def test_a_vendor_lets_filters_be_checked_when_the_dag_is_parsed():
    with pytest.raises(InvalidFilterError, match=r"^ConversationsSensor 'wait': PolyAI filters 'variant_id' and "
                                                 r"'variant_name' are mutually exclusive"):
        sensor("polyai", vendor="polyai", filters={"variant_id": "a", "variant_name": "b"})


def test_templated_values_are_checked_after_rendering_not_before(sim, set_connection):
    s = start_vendor(sim, set_connection, "polyai", conversations=1000)
    # neither a template string for a boolean filter nor template bounds would pass the parse-time checks
    task = sensor("polyai", vendor="polyai", settled=True, filters={"in_progress": "{{ params.live }}"},
                  start="{{ params.start }}", end="{{ params.end }}")
    context = {"params": {"live": "false", "start": DAY.start.isoformat(), "end": DAY.end.isoformat()}}
    task.render_template_fields(context)
    assert task.filters == {"in_progress": "false"}
    s.reset_log()
    assert task.poke(context)
    assert s.requests[0].query["in_progress"] == ["false"]


def test_defaults():
    task = sensor("polyai")
    assert (task.filters, task.time_key, task.min_count, task.settled, task.start, task.end, task.vendor) == (
        None, "created", 1, False, None, None, None)
    assert task.deferrable is False  # [operators] default_deferrable is off in the test configuration


def test_settled_with_a_finished_only_status_filter_is_settled(sim, set_connection):
    """Replyful: a status filter holding only finished statuses cannot contain in-progress threads."""
    from datetime import timedelta

    from airflow_provider_conversations.hooks.replyful import ReplyfulHook
    from airflow_provider_conversations.tasks.window_check import check_window
    from airflow_provider_conversations.testing.dataset import DEFAULT_START
    from airflow_provider_conversations.windows import Window

    s = sim("replyful", conversations=300, seed=1)
    set_connection("replyful_default", s.connection())
    hook = ReplyfulHook()
    window = Window(DEFAULT_START, DEFAULT_START + timedelta(days=3))
    result = check_window(hook, window, time_key="created", filters={"status": ["resolved"]}, min_count=0,
                          settled=True)
    assert result.done
    assert result.in_progress == 0
