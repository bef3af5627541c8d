"""Resumable Parquet exports: a try that fails after a checkpoint is continued by the next one, byte for byte.

The records of each checkpoint interval are spooled to a hidden segment beside the object; the Parquet file is
written from the segments at the end, in row groups of ``ROW_GROUP_ROWS`` records of the walk (50 here, so that
row groups, pages and checkpoints all fall at different places), exactly as an uninterrupted run writes it.
"""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from airflow_provider_conversations.output import parquet
from airflow_provider_conversations.tasks.checkpoint import KEY
from airflow_provider_conversations.testing import Faults
from tests.helpers import assert_exactly_once
from tests.test_resume import PAGE, VENDORS, WINDOW, DictStore, context, hidden_files, operator, the_object

ROWS = 50


@pytest.fixture(autouse=True)
def small_row_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parquet, "ROW_GROUP_ROWS", ROWS)


def pq_ids(data: bytes, column: str = "id") -> list[str]:
    return [str(v) for v in pq.read_table(io.BytesIO(data)).column(column).to_pylist()]


def run(dest: Path, vendor: str, store: DictStore | None, **kwargs: Any) -> dict[str, Any]:
    return operator(dest, vendor, page_size=PAGE[vendor], file_format="parquet", **kwargs).execute(context(store))


@pytest.mark.parametrize("vendor", ["polyai", "anyreach"])
def test_a_failure_after_every_request_resumes_to_the_same_parquet_bytes(tmp_path, sim, set_connection, vendor):
    s = sim(vendor, **VENDORS[vendor])
    set_connection(vendor, s.connection())
    ref = run(tmp_path / "reference", vendor, DictStore())
    reference = the_object(tmp_path / "reference").read_bytes()
    requests, pages = s.stats.ok_pages, ref["pages"]
    # the same bytes as an export without checkpoints (records written straight into row groups)
    run(tmp_path / "plain", vendor, DictStore(), checkpoint_every_pages=None)
    assert the_object(tmp_path / "plain").read_bytes() == reference
    assert ref["checkpoints"] == (pages - 1) // 2
    assert ref["resumed_from_page"] is None
    meta = pq.ParquetFile(io.BytesIO(reference)).metadata
    assert meta.num_rows == ref["count"]
    assert meta.num_row_groups == -(-ref["count"] // ROWS)
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups - 1)] == [ROWS] * (meta.num_row_groups - 1)
    assert_exactly_once(pq_ids(reference), s.ground_truth(*WINDOW))

    resumed_any = False
    for fail_after in range(1, requests):
        dest = tmp_path / f"f{fail_after}"
        store = DictStore()
        s.faults = Faults(fail_after=s.stats.ok_pages + fail_after)
        with pytest.raises(Exception):  # noqa: B017,PT011  (the vendor's error, whichever it is)
            run(dest, vendor, store)
        assert [p for p in dest.rglob("*") if p.is_file() and not p.name.startswith(".")] == [], "no partial object"
        if fail_after > 2:
            assert KEY in store.data
            assert all(n.endswith(".segment") for n in hidden_files(dest)), "only the staged segments are left"
        s.faults = Faults()
        before = s.stats.ok_pages
        manifest = run(dest, vendor, store)
        data = the_object(dest).read_bytes()
        assert data == reference, f"byte-identical after a failure after {fail_after} good requests"
        assert manifest["count"] == ref["count"]
        assert store.data == {}, "the checkpoint is removed on success"
        assert hidden_files(dest) == [], "no segment or lock is left"
        resumed = manifest["resumed_from_page"]
        if resumed is None:
            assert fail_after <= 2
            assert s.stats.ok_pages - before == requests
        else:
            resumed_any = True
            assert (resumed - 1) % 2 == 0
            assert manifest["pages"] == pages - (resumed - 1), "only the pages after the checkpoint"
    assert resumed_any


def test_the_checkpoint_names_the_segments_and_the_resume_is_logged(tmp_path, sim, set_connection, logs):
    s = sim("polyai", **VENDORS["polyai"])
    set_connection("polyai", s.connection())
    store = DictStore()
    reference = run(tmp_path / "reference", "polyai", None)
    s.faults = Faults(fail_after=s.stats.ok_pages + 6)
    with pytest.raises(Exception):  # noqa: B017,PT011
        run(tmp_path / "a", "polyai", store)
    s.faults = Faults()
    saved = store.data[KEY]
    assert saved["walk"]["number"] == 6
    output = saved["output"]
    assert output["count"] == 6 * 20
    segments = output["staged"]["segments"]
    assert [n.rsplit(".", 2)[-2] for n, _ in segments] == ["1", "2", "3"], "one segment per checkpoint"
    on_disk = {p.name: p.stat().st_size for p in (tmp_path / "a").rglob(".*.segment")}
    assert on_disk == dict(segments)
    manifest = run(tmp_path / "a", "polyai", store)
    assert manifest["resumed_from_page"] == 7
    assert manifest["pages"] == reference["pages"] - 6, "only the pages after page 6"
    assert "Resuming from page 7 of the window: 120 conversations already written" in logs()
    assert the_object(tmp_path / "a").read_bytes() == the_object(tmp_path / "reference").read_bytes()


def test_a_checkpoint_of_another_export_is_ignored(tmp_path, sim, set_connection, logs):
    s = sim("polyai", **VENDORS["polyai"])
    set_connection("polyai", s.connection())
    store = DictStore()
    s.faults = Faults(fail_after=5)
    with pytest.raises(Exception):  # noqa: B017,PT011
        run(tmp_path, "polyai", store)
    s.faults = Faults()
    assert KEY in store.data
    manifest = operator(tmp_path, "polyai", page_size=25, file_format="parquet").execute(context(store))
    assert manifest["resumed_from_page"] is None
    assert "Ignoring the checkpoint in the task state store: it belongs to another export" in logs()
    assert_exactly_once(pq_ids(the_object(tmp_path).read_bytes()), s.ground_truth(*WINDOW))
    assert hidden_files(tmp_path) == [], "the other export's segments were removed as stale"


def test_a_missing_segment_means_a_fresh_start_with_a_log_line(tmp_path, sim, set_connection, logs):
    s = sim("polyai", **VENDORS["polyai"])
    set_connection("polyai", s.connection())
    store = DictStore()
    s.faults = Faults(fail_after=6)
    with pytest.raises(Exception):  # noqa: B017,PT011
        run(tmp_path, "polyai", store)
    s.faults = Faults()
    first = next(tmp_path.rglob(".*.1.segment"))
    os.unlink(first)
    manifest = run(tmp_path, "polyai", store)
    assert manifest["resumed_from_page"] is None
    assert f"Ignoring the checkpoint: the staged segment {first} is gone; starting from the window start" in logs()
    assert_exactly_once(pq_ids(the_object(tmp_path).read_bytes()), s.ground_truth(*WINDOW))
    assert hidden_files(tmp_path) == []


def test_parallel_parquet_exports_take_no_checkpoints(tmp_path, sim, set_connection, logs):
    s = sim("polyai", **VENDORS["polyai"])
    set_connection("polyai", s.connection())
    store = DictStore()
    manifest = run(tmp_path, "polyai", store, max_parallel=2)
    assert manifest["checkpoints"] == 0
    assert store.sets == 0
    assert "max_parallel=2: no checkpoints (resuming is for sequential exports)" in logs()
    assert_exactly_once(pq_ids(the_object(tmp_path).read_bytes()), s.ground_truth(*WINDOW))


def test_a_checkpoint_is_never_continued_where_segments_cannot_be_staged():
    from airflow.sdk import ObjectStoragePath
    from airflow.sdk.io import attach
    from fsspec.implementations.memory import MemoryFileSystem

    from airflow_provider_conversations.output.targets import StagedPartsMissing

    attach("memory", fs=MemoryFileSystem())
    path = ObjectStoragePath(f"memory://bucket/{uuid.uuid4().hex}/conversations.parquet")  # temp object + move
    resume = {"staged": {"token": "0" * 32, "segments": []}, "count": 40, "bytes": 0, "uncompressed_bytes": 0}
    writer = parquet.ParquetWriter(path, columns=parquet.Columns("normalized"), resume=resume)
    with pytest.raises(StagedPartsMissing, match="cannot hold staged segments"):
        writer.open()
    with parquet.ParquetWriter(path, columns=parquet.Columns("normalized"), checkpointed=True) as out:
        out.write_records([{"id": "a", "created_at": "2026-11-17T00:00:00Z"}])
        out.checkpoint(lambda state: pytest.fail(f"nothing is durable here, yet a checkpoint was saved: {state}"))
    assert out.checkpoints == 0
    assert pq_ids(path.read_bytes()) == ["a"]
