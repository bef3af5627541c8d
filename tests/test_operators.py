"""Both operators' execute() with a task context, against the simulators: windows, validation, shaping, XCom
guard, manifest, layout, Asset events, OpenLineage, progress logs and secrets."""

from __future__ import annotations

import gzip
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pendulum
import pytest
from airflow.sdk import Asset, AssetAlias, ObjectStoragePath
from airflow.sdk.execution_time.context import OutletEventAccessors

from airflow_provider_conversations.exceptions import ConfigurationError, InvalidFilterError, RetriesExhaustedError
from airflow_provider_conversations.hooks import hook_class
from airflow_provider_conversations.operators.conversations import (
    ConversationsOperator,
    ConversationsToObjectStorageOperator,
    TooManyConversationsError,
)
from airflow_provider_conversations.output.records import NORMALIZED_FIELDS, drop_path
from airflow_provider_conversations.testing import Faults
from airflow_provider_conversations.testing.dataset import DEFAULT_START

VENDORS = ("parrotmob", "anyreach", "polyai", "elevenlabs", "replyful")
H0, H1, H2, H3 = (DEFAULT_START + timedelta(hours=i) for i in range(4))
FAST = {"max_attempts": 2, "backoff": 0.001, "backoff_max": 0.002}
GZ = "conversations.jsonl.gz"


def ctx(start: datetime | None = H0, end: datetime | None = H1, **extra: Any) -> dict[str, Any]:
    context: dict[str, Any] = dict(extra)
    if start is not None:
        context["data_interval_start"] = pendulum.instance(start)
    if end is not None:
        context["data_interval_end"] = pendulum.instance(end)
    return context


def truth(sim: Any, start: datetime, end: datetime) -> list[str]:
    return sorted(sim.ground_truth(start, end))


def ids(records: list[dict[str, Any]], vendor: str = "polyai") -> list[str]:
    field = hook_class(vendor).id_field
    return sorted(str(r[field]) for r in records)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    return [orjson.loads(line) for line in data.splitlines()]


@pytest.fixture
def poly(sim, set_connection):
    """A PolyAI simulator (900 conversations over three hours) behind connection ``poly``."""
    s = sim("polyai", conversations=900, span=timedelta(hours=3))
    set_connection("poly", s.connection())
    return s


def xcom_op(**kwargs: Any) -> ConversationsOperator:
    kwargs.setdefault("task_id", "pull")
    kwargs.setdefault("conn_id", "poly")
    kwargs.setdefault("hook_params", FAST)
    return ConversationsOperator(**kwargs)


def export_op(dest: Any, **kwargs: Any) -> ConversationsToObjectStorageOperator:
    kwargs.setdefault("task_id", "export")
    kwargs.setdefault("conn_id", "poly")
    kwargs.setdefault("hook_params", FAST)
    return ConversationsToObjectStorageOperator(destination=dest, **kwargs)


# ---------------------------------------------------------------------------------------------- XCom operator


def test_xcom_operator_returns_exactly_the_windows_conversations_as_the_vendor_sent_them(poly):
    records = xcom_op(page_size=40).execute(ctx())
    assert ids(records) == truth(poly, H0, H1)
    assert len(records) == len(set(ids(records)))
    by_id = {r["id"]: r for r in poly.records}
    assert all(r == by_id[r["id"]] for r in records)


def test_explicit_start_and_end_override_the_data_interval(poly):
    got = xcom_op(start=H1, end=H2).execute(ctx(H0, H1))
    assert ids(got) == truth(poly, H1, H2)
    # strings, as templates such as "{{ data_interval_start }}" render them
    got = xcom_op(start=str(pendulum.instance(H2)), end=H3.isoformat()).execute({})
    assert ids(got) == truth(poly, H2, H3)


def test_templated_window_conn_id_and_filters_render_before_execute(poly):
    op = xcom_op(conn_id="{{ params.conn }}", start="{{ data_interval_end }}",
                 end="{{ data_interval_end.add(hours=1) }}", filters={"variant_id": "{{ params.variant }}"},
                 vendor="polyai")
    context = ctx(H0, H1, params={"conn": "poly", "variant": "var-2"})
    op.render_template_fields(context)
    got = op.execute(context)
    expected = sorted(r["id"] for r in poly.records if r["id"] in set(truth(poly, H1, H2)) and
                      r["variant_id"] == "var-2")
    assert expected
    assert ids(got) == expected


def test_a_run_without_a_data_interval_fails_before_any_request(poly):
    with pytest.raises(ConfigurationError) as err:
        xcom_op().execute(ctx(None, None))
    assert str(err.value) == (
        "ConversationsOperator 'pull': this run has no data interval (it was triggered without a logical date); "
        "use schedule=CronDataIntervalTimetable(...) (from airflow.timetables.interval) so each run covers "
        "[data_interval_start, data_interval_end), or pass start= and end= to the task"
    )
    assert poly.stats.requests == 0


def test_a_zero_width_interval_fails_before_any_request(poly, tmp_path):
    with pytest.raises(ConfigurationError) as err:
        export_op(f"file://{tmp_path}/").execute(ctx(H1, H1))
    assert str(err.value) == (
        "ConversationsToObjectStorageOperator 'export': the data interval is empty (2026-11-17T01:00:00Z to "
        "2026-11-17T01:00:00Z): in Airflow 3 a cron string or timedelta in schedule= runs at a point in time with "
        "no interval; use schedule=CronDataIntervalTimetable(...) (from airflow.timetables.interval) so each run "
        "covers [data_interval_start, data_interval_end), or pass start= and end= to the task"
    )
    assert poly.stats.requests == 0
    assert list(tmp_path.iterdir()) == []


def test_xcom_guard_fails_before_returning_and_stops_paging(poly):
    n = len(truth(poly, H0, H1))
    op = xcom_op(page_size=20, max_conversations=50)
    with pytest.raises(TooManyConversationsError) as err:
        op.execute(ctx())
    assert str(err.value) == (
        "ConversationsOperator 'pull': the window 2026-11-17T00:00:00Z to 2026-11-17T01:00:00Z holds more than "
        "max_conversations=50 conversations, too many for XCom (nothing was pushed). Export it with "
        "ConversationsToObjectStorageOperator, which streams any number to object storage in constant memory "
        "and returns a small manifest, or raise max_conversations."
    )
    assert n > 100
    assert poly.stats.requests <= 4  # stopped once over the limit, not after paging the whole window


def test_xcom_guard_allows_exactly_the_limit(poly):
    n = len(truth(poly, H0, H1))
    assert len(xcom_op(max_conversations=n).execute(ctx())) == n


def test_default_xcom_limit_is_ten_thousand():
    assert xcom_op().max_conversations == 10_000


# ---------------------------------------------------------------------------------------------- validation

XCOM = "ConversationsOperator 't': "
EXPORT = "ConversationsToObjectStorageOperator 't': "
NAIVE = datetime(2026, 11, 17)

INVALID: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"conn_id": ""}, ConfigurationError, "conn_id='' is not valid; expected an Airflow connection id"),
    ({"conn_id": 5}, ConfigurationError, "conn_id=5 is not valid; expected an Airflow connection id"),
    ({"time_key": "modified"}, ConfigurationError, "time_key='modified' is not valid; allowed: 'created', 'updated'"),
    ({"time_key": "updated", "vendor": "polyai"}, ConfigurationError,
     "time_key='updated' is not supported by PolyAI; allowed: 'created'"),
    ({"time_key": "updated", "vendor": "elevenlabs"}, ConfigurationError,
     "time_key='updated' is not supported by ElevenLabs; allowed: 'created'"),
    ({"output_format": "json"}, ConfigurationError,
     "output_format='json' is not valid; allowed: 'raw', 'normalized'"),
    ({"finished_only": "yes"}, ConfigurationError, "finished_only='yes' is not valid; expected True or False"),
    ({"page_size": 0}, ConfigurationError,
     "page_size=0 is not valid; expected a positive integer, or None for the vendor's largest page"),
    ({"page_size": True}, ConfigurationError,
     "page_size=True is not valid; expected a positive integer, or None for the vendor's largest page"),
    ({"page_size": "50"}, ConfigurationError,
     "page_size='50' is not valid; expected a positive integer, or None for the vendor's largest page"),
    ({"page_size": 101, "vendor": "replyful"}, ConfigurationError,
     "page_size=101 is not allowed for Replyful: expected an integer from 1 to 100"),
    ({"page_size": 5001, "vendor": "polyai"}, ConfigurationError,
     "page_size=5001 is not allowed for PolyAI: expected an integer from 1 to 5000"),
    ({"exclude_fields": "transcript"}, ConfigurationError,
     "exclude_fields='transcript' is not valid: expected a list of dotted field paths, e.g. "
     "['transcript', 'contact.email']"),
    ({"exclude_fields": ["contact..email"]}, ConfigurationError,
     "exclude_fields entry 'contact..email' is not valid: expected a dotted field path such as 'contact.email' "
     "(non-empty names separated by single dots, no surrounding spaces)"),
    ({"exclude_fields": [" transcript"]}, ConfigurationError,
     "exclude_fields entry ' transcript' is not valid: expected a dotted field path such as 'contact.email' "
     "(non-empty names separated by single dots, no surrounding spaces)"),
    ({"exclude_fields": [3]}, ConfigurationError,
     "exclude_fields entry 3 is not valid: expected a dotted field path such as 'contact.email' "
     "(non-empty names separated by single dots, no surrounding spaces)"),
    ({"vendor": "zendesk"}, ConfigurationError,
     "vendor='zendesk' is not valid; allowed: 'parrotmob', 'anyreach', 'polyai', 'elevenlabs', 'replyful' "
     "(the connection type)"),
    ({"filters": ["variant_id"]}, ConfigurationError,
     "filters=['variant_id'] is not valid; expected a dict of the vendor's filter names to values"),
    ({"filters": {"bogus": 1}, "vendor": "polyai"}, InvalidFilterError,
     "unknown PolyAI filter 'bogus'; allowed filters: channel, in_progress, include_context_state, "
     "include_latency, variant_id, variant_name. To send a query parameter this provider does not know yet, pass "
     "it in extra_params"),
    ({"filters": {"in_progress": "maybe"}, "vendor": "polyai"}, InvalidFilterError,
     "PolyAI filter 'in_progress' got 'maybe'; allowed: true or false"),
    ({"filters": {"start_time": "2026-01-01"}, "vendor": "polyai"}, InvalidFilterError,
     "PolyAI filter 'start_time' cannot be passed in filters: the hook sets it from the window; pass start/end "
     "instead"),
    ({"filters": {"variant_id": "a", "variant_name": "b"}, "vendor": "polyai"}, InvalidFilterError,
     "PolyAI filters 'variant_id' and 'variant_name' are mutually exclusive; pass only one of them"),
    ({"start": H0}, ConfigurationError, "start and end go together; end is missing"),
    ({"end": "{{ data_interval_end }}"}, ConfigurationError, "start and end go together; start is missing"),
    ({"start": H1, "end": H0}, ConfigurationError,
     "start (2026-11-17T01:00:00+00:00) must be earlier than end (2026-11-17T00:00:00+00:00): windows are "
     "half-open [start, end) and must not be empty"),
    ({"start": NAIVE, "end": H1}, ConfigurationError,
     "start=2026-11-17T00:00:00 is a naive datetime; pass a timezone-aware one, e.g. pendulum.datetime(2026, 11, "
     "20, tz='UTC') or datetime(..., tzinfo=timezone.utc)"),
    ({"start": "yesterday", "end": "today"}, ConfigurationError,
     "start='yesterday' is not an ISO 8601 timestamp; expected e.g. '2026-11-20T00:00:00+00:00'"),
    ({"hook_params": {"page_size": 5}}, ConfigurationError,
     "hook_params key 'page_size' is not valid; allowed: backoff, backoff_max, max_attempts, max_retry_seconds, "
     "retry_after_cap, timeout (page_size is an argument of its own)"),
    ({"hook_params": {"max_attempts": 0}}, ConfigurationError,
     "hook_params max_attempts=0 is not valid; expected an integer >= 1"),
    ({"hook_params": {"backoff": "1s"}}, ConfigurationError,
     "hook_params backoff='1s' is not valid; expected a number of seconds >= 0"),
    ({"hook_params": {"timeout": (5, 0)}}, ConfigurationError,
     "hook_params timeout=(5, 0) is not valid; expected seconds > 0, or a (connect, read) pair of them"),
    ({"hook_params": ["max_attempts", 3]}, ConfigurationError,
     "hook_params=['max_attempts', 3] is not valid; expected a dict with keys among: backoff, backoff_max, "
     "max_attempts, max_retry_seconds, retry_after_cap, timeout"),
    ({"hook_params": {"retries": 5}}, ConfigurationError,
     "hook_params key 'retries' is not valid; allowed: backoff, backoff_max, max_attempts, max_retry_seconds, "
     "retry_after_cap, timeout"),
]


@pytest.mark.parametrize(("kwargs", "exc", "message"), INVALID, ids=[m[:60] for _, _, m in INVALID])
@pytest.mark.parametrize("operator", ["xcom", "export"])
def test_every_bad_argument_fails_when_the_dag_is_parsed(kwargs, exc, message, operator):
    args = {"task_id": "t", "conn_id": "poly", **kwargs}
    cls: Any = ConversationsOperator
    if operator == "export":
        cls, args["destination"] = ConversationsToObjectStorageOperator, "file:///tmp/x/"
    with pytest.raises(exc) as err:
        cls(**args)
    assert type(err.value) is exc
    assert str(err.value) == (XCOM if operator == "xcom" else EXPORT) + message


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"max_conversations": 0}, "max_conversations=0 is not valid; expected a positive integer"),
    ({"max_conversations": "100"}, "max_conversations='100' is not valid; expected a positive integer"),
])
def test_bad_xcom_limit(kwargs, message):
    with pytest.raises(ConfigurationError) as err:
        ConversationsOperator(task_id="t", conn_id="poly", **kwargs)
    assert str(err.value) == XCOM + message


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"compression": "zip"}, "compression='zip' is not valid; allowed: 'gzip' or None"),
    ({"destination": ""}, "destination='' is not valid; expected a URL such as 's3://bucket/conversations/' or an "
                          "ObjectStoragePath"),
    ({"destination": 42}, "destination=42 is not valid; expected a URL such as 's3://bucket/conversations/' or an "
                          "ObjectStoragePath"),
    ({"destination_conn_id": 7}, "destination_conn_id=7 is not valid; expected a connection id or None"),
])
def test_bad_destination_arguments(kwargs, message):
    args = {"task_id": "t", "conn_id": "poly", "destination": "file:///tmp/x/", **kwargs}
    with pytest.raises(ConfigurationError) as err:
        ConversationsToObjectStorageOperator(**args)
    assert str(err.value) == EXPORT + message


@pytest.mark.parametrize("filters", [
    "{{ params.filters }}",
    {"variant_id": "{{ params.variant }}"},
    {"bogus": "{{ params.anything }}"},  # names are checked at run time, after rendering
])
def test_templated_filters_are_not_validated_at_parse_time(filters):
    op = ConversationsOperator(task_id="t", conn_id="poly", vendor="polyai", filters=filters)
    assert op.filters == filters


def test_valid_arguments_for_every_vendor_parse(tmp_path):
    for vendor in VENDORS:
        cls = hook_class(vendor)
        ConversationsToObjectStorageOperator(
            task_id=f"t_{vendor}", conn_id=f"{vendor}_default", vendor=vendor, destination=f"file://{tmp_path}/",
            time_key="updated" if "updated" in cls.time_keys else "created", page_size=cls.max_page_size,
            finished_only=True, output_format="normalized", exclude_fields=["transcript", "contact.email"],
        )


def test_filters_are_validated_at_run_time_before_any_request(poly):
    with pytest.raises(InvalidFilterError) as err:
        xcom_op(filters={"bogus": 1}).execute(ctx())
    assert str(err.value) == (
        "unknown PolyAI filter 'bogus'; allowed filters: channel, in_progress, include_context_state, "
        "include_latency, variant_id, variant_name. To send a query parameter this provider does not know yet, "
        "pass it in extra_params"
    )
    assert poly.stats.requests == 0


def test_time_key_the_vendor_lacks_fails_at_run_time_before_any_request(poly):
    with pytest.raises(ConfigurationError) as err:
        xcom_op(time_key="updated").execute(ctx())
    assert str(err.value) == (
        "time_key='updated' is not supported by PolyAI; allowed: 'created' (PolyAI conversations have no update "
        "time)"
    )
    assert poly.stats.requests == 0


def test_connection_type_must_match_vendor_at_run_time(poly):
    with pytest.raises(ConfigurationError) as err:
        xcom_op(vendor="replyful").execute(ctx())
    assert str(err.value) == (
        "ConversationsOperator 'pull': connection 'poly' has type 'polyai', but vendor='replyful'; use a replyful "
        "connection or change vendor"
    )
    assert poly.stats.requests == 0


def test_finished_only_contradicting_a_filter_fails_before_any_request(poly):
    with pytest.raises(InvalidFilterError) as err:
        xcom_op(finished_only=True, filters={"in_progress": True}).execute(ctx())
    assert str(err.value) == "finished_only=True contradicts PolyAI filter in_progress=True; drop one of them"
    assert poly.stats.requests == 0


# ---------------------------------------------------------------------------------------------- shaping


@pytest.mark.parametrize("vendor", VENDORS)
def test_normalized_records_have_one_shape_for_every_vendor(vendor, sim, set_connection):
    s = sim(vendor, conversations=600, span=timedelta(hours=3))
    set_connection(f"{vendor}_ops", s.connection())
    records = xcom_op(conn_id=f"{vendor}_ops", output_format="normalized").execute(ctx(H1, H2))
    cls = hook_class(vendor)
    hook = cls(f"{vendor}_ops")
    expected = truth(s, H1, H2)
    assert expected
    assert sorted(r["id"] for r in records) == expected
    for r in records:
        assert tuple(r) == NORMALIZED_FIELDS
        assert r["vendor"] == vendor
        assert r["id"] == str(r["raw"][cls.id_field])
        created = datetime.fromisoformat(r["created_at"])
        assert r["created_at"].endswith("Z")
        assert H1 <= created < H2
        assert r["updated_at"] is None or r["updated_at"].endswith("Z")
        assert r["finished"] in (True, False, None)
        if r["finished"] is not None:
            assert r["finished"] == hook.is_finished(r["raw"])
        assert r["duration_seconds"] is None or isinstance(r["duration_seconds"], float)
    orjson.dumps(records)  # JSON-serialisable as it is, for XCom and JSON Lines


@pytest.mark.parametrize("vendor", VENDORS)
def test_finished_only_keeps_exactly_the_finished_conversations(vendor, sim, set_connection):
    s = sim(vendor, conversations=600, span=timedelta(hours=3))
    set_connection(f"{vendor}_fin", s.connection())
    hook = hook_class(vendor)(f"{vendor}_fin")
    everything = xcom_op(conn_id=f"{vendor}_fin").execute(ctx(H0, H2))
    finished = xcom_op(conn_id=f"{vendor}_fin", finished_only=True).execute(ctx(H0, H2))
    expected = sorted(str(r[hook.id_field]) for r in everything if hook.is_finished(r))
    assert 0 < len(expected) < len(everything), "the data set has both finished and unfinished conversations"
    assert ids(finished, vendor) == expected


def test_finished_only_sends_the_vendors_server_side_filter(poly):
    xcom_op(finished_only=True).execute(ctx())
    assert poly.requests
    assert all(r.query.get("in_progress") == ["false"] for r in poly.requests)


def test_finished_only_also_checks_each_record_when_the_server_ignores_the_filter(set_connection, requests_mock,
                                                                                   tmp_path):
    set_connection("poly_mock", {"conn_type": "polyai", "host": "https://polyai.test", "password": "pk-x-1234",
                                 "extra": {"account_id": "a", "project_id": "p"}})
    requests_mock.get("https://polyai.test/v3/a/p/conversations", json={"conversations": [
        {"id": "done", "started_at": "2026-11-17T00:10:00Z", "in_progress": False},
        {"id": "live", "started_at": "2026-11-17T00:20:00Z", "in_progress": True},
    ], "cursor": None})
    manifest = export_op(f"file://{tmp_path}/", conn_id="poly_mock", finished_only=True).execute(ctx())
    assert [r["id"] for r in read_jsonl(Path(manifest["uri"].removeprefix("file://")))] == ["done"]
    assert manifest["count"] == 1
    assert manifest["skipped_unfinished"] == 1
    assert manifest["filters"] == {"in_progress": False}


def test_exclude_fields_drops_paths_from_raw_records_before_they_leave_the_task(poly):
    records = xcom_op(exclude_fields=["turns.user_input", "metrics", "variant_name", "not.there"]).execute(ctx())
    source = {r["id"]: r for r in poly.records}
    assert records
    for r in records:
        original = source[r["id"]]
        assert "metrics" not in r
        assert "variant_name" not in r
        assert r["turns"] == [{k: v for k, v in t.items() if k != "user_input"} for t in original["turns"]]
        assert r["turns"]
        assert all("agent_response" in t for t in r["turns"])
        assert {k: v for k, v in original.items() if k not in ("metrics", "variant_name", "turns")} == {
            k: v for k, v in r.items() if k != "turns"}


def test_exclude_fields_in_normalized_records_apply_to_top_level_and_raw(poly):
    records = xcom_op(output_format="normalized", exclude_fields=["channel", "turns"]).execute(ctx())
    assert records
    for r in records:
        assert "channel" not in r
        assert "channel" not in r["raw"]
        assert "turns" not in r["raw"]
        assert r["raw"]["started_at"]
    slim = xcom_op(output_format="normalized", exclude_fields=["raw"]).execute(ctx())
    assert all(tuple(r) == tuple(f for f in NORMALIZED_FIELDS if f != "raw") for r in slim)


def test_drop_path_copies_on_write_and_walks_lists():
    record = {"a": {"b": 1, "c": 2}, "turns": [{"text": "hi", "role": "u"}, {"role": "a"}, "x"], "k": 1}
    out = drop_path(drop_path(record, ("a", "b")), ("turns", "text"))
    assert out == {"a": {"c": 2}, "turns": [{"role": "u"}, {"role": "a"}, "x"], "k": 1}
    assert record == {"a": {"b": 1, "c": 2}, "turns": [{"text": "hi", "role": "u"}, {"role": "a"}, "x"], "k": 1}
    assert drop_path(record, ("missing", "x")) is record
    assert drop_path(record, ("k", "deeper")) is record


# ---------------------------------------------------------------------------------------------- object storage


def window_dir(root: Path, start: str, end: str, conn_id: str = "poly", vendor: str = "polyai") -> Path:
    return root / f"vendor={vendor}" / f"conn_id={conn_id}" / "time_key=created" / f"start={start}" / f"end={end}"


def test_export_writes_one_object_per_window_and_returns_the_manifest(poly, tmp_path):
    manifest = export_op(f"file://{tmp_path}/lake/", page_size=50).execute(ctx())
    target = window_dir(tmp_path / "lake", "2026-11-17T00:00:00Z", "2026-11-17T01:00:00Z") / GZ
    records = read_jsonl(target)
    assert ids(records) == truth(poly, H0, H1)
    n = len(records)
    assert manifest == {
        "uri": f"file://{target}",
        "count": n,
        "vendor": "polyai",
        "conn_id": "poly",
        "start": "2026-11-17T00:00:00Z",
        "end": "2026-11-17T01:00:00Z",
        "time_key": "created",
        "filters": {},
        "extra_params": {},
        "finished_only": False,
        "output_format": "raw",
        "pages": poly.stats.ok_pages,
        "requests": poly.stats.requests,
        "retries": 0,
        "retry_wait_seconds": 0.0,
        "throttle_waits": 0,
        "throttle_wait_seconds": 0.0,
        "fetched": manifest["fetched"],
        "duplicates": 0,
        "skipped_unfinished": 0,
        "seconds": manifest["seconds"],
        "bytes": target.stat().st_size,
        "uncompressed_bytes": len(gzip.decompress(target.read_bytes())),
        "compression": "gzip",
        "format": "jsonl",
        "file_format": "jsonl",
        "destination_conn_id": None,
        "checkpoint_every_pages": 100,
        "checkpoints": 0,  # no task state store in this context
        "resumed_from_page": None,
    }
    assert manifest["pages"] == -(-manifest["fetched"] // 50)
    assert manifest["fetched"] >= n
    assert 0 < manifest["seconds"] < 60
    orjson.dumps(manifest)


def test_uncompressed_export_and_layout_suffix(poly, tmp_path):
    manifest = export_op(f"file://{tmp_path}/", compression=None).execute(ctx())
    target = window_dir(tmp_path, "2026-11-17T00:00:00Z", "2026-11-17T01:00:00Z") / "conversations.jsonl"
    assert manifest["uri"] == f"file://{target}"
    assert ids(read_jsonl(target)) == truth(poly, H0, H1)
    assert manifest["compression"] is None


def test_a_full_object_path_is_used_as_given(poly, tmp_path, logs):
    manifest = export_op(f"file://{tmp_path}/out/hour.jsonl.gz").execute(ctx())
    assert manifest["uri"] == f"file://{tmp_path}/out/hour.jsonl.gz"
    assert ids(read_jsonl(tmp_path / "out" / "hour.jsonl.gz")) == truth(poly, H0, H1)
    assert "misread" not in logs()
    export_op(f"file://{tmp_path}/out/plain.jsonl").execute(ctx())
    # gzip, as asked, under the name given, with a warning
    assert ids([orjson.loads(x) for x in gzip.decompress((tmp_path / "out" / "plain.jsonl").read_bytes())
                .splitlines()]) == truth(poly, H0, H1)
    assert "does not end with .gz; readers that infer compression from the name will misread it" in logs()


def test_an_existing_directory_without_slash_gets_the_layout(poly, tmp_path):
    (tmp_path / "lake").mkdir()
    manifest = export_op(f"file://{tmp_path}/lake").execute(ctx())
    assert manifest["uri"] == "file://" + str(
        window_dir(tmp_path / "lake", "2026-11-17T00:00:00Z", "2026-11-17T01:00:00Z") / GZ)


def test_object_storage_path_destination(poly, tmp_path):
    manifest = export_op(ObjectStoragePath(f"file://{tmp_path}/osp/"), start=H1, end=H2).execute(ctx())
    target = window_dir(tmp_path / "osp", "2026-11-17T01:00:00Z", "2026-11-17T02:00:00Z") / GZ
    assert manifest["uri"] == f"file://{target}"
    assert ids(read_jsonl(target)) == truth(poly, H1, H2)


def test_memory_destination(poly):
    from airflow.sdk.io import attach
    from fsspec.implementations.memory import MemoryFileSystem

    attach("memory", fs=MemoryFileSystem())
    manifest = export_op("memory://bucket/ops-test/").execute(ctx())
    path = ObjectStoragePath(manifest["uri"])
    assert manifest["uri"].startswith("memory://bucket/ops-test/vendor=polyai/conn_id=poly/")
    data = gzip.decompress(path.fs.cat_file(path.path))
    assert ids([orjson.loads(x) for x in data.splitlines()]) == truth(poly, H0, H1)


def test_empty_window_writes_an_empty_object(poly, tmp_path):
    start, end = H0 - timedelta(days=30), H0 - timedelta(days=29)
    manifest = export_op(f"file://{tmp_path}/", start=start, end=end).execute(ctx())
    assert manifest["count"] == 0
    target = Path(manifest["uri"].removeprefix("file://"))
    assert gzip.decompress(target.read_bytes()) == b""


def test_rerun_gives_a_byte_identical_object(poly, tmp_path):
    first = export_op(f"file://{tmp_path}/").execute(ctx())
    target = Path(first["uri"].removeprefix("file://"))
    before = target.read_bytes()
    second = export_op(f"file://{tmp_path}/").execute(ctx())
    assert second["uri"] == first["uri"]
    assert target.read_bytes() == before


def test_failure_mid_stream_leaves_the_previous_object_and_no_partial_one(poly, tmp_path):
    first = export_op(f"file://{tmp_path}/", page_size=20).execute(ctx())
    target = Path(first["uri"].removeprefix("file://"))
    before = target.read_bytes()
    poly.faults = Faults(fail_after=poly.stats.ok_pages + 3)
    with pytest.raises(RetriesExhaustedError):
        export_op(f"file://{tmp_path}/", page_size=20).execute(ctx())
    assert target.read_bytes() == before
    assert os.listdir(target.parent) == [GZ]
    # a window never exported before: nothing at all
    with pytest.raises(RetriesExhaustedError):
        export_op(f"file://{tmp_path}/", page_size=20, start=H1, end=H2).execute(ctx())
    assert not any(f for _, _, f in os.walk(window_dir(tmp_path, "2026-11-17T01:00:00Z", "2026-11-17T02:00:00Z")))


# ---------------------------------------------------------------------------------------------- assets, lineage


def test_asset_alias_gets_an_event_for_the_written_object_with_the_manifest(poly, tmp_path):
    alias = AssetAlias("polyai-conversations")
    events = OutletEventAccessors()
    manifest = export_op(f"file://{tmp_path}/", outlets=[alias]).execute(ctx(outlet_events=events))
    (event,) = events[alias].asset_alias_events
    assert event.source_alias_name == "polyai-conversations"
    assert event.dest_asset_key.uri == manifest["uri"]
    assert event.extra == manifest


def test_static_asset_outlet_carries_the_manifest_as_extra(poly, tmp_path):
    asset = Asset(f"file://{tmp_path}/")
    events = OutletEventAccessors()
    manifest = export_op(f"file://{tmp_path}/", outlets=[asset]).execute(ctx(outlet_events=events))
    assert events[asset].extra == manifest
    assert events[asset].asset_alias_events == []


def test_openlineage_input_is_the_vendor_endpoint_and_output_the_object(poly, tmp_path):
    op = export_op(f"file://{tmp_path}/")
    manifest = op.execute(ctx())
    lineage = op.get_openlineage_facets_on_complete(None)
    (source,) = lineage.inputs
    assert (source.namespace, source.name) == (poly.url, "v3/acct-1/proj-1/conversations")
    (out,) = lineage.outputs
    assert out.namespace == "file"
    assert out.name == manifest["uri"].removeprefix("file:///")
    stats = out.outputFacets["outputStatistics"]
    assert (stats.rowCount, stats.size) == (manifest["count"], manifest["bytes"])

    xcom = xcom_op()
    xcom.execute(ctx())
    lineage = xcom.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in lineage.inputs] == [(poly.url, "v3/acct-1/proj-1/conversations")]
    assert lineage.outputs == []


def test_openlineage_reads_the_manifest_back_on_a_fresh_operator(tmp_path):
    class TI:
        task_id = "export"

        def xcom_pull(self, task_ids: str, key: str) -> dict[str, Any]:
            assert (task_ids, key) == ("export", "return_value")
            return {"uri": f"file://{tmp_path}/x.jsonl.gz", "count": 3, "bytes": 42}

    lineage = export_op(f"file://{tmp_path}/").get_openlineage_facets_on_complete(TI())
    (out,) = lineage.outputs
    assert (out.namespace, out.name) == ("file", f"{str(tmp_path).lstrip('/')}/x.jsonl.gz")
    assert lineage.inputs == []


# ---------------------------------------------------------------------------------------------- logs, secrets


def test_progress_log_shows_pages_counts_and_retries_without_a_line_per_page(poly, tmp_path, logs):
    poly.faults = Faults(schedule={2: "503"})
    op = export_op(f"file://{tmp_path}/", page_size=10)
    op.progress_every_pages = 5
    op.progress_every_seconds = 3600
    manifest = op.execute(ctx())
    text = logs()
    lines = re.findall(r"PolyAI 2026-11-17T00:00:00Z to 2026-11-17T01:00:00Z: page (\d+), (\d+) conversations so "
                       r"far \((\d+) fetched, (\d+) requests, (\d+) retries", text)
    pages = [int(p) for p, *_ in lines]
    assert manifest["pages"] > 10
    assert pages == [*range(1, manifest["pages"], 5), manifest["pages"]]
    assert int(lines[-1][1]) == manifest["count"]
    assert int(lines[-1][4]) == manifest["retries"] == 1
    summary = re.search(r"Exported (\d+) conversations to (\S+); manifest: (\{.*\})", text)
    assert summary is not None
    assert orjson.loads(summary.group(3)) == manifest


def test_the_api_key_appears_nowhere(sim, set_connection, tmp_path, logs):
    s = sim("polyai", conversations=300, span=timedelta(hours=2), token="pk-very-secret-4242")
    set_connection("poly_secret", s.connection())
    s.faults = Faults(schedule={1: "429"})
    manifest = export_op(f"file://{tmp_path}/", conn_id="poly_secret").execute(ctx())
    records = xcom_op(conn_id="poly_secret").execute(ctx())
    assert manifest["retries"] == 1
    assert "pk-very-secret-4242" not in orjson.dumps(manifest).decode()
    assert "pk-very-secret-4242" not in orjson.dumps(records).decode()
    assert "pk-very-secret-4242" not in logs()
    data = gzip.decompress(Path(manifest["uri"].removeprefix("file://")).read_bytes())
    assert b"pk-very-secret-4242" not in data


def test_windows_are_utc_in_paths_whatever_the_interval_timezone(poly, tmp_path):
    berlin = pendulum.timezone("Europe/Berlin")
    start = pendulum.instance(H0).in_timezone(berlin)
    manifest = export_op(f"file://{tmp_path}/").execute({"data_interval_start": start,
                                                          "data_interval_end": start.add(hours=1)})
    assert "/start=2026-11-17T00:00:00Z/end=2026-11-17T01:00:00Z/" in manifest["uri"]
    assert (manifest["start"], manifest["end"]) == ("2026-11-17T00:00:00Z", "2026-11-17T01:00:00Z")
    assert datetime.fromisoformat(manifest["start"]).tzinfo == UTC
