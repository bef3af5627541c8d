"""Details against the shipped simulators: back-to-back windows with every record's own transcript, faults,
conversations that vanish before their detail, the concurrency bound on the wire, Replyful's rate limit, and
``dag.test()`` exports with ``include_details=True`` to ``file://`` and to S3 (moto)."""

from __future__ import annotations

import gzip
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pendulum
import pytest

from airflow_provider_conversations.exceptions import AuthenticationError
from airflow_provider_conversations.hooks import hook_class, hook_for_connection
from airflow_provider_conversations.operators.conversations import (
    ConversationsOperator,
    ConversationsToObjectStorageOperator,
)
from airflow_provider_conversations.testing.dataset import DEFAULT_START
from tests.helpers import assert_exactly_once, hourly_windows
from tests.test_dag_exports import manifest_of, object_for
from tests.test_s3_export import AWS_CONN, moto_url, s3  # noqa: F401  (fixtures)

DETAIL_VENDORS = ("elevenlabs", "replyful", "anyreach", "polyai")
FAST = {"max_attempts": 10, "backoff": 0.001, "backoff_max": 0.01}


def expected_detail(sim: Any, vendor: str, record: dict[str, Any]) -> dict[str, Any] | None:
    """What the record must carry: the simulator's own detail body (PolyAI: the list item with its turns)."""
    cid = str(record[hook_class(vendor).id_field])
    return sim.detail(cid)


def check_record(sim: Any, vendor: str, record: dict[str, Any]) -> None:
    hook = hook_class(vendor)()
    truth = expected_detail(sim, vendor, record)
    if truth is None:  # Replyful's archived conversations are listed, but their detail is a 404
        assert vendor == "replyful"
        assert record["status"] == "archived"
        assert record["detail"] is None
        return
    if vendor == "polyai":
        assert "detail" not in record
        assert record["turns"] == truth["turns"]
    else:
        assert record["detail"] == truth
    messages = hook.messages_of(record)
    assert messages, f"{vendor} record {record.get(hook.id_field)} has no messages"
    assert all(m["role"] in ("user", "agent") and isinstance(m["text"], str) and m["text"] for m in messages)
    assert all(m["at"] is None or m["at"].endswith("Z") for m in messages)


@pytest.mark.parametrize("vendor", DETAIL_VENDORS)
def test_back_to_back_windows_with_details_carry_each_records_own_transcript(vendor, sim, set_connection):
    s = sim(vendor, conversations=240, span=timedelta(hours=6))
    set_connection(f"{vendor}_det", s.connection(f"{vendor}_det"))
    hook = hook_for_connection(f"{vendor}_det", page_size=7)
    got: list[str] = []
    for start, end in hourly_windows(DEFAULT_START, 6):
        for record in hook.iter_conversations(start, end, include_details=True, detail_concurrency=4):
            got.append(str(record[hook.id_field]))
            check_record(s, vendor, record)
    assert_exactly_once(got, s.ground_truth(DEFAULT_START, DEFAULT_START + timedelta(hours=6)))
    if vendor == "polyai":
        assert hook.stats.detail_requests == 0  # the turns come with the list
    else:
        assert hook.stats.detail_requests == hook.stats.details_fetched + hook.stats.details_missing == len(got)
        assert s.stats.detail_requests == len(got)
        assert hook.stats.details_missing == sum(s.detail(i) is None for i in got)


@pytest.mark.parametrize("vendor", ["elevenlabs", "replyful", "anyreach"])
def test_detail_concurrency_is_the_bound_on_the_wire(vendor, sim, set_connection):
    s = sim(vendor, conversations=60, span=timedelta(hours=1), latency_ms=30)
    set_connection(f"{vendor}_wire", s.connection(f"{vendor}_wire"))
    hook = hook_for_connection(f"{vendor}_wire")
    got = list(hook.iter_conversations(DEFAULT_START, DEFAULT_START + timedelta(hours=1), include_details=True,
                                       detail_concurrency=3))
    assert len(got) == 60
    assert 1 < s.stats.max_details_in_flight <= 3


@pytest.mark.parametrize("vendor", ["elevenlabs", "replyful", "anyreach"])
def test_vanished_conversations_follow_on_missing_detail(vendor, sim, set_connection, logs):
    s = sim(vendor, conversations=120, span=timedelta(hours=1), vanish_share=0.2, vanish_seed=3)
    set_connection(f"{vendor}_gone", s.connection(f"{vendor}_gone"))
    id_field = hook_class(vendor).id_field
    truth = s.ground_truth(DEFAULT_START, DEFAULT_START + timedelta(hours=1))
    gone = sorted(i for i in truth if s.detail(i) is None)  # vanished (and, for Replyful, archived)
    assert 10 < sum(s.vanished(i) for i in truth) < 40  # about a fifth vanished
    assert len(gone) < len(truth)
    ctx = {"data_interval_start": pendulum.instance(DEFAULT_START),
           "data_interval_end": pendulum.instance(DEFAULT_START + timedelta(hours=1))}
    kept = ConversationsOperator(task_id="keep", conn_id=f"{vendor}_gone", include_details=True).execute(ctx)
    assert sorted(str(r[id_field]) for r in kept) == sorted(truth)
    assert sorted(str(r[id_field]) for r in kept if r["detail"] is None) == gone
    text = logs()
    assert all(f"conversation {i} was listed but its detail is gone" in text for i in gone)
    skipped = ConversationsOperator(task_id="skip", conn_id=f"{vendor}_gone", include_details=True,
                                    on_missing_detail="skip").execute(ctx)
    assert sorted(str(r[id_field]) for r in skipped) == sorted(set(truth) - set(gone))
    assert all(r["detail"] is not None for r in skipped)


def test_anyreach_without_the_scope_fails_at_once_naming_it(sim, set_connection):
    s = sim("anyreach", conversations=50, span=timedelta(hours=1), read_sensitive=False, missing_scope="refuse")
    set_connection("ar_noscope", s.connection("ar_noscope"))
    hook = hook_for_connection("ar_noscope")
    with pytest.raises(AuthenticationError, match="the token lacks the scope 'conversations:read_sensitive'"):
        list(hook.iter_conversations(DEFAULT_START, DEFAULT_START + timedelta(hours=1), include_details=True,
                                     detail_concurrency=1))
    assert s.stats.detail_requests == 1


@pytest.mark.parametrize("concurrency", [1, 8])
def test_replyful_details_stay_under_its_rate_limit(sim, set_connection, concurrency):
    """100 requests per second (Replyful's 100 per 60 s, time-compressed): listing and details share one limiter
    paced by the RateLimit-* headers, so no request is refused with a 429."""
    s = sim("replyful", conversations=250, span=timedelta(hours=1), rate_limit=(100, 1.0))
    set_connection("rf_limit", s.connection("rf_limit"))
    hook = hook_for_connection("rf_limit")
    got = list(hook.iter_conversations(DEFAULT_START, DEFAULT_START + timedelta(hours=1), include_details=True,
                                       detail_concurrency=concurrency))
    assert_exactly_once([r["id"] for r in got], s.ground_truth(DEFAULT_START, DEFAULT_START + timedelta(hours=1)))
    assert s.stats.requests == hook.stats.requests > 250
    assert (s.stats.throttled, hook.stats.retries) == (0, 0)


@pytest.mark.parametrize("profile", ["elevenlabs-details", "replyful-details", "anyreach-details", "polyai-details"])
def test_details_exact_at_15_percent_faults(profile):
    from tools import reliability

    result = reliability.run(profile, seed=5, windows=12, per_window=10, rate=0.15)
    assert result.exact, result.summary()
    assert result.details_checked == result.truth == result.exported
    assert result.faulted > 0


DAG_SOURCE = '''
import pendulum
from airflow.sdk import DAG
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_conversations.operators.conversations import ConversationsToObjectStorageOperator

with DAG(
    dag_id="{dag_id}",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    default_args={{"retries": 0}},
) as dag:
    ConversationsToObjectStorageOperator(
        task_id="export",
        conn_id="{conn_id}",
        vendor="elevenlabs",
        destination="{destination}",
        {conn_line}
        include_details=True,
        output_format="normalized",
        exclude_fields=["detail.analysis"],
        hook_params={{"max_attempts": 3, "backoff": 0.01, "backoff_max": 0.02}},
    )
'''


def _check_lines(lines: list[dict[str, Any]], s: Any, truth: list[str]) -> None:
    assert [r["id"] for r in lines] != []
    assert sorted(r["id"] for r in lines) == sorted(truth)
    for r in lines:
        expected = {k: v for k, v in s.detail(r["id"]).items() if k != "analysis"}
        assert r["raw"]["detail"] == expected
        assert [m["text"] for m in r["messages"]] == [t["message"] for t in expected["transcript"]]


def test_dag_test_export_with_details_to_file(sim, set_connection, load_dag, tmp_path: Path):
    s = sim("elevenlabs", conversations=90, span=timedelta(hours=2))
    set_connection("el_dag", s.connection("el_dag"))
    lake = tmp_path / "lake"
    dag = load_dag("details_file", DAG_SOURCE.format(dag_id="details_file", conn_id="el_dag",
                                                     destination=f"file://{lake}/", conn_line=""))
    start, end = DEFAULT_START, DEFAULT_START + timedelta(hours=1)
    run = dag.test(logical_date=pendulum.instance(end))
    assert run.state == "success"
    path = object_for(lake, "elevenlabs", "el_dag", start, end)
    first = path.read_bytes()
    _check_lines([orjson.loads(x) for x in gzip.decompress(first).splitlines()], s, s.ground_truth(start, end))
    manifest = manifest_of(run)
    assert manifest["details_fetched"] == manifest["count"] == manifest["detail_requests"]
    assert manifest["details_missing"] == 0
    assert dag.test(logical_date=pendulum.instance(end)).state == "success"
    assert path.read_bytes() == first  # a re-run with details is byte-identical


def test_dag_test_export_with_details_to_s3(s3, sim, set_connection, load_dag):  # noqa: F811
    s = sim("elevenlabs", conversations=90, span=timedelta(hours=2))
    set_connection("el_s3", s.connection("el_s3"))
    dag = load_dag("details_s3", DAG_SOURCE.format(dag_id="details_s3", conn_id="el_s3",
                                                   destination=f"s3://{s3.bucket}/lake/",
                                                   conn_line=f'destination_conn_id="{AWS_CONN}",'))
    start, end = DEFAULT_START, DEFAULT_START + timedelta(hours=1)
    run = dag.test(logical_date=pendulum.instance(end))
    assert run.state == "success"
    manifest = manifest_of(run)
    key = manifest["uri"].removeprefix(f"s3://{s3.bucket}/")
    body = s3.get_object(Bucket=s3.bucket, Key=key)["Body"].read()
    _check_lines([orjson.loads(x) for x in gzip.decompress(body).splitlines()], s, s.ground_truth(start, end))
    assert manifest["details_fetched"] == manifest["count"] > 0


def test_object_storage_operator_with_details_and_parallel_windows_is_the_sequential_object(sim, set_connection,
                                                                                             tmp_path: Path):
    s = sim("replyful", conversations=150, span=timedelta(hours=1))
    set_connection("rf_par", s.connection("rf_par"))
    ctx = {"data_interval_start": pendulum.instance(DEFAULT_START),
           "data_interval_end": pendulum.instance(DEFAULT_START + timedelta(hours=1))}
    blobs = []
    for workers in (1, 3):
        out = tmp_path / f"w{workers}"
        m = ConversationsToObjectStorageOperator(task_id="e", conn_id="rf_par", destination=f"file://{out}/",
                                                 include_details=True, max_parallel=workers,
                                                 hook_params=FAST).execute(ctx)
        blobs.append(Path(m["uri"].removeprefix("file://")).read_bytes())
        assert m["details_fetched"] + m["details_missing"] == m["count"] == 150
    assert blobs[0] == blobs[1]
