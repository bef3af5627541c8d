"""Resumable parallel exports: each sub-window checkpoints on its own; a retry walks only what is left.

A failure is injected after every few successful requests of a ``max_parallel=4`` export (16 sub-windows); the
retry must give the exact set, the same bytes as an uninterrupted parallel run (and, decompressed, as a
sequential run), and must not request a completed sub-window again.
"""

from __future__ import annotations

import gzip
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from airflow_provider_conversations.engine.parallel import PARTS_PER_WORKER
from airflow_provider_conversations.operators.conversations import ConversationsToObjectStorageOperator
from airflow_provider_conversations.tasks.checkpoint import KEY
from airflow_provider_conversations.testing import Faults
from airflow_provider_conversations.windows import Window, iso_z
from tests.helpers import assert_exactly_once
from tests.test_resume import VENDORS, WINDOW, DictStore, context, hidden_files, ids, operator, the_object
from tests.test_s3_export import AWS_CONN, get, keys, moto_url, s3, uploads  # noqa: F401  (fixtures)

WORKERS = 4
PAGE = 5
EVERY = 2
#: The query parameter holding each sub-window's lower bound: which sub-window a request belongs to.
LOWER = {"polyai": "start_time", "replyful": "createdAt[gte]", "elevenlabs": "call_start_after_unix",
         "anyreach": "created_after"}
ID = {"elevenlabs": "conversation_id"}
SUB_WINDOWS = Window.of(*WINDOW).split(WORKERS * PARTS_PER_WORKER)


def per_sub_window(s: Any, vendor: str) -> Counter[str]:
    """Page requests the simulator answered with success since its log was reset, per sub-window (Anyreach's
    probes move the lower bound within a sub-window: its requests are put in the sub-window holding it)."""
    def which(bound: str | None) -> str | None:
        if vendor != "anyreach" or bound is None:
            return bound
        at = datetime.fromisoformat(bound)
        return next(iso_z(w.start) for w in SUB_WINDOWS if w.start <= at < w.end)
    return Counter(which(r.one(LOWER[vendor])) for r in s.requests if not r.outcome)


def run(dest: Path, vendor: str, store: DictStore | None, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("max_parallel", WORKERS)
    return operator(dest, vendor, page_size=PAGE, checkpoint_every_pages=EVERY, **kwargs).execute(context(store))


@pytest.mark.parametrize("vendor", ["polyai", "replyful", "elevenlabs", "anyreach"])
def test_a_parallel_export_resumes_per_sub_window_to_the_same_bytes(tmp_path, sim, set_connection, vendor):
    s = sim(vendor, **VENDORS[vendor])
    set_connection(vendor, s.connection())
    truth = s.ground_truth(*WINDOW)
    sequential = run(tmp_path / "seq", vendor, DictStore(), max_parallel=1)
    seq_bytes = the_object(tmp_path / "seq").read_bytes()
    s.reset_log()
    reference = run(tmp_path / "ref", vendor, DictStore())
    ref_bytes = the_object(tmp_path / "ref").read_bytes()
    whole = per_sub_window(s, vendor)
    assert len(whole) == WORKERS * PARTS_PER_WORKER
    assert max(whole.values()) > EVERY * 2, "several checkpoints per sub-window"
    assert gzip.decompress(ref_bytes) == gzip.decompress(seq_bytes), "the sequential export's records, in order"
    assert_exactly_once(ids(ref_bytes, ID.get(vendor, "id")), truth)
    assert reference["count"] == sequential["count"] == len(truth)
    assert reference["checkpoints"] >= len(whole), "one at every sub-window's end at least"
    requests = sum(whole.values())
    resumed = 0
    for fail_after in range(1, requests, 5):
        dest = tmp_path / f"f{fail_after}"
        store = DictStore()
        s.faults = Faults(fail_after=s.stats.ok_pages + fail_after)
        with pytest.raises(Exception):  # noqa: B017,PT011  (the vendor's error, whichever it is)
            run(dest, vendor, store)
        assert [p for p in dest.rglob("*") if p.is_file() and not p.name.startswith(".")] == [], "no partial object"
        saved = store.data.get(KEY)
        done = {} if saved is None else {k: p for k, p in saved["walk"]["parallel"]["parts"].items() if p["done"]}
        s.faults = Faults()
        s.reset_log()
        manifest = run(dest, vendor, store)
        again = per_sub_window(s, vendor)
        data = the_object(dest).read_bytes()
        assert data == ref_bytes, f"byte-identical after a failure after {fail_after} good requests"
        assert manifest["count"] == reference["count"]
        assert store.data == {}, "the checkpoint is removed on success"
        assert hidden_files(dest) == [], "no staged part file or lock is left"
        assert sum(again.values()) <= requests
        if saved is None:
            assert sum(again.values()) == requests, "no checkpoint yet: the retry walked the whole window"
            continue
        assert manifest["resumed_from_page"] is not None
        resumed += 1
        # each sub-window re-walks at most one checkpoint interval (plus the page that ends it)
        for bound, n in again.items():
            assert n <= whole[bound], bound
        assert sum(again.values()) < requests
        # completed sub-windows are not requested again: as many sub-windows fewer were walked
        assert len(again) == len(whole) - len(done)
    assert resumed > 0, "most failures came after a checkpoint"


def test_the_checkpoint_shows_each_sub_window_and_its_staged_part_files(tmp_path, sim, set_connection):
    s = sim("polyai", **VENDORS["polyai"])
    set_connection("polyai", s.connection())
    run(tmp_path / "ref", "polyai", DictStore())
    requests = s.stats.ok_pages
    store = DictStore()
    dest = tmp_path / "failed"
    s.faults = Faults(fail_after=s.stats.ok_pages + requests * 6 // 10)
    with pytest.raises(Exception):  # noqa: B017,PT011
        run(dest, "polyai", store)
    saved = store.data[KEY]
    state = saved["walk"]["parallel"]
    assert set(state) == {"token", "descending", "parts"}
    assert state["descending"] is False
    parts = state["parts"]
    assert parts, "sub-windows started"
    assert {int(k) for k in parts} <= set(range(WORKERS * PARTS_PER_WORKER))
    for k, part in parts.items():
        assert set(part) == {"chunks", "position", "done", "count"}
        if part["done"]:
            assert part["position"] is None
        elif part["position"] is None:
            assert part["chunks"] == [], "no boundary yet: the sub-window starts afresh"
        else:
            assert part["position"]["number"] % EVERY == 0, "a position at a checkpoint boundary"
            assert part["position"]["next"] is not None
        for m, (size, boundary) in enumerate(part["chunks"]):
            staged = dest / "vendor=polyai"
            (found,) = [p for p in staged.rglob(f".conversations.jsonl.gz.{state['token']}.part-{k}.{m}")] or [None]
            if size:
                assert found is not None
                assert found.stat().st_size == size
                lines = found.read_bytes().splitlines()
                assert all(orjson.loads(line)["id"] for line in lines)
            assert boundary in (0, 1)
    assert any(p["done"] for p in parts.values())
    assert any(not p["done"] for p in parts.values())
    assert sum(p["count"] for p in parts.values()) > 0
    assert len(orjson.dumps(saved)) < 64 * 1024


def test_without_a_state_store_a_parallel_export_is_not_checkpointed_but_the_same(tmp_path, sim, set_connection):
    s = sim("replyful", **VENDORS["replyful"])
    set_connection("replyful", s.connection())
    run(tmp_path / "ref", "replyful", DictStore())
    run(tmp_path / "plain", "replyful", None)
    assert the_object(tmp_path / "plain").read_bytes() == the_object(tmp_path / "ref").read_bytes()
    assert hidden_files(tmp_path / "plain") == []


def test_missing_part_files_mean_a_fresh_start_with_a_log_line(tmp_path, sim, set_connection, logs):
    s = sim("polyai", **VENDORS["polyai"])
    set_connection("polyai", s.connection())
    run(tmp_path / "ref", "polyai", DictStore())
    requests = s.stats.ok_pages
    store = DictStore()
    dest = tmp_path / "failed"
    s.faults = Faults(fail_after=s.stats.ok_pages + requests // 2)
    with pytest.raises(Exception):  # noqa: B017,PT011
        run(dest, "polyai", store)
    staged = [p for p in dest.rglob(".*.part-*") if p.stat().st_size]
    assert staged
    staged[0].unlink()
    s.faults = Faults()
    s.reset_log()
    manifest = run(dest, "polyai", store)
    assert manifest["resumed_from_page"] is None
    assert sum(per_sub_window(s, "polyai").values()) == requests
    assert the_object(dest).read_bytes() == the_object(tmp_path / "ref").read_bytes()
    assert hidden_files(dest) == []
    assert "Ignoring the checkpoint: the staged part file" in logs()
    assert "is gone" in logs()


def test_a_parallel_export_resumes_on_s3_byte_identical(s3, sim, set_connection):  # noqa: F811  (the s3 fixture)
    """On S3 the part files are hidden objects beside the final key; none is visible after success."""
    s = sim("polyai", **VENDORS["polyai"])
    set_connection("polyai", s.connection())

    def op() -> ConversationsToObjectStorageOperator:
        return ConversationsToObjectStorageOperator(
            task_id="export", conn_id="polyai", destination=f"s3://{s3.bucket}/lake/", destination_conn_id=AWS_CONN,
            page_size=PAGE, checkpoint_every_pages=EVERY, max_parallel=WORKERS, hook_params={"max_attempts": 1})

    s.reset_log()
    reference_manifest = op().execute(context(DictStore()))
    whole = per_sub_window(s, "polyai")
    key = reference_manifest["uri"].removeprefix(f"s3://{s3.bucket}/")
    reference = get(s3, key)
    assert sorted(ids(reference)) == sorted(s.ground_truth(*WINDOW))
    requests = sum(whole.values())
    resumed = 0
    for fail_after in range(3, requests, requests // 4):
        s3.delete_object(Bucket=s3.bucket, Key=key)
        store = DictStore()
        s.faults = Faults(fail_after=s.stats.ok_pages + fail_after)
        with pytest.raises(Exception):  # noqa: B017,PT011
            op().execute(context(store))
        assert key not in keys(s3, "lake/"), "no partial object is visible"
        saved = store.data.get(KEY)
        if saved is not None:
            token = saved["walk"]["parallel"]["token"]
            staged = [k for k in keys(s3, "lake/") if f".{token}.part-" in k]
            assert staged, "the part files are hidden objects beside the final key"
            assert all(k.rpartition("/")[2].startswith(".") for k in keys(s3, "lake/"))
        s.faults = Faults()
        s.reset_log()
        manifest = op().execute(context(store))
        assert get(s3, key) == reference, f"byte-identical after a failure after {fail_after} good requests"
        assert store.data == {}
        assert keys(s3, "lake/") == [key], "no part file is left"
        assert uploads(s3) == []
        if saved is not None:
            resumed += 1
            assert manifest["resumed_from_page"] is not None
            assert sum(per_sub_window(s, "polyai").values()) < requests
    assert resumed > 0


class SizedStore(DictStore):
    """Remembers the largest checkpoint saved."""

    largest = 0

    def set(self, key: str, value: Any) -> None:
        super().set(key, value)
        self.largest = max(self.largest, len(orjson.dumps(value)))


def test_the_checkpoint_of_64_workers_stays_small(tmp_path, sim, set_connection):
    """64 workers x 4 sub-windows: only the sub-windows in flight hold a position, far below the 256 KiB cap."""
    s = sim("polyai", conversations=6000, span=timedelta(hours=3))
    set_connection("polyai", s.connection())
    store = SizedStore()
    s.reset_log()
    run(tmp_path / "ref", "polyai", store, max_parallel=64)
    assert len(per_sub_window(s, "polyai")) == 64 * PARTS_PER_WORKER
    assert store.sets > 64 * PARTS_PER_WORKER, "a checkpoint at every sub-window boundary and end"
    assert 0 < store.largest < 96 * 1024
