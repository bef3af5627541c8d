"""Export to s3:// against moto's S3 server on 127.0.0.1, through an Airflow AWS connection.

Small objects are uploaded in one request at commit; large ones stream as a multipart upload that is completed
on success and aborted on failure. Either way, a failed run leaves no object and the earlier one intact.
"""

from __future__ import annotations

import gzip
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import boto3
import orjson
import pendulum
import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_conversations.operators.conversations import ConversationsToObjectStorageOperator
from airflow_provider_conversations.output.storage import JsonLinesWriter
from airflow_provider_conversations.testing import Faults
from airflow_provider_conversations.testing.dataset import DEFAULT_START
from airflow_provider_conversations.windows import iso_z
from tests.helpers import assert_exactly_once

H = [DEFAULT_START + timedelta(hours=i) for i in range(5)]
AWS_CONN = "aws_moto"
KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}

SOURCE = '''
import pendulum
from airflow.sdk import DAG
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_conversations.operators.conversations import ConversationsToObjectStorageOperator

with DAG(
    dag_id="export_polyai_s3",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    default_args={{"retries": 0}},
) as dag:
    ConversationsToObjectStorageOperator(
        task_id="export",
        conn_id="poly_s3",
        destination="s3://{bucket}/lake/",
        destination_conn_id="{aws_conn}",
        page_size=50,
        hook_params={{"max_attempts": 2, "backoff": 0.01, "backoff_max": 0.02}},
    )
'''


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        from airflow.sdk.io.store import _STORE_CACHE

        for alias in [a for a in _STORE_CACHE if a.startswith(f"s3-{AWS_CONN}")]:
            del _STORE_CACHE[alias]


@pytest.fixture
def s3(moto_url, set_connection) -> Any:
    """A boto3 client on the moto server, a fresh bucket, and the Airflow AWS connection ``aws_moto``."""
    set_connection(AWS_CONN, {
        "conn_type": "aws", "login": KEYS["aws_access_key_id"], "password": KEYS["aws_secret_access_key"],
        "extra": {"endpoint_url": moto_url, "region_name": KEYS["region_name"]},
    })
    client = boto3.client("s3", endpoint_url=moto_url, **KEYS)
    client.bucket = f"lake-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=client.bucket)
    return client


def keys(client: Any, prefix: str = "") -> list[str]:
    response = client.list_objects_v2(Bucket=client.bucket, Prefix=prefix)
    return sorted(o["Key"] for o in response.get("Contents", []))


def uploads(client: Any) -> list[str]:
    return sorted(u["Key"] for u in client.list_multipart_uploads(Bucket=client.bucket).get("Uploads", []))


def get(client: Any, key: str) -> bytes:
    body: bytes = client.get_object(Bucket=client.bucket, Key=key)["Body"].read()
    return body


def window_key(start: datetime, end: datetime) -> str:
    return (f"lake/vendor=polyai/conn_id=poly_s3/time_key=created/start={iso_z(start)}/end={iso_z(end)}/"
            "conversations.jsonl.gz")


def test_dag_exports_to_s3_exactly_once_idempotent_and_atomic(s3, sim, set_connection, load_dag):
    poly = sim("polyai", conversations=1200, span=timedelta(hours=4))
    set_connection("poly_s3", poly.connection())
    dag = load_dag("export_polyai_s3", SOURCE.format(bucket=s3.bucket, aws_conn=AWS_CONN))

    for i in range(2):
        assert dag.test(logical_date=pendulum.instance(H[i + 1])).state == "success"
    objects = [window_key(H[i], H[i + 1]) for i in range(2)]
    assert keys(s3) == objects
    got = [orjson.loads(line)["id"] for key in objects for line in gzip.decompress(get(s3, key)).splitlines()]
    assert len(got) > 200
    assert_exactly_once(got, poly.ground_truth(H[0], H[2]))

    # re-run: identical bytes
    before = get(s3, objects[1])
    assert dag.test(logical_date=pendulum.instance(H[2])).state == "success"
    assert get(s3, objects[1]) == before

    # failing re-run of the first interval: the object stays as it was
    first = get(s3, objects[0])
    poly.faults = Faults(fail_after=poly.stats.ok_pages + 1)
    assert dag.test(logical_date=pendulum.instance(H[1])).state == "failed"
    assert get(s3, objects[0]) == first

    # failing new interval: no object, no upload left behind
    poly.faults = Faults(fail_after=poly.stats.ok_pages + 1)
    assert dag.test(logical_date=pendulum.instance(H[3])).state == "failed"
    assert keys(s3) == objects
    assert uploads(s3) == []


def test_operator_manifest_and_empty_window_on_s3(s3, sim, set_connection):
    poly = sim("polyai", conversations=300, span=timedelta(hours=2))
    set_connection("poly_s3", poly.connection())
    op = ConversationsToObjectStorageOperator(
        task_id="export", conn_id="poly_s3", destination=f"s3://{s3.bucket}/lake/", destination_conn_id=AWS_CONN)
    start = pendulum.instance(H[0] - timedelta(days=7))
    manifest = op.execute({"data_interval_start": start, "data_interval_end": start.add(hours=1)})
    key = (f"lake/vendor=polyai/conn_id=poly_s3/time_key=created/start={iso_z(start)}/"
           f"end={iso_z(start.add(hours=1))}/conversations.jsonl.gz")
    assert manifest["uri"] == f"s3://{s3.bucket}/{key}"
    assert manifest["destination_conn_id"] == AWS_CONN
    assert manifest["count"] == 0
    assert gzip.decompress(get(s3, key)) == b""
    assert manifest["bytes"] == len(get(s3, key))

    lineage = op.get_openlineage_facets_on_complete(None)
    (out,) = lineage.outputs
    assert (out.namespace, out.name) == (f"s3://{s3.bucket}", key)


def big_records(n: int) -> list[dict[str, Any]]:
    return [{"id": i, "pad": uuid.UUID(int=i).hex * 30} for i in range(n)]


def eventually(condition: Any, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_large_objects_stream_as_a_multipart_upload_that_is_aborted_on_failure(s3):
    path = ObjectStoragePath(f"s3://{s3.bucket}/mp/conversations.jsonl", conn_id=AWS_CONN)
    block = 5 * 2**20  # S3's smallest part: the writer holds at most about one part in memory
    batch = big_records(7_000)  # ~6.5 MiB as JSON Lines

    with JsonLinesWriter(path, compression=None, block_size=block) as out:
        out.write_records(batch)
        # the writer's background thread uploads the first part while the task keeps fetching
        assert eventually(lambda: uploads(s3) == ["mp/conversations.jsonl"]), "parts go up while writing"
        assert keys(s3, "mp/") == ["mp/.conversations.jsonl.lease"], "but no object exists before the commit (only " \
            "the hidden lease this run holds)"
    assert out.strategy == "multipart upload, completed on success, aborted on failure"
    written = get(s3, "mp/conversations.jsonl")
    assert [orjson.loads(x) for x in written.splitlines()] == batch
    assert out.bytes == len(written)
    assert uploads(s3) == []

    class Boom(RuntimeError):
        pass

    def fail_midway() -> None:
        with JsonLinesWriter(path, compression=None, block_size=block) as out:
            out.write_records(big_records(8_000))
            assert eventually(lambda: uploads(s3) == ["mp/conversations.jsonl"])
            raise Boom("vendor went away")

    with pytest.raises(Boom):
        fail_midway()
    assert uploads(s3) == [], "the multipart upload was aborted"
    assert get(s3, "mp/conversations.jsonl") == written, "the previous object is untouched"


def test_a_killed_writers_multipart_upload_is_aborted_by_the_next_run(s3):
    stale = s3.create_multipart_upload(Bucket=s3.bucket, Key="k/conversations.jsonl.gz")["UploadId"]
    s3.upload_part(Bucket=s3.bucket, Key="k/conversations.jsonl.gz", UploadId=stale, PartNumber=1, Body=b"x")
    other = s3.create_multipart_upload(Bucket=s3.bucket, Key="k/other.jsonl.gz")["UploadId"]
    with JsonLinesWriter(ObjectStoragePath(f"s3://{s3.bucket}/k/conversations.jsonl.gz", conn_id=AWS_CONN)) as out:
        out.write_records([{"id": 1}])
    assert out.stale_removed == 1
    assert uploads(s3) == ["k/other.jsonl.gz"], "only uploads to the same key are aborted"
    assert gzip.decompress(get(s3, "k/conversations.jsonl.gz")) == b'{"id":1}\n'
    s3.abort_multipart_upload(Bucket=s3.bucket, Key="k/other.jsonl.gz", UploadId=other)
