"""Resumable exports on S3 (moto's server on 127.0.0.1): staged multipart parts and a hidden tail object.

At a checkpoint the parts already full are in the upload (their ETags recorded) and the rest goes to a hidden
``.<name>.<token>.<n>.tail`` object; a retry checks the parts, reads the tail back and goes on. Nothing is
visible under the final key until the upload is completed.
"""

from __future__ import annotations

import gzip
from datetime import timedelta
from typing import Any

import orjson
import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_conversations.operators.conversations import ConversationsToObjectStorageOperator
from airflow_provider_conversations.output.storage import JsonLinesWriter
from airflow_provider_conversations.output.targets import StagedPartsMissing
from airflow_provider_conversations.testing import Faults
from tests.test_resume import WINDOW, DictStore, context, ids
from tests.test_s3_export import AWS_CONN, big_records, get, keys, moto_url, s3, uploads  # noqa: F401  (fixtures)

BLOCK = 5 * 2**20


class Boom(RuntimeError):
    pass


def write_in_chunks(out: JsonLinesWriter, chunks: list[list[dict[str, Any]]], saved: list[dict[str, Any]],
                    start: int = 0, fail_at: int | None = None) -> None:
    for i, chunk in enumerate(chunks[start:], start):
        if i == fail_at:
            raise Boom("vendor went away")
        out.write_records(chunk)
        out.checkpoint(lambda state, i=i: saved.append({"next": i + 1, **state}))


@pytest.mark.parametrize("compression", ["gzip", None])
def test_a_writer_resumes_its_multipart_upload_and_tail_to_the_same_bytes(s3, compression):  # noqa: F811  (the s3 fixture)
    path = ObjectStoragePath(f"s3://{s3.bucket}/mp/conversations.jsonl", conn_id=AWS_CONN)
    chunks = [big_records(3_000)[i * 500:(i + 1) * 500] for i in range(6)] + [big_records(9_000)[3_000:]]
    saved: list[dict[str, Any]] = []
    with JsonLinesWriter(path, compression=compression, block_size=BLOCK) as out:
        write_in_chunks(out, chunks, saved)
    reference = get(s3, "mp/conversations.jsonl")
    assert uploads(s3) == []
    assert keys(s3, "mp/") == ["mp/conversations.jsonl"], "the tails are removed on success"

    for fail_at in range(1, len(chunks)):
        saved = []
        s3.delete_object(Bucket=s3.bucket, Key="mp/conversations.jsonl")
        with pytest.raises(Boom), JsonLinesWriter(path, compression=compression, block_size=BLOCK) as out:
            write_in_chunks(out, chunks, saved, fail_at=fail_at)
        assert keys(s3, "mp/conversations.jsonl") == [], "no object before the commit"
        last = saved[-1]
        staged = last["staged"]
        if staged["tail"] is not None:
            assert staged["tail"] in keys(s3, "mp/.")
        assert [p["n"] for p in staged["parts"]] == list(range(1, len(staged["parts"]) + 1))
        with JsonLinesWriter(path, compression=compression, block_size=BLOCK,
                             resume={k: v for k, v in last.items() if k != "next"}) as out:
            write_in_chunks(out, chunks, [], start=last["next"])
        assert get(s3, "mp/conversations.jsonl") == reference, f"byte-identical after a failure at chunk {fail_at}"
        assert out.count == len(big_records(9_000))
        assert uploads(s3) == []
        assert keys(s3, "mp/") == ["mp/conversations.jsonl"]


def test_a_part_that_is_not_the_recorded_one_refuses_the_resume(s3):  # noqa: F811  (the s3 fixture)
    path = ObjectStoragePath(f"s3://{s3.bucket}/x/conversations.jsonl", conn_id=AWS_CONN)
    saved: list[dict[str, Any]] = []
    with pytest.raises(Boom), JsonLinesWriter(path, compression=None, block_size=BLOCK) as out:
        write_in_chunks(out, [big_records(7_000), big_records(1)], saved, fail_at=1)
    staged = saved[-1]["staged"]
    assert len(staged["parts"]) == 1
    # another run overwrote part 1 of the upload meanwhile
    s3.upload_part(Bucket=s3.bucket, Key="x/conversations.jsonl", UploadId=staged["upload_id"], PartNumber=1,
                   Body=b"y" * BLOCK)
    resumed = JsonLinesWriter(path, compression=None, block_size=BLOCK, resume=saved[-1])
    with pytest.raises(StagedPartsMissing, match="part 1 of upload"):
        resumed.open()
    with JsonLinesWriter(path, compression=None, block_size=BLOCK) as out:  # a fresh start cleans up
        out.write_records([{"id": 1}])
    assert out.stale_removed == 1 + (staged["tail"] is not None), "the old upload (and its tail, if any)"
    assert uploads(s3) == []
    assert keys(s3, "x/") == ["x/conversations.jsonl"]


def test_the_operator_resumes_on_s3_at_every_boundary_byte_identical(s3, sim, set_connection):  # noqa: F811  (the s3 fixture)
    s = sim("polyai", conversations=600, span=timedelta(hours=3))
    set_connection("polyai", s.connection())

    def op() -> ConversationsToObjectStorageOperator:
        return ConversationsToObjectStorageOperator(
            task_id="export", conn_id="polyai", destination=f"s3://{s3.bucket}/lake/", destination_conn_id=AWS_CONN,
            page_size=20, checkpoint_every_pages=3, hook_params={"max_attempts": 1})

    reference_manifest = op().execute(context(DictStore()))
    key = reference_manifest["uri"].removeprefix(f"s3://{s3.bucket}/")
    reference = get(s3, key)
    requests = s.stats.ok_pages
    assert_ids = ids(reference)
    assert sorted(assert_ids) == sorted(s.ground_truth(*WINDOW))
    for fail_after in range(1, requests):
        s3.delete_object(Bucket=s3.bucket, Key=key)
        store = DictStore()
        s.faults = Faults(fail_after=s.stats.ok_pages + fail_after)
        with pytest.raises(Exception):  # noqa: B017,PT011
            op().execute(context(store))
        assert key not in keys(s3, "lake/"), "no partial object is visible"
        s.faults = Faults()
        manifest = op().execute(context(store))
        assert get(s3, key) == reference, f"byte-identical after a failure after {fail_after} good requests"
        assert (manifest["resumed_from_page"] is None) == (fail_after < 3)
        assert store.data == {}
        assert keys(s3, "lake/") == [key], "no tail object is left"
        assert uploads(s3) == []
    assert orjson.loads(gzip.decompress(reference).splitlines()[0])["id"]


def test_two_runs_of_one_s3_object_never_interleave(s3, caplog):  # noqa: F811  (the s3 fixture)
    import threading
    import time

    caplog.set_level("INFO")
    path = ObjectStoragePath(f"s3://{s3.bucket}/c/conversations.jsonl.gz", conn_id=AWS_CONN)
    first = JsonLinesWriter(path).open()
    first.write_records([{"id": f"a{i}"} for i in range(1000)])
    assert keys(s3, "c/") == ["c/.conversations.jsonl.gz.lease"], "the first run holds the lease"
    errors: list[BaseException] = []

    def second_run() -> None:
        try:
            with JsonLinesWriter(path) as out:
                out.write_records([{"id": f"b{i}"} for i in range(10)])
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=second_run)
    thread.start()
    deadline = time.monotonic() + 60
    while "Another run is writing" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "Another run is writing" in caplog.text, "the second run waits for the lease"
    first.__exit__(None, None, None)
    assert ids(get(s3, "c/conversations.jsonl.gz")) == [f"a{i}" for i in range(1000)]
    thread.join()
    assert errors == []
    assert ids(get(s3, "c/conversations.jsonl.gz")) == [f"b{i}" for i in range(10)], "one complete run's output"
    assert keys(s3, "c/") == ["c/conversations.jsonl.gz"], "the lease is gone"


def test_an_expired_lease_of_a_killed_run_is_taken_over(s3):  # noqa: F811  (the s3 fixture)
    s3.put_object(Bucket=s3.bucket, Key="e/.conversations.jsonl.gz.lease", Body=b"",
                  Metadata={"owner": "0" * 32, "expires": "1.0"})
    with JsonLinesWriter(ObjectStoragePath(f"s3://{s3.bucket}/e/conversations.jsonl.gz", conn_id=AWS_CONN)) as out:
        out.write_records([{"id": 1}])
    assert keys(s3, "e/") == ["e/conversations.jsonl.gz"]


def test_a_parquet_export_resumes_on_s3_from_its_segments_byte_identical(s3, sim, set_connection, monkeypatch):  # noqa: F811  (the s3 fixture)
    import io

    import pyarrow.parquet as pq

    from airflow_provider_conversations.output import parquet

    monkeypatch.setattr(parquet, "ROW_GROUP_ROWS", 50)  # row groups, pages and checkpoints fall apart
    s = sim("polyai", conversations=600, span=timedelta(hours=3))
    set_connection("polyai", s.connection())

    def op(**kwargs: Any) -> ConversationsToObjectStorageOperator:
        kwargs.setdefault("checkpoint_every_pages", 3)
        return ConversationsToObjectStorageOperator(
            task_id="export", conn_id="polyai", destination=f"s3://{s3.bucket}/lake/", destination_conn_id=AWS_CONN,
            page_size=20, file_format="parquet", hook_params={"max_attempts": 1}, **kwargs)

    reference_manifest = op().execute(context(DictStore()))
    key = reference_manifest["uri"].removeprefix(f"s3://{s3.bucket}/")
    reference = get(s3, key)
    requests = s.stats.ok_pages
    assert keys(s3, "lake/") == [key], "no segment is left"
    table = pq.read_table(io.BytesIO(reference))
    assert sorted(table.column("id").to_pylist()) == sorted(s.ground_truth(*WINDOW))
    s3.delete_object(Bucket=s3.bucket, Key=key)
    op(checkpoint_every_pages=None).execute(context(DictStore()))
    assert get(s3, key) == reference, "the same bytes as an export without checkpoints"
    for fail_after in range(1, requests):
        s3.delete_object(Bucket=s3.bucket, Key=key)
        store = DictStore()
        s.faults = Faults(fail_after=s.stats.ok_pages + fail_after)
        with pytest.raises(Exception):  # noqa: B017,PT011
            op().execute(context(store))
        assert key not in keys(s3, "lake/"), "no partial object is visible"
        staged = [k.rpartition("/")[2] for k in keys(s3, "lake/")]
        assert len(staged) == fail_after // 3, "one hidden segment per checkpoint taken"
        assert all(k.endswith(".segment") and k.startswith(".") for k in staged)
        s.faults = Faults()
        before = s.stats.ok_pages
        manifest = op().execute(context(store))
        assert get(s3, key) == reference, f"byte-identical after a failure after {fail_after} good requests"
        assert manifest["resumed_from_page"] == (None if fail_after < 3 else fail_after // 3 * 3 + 1)
        assert s.stats.ok_pages - before == requests - fail_after // 3 * 3
        assert store.data == {}
        assert keys(s3, "lake/") == [key], "no segment or lease is left"
        assert uploads(s3) == []
