"""Streaming JSON Lines (optionally gzip) onto an ``ObjectStoragePath`` that appears whole, or not at all.

Records are written as they arrive, page by page: memory stays flat however many conversations a window
holds. The object becomes visible only when the writer exits cleanly (see ``targets.py`` for how, per kind of
filesystem); a failure or a killed task leaves the previous object (if any) untouched and no partial object
under the final name.

gzip output is byte-deterministic (``mtime=0``, no file name in the header, fixed level): the same records
give the same bytes, so a re-run of a window produces an identical object.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import gzip
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import PurePath
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

import orjson

from airflow_provider_conversations.exceptions import ConfigurationError
from airflow_provider_conversations.output.targets import AtomicTarget, atomic_target, object_uri

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

log = logging.getLogger(__name__)

Compression = Literal["gzip"] | None
COMPRESSIONS: tuple[str | None, ...] = ("gzip", None)
#: zlib's default: about 3x faster than gzip's 9 for a few percent more bytes. Fixed, so output is reproducible.
GZIP_LEVEL = 6
#: Errors opening a destination that the DAG author must fix (anything else, e.g. a network error, is raised as is).
_CONFIG_ERRORS = (PermissionError, FileNotFoundError, NotADirectoryError, IsADirectoryError, FileExistsError)
_CONFIG_ERRNOS = (errno.EROFS, errno.EACCES, errno.EPERM)


class DestinationError(ConfigurationError):
    """The export's destination cannot be written; raised before the first request to the vendor."""


def _why_not_writable(exc: OSError) -> str:
    """What is wrong with a destination, in the words a DAG author would use."""
    where = exc.filename or "the destination"
    if isinstance(exc, NotADirectoryError | FileExistsError) and isinstance(exc.filename, str):
        # Some component on the way is a regular file: name it.
        path = os.path.abspath(exc.filename)
        for parent in [path, *[str(p) for p in PurePath(path).parents]]:
            if os.path.exists(parent) and not os.path.isdir(parent):
                return f"{parent} is a regular file, not a directory"
    if isinstance(exc, IsADirectoryError):
        return f"{where} is a directory, not a file"
    if exc.errno == errno.EROFS:
        return f"{where} is on a read-only file system"
    if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM):
        return f"no permission to create or write {where} ({exc.strerror or exc})"
    if isinstance(exc, FileNotFoundError):
        return f"{where} does not exist and cannot be created ({exc.strerror or exc})"
    return f"{exc.strerror or exc} ({where})"


class _CountingStream:
    """Counts the bytes that reach storage (after compression)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.bytes = 0

    def write(self, data: bytes) -> int:
        self.raw.write(data)
        self.bytes += len(data)
        return len(data)

    def flush(self) -> None:
        self.raw.flush()


def json_lines(records: Iterable[Mapping[str, Any]]) -> bytes:
    """Records as JSON Lines (orjson keeps each record's key order)."""
    return b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in records)


class _BackgroundSink:
    """Compresses and stores in a thread, so gzip and storage I/O overlap the fetching (zlib releases the GIL).

    A bounded queue of chunks keeps memory flat; an error in the thread surfaces at the next write or at the end.
    A callable in the queue runs in the thread, in order with the chunks (a checkpoint: close a gzip member,
    make the bytes durable, save the walk's position), so checkpoints cost the fetching thread nothing.
    """

    def __init__(self, write: Callable[[builtins.bytes], Any], depth: int = 8) -> None:
        self._write = write
        self._queue: queue.Queue[builtins.bytes | Callable[[], None] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="jsonl-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            if self._error is None:
                try:
                    if callable(chunk):
                        chunk()
                    else:
                        self._write(chunk)
                except BaseException as exc:  # handed to the writing thread
                    self._error = exc

    def write(self, chunk: builtins.bytes | Callable[[], None]) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(chunk)

    def finish(self) -> None:
        """Wait until every chunk reached the sink; re-raise the thread's error, if any."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


class JsonLinesWriter:
    """Write records to one object as JSON Lines, atomically; use as a context manager.

    ::

        with JsonLinesWriter(path, compression="gzip") as out:
            for page in pages:
                out.write_records(page)
        out.count, out.bytes

    The object appears when the ``with`` block exits without an exception; on an exception it does not
    (and an existing object is left as it was). No record means an empty object (for gzip, a valid gzip
    stream of zero bytes), so "ran, nothing there" differs from "never ran".

    Checkpoints (the interface a resumable export needs from any writer): :meth:`checkpoint` ends the current
    gzip member at that point of the data (so the object is a sequence of gzip members whose boundaries depend
    only on where checkpoints fall in the data, and a resumed run writes the same bytes), makes everything
    written so far durable as staged parts (see ``targets.py``) and hands what a resume needs to a callback;
    ``resume=`` (that mapping) continues after it. :attr:`resumable` says whether the destination can stage.
    """

    def __init__(self, path: ObjectStoragePath, *, compression: str | None = "gzip",
                 block_size: int | None = None, resume: Mapping[str, Any] | None = None) -> None:
        if compression not in COMPRESSIONS:
            raise ConfigurationError(
                f"compression={compression!r} is not valid; allowed: 'gzip' or None"
            )
        self.path = path
        self.compression = compression
        self.block_size = block_size
        self.uri = object_uri(path)
        self.count = 0
        self.uncompressed_bytes = 0
        self.stale_removed = 0
        self.strategy = ""
        self.resume = resume
        self.checkpoints = 0
        self._target: AtomicTarget | None = None
        self._counter: _CountingStream | None = None
        self._sink: Any = None
        self._background: _BackgroundSink | None = None

    @property
    def resumable(self) -> bool:
        """Whether :meth:`checkpoint` makes the bytes durable (the destination can stage parts)."""
        return self._target is not None and self._target.resumable

    def checkpoint(self, on_durable: Callable[[dict[str, Any]], None] | None = None) -> None:
        """A boundary in the data: end the gzip member here; with ``on_durable``, also make every byte so far
        durable and call it (in the writer's thread, in order) with what :meth:`__init__`'s ``resume`` takes."""
        if self._background is None or self._target is None:
            raise RuntimeError("JsonLinesWriter is not open: use it as a context manager")
        count, uncompressed, target, counter = self.count, self.uncompressed_bytes, self._target, self._counter
        assert counter is not None

        def boundary() -> None:
            gz = self.compression == "gzip"
            if gz:
                self._sink.close()  # the member's trailer; the target stream stays open
            if on_durable is not None and target.resumable:
                # Staged up to the end of the member: the next member's header is the resumed run's to write.
                staged = target.stage()
                target.keep_staged = True  # a checkpoint refers to the parts from now on: a failure keeps them
                self.checkpoints += 1
                on_durable({"staged": staged, "count": count, "uncompressed_bytes": uncompressed,
                            "bytes": counter.bytes})
            if gz:
                self._sink = self._gzip(counter)

        self._background.write(boundary)

    @staticmethod
    def _gzip(stream: _CountingStream) -> gzip.GzipFile:
        # filename="" and mtime=0: no name and no time in the header: identical input, identical bytes.
        return gzip.GzipFile(filename="", mode="wb", fileobj=stream, compresslevel=GZIP_LEVEL, mtime=0)

    @property
    def bytes(self) -> int:
        """Bytes of the stored object (compressed size for gzip)."""
        return self._counter.bytes if self._counter is not None else 0

    def open(self) -> JsonLinesWriter:
        """Start the object (idempotent; ``with`` calls it): the place where an unusable destination shows.

        Call it before the first request to fail without one. Raises :class:`DestinationError` when the
        destination cannot be written: a regular file where a directory must be, a directory where the object
        must be, no permission, a read-only file system (and, for remote filesystems, whatever they report as
        a permission or not-found error).
        """
        if self._target is not None:
            return self
        target = atomic_target(self.path, block_size=self.block_size)
        self.strategy = target.strategy
        try:
            target.check()
            target.lock(on_wait=lambda: log.info(
                "Another run is writing %s; waiting for it to finish so the object is one run's output", self.uri))
            if self.resume is not None:
                target.resume(self.resume["staged"])  # StagedPartsMissing: the caller starts afresh
            self.stale_removed = target.cleanup_stale()
            raw = target.open()
        except BaseException as exc:
            target.keep_staged = True  # nothing of this run was written: whatever is staged is not ours to drop
            with contextlib.suppress(Exception):
                target.discard()  # releases the lock
            if not isinstance(exc, OSError) or (not isinstance(exc, _CONFIG_ERRORS)
                                                and exc.errno not in _CONFIG_ERRNOS):
                raise  # e.g. a network error: not the DAG author's to fix
            raise DestinationError(f"destination {self.uri} is not writable: {_why_not_writable(exc)}") from exc
        if self.stale_removed:
            log.info("Removed %d leftover(s) of an earlier interrupted write of %s", self.stale_removed, self.uri)
        self._counter = _CountingStream(raw)
        if self.resume is not None:
            self._counter.bytes = self.resume["bytes"]
            self.count, self.uncompressed_bytes = self.resume["count"], self.resume["uncompressed_bytes"]
        try:
            self._sink = self._gzip(self._counter) if self.compression == "gzip" else self._counter
        except BaseException:
            target.discard()
            raise
        self._target = target
        self._background = _BackgroundSink(lambda chunk: self._sink.write(chunk))
        return self

    def __enter__(self) -> JsonLinesWriter:
        return self.open()

    def write_records(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Append records (one JSON object per line); returns how many were written."""
        return self.write_lines(json_lines(records))

    def write_lines(self, chunk: builtins.bytes) -> int:  # (the class has a "bytes" property)
        """Append ready-made JSON Lines (each line ending with a newline); returns how many lines."""
        if self._background is None:
            raise RuntimeError("JsonLinesWriter is not open: use it as a context manager")
        n = chunk.count(b"\n")
        if chunk and self._background is not None:
            self._background.write(chunk)
        self.count += n
        self.uncompressed_bytes += len(chunk)
        return n

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        target, background = self._target, self._background
        self._background = None
        if target is None:
            return
        if exc_type is not None:
            try:
                if background is not None:
                    with contextlib.suppress(Exception):
                        background.finish()
                target.discard()
            except Exception:  # the original error matters more than a failed clean-up
                log.warning("Could not discard the partial write of %s", self.uri, exc_info=True)
            return
        try:
            if background is not None:
                background.finish()
            if self._sink is not self._counter:
                self._sink.close()  # gzip trailer; leaves the target stream open
            target.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                target.discard()
            raise


__all__ = [
    "COMPRESSIONS",
    "Compression",
    "DestinationError",
    "JsonLinesWriter",
    "json_lines",
]
