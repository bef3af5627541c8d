"""Streaming Parquet onto an ``ObjectStoragePath`` that appears whole, or not at all (``file_format="parquet"``).

The sibling of :class:`~airflow_provider_conversations.output.storage.JsonLinesWriter`, with the same shape
(``open()``, a context manager, ``write_records()``, ``count``, ``bytes``, ``uri``, ``strategy``) and the same
atomic targets (``targets.py``): the object appears when the ``with`` block exits cleanly; a failure leaves no
partial object and an existing one untouched.

- **Typed and drift-proof.** A fixed schema per ``output_format`` (:func:`schema_for`): the common fields as
  typed columns, and the whole record as a JSON string in ``raw``, so a vendor adding fields can never drop data
  or break the schema.
- **Streamed.** Each page becomes an Arrow batch as it arrives (no Python record outlives its page); batches are
  buffered up to ``row_group_rows`` and written as one row group, so memory holds a few row groups whatever the
  window holds. Boundaries fall every ``row_group_rows`` records of the walk, never on
  page boundaries, so they do not depend on page sizes or on how parallel sub-windows arrived.
- **Deterministic.** pyarrow writes no time and no random id; the key-value metadata holds only the export's
  identity and window (sorted JSON). The same records give the same bytes.

pyarrow is the optional extra ``airflow-provider-conversations[parquet]``; it is imported lazily, and
:func:`require_pyarrow` says what to install when it is missing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import re
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson
from airflow.sdk.exceptions import AirflowOptionalProviderFeatureException

from airflow_provider_conversations.exceptions import ConfigurationError
from airflow_provider_conversations.output.storage import (
    _CONFIG_ERRNOS,
    _CONFIG_ERRORS,
    DestinationError,
    _why_not_writable,
)
from airflow_provider_conversations.output.targets import (
    AtomicTarget,
    StagedPartsMissing,
    atomic_target,
    fsync_directory,
    is_local,
    object_uri,
)
from airflow_provider_conversations.windows import iso_z

if TYPE_CHECKING:
    import pyarrow as pa
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_conversations.engine.plan import TimeKey

log = logging.getLogger(__name__)

#: What ``compression`` takes with ``file_format="parquet"`` (zstd: smaller than snappy at a similar speed).
COMPRESSIONS: tuple[str | None, ...] = ("zstd", "snappy", "gzip", None)
DEFAULT_COMPRESSION = "zstd"
#: Records per row group: large enough for efficient scans, small enough that one buffered group stays a few MB.
ROW_GROUP_ROWS = 10_000
#: The key of the export's identity and window in the file's key-value metadata.
METADATA_KEY = "airflow_provider_conversations"
#: Bumped when the columns change, so readers can tell files apart.
SCHEMA_VERSION = 1
EXTRA = "airflow-provider-conversations[parquet]"


class MissingExtraError(ConfigurationError, AirflowOptionalProviderFeatureException):
    """``file_format="parquet"`` without pyarrow: the DAG fails at parse time, naming the extra to install."""


def require_pyarrow() -> ModuleType:
    """Import pyarrow (and ``pyarrow.parquet``), or say which extra to install."""
    try:
        import pyarrow
        import pyarrow.parquet  # the writer: a module of its own in the same wheel
    except ImportError as exc:
        raise MissingExtraError(
            f"file_format='parquet' needs pyarrow, which is not installed ({exc}). Install it with: "
            f"pip install '{EXTRA}'"
        ) from None
    return pyarrow


_DESCRIPTIONS = {
    "vendor": "the vendor's connection type, e.g. polyai",
    "id": "the vendor's conversation id, as a string",
    "created_at": "when the conversation was created (UTC)",
    "updated_at": "when the conversation was last updated (UTC); null for vendors without an update time",
    "status": "the vendor's status, as the vendor spells it",
    "finished": "whether the status is one of the vendor's terminal statuses",
    "channel": "voice, chat, ... as the vendor reports it",
    "duration_seconds": "the conversation's duration in seconds, when the vendor reports one",
    "messages": "the transcript, when details were fetched: role, text and time of each message",
    "raw": "the whole record as JSON (the vendor's item, minus exclude_fields): nothing is ever dropped",
}


def schema_for(output_format: str, time_key: str = "created") -> pa.Schema:
    """The file's columns: see the module docstring and the README's "Parquet output" section.

    ``normalized``: vendor, id, created_at, updated_at, status, finished, channel, duration_seconds, messages,
    raw. ``raw``: id, ``<time_key>_at``, raw.
    """
    pa = require_pyarrow()
    ts = pa.timestamp("us", tz="UTC")

    def field(name: str, type_: Any) -> Any:
        description = _DESCRIPTIONS.get(name) or f"the conversation's {name.removesuffix('_at')} time (UTC)"
        return pa.field(name, type_, metadata={"description": description})

    if output_format == "raw":
        return pa.schema([field("id", pa.string()), field(f"{time_key}_at", ts), field("raw", pa.string())])
    message = pa.struct([("role", pa.string()), ("text", pa.string()), ("at", ts)])
    return pa.schema([
        field("vendor", pa.string()), field("id", pa.string()), field("created_at", ts), field("updated_at", ts),
        field("status", pa.string()), field("finished", pa.bool_()), field("channel", pa.string()),
        field("duration_seconds", pa.float64()), field("messages", pa.list_(message)), field("raw", pa.string()),
    ])


_DICTIONARY_COLUMNS = ("vendor", "status", "channel")


def _text(value: Any) -> str | None:
    """A string column's value: a vendor's status is usually a string, but a number or an object must not fail
    the export (it is kept as its JSON text)."""
    if value is None or value.__class__ is str:
        return value
    return orjson.dumps(value, default=str).decode()


def _iso(value: Any) -> str | None:
    if isinstance(value, datetime):
        return iso_z(value)
    return value if isinstance(value, str) else None


def _messages(value: Any) -> list[dict[str, Any]] | None:
    if not isinstance(value, list):
        return None
    return [{"role": m.get("role"), "text": m.get("text"), "at": _iso(m.get("at"))}
            for m in value if isinstance(m, Mapping)]


class Columns:
    """Turns shaped records (what :class:`~airflow_provider_conversations.output.records.RecordShaper` returns)
    into Arrow record batches of :func:`schema_for`'s schema.

    Normalized records carry their times as ISO 8601 strings: they are parsed by Arrow's cast, in C++. Raw
    records get their id and time from the vendor's declarations (``id_field``, the walk's time key).
    """

    def __init__(self, output_format: str, *, id_field: str = "id", time_key: TimeKey | None = None) -> None:
        if output_format == "raw" and time_key is None:
            raise ValueError("raw Parquet output needs the walk's time key")
        self.pa = require_pyarrow()
        self.output_format = output_format
        self.id_field = id_field
        self.time_key = time_key
        self.schema = schema_for(output_format, time_key.name if time_key is not None else "created")
        pa = self.pa
        self._ts = pa.timestamp("us", tz="UTC")
        self._messages_text = pa.list_(pa.struct([("role", pa.string()), ("text", pa.string()),
                                                  ("at", pa.string())]))

    def batch(self, records: Sequence[Mapping[str, Any]]) -> pa.RecordBatch:
        pa, dumps = self.pa, orjson.dumps
        if self.output_format == "raw":
            key = self.time_key
            assert key is not None
            id_field = self.id_field
            ids = [None if (v := r.get(id_field)) is None else str(v) for r in records]
            times = [key.of(r) for r in records]
            # str, not bytes: a list of orjson's bytes kept alive costs about twice the encoding itself
            # (measured: 0.6 against 0.27 s per 100,000 PolyAI records), while decoded text does not.
            raw = [dumps(r).decode() for r in records]
            return pa.RecordBatch.from_arrays(
                [pa.array(ids, pa.string()), pa.array(times, self._ts), pa.array(raw, pa.string())],
                schema=self.schema)
        get = [r.get for r in records]

        def col(name: str) -> list[Any]:
            return [g(name) for g in get]

        def text(name: str) -> list[str | None]:
            return [_text(g(name)) for g in get]

        messages = None
        if any("messages" in r for r in records):
            messages = pa.array([_messages(r.get("messages")) for r in records], self._messages_text).cast(
                self.schema.field("messages").type)
        # absent: exclude_fields=["raw"]; decoded as in the raw schema (cheaper than a list of bytes)
        raws = [dumps(r["raw"]).decode() if "raw" in r else None for r in records]
        duration = [v if isinstance(v := r.get("duration_seconds"), int | float) and not isinstance(v, bool)
                    else None for r in records]
        arrays = [
            pa.array(text("vendor"), pa.string()),
            pa.array([None if (v := r.get("id")) is None else str(v) for r in records], pa.string()),
            pa.array([_iso(v) for v in col("created_at")], pa.string()).cast(self._ts),
            pa.array([_iso(v) for v in col("updated_at")], pa.string()).cast(self._ts),
            pa.array(text("status"), pa.string()),
            pa.array([v if v.__class__ is bool else None for v in col("finished")], pa.bool_()),
            pa.array(text("channel"), pa.string()),
            pa.array(duration, pa.float64()),
            messages if messages is not None else pa.nulls(len(records), self.schema.field("messages").type),
            pa.array(raws, pa.string()),
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)


def file_metadata(identity: Mapping[str, Any]) -> dict[str, str]:
    """The file's key-value metadata: the export's identity and window as sorted JSON (no write time)."""
    body = {"schema_version": SCHEMA_VERSION, **identity}
    return {METADATA_KEY: orjson.dumps(body, option=orjson.OPT_SORT_KEYS).decode()}


class _CountingStream:
    """Counts the bytes that reach storage; ``tell()`` for pyarrow's output stream."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.bytes = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self.raw.write(data)
        self.bytes += len(data)
        return len(data)

    def tell(self) -> int:
        return self.bytes

    def flush(self) -> None:
        self.raw.flush()

    def writable(self) -> bool:
        return True

    def close(self) -> None:  # pyarrow closes its sink; the target's stream is committed or discarded elsewhere
        self.closed = True


class _BackgroundGroups:
    """Encodes, compresses and stores row groups in a thread (pyarrow releases the GIL while it encodes), so that
    work overlaps the fetching, as JSON Lines' gzip thread does. The queue holds at most ``depth`` row groups:
    memory stays flat. An error in the thread surfaces at the next row group or at the end."""

    def __init__(self, writer: Any, row_group_rows: int, depth: int = 2) -> None:
        self._writer = writer
        self._rows = row_group_rows
        self._queue: queue.Queue[pa.Table | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._finished = False
        self._thread = threading.Thread(target=self._run, name="parquet-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (table := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._writer.write_table(table, row_group_size=self._rows)
                except BaseException as exc:  # handed to the writing thread
                    self._error = exc

    def put(self, table: pa.Table) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(table)

    def finish(self) -> None:
        """Wait until every row group is written; re-raise the thread's error, if any (idempotent)."""
        if not self._finished:
            self._finished = True
            self._queue.put(None)
            self._thread.join()
        if self._error is not None:
            raise self._error


class ArrowParts:
    """The record batches of each parallel sub-window, spooled to a local temporary Arrow IPC stream per
    sub-window (memory stays flat) and replayed batch by batch, for
    :func:`~airflow_provider_conversations.engine.parallel.in_walk_order`."""

    def __init__(self, schema: pa.Schema) -> None:
        self.pa = require_pyarrow()
        self.schema = schema
        self._parts: dict[int, tuple[BinaryIO, Any]] = {}

    def add(self, part: int, payload: pa.RecordBatch) -> None:
        entry = self._parts.get(part)
        if entry is None:
            f = tempfile.TemporaryFile(prefix="conversations-part-")  # noqa: SIM115  (closed by close())
            entry = self._parts[part] = (f, self.pa.ipc.new_stream(self.pa.PythonFile(f, mode="w"), self.schema))
        entry[1].write_batch(payload)

    def replay(self, parts: list[int]) -> Iterator[pa.RecordBatch]:
        for part in parts:
            entry = self._parts.get(part)
            if entry is None:
                continue
            f, writer = entry
            writer.close()
            f.seek(0)
            yield from self.pa.ipc.open_stream(self.pa.PythonFile(f, mode="r"))

    def close(self) -> None:
        for f, _ in self._parts.values():
            f.close()
        self._parts.clear()


class _Segments:
    """The checkpointed records of a resumable Parquet export: one hidden Arrow IPC stream (zstd) per checkpoint
    interval, ``.<name>.<token>.<n>.segment`` beside the object (local: fsync'ed; remote: one object each).

    Why not the Parquet bytes themselves: pyarrow cannot reopen a Parquet file, and the footer (every row group's
    offsets and statistics) can only be written by the writer that wrote the row groups. So a checkpointed
    export spools its records here, and at the end writes the Parquet file in one pass from the segments, in
    row groups of ``row_group_rows`` records of the walk as always: the same records give the same bytes whether
    the segments came from one try or several. Arrow IPC round-trips Arrow data exactly.
    """

    def __init__(self, path: ObjectStoragePath, schema: pa.Schema, batch_rows: int = ROW_GROUP_ROWS) -> None:
        self.pa = require_pyarrow()
        self.schema = schema
        self.local = is_local(path)
        self.fs = None if self.local else path.fs
        full: str = os.path.abspath(path.path) if self.local else path.fs._strip_protocol(path.path)
        self.directory, _, self.name = full.rpartition("/")
        self.token = uuid.uuid4().hex
        #: (file name, size, a local copy to replay from or None: read it back from storage)
        self.done: list[tuple[str, int, BinaryIO | None]] = []
        self._file: BinaryIO | None = None
        self._stream: Any = None
        self._options = self.pa.ipc.IpcWriteOptions(compression="zstd")
        #: Pages' batches not yet in the stream: written together, as one batch per ``batch_rows`` records,
        #: so a segment is not thousands of small, separately compressed batches.
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self.batch_rows = batch_rows

    def pattern(self) -> re.Pattern[str]:
        return re.compile(rf"^\.{re.escape(self.name)}\.[0-9a-f]{{32}}\.[0-9]+\.segment$")

    def _where(self, name: str) -> str:
        return f"{self.directory}/{name}"

    def _size(self, name: str) -> int:
        if self.local:
            return os.path.getsize(self._where(name))
        assert self.fs is not None
        return int(self.fs.size(self._where(name)))

    def resume(self, staged: Mapping[str, Any]) -> None:
        """Continue the segments a checkpoint names, when each is there with its recorded size."""
        try:
            token, segments = staged["token"], [(str(n), int(z)) for n, z in staged["segments"]]
            if not (isinstance(token, str) and re.fullmatch("[0-9a-f]{32}", token)):
                raise ValueError(token)
            pattern = self.pattern()
            if not all(pattern.match(n) and f".{token}." in n for n, _ in segments):
                raise ValueError(segments)
        except (KeyError, TypeError, ValueError):
            raise StagedPartsMissing(f"the checkpoint does not describe staged segments of {self.name}") from None
        for name, size in segments:
            try:
                found = self._size(name)
            except FileNotFoundError:
                raise StagedPartsMissing(f"the staged segment {self._where(name)} is gone") from None
            if found != size:
                raise StagedPartsMissing(f"the staged segment {self._where(name)} holds {found} bytes, the "
                                         f"checkpoint {size}")
        self.token = token
        self.done = [(n, z, None) for n, z in segments]

    def cleanup_stale(self) -> int:
        """Remove segments of other (interrupted, unresumed) tries of this object; keep the resumed ones."""
        pattern, own = self.pattern(), {n for n, _, _ in self.done}
        if self.local:
            try:
                names = os.listdir(self.directory)
            except FileNotFoundError:
                return 0
        else:
            assert self.fs is not None
            try:
                names = [str(e).rstrip("/").rpartition("/")[2]
                         for e in self.fs.ls(self.directory, detail=False, refresh=True)]
            except FileNotFoundError:
                return 0
        stale = [n for n in names if pattern.match(n) and n not in own]
        for name in stale:
            self._remove(name)
        return len(stale)

    def _remove(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            if self.local:
                os.unlink(self._where(name))
            else:
                assert self.fs is not None
                self.fs.rm_file(self._where(name))

    def _next_name(self) -> str:
        return f".{self.name}.{self.token}.{len(self.done) + 1}.segment"

    def write(self, batch: pa.RecordBatch) -> None:
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        if self._pending_rows >= self.batch_rows:
            self._write_pending()

    def _write_pending(self) -> None:
        if not self._pending:
            return
        batches = self.pa.Table.from_batches(self._pending, schema=self.schema).combine_chunks().to_batches()
        self._pending, self._pending_rows = [], 0
        if self._stream is None:
            if self.local:
                os.makedirs(self.directory, exist_ok=True)
                self._file = open(self._where(self._next_name()), "xb+")  # noqa: SIM115  (closed by close())
            else:
                self._file = tempfile.TemporaryFile(prefix="conversations-segment-")  # noqa: SIM115
            self._stream = self.pa.ipc.new_stream(self.pa.PythonFile(self._file, mode="w"), self.schema,
                                                  options=self._options)
        for batch in batches:
            self._stream.write_batch(batch)

    def seal(self) -> dict[str, Any]:
        """Make the records written since the last seal durable as a segment; what a checkpoint records."""
        self._write_pending()
        if self._stream is not None:
            f, name = self._file, self._next_name()
            assert f is not None
            self._stream.close()
            self._stream = self._file = None
            f.flush()
            if self.local:
                os.fsync(f.fileno())
                fsync_directory(self.directory)
            else:
                assert self.fs is not None
                f.seek(0)
                self.fs.pipe_file(self._where(name), f.read())
            self.done.append((name, f.tell(), f))
        return {"token": self.token, "segments": [[n, z] for n, z, _ in self.done]}

    def replay(self) -> Iterator[pa.RecordBatch]:
        """Every segment's batches, in order (the open one sealed first, without durability: the end is near)."""
        self._write_pending()
        if self._stream is not None:
            self._stream.close()
            assert self._file is not None
            self.done.append((self._next_name(), self._file.tell(), self._file))
            self._stream = self._file = None
        for name, _, f in self.done:
            if f is not None:
                f.seek(0)
                source: Any = f
            elif self.local:
                source = open(self._where(name), "rb")  # noqa: SIM115  (closed below)
            else:
                assert self.fs is not None
                source = self.fs.open(self._where(name), "rb")
            try:
                yield from self.pa.ipc.open_stream(self.pa.PythonFile(source, mode="r"))
            finally:
                if f is None:
                    source.close()

    def close(self, *, keep: int) -> None:
        """Close the local files and remove every segment after the first ``keep`` (the ones the last saved
        checkpoint names stay for the retry)."""
        self._pending, self._pending_rows = [], 0  # never sealed: nothing names them
        if self._stream is not None:
            with contextlib.suppress(Exception):
                self._stream.close()
            assert self._file is not None
            self.done.append((self._next_name(), 0, self._file))
            self._stream = self._file = None
        for i, (name, _, f) in enumerate(self.done):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()
            if i >= keep:
                self._remove(name)
        self.done = []


class ParquetWriter:
    """Write records to one object as Parquet, atomically, in row groups of ``row_group_rows``; use as a
    context manager::

        with ParquetWriter(path, columns=Columns("normalized"), metadata=file_metadata(identity)) as out:
            for page in pages:
                out.write_records(page)
        out.count, out.bytes

    No record means a valid Parquet file with the schema and no row group ("ran, nothing there").

    Checkpoints (``checkpointed=True``, the interface :class:`JsonLinesWriter` has): records are spooled to
    hidden segments (:class:`_Segments`) and the Parquet file is written from them at the end; :meth:`checkpoint`
    makes the records so far durable as a segment and hands what ``resume=`` takes to a callback.
    """

    def __init__(self, path: ObjectStoragePath, *, columns: Columns, compression: str | None = DEFAULT_COMPRESSION,
                 metadata: Mapping[str, str] | None = None, row_group_rows: int | None = None,
                 block_size: int | None = None, checkpointed: bool = False,
                 resume: Mapping[str, Any] | None = None) -> None:
        if compression not in COMPRESSIONS:
            raise ConfigurationError(
                f"compression={compression!r} is not valid for Parquet; allowed: "
                + ", ".join(repr(c) for c in COMPRESSIONS))
        row_group_rows = ROW_GROUP_ROWS if row_group_rows is None else row_group_rows
        if row_group_rows < 1:
            raise ValueError(f"row_group_rows={row_group_rows!r} must be positive")
        self.pa = require_pyarrow()
        self.path = path
        self.columns = columns
        self.compression = compression
        self.block_size = block_size
        self.row_group_rows = row_group_rows
        self.schema = columns.schema.with_metadata(dict(metadata or {}))
        self.uri = object_uri(path)
        self.count = 0
        #: Sum of the row groups' uncompressed sizes, from the file's footer.
        self.uncompressed_bytes = 0
        self.row_groups = 0
        self.stale_removed = 0
        self.strategy = ""
        self._target: AtomicTarget | None = None
        self._counter: _CountingStream | None = None
        self._writer: Any = None
        self._groups: _BackgroundGroups | None = None
        self._records: list[Mapping[str, Any]] = []
        self._batches: list[pa.RecordBatch] = []
        self._buffered = 0
        self.checkpointed = checkpointed or resume is not None
        self.resume = resume
        self.checkpoints = 0
        self._segments: _Segments | None = None
        self._kept = 0  # segments the last saved checkpoint names: kept for a retry if this try fails

    @property
    def resumable(self) -> bool:
        """Whether :meth:`checkpoint` saves anything (checkpointed, onto a destination that can stage)."""
        return self._segments is not None

    def checkpoint(self, on_durable: Callable[[dict[str, Any]], None] | None = None) -> None:
        """Make every record so far durable (a segment) and call ``on_durable`` with what ``resume=`` takes."""
        if self._writer is None:
            raise RuntimeError("ParquetWriter is not open: use it as a context manager")
        if self._segments is None or on_durable is None:
            return
        self._spool()
        staged = self._segments.seal()
        on_durable({"staged": staged, "count": self.count, "bytes": 0, "uncompressed_bytes": 0})
        self.checkpoints += 1
        self._kept = len(staged["segments"])

    def _spool(self) -> None:
        if self._records:
            assert self._segments is not None
            self._segments.write(self.columns.batch(self._records))
            self._records = []

    @property
    def bytes(self) -> int:
        """Bytes of the stored object."""
        return self._counter.bytes if self._counter is not None else 0

    def open(self) -> ParquetWriter:
        """Start the object (idempotent; ``with`` calls it); raises :class:`DestinationError` like
        :meth:`JsonLinesWriter.open`, so call it before the first request."""
        if self._target is not None:
            return self
        target = atomic_target(self.path, block_size=self.block_size)
        self.strategy = target.strategy
        segments = None
        if self.checkpointed and target.resumable:
            segments = _Segments(self.path, self.columns.schema, self.row_group_rows)
        try:
            target.check()
            if self.resume is not None and segments is None:  # never continue the walk without its records
                raise StagedPartsMissing(f"{self.uri} cannot hold staged segments ({target.strategy})")
            if segments is not None:
                target.lock(on_wait=lambda: log.info(
                    "Another run is writing %s; waiting for it to finish so the object is one run's output",
                    self.uri))
                if self.resume is not None:
                    segments.resume(self.resume["staged"])  # StagedPartsMissing: the caller starts afresh
                self.stale_removed += segments.cleanup_stale()
            self.stale_removed += target.cleanup_stale()
            raw = target.open()
        except BaseException as exc:
            with contextlib.suppress(Exception):
                target.discard()  # releases the lock
            if not isinstance(exc, OSError) or (not isinstance(exc, _CONFIG_ERRORS)
                                                and exc.errno not in _CONFIG_ERRNOS):
                raise
            raise DestinationError(f"destination {self.uri} is not writable: {_why_not_writable(exc)}") from exc
        if segments is not None and self.resume is not None:
            self.count = self.resume["count"]
            self._kept = len(segments.done)
        self._segments = segments
        if self.stale_removed:
            log.info("Removed %d leftover(s) of an earlier interrupted write of %s", self.stale_removed, self.uri)
        self._counter = _CountingStream(raw)
        try:
            import pyarrow.parquet as pq

            names = [n for n in self.schema.names if n not in ("raw", "messages")]
            self._writer = pq.ParquetWriter(
                self.pa.PythonFile(self._counter, mode="w"), self.schema, compression=self.compression or "none",
                store_schema=True,
                # Dictionaries for the few-valued columns only: for ids and JSON documents, every value is new,
                # and building a dictionary to give it up costs more than the rest of the write.
                use_dictionary=[n for n in names if n in _DICTIONARY_COLUMNS],
                # Min/max for the columns a query filters on (row groups skipped by time or id), not for raw.
                write_statistics=names,
            )
        except BaseException:
            target.discard()
            raise
        self._target = target
        self._groups = _BackgroundGroups(self._writer, self.row_group_rows)
        return self

    def __enter__(self) -> ParquetWriter:
        return self.open()

    def write_records(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Append shaped records (a page); a row group is written each time ``row_group_rows`` are buffered.

        The records become Arrow columns before this returns, not when a row group is full: thousands of buffered
        dicts would outlive Python's young garbage-collector generations, and the full collections they then
        trigger, each walking every buffered record, cost a third of the export (measured: 1.3 of 6.0 s for
        200,000 PolyAI records). The bytes do not change: each row group is one contiguous chunk (``_emit``).
        """
        if self._writer is None:
            raise RuntimeError("ParquetWriter is not open: use it as a context manager")
        n = 0
        if self._segments is not None:  # spooled; row groups are cut when the file is written at the end
            for record in records:
                self._records.append(record)
                n += 1
                if len(self._records) >= self.row_group_rows:
                    self._spool()
            self._spool()
            self.count += n
            return n
        for record in records:
            self._records.append(record)
            n += 1
            if len(self._records) + self._buffered >= self.row_group_rows:
                self._flush_records()
        self._flush_records()
        self.count += n
        return n

    def write_batch(self, batch: pa.RecordBatch) -> int:
        """Append a batch made by ``columns.batch()`` (parallel sub-windows replayed in walk order)."""
        if self._writer is None:
            raise RuntimeError("ParquetWriter is not open: use it as a context manager")
        self._flush_records(emit=False)
        self._batches.append(batch)
        self._buffered += batch.num_rows
        self.count += batch.num_rows
        self._emit()
        return batch.num_rows

    def _flush_records(self, *, emit: bool = True) -> None:
        if self._records:
            batch = self.columns.batch(self._records)
            self._records = []
            self._batches.append(batch)
            self._buffered += batch.num_rows
        if emit:
            self._emit()

    def _emit(self, *, final: bool = False) -> None:
        """Write every full row group buffered (and, at the end, the last partial one)."""
        while self._buffered >= self.row_group_rows or (final and self._buffered):
            table = self.pa.Table.from_batches(self._batches, schema=self.columns.schema)
            rows = min(self.row_group_rows, self._buffered)
            # One contiguous chunk per group: pyarrow checks page sizes between chunks, so the same rows chunked
            # differently (page by page, or sub-window by sub-window) would give different bytes.
            group, rest = table.slice(0, rows).combine_chunks(), table.slice(rows)
            assert self._groups is not None
            self._groups.put(group)
            self.row_groups += 1
            self._batches = rest.combine_chunks().to_batches() if rest.num_rows else []
            self._buffered = rest.num_rows

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        target, writer, groups = self._target, self._writer, self._groups
        if target is None or groups is None:
            return
        segments, self._segments = self._segments, None
        if exc_type is not None:
            self._writer = self._groups = None
            self._records, self._batches, self._buffered = [], [], 0
            try:
                with contextlib.suppress(Exception):
                    groups.finish()
                with contextlib.suppress(Exception):
                    writer.close()  # into the discarded target: never a footer on a final object
                if segments is not None:
                    segments.close(keep=self._kept)
                target.discard()
            except Exception:
                log.warning("Could not discard the partial write of %s", self.uri, exc_info=True)
            return
        try:
            if segments is not None:
                self._segments = segments
                self._spool()
                self._segments = None
                for batch in segments.replay():
                    self._batches.append(batch)
                    self._buffered += batch.num_rows
                    self._emit()
            self._flush_records(emit=False)
            self._emit(final=True)
            groups.finish()
            writer.close()  # the footer
            meta = writer.writer.metadata
            self.uncompressed_bytes = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
            target.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                groups.finish()
            if segments is not None:
                with contextlib.suppress(Exception):
                    segments.close(keep=self._kept)
            with contextlib.suppress(Exception):
                target.discard()
            raise
        else:
            if segments is not None:
                segments.close(keep=0)  # the object is whole: the segments are not needed any more
        finally:
            self._writer = self._groups = None


__all__ = [
    "COMPRESSIONS",
    "DEFAULT_COMPRESSION",
    "EXTRA",
    "METADATA_KEY",
    "ROW_GROUP_ROWS",
    "SCHEMA_VERSION",
    "ArrowParts",
    "Columns",
    "MissingExtraError",
    "ParquetWriter",
    "file_metadata",
    "require_pyarrow",
    "schema_for",
]
