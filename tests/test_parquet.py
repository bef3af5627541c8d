"""file_format="parquet": typed columns plus the record as JSON, read back by pyarrow and DuckDB, byte-deterministic,
streamed in bounded row groups, atomic on file:// and S3, and refused clearly at parse time when misconfigured."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from airflow.sdk import ObjectStoragePath
from airflow.sdk.exceptions import AirflowOptionalProviderFeatureException

from airflow_provider_conversations.exceptions import ConfigurationError, RetriesExhaustedError
from airflow_provider_conversations.operators.conversations import (
    ConversationsOperator,
    ConversationsToObjectStorageOperator,
)
from airflow_provider_conversations.output import parquet
from airflow_provider_conversations.output.parquet import Columns, MissingExtraError, ParquetWriter, schema_for
from airflow_provider_conversations.testing import Faults
from airflow_provider_conversations.testing.dataset import DEFAULT_START
from airflow_provider_conversations.windows import iso_z
from tests.helpers import assert_exactly_once
from tests.test_s3_export import AWS_CONN, get, keys, moto_url, s3, uploads  # noqa: F401  (fixtures)

START, END = DEFAULT_START, DEFAULT_START + timedelta(hours=3)
FAST = {"max_attempts": 2, "backoff": 0.001, "backoff_max": 0.002}
TS = pa.timestamp("us", tz="UTC")
NORMALIZED_TYPES = {
    "vendor": pa.string(), "id": pa.string(), "created_at": TS, "updated_at": TS, "status": pa.string(),
    "finished": pa.bool_(), "channel": pa.string(), "duration_seconds": pa.float64(),
    "messages": pa.list_(pa.struct([("role", pa.string()), ("text", pa.string()), ("at", TS)])),
    "raw": pa.string(),
}


@pytest.fixture
def poly(sim, set_connection):
    s = sim("polyai", conversations=900, span=timedelta(hours=3), seed=7)
    set_connection("poly", s.connection())
    return s


def export_op(dest: str, **kwargs: Any) -> ConversationsToObjectStorageOperator:
    kwargs.setdefault("task_id", "export")
    kwargs.setdefault("conn_id", "poly")
    kwargs.setdefault("hook_params", FAST)
    kwargs.setdefault("start", START.isoformat())
    kwargs.setdefault("end", END.isoformat())
    kwargs.setdefault("file_format", "parquet")
    return ConversationsToObjectStorageOperator(destination=dest, **kwargs)


def export(dest: str, **kwargs: Any) -> tuple[dict[str, Any], Path]:
    manifest = export_op(dest, **kwargs).execute({})
    return manifest, Path(manifest["uri"].removeprefix("file://"))


def dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


# ---------------------------------------------------------------------------------------------- schema, read back


def test_normalized_export_reads_back_in_pyarrow_and_duckdb_with_exact_ids_types_and_values(poly, tmp_path):
    manifest, path = export(f"file://{tmp_path}/", output_format="normalized", page_size=40)
    assert path == (tmp_path / "vendor=polyai" / "conn_id=poly" / "time_key=created"
                    / f"start={iso_z(START)}" / f"end={iso_z(END)}" / "conversations.parquet")
    assert (manifest["file_format"], manifest["format"], manifest["compression"]) == ("parquet", "parquet", "zstd")
    assert manifest["bytes"] == path.stat().st_size
    assert os.listdir(path.parent) == ["conversations.parquet"]  # no temp file left

    meta = pq.read_metadata(path)
    assert manifest["uncompressed_bytes"] == sum(meta.row_group(i).total_byte_size
                                                 for i in range(meta.num_row_groups)) > manifest["bytes"]
    table = pq.read_table(path)
    assert {f.name: f.type for f in table.schema} == NORMALIZED_TYPES
    assert list(table.schema.names) == list(NORMALIZED_TYPES)
    assert_exactly_once(table.column("id").to_pylist(), poly.ground_truth(START, END))
    assert manifest["count"] == table.num_rows > 500

    # Every value is the normalized record's, typed; raw is the vendor's item as JSON, nothing dropped.
    expected = ConversationsOperator(task_id="pull", conn_id="poly", hook_params=FAST, start=START.isoformat(),
                                     end=END.isoformat(), output_format="normalized").execute({})
    rows = table.to_pylist()
    assert len(rows) == len(expected)
    for row, record in zip(rows, expected, strict=True):
        assert row == {**record, "created_at": dt(record["created_at"]), "updated_at": dt(record["updated_at"]),
                       "messages": None, "raw": orjson.dumps(record["raw"]).decode()}
        assert orjson.loads(row["raw"]) == record["raw"]

    con = duckdb.connect()
    source = f"read_parquet('{path}', hive_partitioning = false)"  # the layout's key=value folders aside
    described = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    assert [(name, type_) for name, type_, *_ in described] == [
        ("vendor", "VARCHAR"), ("id", "VARCHAR"), ("created_at", "TIMESTAMP WITH TIME ZONE"),
        ("updated_at", "TIMESTAMP WITH TIME ZONE"), ("status", "VARCHAR"), ("finished", "BOOLEAN"),
        ("channel", "VARCHAR"), ("duration_seconds", "DOUBLE"),
        ("messages", 'STRUCT("role" VARCHAR, "text" VARCHAR, "at" TIMESTAMP WITH TIME ZONE)[]'), ("raw", "VARCHAR"),
    ]
    duck_ids = [r[0] for r in con.execute(f"SELECT id FROM {source}").fetchall()]
    assert duck_ids == table.column("id").to_pylist()
    con.execute("SET TimeZone = 'UTC'")
    first = con.execute(f"SELECT id, created_at, json_extract_string(raw, '$.id') FROM {source} LIMIT 1").fetchone()
    assert first == (rows[0]["id"], rows[0]["created_at"], rows[0]["id"])


def test_the_file_metadata_holds_the_export_identity_and_window_and_no_write_time(poly, tmp_path):
    manifest, path = export(f"file://{tmp_path}/", output_format="normalized", filters={"in_progress": False},
                            exclude_fields=["contact.phone"], compression="snappy")
    meta = pq.read_metadata(path)
    assert meta.created_by.startswith("parquet-cpp-arrow version ")
    identity = orjson.loads(meta.metadata[parquet.METADATA_KEY.encode()])
    assert identity == {
        "schema_version": 1, "vendor": "polyai", "conn_id": "poly", "time_key": "created",
        "start": manifest["start"], "end": manifest["end"], "filters": manifest["filters"],
        "finished_only": False, "output_format": "normalized", "exclude_fields": ["contact.phone"],
        "file_format": "parquet", "compression": "snappy",
    }
    assert (identity["start"], identity["end"]) == (iso_z(START), iso_z(END))
    assert set(meta.metadata) == {parquet.METADATA_KEY.encode(), b"ARROW:schema"}
    assert {meta.row_group(i).column(c).compression for i in range(meta.num_row_groups)
            for c in range(meta.num_columns)} == {"SNAPPY"}
    # the column descriptions travel with the schema
    assert pq.read_schema(path).field("raw").metadata[b"description"].startswith(b"the whole record as JSON")


def test_raw_export_has_the_id_the_time_key_as_a_timestamp_and_the_record(poly, tmp_path):
    manifest, path = export(f"file://{tmp_path}/", time_key="created", compression=None,
                            exclude_fields=["turns"])
    table = pq.read_table(path)
    assert {f.name: f.type for f in table.schema} == {"id": pa.string(), "created_at": TS, "raw": pa.string()}
    expected = ConversationsOperator(task_id="pull", conn_id="poly", hook_params=FAST, start=START.isoformat(),
                                     end=END.isoformat(), exclude_fields=["turns"]).execute({})
    assert table.column("id").to_pylist() == [r["id"] for r in expected]
    assert [orjson.loads(r) for r in table.column("raw").to_pylist()] == expected
    assert table.column("created_at").to_pylist() == [dt(r["started_at"]) for r in expected]
    assert all(START <= t < END for t in table.column("created_at").to_pylist())
    assert pq.read_metadata(path).row_group(0).column(0).compression == "UNCOMPRESSED"
    assert manifest["compression"] is None


def test_raw_export_by_update_time_names_the_column_after_the_time_key(sim, set_connection, tmp_path):
    s = sim("anyreach", conversations=300, span=timedelta(hours=3))
    set_connection("ar", s.connection("ar"))
    manifest, path = export(f"file://{tmp_path}/", conn_id="ar", time_key="updated")
    assert "time_key=updated" in manifest["uri"]
    table = pq.read_table(path)
    assert table.schema.names == ["id", "updated_at", "raw"]
    assert table.schema.field("updated_at").type == TS
    assert_exactly_once(table.column("id").to_pylist(), s.ground_truth(START, END, time_key="updated"))


def test_messages_are_typed_when_details_were_fetched_and_null_when_not(tmp_path):
    records = [
        {"vendor": "polyai", "id": "a", "created_at": "2026-11-17T00:00:00Z", "updated_at": None, "status": "done",
         "finished": True, "channel": "voice", "duration_seconds": 12.5, "raw": {"id": "a", "extra": [1, {"x": 2}]},
         "messages": [{"role": "agent", "text": "Hello", "at": "2026-11-17T00:00:01.250000Z"},
                      {"role": "user", "text": "Hi", "at": None}]},
        {"vendor": "polyai", "id": "b", "created_at": "2026-11-17T00:00:02Z", "updated_at": "2026-11-17T00:05:00Z",
         "status": 3, "finished": None, "channel": {"kind": "sms"}, "duration_seconds": None, "raw": {"id": "b"}},
        # exclude_fields=["raw"]: the column is null, the row stays
        {"vendor": "polyai", "id": "c", "created_at": None, "updated_at": None, "status": "s", "finished": False,
         "channel": "chat", "duration_seconds": 3, "messages": []},
    ]
    path = ObjectStoragePath(f"file://{tmp_path}/m.parquet")
    with ParquetWriter(path, columns=Columns("normalized")) as out:
        out.write_records(records)
    rows = pq.read_table(path.path).to_pylist()
    assert [r["messages"] for r in rows] == [
        [{"role": "agent", "text": "Hello", "at": datetime(2026, 11, 17, 0, 0, 1, 250000, tzinfo=UTC)},
         {"role": "user", "text": "Hi", "at": None}],
        None,
        [],
    ]
    assert [r["raw"] for r in rows] == ['{"id":"a","extra":[1,{"x":2}]}', '{"id":"b"}', None]
    assert [r["duration_seconds"] for r in rows] == [12.5, None, 3.0]
    assert rows[1]["updated_at"] == datetime(2026, 11, 17, 0, 5, tzinfo=UTC)
    # a vendor's odd status or channel is kept as its JSON text, not an error
    assert (rows[1]["status"], rows[1]["channel"], rows[1]["finished"]) == ("3", '{"kind":"sms"}', None)
    assert (out.count, out.row_groups) == (3, 1)


def test_an_empty_window_writes_a_valid_file_with_the_schema_and_no_rows(poly, tmp_path):
    start = START - timedelta(days=3)
    manifest, path = export(f"file://{tmp_path}/", output_format="normalized", start=start.isoformat(),
                            end=(start + timedelta(hours=1)).isoformat())
    assert manifest["count"] == 0
    table = pq.read_table(path)
    assert table.num_rows == 0
    assert table.schema.names == list(NORMALIZED_TYPES)
    assert pq.read_metadata(path).num_row_groups == 0


# ---------------------------------------------------------------------------------------------- streaming, determinism


def test_row_groups_are_bounded_and_fall_every_n_records_whatever_the_page_size(poly, tmp_path, monkeypatch):
    monkeypatch.setattr(parquet, "ROW_GROUP_ROWS", 128)
    _, a = export(f"file://{tmp_path}/a/", output_format="normalized", page_size=40)
    _, b = export(f"file://{tmp_path}/b/", output_format="normalized", page_size=100)
    meta = pq.read_metadata(a)
    n = meta.num_rows
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert sizes == [128] * (n // 128) + ([n % 128] if n % 128 else [])
    assert len(sizes) > 4
    assert a.read_bytes() == b.read_bytes()  # boundaries do not follow pages


@pytest.mark.parametrize("output_format", ["normalized", "raw"])
def test_reruns_and_parallel_exports_are_byte_identical(poly, tmp_path, monkeypatch, output_format):
    monkeypatch.setattr(parquet, "ROW_GROUP_ROWS", 100)
    _, first = export(f"file://{tmp_path}/one/", output_format=output_format, page_size=30)
    before = first.read_bytes()
    _, again = export(f"file://{tmp_path}/one/", output_format=output_format, page_size=30)
    assert again == first
    assert first.read_bytes() == before
    _, par = export(f"file://{tmp_path}/par/", output_format=output_format, page_size=30, max_parallel=4)
    assert par.read_bytes() == before  # sub-windows replayed in walk order, the same row groups
    assert pq.read_metadata(par).num_row_groups > 4


def test_a_failure_mid_export_leaves_no_object_and_the_previous_one_untouched(poly, tmp_path, monkeypatch):
    monkeypatch.setattr(parquet, "ROW_GROUP_ROWS", 50)  # row groups were written before the failure
    _, path = export(f"file://{tmp_path}/", page_size=20)
    before = path.read_bytes()
    poly.faults = Faults(fail_after=poly.stats.ok_pages + 8)
    with pytest.raises(RetriesExhaustedError):
        export(f"file://{tmp_path}/", page_size=20)
    assert path.read_bytes() == before
    assert os.listdir(path.parent) == ["conversations.parquet"]
    # a window never exported before: nothing at all
    start = START + timedelta(hours=1)
    poly.faults = Faults(fail_after=poly.stats.ok_pages + 8)
    with pytest.raises(RetriesExhaustedError):
        export(f"file://{tmp_path}/", page_size=20, start=start.isoformat(), end=END.isoformat())
    window = tmp_path / "vendor=polyai" / "conn_id=poly" / "time_key=created" / f"start={iso_z(start)}"
    assert not any(f for _, _, f in os.walk(window))


class Record(dict):  # type: ignore[type-arg]
    """A record that can be weakly referenced (a plain dict cannot)."""


@pytest.mark.parametrize("checkpointed", [False, True], ids=["plain", "checkpointed"])
def test_a_page_becomes_columns_before_write_records_returns(tmp_path, checkpointed):
    """The writer keeps no page's records: buffering thousands of dicts until a row group was full made Python's
    cyclic collector walk them again and again (1.3 of 6.0 s of a 200,000-record export). The bytes are those
    of one call with every record."""
    import weakref

    def records(n: int) -> list[Record]:
        return [Record(vendor="polyai", id=str(i), created_at=f"2026-11-17T00:{i // 60:02d}:{i % 60:02d}Z",
                       status="done", finished=True, channel="voice", duration_seconds=i, raw={"id": str(i)})
                for i in range(n)]

    one = ObjectStoragePath(f"file://{tmp_path}/one/c.parquet")
    with ParquetWriter(one, columns=Columns("normalized"), row_group_rows=250) as out:
        out.write_records(records(1000))
    paged = ObjectStoragePath(f"file://{tmp_path}/paged/c.parquet")
    with ParquetWriter(paged, columns=Columns("normalized"), row_group_rows=250, checkpointed=checkpointed) as out:
        assert out.resumable is checkpointed
        left = records(1000)
        for start in range(0, 1000, 100):
            page, left = left[:100], left[100:]  # the walk lets go of a page once it is written
            alive = [weakref.ref(r) for r in page]
            out.write_records(page)
            del page
            assert [r for r in alive if r() is not None] == [], f"records of the page at {start} kept"
            if checkpointed and start == 400:
                out.checkpoint(lambda saved: None)
    assert (out.count, out.row_groups) == (1000, 4)
    assert Path(paged.path).read_bytes() == Path(one.path).read_bytes()


def test_the_writer_discards_everything_on_an_exception(tmp_path):
    path = ObjectStoragePath(f"file://{tmp_path}/x/c.parquet")

    class Boom(RuntimeError):
        pass

    def fail_midway() -> None:
        with ParquetWriter(path, columns=Columns("normalized"), row_group_rows=2) as out:
            out.write_records([{"id": str(i), "raw": {}} for i in range(5)])
            assert out.row_groups == 2  # two row groups already went to the temp file
            raise Boom

    with pytest.raises(Boom):
        fail_midway()
    assert os.listdir(tmp_path / "x") == []


# ---------------------------------------------------------------------------------------------- S3


def test_parquet_export_to_s3_reads_back_and_is_atomic(s3, poly, tmp_path):  # noqa: F811
    manifest = export_op(f"s3://{s3.bucket}/lake/", destination_conn_id=AWS_CONN,
                         output_format="normalized").execute({})
    key = (f"lake/vendor=polyai/conn_id=poly/time_key=created/start={iso_z(START)}/end={iso_z(END)}/"
           "conversations.parquet")
    assert keys(s3) == [key]
    assert manifest["uri"] == f"s3://{s3.bucket}/{key}"
    body = get(s3, key)
    assert manifest["bytes"] == len(body)
    local = tmp_path / "copy.parquet"
    local.write_bytes(body)
    table = pq.read_table(local)
    assert {f.name: f.type for f in table.schema} == NORMALIZED_TYPES
    assert_exactly_once(table.column("id").to_pylist(), poly.ground_truth(START, END))
    assert [r[0] for r in duckdb.sql(f"SELECT id FROM read_parquet('{local}')").fetchall()] == \
        table.column("id").to_pylist()
    _, local_path = export(f"file://{tmp_path}/lake/", output_format="normalized")
    assert local_path.read_bytes() == body  # the same bytes whatever the filesystem

    poly.faults = Faults(fail_after=poly.stats.ok_pages + 2)
    with pytest.raises(RetriesExhaustedError):
        export_op(f"s3://{s3.bucket}/lake/", destination_conn_id=AWS_CONN, output_format="normalized",
                  page_size=20).execute({})
    assert get(s3, key) == body
    assert uploads(s3) == []


# ---------------------------------------------------------------------------------------------- parse time


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"file_format": "csv"}, "file_format='csv' is not valid; allowed: 'jsonl', 'parquet'"),
    ({"file_format": "parquet", "compression": "lz4"},
     "compression='lz4' is not valid with file_format='parquet'; allowed: 'zstd', 'snappy', 'gzip' or None"),
    ({"compression": "zstd"},
     "compression='zstd' is not valid; allowed: 'gzip' or None (with file_format='parquet' only)"),
    ({"file_format": "jsonl", "compression": "snappy"},
     "compression='snappy' is not valid; allowed: 'gzip' or None (with file_format='parquet' only)"),
])
def test_bad_format_and_compression_fail_when_the_dag_is_parsed(kwargs, message):
    with pytest.raises(ConfigurationError) as err:
        ConversationsToObjectStorageOperator(task_id="t", conn_id="c", destination="file:///tmp/x/", **kwargs)
    assert str(err.value) == f"ConversationsToObjectStorageOperator 't': {message}"


@pytest.mark.parametrize(("kwargs", "compression", "name"), [
    ({}, "gzip", "conversations.jsonl.gz"),
    ({"compression": None}, None, "conversations.jsonl"),
    ({"file_format": "parquet"}, "zstd", "conversations.parquet"),
    ({"file_format": "parquet", "compression": "gzip"}, "gzip", "conversations.parquet"),
    ({"file_format": "parquet", "compression": None}, None, "conversations.parquet"),
])
def test_each_format_has_its_default_compression_and_its_name(kwargs, compression, name):
    from airflow_provider_conversations.windows import Window

    op = ConversationsToObjectStorageOperator(task_id="t", conn_id="c", destination="file:///tmp/x/", **kwargs)
    assert op.compression == compression
    assert op.object_path(Window.of(START, END), "polyai").name == name


def test_without_pyarrow_the_dag_fails_at_parse_time_naming_the_extra(monkeypatch, load_dag):
    for name in [m for m in sys.modules if m == "pyarrow" or m.startswith("pyarrow.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # "import pyarrow" raises ImportError
    source = '''
from airflow.sdk import DAG
from airflow_provider_conversations.operators.conversations import ConversationsToObjectStorageOperator

with DAG(dag_id="parquet_without_pyarrow", schedule=None) as dag:
    ConversationsToObjectStorageOperator(task_id="export", conn_id="poly", destination="file:///tmp/lake/",
                                         file_format="parquet")
'''
    with pytest.raises(MissingExtraError) as err:
        load_dag("parquet_without_pyarrow", source)
    assert isinstance(err.value, AirflowOptionalProviderFeatureException)
    assert str(err.value).startswith("ConversationsToObjectStorageOperator 'export': file_format='parquet' needs "
                                     "pyarrow, which is not installed")
    assert str(err.value).endswith("Install it with: pip install 'airflow-provider-conversations[parquet]'")
    # JSON Lines needs nothing more
    ConversationsToObjectStorageOperator(task_id="export", conn_id="poly", destination="file:///tmp/lake/")


def test_schema_for_each_output_format():
    assert schema_for("raw", "updated").names == ["id", "updated_at", "raw"]
    assert {f.name: f.type for f in schema_for("normalized")} == NORMALIZED_TYPES


def test_export_memory_is_flat_in_the_number_of_conversations(sim, set_connection, tmp_path, monkeypatch):
    """10x the conversations, the same peak of Python objects (tracemalloc); Arrow buffers (pyarrow's pool,
    sampled after every page) stay at a few row groups, a fraction of what the window holds.

    The Arrow bound is in row groups, not a ratio of two runs: how many groups wait in the writer thread's queue
    when a page is sampled depends on thread timing, and a small window may be written before the queue fills.
    """
    import tracemalloc

    monkeypatch.setattr(parquet, "ROW_GROUP_ROWS", 100)  # the small window already writes a few row groups
    s = sim("polyai", conversations=11_000, span=timedelta(hours=11), log_requests=False)
    set_connection("poly_mem", s.connection())
    arrow_peak = [0]
    write_records = ParquetWriter.write_records

    def sampled(self: ParquetWriter, records: Any) -> int:
        n = write_records(self, records)
        arrow_peak[0] = max(arrow_peak[0], pa.total_allocated_bytes())
        return n

    monkeypatch.setattr(ParquetWriter, "write_records", sampled)

    def peak(hours: int, dest: str) -> tuple[int, int, int, pq.ParquetFile]:
        arrow_peak[0] = 0
        tracemalloc.start()
        try:
            end = START + timedelta(hours=hours)
            manifest, _ = export(f"file://{tmp_path}/{dest}/", conn_id="poly_mem", output_format="normalized",
                                 page_size=200, start=START.isoformat(), end=end.isoformat())
            _, top = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        return manifest["count"], top, arrow_peak[0], pq.ParquetFile(manifest["uri"].removeprefix("file://"))

    peak(1, "warm")
    peak(10, "warm")
    (small_n, small, _, _), (large_n, large, large_arrow, written) = peak(1, "one"), peak(10, "ten")
    assert large_n > 9 * small_n > 750
    assert large < small * 1.3 + 256 * 1024, (small, large)
    data = written.read().nbytes  # the window's records as Arrow data
    groups = written.metadata.num_row_groups
    assert groups == -(-large_n // 100)
    # At most: the page being added (2 groups' rows), the group being cut, 2 queued, 1 being encoded, 2 spare.
    assert large_arrow <= 8 * data / groups < data / 7, (large_arrow, data, groups)
