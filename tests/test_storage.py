"""The JSON Lines writer: atomic replace, gzip determinism, empty objects, flat memory, crash leftovers."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import textwrap
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_conversations.exceptions import ConfigurationError
from airflow_provider_conversations.output import storage
from airflow_provider_conversations.output.storage import JsonLinesWriter
from airflow_provider_conversations.output.targets import atomic_target, object_uri

NAME = "conversations.jsonl.gz"


class Boom(RuntimeError):
    pass


def records(start: int, stop: int) -> list[dict[str, Any]]:
    return [{"id": f"c{i:07d}", "text": f"hello {i} " * 20, "n": i, "nested": {"a": [i, i + 1]}}
            for i in range(start, stop)]


def pages(n: int, size: int = 100) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, n, size):
        yield records(start, min(n, start + size))


def fail_midway(path: ObjectStoragePath, n: int, check: Any = None) -> None:
    """Write ``n`` records, run ``check`` while the writer is still open, then fail."""
    with JsonLinesWriter(path) as out:
        out.write_records(records(0, n))
        if check is not None:
            check()
        raise Boom("vendor went away")


def write(path: ObjectStoragePath, n: int, compression: str | None = "gzip") -> JsonLinesWriter:
    with JsonLinesWriter(path, compression=compression) as out:
        for page in pages(n):
            out.write_records(page)
    return out


def read_lines(p: Path) -> list[dict[str, Any]]:
    data = p.read_bytes()
    if p.name.endswith(".gz"):
        data = gzip.decompress(data)
    return [orjson.loads(line) for line in data.splitlines()]


def test_round_trip_gzip_and_counts(tmp_path):
    out = write(ObjectStoragePath(f"file://{tmp_path}/a/{NAME}"), 250)
    target = tmp_path / "a" / NAME
    assert read_lines(target) == records(0, 250)
    assert out.count == 250
    assert out.bytes == target.stat().st_size
    assert out.uncompressed_bytes == len(gzip.decompress(target.read_bytes()))
    assert out.uri == f"file://{target}"


def test_uncompressed_is_plain_json_lines_one_record_per_line(tmp_path):
    with JsonLinesWriter(ObjectStoragePath(f"{tmp_path}/x.jsonl"), compression=None) as out:
        out.write_records([{"text": "line one\nline two", "emoji": "\u2603"}, {"id": 2}])
    raw = (tmp_path / "x.jsonl").read_bytes()
    assert raw == b'{"text":"line one\\nline two","emoji":"\xe2\x98\x83"}\n{"id":2}\n'
    assert out.count == 2
    assert out.bytes == len(raw)


def test_gzip_is_byte_deterministic_without_name_or_mtime(tmp_path):
    write(ObjectStoragePath(f"file://{tmp_path}/one/{NAME}"), 300)
    write(ObjectStoragePath(f"file://{tmp_path}/two/{NAME}"), 300)
    a, b = (tmp_path / "one" / NAME).read_bytes(), (tmp_path / "two" / NAME).read_bytes()
    assert a == b
    assert a[:2] == b"\x1f\x8b"
    assert a[3] == 0, "no FNAME (or any other) flag: the header carries no file name"
    assert a[4:8] == b"\x00\x00\x00\x00", "mtime is zero"


def test_rewrite_replaces_the_object_with_identical_bytes(tmp_path):
    path = ObjectStoragePath(f"file://{tmp_path}/{NAME}")
    write(path, 120)
    first = (tmp_path / NAME).read_bytes()
    inode = (tmp_path / NAME).stat().st_ino
    write(path, 120)
    assert (tmp_path / NAME).read_bytes() == first
    assert (tmp_path / NAME).stat().st_ino != inode, "replaced by rename, not rewritten in place"
    assert os.listdir(tmp_path) == [NAME]


@pytest.mark.parametrize("compression", ["gzip", None])
def test_empty_window_writes_an_empty_object(tmp_path, compression):
    name = "empty.jsonl.gz" if compression else "empty.jsonl"
    with JsonLinesWriter(ObjectStoragePath(f"file://{tmp_path}/{name}"), compression=compression) as out:
        out.write_records([])
    data = (tmp_path / name).read_bytes()
    assert out.count == 0
    if compression:
        assert gzip.decompress(data) == b""  # a valid gzip stream of nothing, not a zero-byte .gz
        assert len(data) == out.bytes > 0
    else:
        assert data == b""


def test_exception_mid_stream_keeps_the_previous_object_and_leaves_no_temp(tmp_path):
    path = ObjectStoragePath(f"file://{tmp_path}/{NAME}")
    write(path, 50)
    before = (tmp_path / NAME).read_bytes()
    def while_writing() -> None:
        # the final name still holds the old object; the new bytes go to a hidden temp file in the same
        # directory (same filesystem, so os.replace is atomic), beside the lock this run holds on the object
        hidden = [n for n in os.listdir(tmp_path) if n != NAME]
        assert f".{NAME}.lock" in hidden
        hidden.remove(f".{NAME}.lock")
        assert len(hidden) == 1
        assert hidden[0].startswith(f".{NAME}.")
        assert hidden[0].endswith(".tmp")
        assert (tmp_path / NAME).read_bytes() == before

    with pytest.raises(Boom):
        fail_midway(path, 5000, while_writing)
    assert (tmp_path / NAME).read_bytes() == before
    assert os.listdir(tmp_path) == [NAME]


def test_exception_on_first_write_leaves_no_object(tmp_path):
    path = ObjectStoragePath(f"file://{tmp_path}/new/{NAME}")
    with pytest.raises(Boom):
        fail_midway(path, 10)
    assert os.listdir(tmp_path / "new") == []


def test_failing_commit_discards_the_temp_file_and_keeps_the_old_object(tmp_path, monkeypatch):
    path = ObjectStoragePath(f"file://{tmp_path}/{NAME}")
    write(path, 10)
    before = (tmp_path / NAME).read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr("airflow_provider_conversations.output.targets.os.replace", broken_replace)
    with pytest.raises(OSError, match="disk on fire"):
        write(path, 20)
    assert (tmp_path / NAME).read_bytes() == before
    assert os.listdir(tmp_path) == [NAME]


def test_a_storage_error_in_the_background_writer_fails_the_write_and_keeps_the_old_object(tmp_path, monkeypatch):
    """Compression and storage writes run in a thread: their errors must still fail the task, atomically."""
    path = ObjectStoragePath(f"file://{tmp_path}/{NAME}")
    write(path, 10)
    before = (tmp_path / NAME).read_bytes()
    real_write = storage._CountingStream.write
    calls = {"n": 0}

    def full_disk(self: Any, data: bytes) -> int:
        calls["n"] += 1
        if calls["n"] > 2:
            raise OSError(28, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(storage._CountingStream, "write", full_disk)
    with pytest.raises(OSError, match="No space left on device"):
        write(path, 20_000)
    assert (tmp_path / NAME).read_bytes() == before
    assert os.listdir(tmp_path) == [NAME]


def test_stale_temp_files_of_the_same_object_are_removed_and_nothing_else(tmp_path):
    stale = [f".{NAME}.{uuid.uuid4().hex}.tmp" for _ in range(2)]
    keep = [f".other.jsonl.gz.{uuid.uuid4().hex}.tmp", f".{NAME}.not-a-uuid.tmp", "notes.txt"]
    for name in stale + keep:
        (tmp_path / name).write_bytes(b"partial")
    out = write(ObjectStoragePath(f"file://{tmp_path}/{NAME}"), 3)
    assert out.stale_removed == 2
    assert sorted(os.listdir(tmp_path)) == sorted([NAME, *keep])


def test_killed_writer_leaves_previous_object_and_the_next_run_cleans_up(tmp_path):
    """SIGKILL mid-write (no exception handler runs): the old object stays, the leftover is removed later."""
    path = ObjectStoragePath(f"file://{tmp_path}/{NAME}")
    write(path, 7)
    before = (tmp_path / NAME).read_bytes()
    # The child does not import Airflow (seconds of start-up): the writer only needs the path's protocol and path.
    script = textwrap.dedent(f"""
        import time
        from types import SimpleNamespace
        from airflow_provider_conversations.output.storage import JsonLinesWriter
        with JsonLinesWriter(SimpleNamespace(protocol="file", path={path.path!r})) as out:
            out.write_records([{{"id": i, "pad": "x" * 300}} for i in range(20000)])
            print("writing", flush=True)
            time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "writing"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (tmp_path / NAME).read_bytes() == before
    leftovers = sorted(n for n in os.listdir(tmp_path) if n != NAME)
    assert len(leftovers) == 2  # its temp file, and the lock file its flock died with (the kernel released it)
    assert leftovers[0].startswith(f".{NAME}.")
    assert leftovers[0].endswith(".tmp")
    assert leftovers[1] == f".{NAME}.lock"
    out = write(path, 9)
    assert out.stale_removed == 1
    assert os.listdir(tmp_path) == [NAME]
    assert len(read_lines(tmp_path / NAME)) == 9


@pytest.mark.parametrize("compression", ["gzip", None])
def test_peak_memory_does_not_grow_with_the_number_of_records(tmp_path, compression):
    def peak(n: int) -> int:
        path = ObjectStoragePath(f"file://{tmp_path}/{n}/{NAME}")
        tracemalloc.start()
        try:
            out = write(path, n, compression)
            _, top = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert out.count == n
        return top

    write(ObjectStoragePath(f"file://{tmp_path}/warm-up/{NAME}"), 300, compression)  # imports, caches
    small, large = peak(2_000), peak(20_000)
    # 10x the records, same peak (one page of records plus fixed buffers), give or take allocator noise
    assert large < small * 1.25 + 64 * 1024, (small, large)


def test_memory_filesystem_is_atomic_too():
    """Non-local, non-S3 filesystems: temp object next to the final one, then a move."""
    from airflow.sdk.io import attach
    from fsspec.implementations.memory import MemoryFileSystem

    attach("memory", fs=MemoryFileSystem())
    root = f"memory://bucket/{uuid.uuid4().hex}"
    path = ObjectStoragePath(f"{root}/{NAME}")
    fs = path.fs
    out = write(path, 40)
    assert out.strategy == "temp object + server-side move"
    first = fs.cat_file(path.path)
    assert [orjson.loads(x) for x in gzip.decompress(first).splitlines()] == records(0, 40)

    with pytest.raises(Boom):
        fail_midway(path, 100)
    assert fs.cat_file(path.path) == first
    assert [p.rpartition("/")[2] for p in fs.ls(path.parent.path, detail=False)] == [NAME]

    fs.pipe_file(f"{path.parent.path}/.{NAME}.{uuid.uuid4().hex}.tmp", b"left by a killed task")
    assert write(path, 40).stale_removed == 1
    assert [p.rpartition("/")[2] for p in fs.ls(path.parent.path, detail=False)] == [NAME]
    assert fs.cat_file(path.path) == first


def test_local_paths_use_a_temp_file_in_the_destination_directory(tmp_path):
    target = atomic_target(ObjectStoragePath(f"file://{tmp_path}/d/{NAME}"))
    assert target.strategy == "local temp file + os.replace"
    assert os.path.dirname(target.temp) == str(tmp_path / "d")  # type: ignore[attr-defined]


def test_bad_compression_is_refused():
    with pytest.raises(ConfigurationError) as err:
        JsonLinesWriter(ObjectStoragePath("file:///tmp/x.jsonl"), compression="zip")
    assert str(err.value) == "compression='zip' is not valid; allowed: 'gzip' or None"


def test_write_outside_the_context_manager_is_refused(tmp_path):
    with pytest.raises(RuntimeError, match="use it as a context manager"):
        JsonLinesWriter(ObjectStoragePath(f"file://{tmp_path}/x.jsonl")).write_records([{"a": 1}])
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(("url", "uri"), [
    ("file:///data/out/x.jsonl.gz", "file:///data/out/x.jsonl.gz"),
    ("/data/out/x.jsonl.gz", "file:///data/out/x.jsonl.gz"),
    ("memory://bucket/a/x.jsonl", "memory://bucket/a/x.jsonl"),
])
def test_object_uri_has_no_connection_id(url, uri):
    assert object_uri(ObjectStoragePath(url)) == uri
