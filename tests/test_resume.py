"""Resumable exports: a try that fails after a checkpoint is continued by the next one, byte for byte.

A dict-backed stand-in for Airflow's task state store (same get/set/delete/clear, JSON values only) keeps the
checkpoint between two ``execute()`` calls of the same operator, as a retry of the same task instance would.
"""

from __future__ import annotations

import gzip
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pendulum
import pytest

from airflow_provider_conversations.exceptions import ConfigurationError
from airflow_provider_conversations.operators.conversations import ConversationsToObjectStorageOperator
from airflow_provider_conversations.tasks.checkpoint import KEY, MAX_CHECKPOINT_BYTES
from airflow_provider_conversations.testing import Faults
from airflow_provider_conversations.testing.dataset import DEFAULT_START
from tests.helpers import assert_exactly_once

FAST = {"max_attempts": 1}
GZ = "conversations.jsonl.gz"
WINDOW = (DEFAULT_START, DEFAULT_START + timedelta(hours=2))


class DictStore:
    """Airflow's ``TaskStateStoreAccessor`` API over a dict; values must survive a JSON round trip."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.sets = 0

    def get(self, key: str, default: Any = None) -> Any:
        return orjson.loads(orjson.dumps(self.data[key])) if key in self.data else default

    def set(self, key: str, value: Any) -> None:
        assert value is not None
        self.data[key] = orjson.loads(orjson.dumps(value))
        self.sets += 1

    def delete(self, key: str) -> None:
        self.data.pop(key, None)

    def clear(self) -> None:
        self.data.clear()


def context(store: DictStore | None, window: tuple[datetime, datetime] = WINDOW) -> dict[str, Any]:
    ctx: dict[str, Any] = {"data_interval_start": pendulum.instance(window[0]),
                           "data_interval_end": pendulum.instance(window[1])}
    if store is not None:
        ctx["task_state_store"] = store
    return ctx


def operator(dest: Path | str, conn_id: str, **kwargs: Any) -> ConversationsToObjectStorageOperator:
    kwargs.setdefault("checkpoint_every_pages", 2)
    kwargs.setdefault("hook_params", FAST)
    return ConversationsToObjectStorageOperator(task_id="export", conn_id=conn_id, destination=f"file://{dest}/",
                                                **kwargs)


def the_object(dest: Path) -> Path:
    (found,) = [p for p in dest.rglob("*") if p.is_file() and not p.name.startswith(".")]
    return found


def hidden_files(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.rglob(".*") if p.is_file())


def ids(data: bytes, id_field: str = "id") -> list[str]:
    return [str(orjson.loads(line)[id_field]) for line in gzip.decompress(data).splitlines()]


VENDORS: dict[str, dict[str, Any]] = {
    "polyai": {"conversations": 600, "span": timedelta(hours=3)},
    "replyful": {"conversations": 600, "span": timedelta(hours=3)},
    "elevenlabs": {"conversations": 600, "span": timedelta(hours=3)},
    # ties across page and checkpoint boundaries: 15 conversations on each of many instants
    "anyreach": {"conversations": 600, "span": timedelta(hours=3),
                 "tie_groups": [(DEFAULT_START + timedelta(minutes=m), 15) for m in range(5, 120, 7)]},
    "parrotmob": {"conversations": 600, "span": timedelta(hours=3)},
}
PAGE = {"polyai": 20, "replyful": 20, "elevenlabs": 20, "anyreach": 20, "parrotmob": 20}


def uninterrupted(tmp_path: Path, sim: Any, set_connection: Any, vendor: str,
                  **kwargs: Any) -> tuple[Any, bytes, dict[str, Any]]:
    s = sim(vendor, **VENDORS[vendor])
    set_connection(vendor, s.connection())
    reference_dir = tmp_path / "reference"
    manifest = operator(reference_dir, vendor, page_size=PAGE[vendor], **kwargs).execute(context(DictStore()))
    return s, the_object(reference_dir).read_bytes(), manifest


def fail_then_resume(tmp_path: Path, s: Any, vendor: str, fail_after: int,
                     **kwargs: Any) -> tuple[bytes, dict[str, Any], DictStore, int]:
    """One failing try (every request after ``fail_after`` more good pages fails), then the retry."""
    dest = tmp_path / f"f{fail_after}"
    store = DictStore()
    op = operator(dest, vendor, page_size=PAGE[vendor], **kwargs)
    s.faults = Faults(fail_after=s.stats.ok_pages + fail_after)
    with pytest.raises(Exception):  # noqa: B017,PT011  (the vendor's error, whichever it is)
        op.execute(context(store))
    assert [p for p in dest.rglob("*") if p.is_file() and not p.name.startswith(".")] == [], "no partial object"
    s.faults = Faults()
    before = s.stats.ok_pages
    manifest = op.execute(context(store))
    assert store.data == {}, "the checkpoint is removed on success"
    assert hidden_files(dest) == [], "no staged part, tail or lock is left"
    return the_object(dest).read_bytes(), manifest, store, s.stats.ok_pages - before


@pytest.mark.parametrize("vendor", ["polyai", "replyful", "elevenlabs", "anyreach", "parrotmob"])
def test_a_failure_at_every_checkpoint_boundary_resumes_to_the_same_bytes(tmp_path, sim, set_connection, vendor):
    s, reference, ref = uninterrupted(tmp_path, sim, set_connection, vendor)
    every = 2
    pages = ref["pages"]
    requests = s.stats.ok_pages
    assert pages >= 8, "enough pages for several checkpoints"
    assert ref["checkpoints"] == (pages - 1) // every  # none at the last page: nothing is left to resume
    assert ref["resumed_from_page"] is None
    truth = s.ground_truth(*WINDOW)
    assert_exactly_once(ids(reference, "id" if vendor != "elevenlabs" else "conversation_id"), truth)
    # the object is a sequence of gzip members, one per checkpoint interval (plus the last)
    assert reference.count(b"\x1f\x8b\x08\x00\x00\x00\x00\x00") >= ref["checkpoints"] + 1

    for fail_after in range(1, requests):
        data, manifest, _store, retried = fail_then_resume(tmp_path, s, vendor, fail_after)
        assert data == reference, f"byte-identical after a failure after {fail_after} good requests"
        assert manifest["count"] == ref["count"]
        resumed = manifest["resumed_from_page"]
        if resumed is None:
            assert retried == requests, "no checkpoint yet: the retry walked the whole window"
        else:
            assert (resumed - 1) % every == 0
            assert manifest["pages"] == pages - (resumed - 1), "only the pages after the checkpoint"
            assert retried <= requests - (resumed - 1)


def test_parrotmob_with_inserts_during_the_walk_resumes_exactly(tmp_path, sim, set_connection):
    s = sim("parrotmob", conversations=600, span=timedelta(hours=3), inserts_per_request=3)
    set_connection("parrotmob", s.connection())
    truth = s.ground_truth(*WINDOW)  # inserts land "now", after the window: its set does not change
    operator(tmp_path / "whole", "parrotmob", page_size=20).execute(context(DictStore()))
    requests = s.stats.ok_pages
    for fail_after in (requests * 5 // 10, requests * 7 // 10, requests * 9 // 10):  # past the seek probes
        store = DictStore()
        dest = tmp_path / f"i{fail_after}"
        op = operator(dest, "parrotmob", page_size=20)
        s.faults = Faults(fail_after=s.stats.ok_pages + fail_after)
        with pytest.raises(Exception):  # noqa: B017,PT011
            op.execute(context(store))
        assert KEY in store.data
        s.faults = Faults()
        manifest = op.execute(context(store))
        assert manifest["resumed_from_page"] is not None
        assert_exactly_once(ids(the_object(dest).read_bytes()), truth)
        assert manifest["count"] == len(truth)


def test_checkpoint_contents_name_the_walk_position_and_the_staged_part(tmp_path, sim, set_connection):
    s = sim("polyai", **VENDORS["polyai"])
    set_connection("polyai", s.connection())
    store = DictStore()
    dest = tmp_path / "d"
    s.faults = Faults(fail_after=5)
    with pytest.raises(Exception):  # noqa: B017,PT011
        operator(dest, "polyai", page_size=20).execute(context(store))
    saved = store.data[KEY]
    assert len(saved["identity"]) == 64
    walk, output = saved["walk"], saved["output"]
    assert walk["number"] == 4
    assert walk["next"]["probe"] is False
    assert walk["next"]["params"]["cursor"]  # PolyAI v3: the cursor the fifth page is asked with
    assert walk["paginator"] == {}  # a body cursor lives in the next request alone
    assert walk["dedup"]["order"] == "asc"
    assert walk["dedup"]["frontier"]["$dt"].startswith("2026-")
    staged = output["staged"]
    assert staged["temp"] in hidden_files(dest)
    assert staged["size"] == output["bytes"]
    (part,) = [p for p in dest.rglob(staged["temp"])]
    written = part.read_bytes()[:staged["size"]]
    assert len(ids(written)) == output["count"] > 0, "the staged bytes hold exactly the counted conversations"


def test_offset_paginator_state_round_trips(tmp_path, sim, set_connection):
    from airflow_provider_conversations.engine.paginators import OffsetPaginator
    from airflow_provider_conversations.hooks.anyreach import TieSafeCursorPaginator
    from airflow_provider_conversations.hooks.parrotmob import NewestFirstPaginator, _Seek

    p = OffsetPaginator(50, next_offset="next_offset")
    p.offset = 150
    assert p.to_json() == {"offset": 150}
    q = OffsetPaginator(50, next_offset="next_offset")
    q.from_json(orjson.loads(orjson.dumps(p.to_json())))
    assert q.offset == 150

    t = pendulum.datetime(2026, 11, 1, 10, 0, 0, 123456, tz="UTC")
    n = NewestFirstPaginator(50, first_offset=0, trusted=False, start=t)
    n.offset, n.proven, n._prev = 300, True, ("c1", t, t)
    n._seek = _Seek(lo=1, hi=3, end=t, params={"limit": "1"}, step=2, bisecting=True, at=2)
    m = NewestFirstPaginator(50, first_offset=0, trusted=False, start=t)
    m.from_json(orjson.loads(orjson.dumps(n.to_json())))
    assert (m.offset, m.proven, m.disordered, m._prev, m._seek) == (300, True, False, ("c1", t, t), n._seek)

    a = TieSafeCursorPaginator(100)
    a.comparison, a.limit, a._strict_verified = "strict", 1000, True
    a._probing = (t, "2026-11-01T10:00:00.123456Z", {"limit": "100", "cursor": "x"}, 1000)
    a._asked = (t, "2026-11-01T10:00:00.123456Z")
    b = TieSafeCursorPaginator(100)
    b.from_json(orjson.loads(orjson.dumps(a.to_json())))
    assert (b.comparison, b.limit, b._strict_verified, b._probing, b._asked) == (
        "strict", 1000, True, a._probing, a._asked)
    with pytest.raises(ValueError, match="lacks"):
        b.from_json({"comparison": "strict"})


def test_a_checkpoint_of_another_export_is_ignored_with_a_log_line(tmp_path, sim, set_connection, logs):
    s = sim("polyai", **VENDORS["polyai"])
    set_connection("polyai", s.connection())
    store = DictStore()
    s.faults = Faults(fail_after=5)
    with pytest.raises(Exception):  # noqa: B017,PT011
        operator(tmp_path / "a", "polyai", page_size=20).execute(context(store))
    s.faults = Faults()
    assert KEY in store.data
    # the same task instance, but the DAG now asks for another page size: another export
    manifest = operator(tmp_path / "a", "polyai", page_size=25).execute(context(store))
    assert manifest["resumed_from_page"] is None
    assert "Ignoring the checkpoint in the task state store: it belongs to another export" in logs()
    assert_exactly_once(ids(the_object(tmp_path / "a").read_bytes()), s.ground_truth(*WINDOW))
    assert hidden_files(tmp_path / "a") == [], "the other export's staged file was removed as stale"


@pytest.mark.parametrize(("value", "why"), [
    ("not an object", "it is not an object but str"),
    ({"identity": None}, "it belongs to another export"),
    ("x" * (MAX_CHECKPOINT_BYTES + 1), f"more than the {MAX_CHECKPOINT_BYTES} a checkpoint may hold"),
])
def test_corrupt_or_oversized_state_is_ignored_with_a_warning(tmp_path, sim, set_connection, logs, value, why):
    s = sim("polyai", **VENDORS["polyai"])
    set_connection("polyai", s.connection())
    store = DictStore()
    store.data[KEY] = value
    manifest = operator(tmp_path, "polyai", page_size=20).execute(context(store))
    assert manifest["resumed_from_page"] is None
    assert why in logs()
    assert_exactly_once(ids(the_object(tmp_path).read_bytes()), s.ground_truth(*WINDOW))


def test_corrupt_walk_state_of_this_export_is_ignored(tmp_path, sim, set_connection, logs):
    s = sim("polyai", **VENDORS["polyai"])
    set_connection("polyai", s.connection())
    store = DictStore()
    s.faults = Faults(fail_after=5)
    with pytest.raises(Exception):  # noqa: B017,PT011
        operator(tmp_path, "polyai", page_size=20).execute(context(store))
    s.faults = Faults()
    store.data[KEY]["walk"]["number"] = "four"
    manifest = operator(tmp_path, "polyai", page_size=20).execute(context(store))
    assert manifest["resumed_from_page"] is None
    assert "it is corrupt" in logs()


def test_staged_file_gone_means_a_fresh_start_with_a_log_line(tmp_path, sim, set_connection, logs):
    s = sim("polyai", **VENDORS["polyai"])
    set_connection("polyai", s.connection())
    store = DictStore()
    s.faults = Faults(fail_after=5)
    with pytest.raises(Exception):  # noqa: B017,PT011
        operator(tmp_path, "polyai", page_size=20).execute(context(store))
    s.faults = Faults()
    for name in hidden_files(tmp_path):
        for p in tmp_path.rglob(name):
            os.unlink(p)
    manifest = operator(tmp_path, "polyai", page_size=20).execute(context(store))
    assert manifest["resumed_from_page"] is None
    assert "Ignoring the checkpoint: the staged file" in logs()
    assert "is gone" in logs()


def test_the_resume_is_logged_with_page_and_count(tmp_path, sim, set_connection, logs):
    s = sim("polyai", **VENDORS["polyai"])
    set_connection("polyai", s.connection())
    store = DictStore()
    s.faults = Faults(fail_after=6)
    with pytest.raises(Exception):  # noqa: B017,PT011
        operator(tmp_path, "polyai", page_size=20).execute(context(store))
    s.faults = Faults()
    written = store.data[KEY]["output"]["count"]
    manifest = operator(tmp_path, "polyai", page_size=20).execute(context(store))
    assert manifest["resumed_from_page"] == 7
    assert f"Resuming from page 7 of the window: {written} conversations already written" in logs()


def test_no_state_store_means_no_checkpoint_but_the_same_bytes(tmp_path, sim, set_connection):
    s = sim("polyai", **VENDORS["polyai"])
    set_connection("polyai", s.connection())
    with_store = operator(tmp_path / "a", "polyai", page_size=20).execute(context(DictStore()))
    without = operator(tmp_path / "b", "polyai", page_size=20).execute(context(None))
    assert without["checkpoints"] == 0 < with_store["checkpoints"]
    assert the_object(tmp_path / "a").read_bytes() == the_object(tmp_path / "b").read_bytes()


@pytest.mark.parametrize("value", [0, -1, 2.5, True, "100"])
def test_checkpoint_every_pages_is_checked_when_the_dag_is_parsed(value):
    with pytest.raises(ConfigurationError, match=rf"checkpoint_every_pages={value!r} is not valid; expected a "
                                                 "positive integer"):
        operator("/tmp/x", "polyai", checkpoint_every_pages=value)


def test_two_runs_of_one_object_never_interleave(tmp_path, caplog):
    import threading
    import time

    from airflow.sdk import ObjectStoragePath

    from airflow_provider_conversations.output.storage import JsonLinesWriter

    caplog.set_level("INFO")
    path = ObjectStoragePath(f"file://{tmp_path}/{GZ}")
    first = JsonLinesWriter(path).open()
    first.write_records([{"id": f"a{i}"} for i in range(1000)])
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
        time.sleep(0.01)
    assert "Another run is writing" in caplog.text, "the second run waits for the lock"
    assert not (tmp_path / GZ).exists()
    first.__exit__(None, None, None)  # the first run completes while the second waits
    thread.join()
    assert errors == []
    assert ids((tmp_path / GZ).read_bytes()) == [f"b{i}" for i in range(10)], "one complete run's output"
    assert hidden_files(tmp_path) == []
