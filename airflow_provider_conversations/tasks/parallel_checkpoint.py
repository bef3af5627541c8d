"""Checkpoints of a parallel export: each sub-window keeps its own position and its own staged part files.

Sub-windows of a parallel walk finish in any order, but the object is written in walk order. So every
sub-window's JSON Lines go to its own spool, cut into chunks at its own checkpoint boundaries (every
``checkpoint_every_pages`` pages *of that sub-window*, and where it ends); with a task state store each chunk
is made durable as a hidden part file beside the object (``.<name>.<token>.part-<k>.<m>``: a leading ``.``,
which lake readers skip; fsync'ed locally, a hidden object on S3 and other filesystems) and the checkpoint
records, per sub-window, its chunks (sizes, and whether a gzip member ends there) and either its position
after them or that it is done. When every sub-window is done the chunks are written to the object in walk
order, a gzip member ending at every boundary chunk. The boundaries depend on the data only (page numbers
within each sub-window), so a retry writes the same bytes as an uninterrupted parallel run; and with fewer
than ``checkpoint_every_pages`` pages per sub-window no member ends, so the object is also the sequential
export's, byte for byte.

A retry walks only the sub-windows that are not done, each from its own position: completed sub-windows are
not requested again, and each of the others re-walks at most one checkpoint interval. The checkpoint holds a
position only for the sub-windows in flight (at most ``max_parallel`` of them, a few hundred bytes each), so
it stays far below the state store's cap.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO

from airflow_provider_conversations.engine.walk import STATE_VERSION
from airflow_provider_conversations.output.targets import fsync_directory, is_local

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_conversations.engine.walk import Page
    from airflow_provider_conversations.output.storage import JsonLinesWriter

#: Bytes read at a time when a chunk is copied or replayed.
COPY = 1 << 20


class CorruptParallelState(ValueError):
    """A parallel checkpoint that does not describe sub-windows and staged part files as this module writes."""


class PartFiles:
    """The hidden part files of one export beside its object: ``.<name>.<token>.part-<k>.<m>``."""

    def __init__(self, path: ObjectStoragePath, token: str) -> None:
        self.local = is_local(path)
        if self.local:
            self.fs: Any = None
            self.directory, self.name = os.path.split(os.path.abspath(path.path))
        else:
            self.fs = path.fs
            self.directory, _, self.name = self.fs._strip_protocol(path.path).rpartition("/")
        self.token = token
        self._pattern = re.compile(rf"^\.{re.escape(self.name)}\.([0-9a-f]{{32}})\.part-[0-9]+\.[0-9]+$")

    def path(self, part: int, chunk: int) -> str:
        return f"{self.directory}/.{self.name}.{self.token}.part-{part}.{chunk}"

    def write(self, part: int, chunk: int, source: BinaryIO, size: int) -> None:
        """Copy ``size`` bytes from ``source`` (at its position) into a durable part file."""
        target = self.path(part, chunk)
        if self.local:
            os.makedirs(self.directory, exist_ok=True)
            with open(target, "wb") as f:
                _copy(source, f, size)
                f.flush()
                os.fsync(f.fileno())
            fsync_directory(self.directory)
        else:
            with self.fs.open(target, "wb") as f:
                _copy(source, f, size)

    def size(self, part: int, chunk: int) -> int | None:
        try:
            if self.local:
                return os.path.getsize(self.path(part, chunk))
            return int(self.fs.info(self.path(part, chunk), refresh=True)["size"])
        except (FileNotFoundError, OSError):
            return None

    def read(self, part: int, chunk: int) -> Iterator[bytes]:
        opener = open if self.local else self.fs.open
        with opener(self.path(part, chunk), "rb") as f:
            while data := f.read(COPY):
                yield data

    def remove(self, *, keep_own: bool) -> int:
        """Remove this object's part files (``keep_own``: only other exports' leftovers); return how many."""
        try:
            if self.local:
                names = os.listdir(self.directory)
            else:
                names = [str(e).rstrip("/").rpartition("/")[2]
                         for e in self.fs.ls(self.directory, detail=False, refresh=True)]
        except FileNotFoundError:
            return 0
        removed = 0
        for name in names:
            found = self._pattern.match(name)
            if found and not (keep_own and found.group(1) == self.token):
                with contextlib.suppress(FileNotFoundError):
                    if self.local:
                        os.unlink(f"{self.directory}/{name}")
                    else:
                        self.fs.rm_file(f"{self.directory}/{name}")
                    removed += 1
        return removed


def _copy(source: BinaryIO, target: Any, size: int) -> None:
    while size > 0:
        data = source.read(min(COPY, size))
        if not data:
            raise OSError(f"the spool ended {size} bytes early")
        target.write(data)
        size -= len(data)


class _SubWindow:
    """One sub-window's spool: chunks staged by earlier tries, then this try's bytes in a local temp file."""

    def __init__(self, index: int, saved: Mapping[str, Any] | None = None) -> None:
        self.index = index
        #: Chunks staged by earlier tries (durable part files 0..len-1): [size, ends a gzip member (0/1)].
        self.earlier: list[list[int]] = [list(c) for c in saved["chunks"]] if saved else []
        self.position: dict[str, Any] | None = saved["position"] if saved else None
        self.done: bool = bool(saved["done"]) if saved else False
        self.count: int = saved["count"] if saved else 0
        self.temp: BinaryIO | None = None
        #: This try's chunks in ``temp``: [end offset, ends a gzip member]; staged ones are also part files.
        self.marks: list[list[int]] = []
        self.staged = 0  # how many of ``marks`` are part files
        self.size = 0
        self.marked_count = self.count  # conversations up to the last mark

    def add(self, data: bytes) -> None:
        if self.temp is None:
            self.temp = tempfile.TemporaryFile(prefix="conversations-part-")  # noqa: SIM115  (closed in close())
        self.temp.write(data)
        self.size += len(data)

    def mark(self, boundary: bool, position: dict[str, Any], done: bool) -> None:
        """End a chunk here (``boundary``: a gzip member ends here too), at the walk's ``position``."""
        self.marks.append([self.size, int(boundary)])
        self.position, self.done, self.marked_count = position, done, self.count

    def state(self) -> dict[str, Any]:
        ends = [0] + [m[0] for m in self.marks[: self.staged]]
        chunks = self.earlier + [[ends[i + 1] - ends[i], m[1]] for i, m in enumerate(self.marks[: self.staged])]
        return {"chunks": chunks, "position": None if self.done else self.position, "done": self.done,
                "count": self.marked_count}

    def close(self) -> None:
        if self.temp is not None:
            self.temp.close()
            self.temp = None


class ParallelSpool:
    """Spool a parallel export's pages per sub-window, checkpoint each at its own boundaries, write in order.

    ``save`` (``None``: no checkpoints, e.g. no task state store) gets the walk state to keep after each
    staged chunk; ``saved`` is such a state from an earlier try (see :meth:`resume`).
    """

    def __init__(self, path: ObjectStoragePath, every: int, *, save: Callable[[dict[str, Any]], None] | None,
                 saved: Mapping[str, Any] | None = None) -> None:
        self.every = every
        self.save = save
        self.descending = False
        self.parts: dict[int, _SubWindow] = {}
        token = uuid.uuid4().hex
        if saved is not None:
            token = saved["token"]
            self.descending = bool(saved["descending"])
            self.parts = {int(k): _SubWindow(int(k), v) for k, v in saved["parts"].items()}
        self.files = PartFiles(path, token) if save is not None else None
        self.stale_removed = 0
        self.saved = 0  # checkpoints saved by this try

    @staticmethod
    def check(walk: Mapping[str, Any], path: ObjectStoragePath) -> str | None:
        """Why a saved parallel walk state cannot be resumed (its part files missing or malformed), or None."""
        try:
            state = walk["parallel"]
            token = state["token"]
            if not (isinstance(token, str) and re.fullmatch("[0-9a-f]{32}", token)):
                raise CorruptParallelState(token)
            files = PartFiles(path, token)
            for k, part in state["parts"].items():
                int(k)
                for m, (size, boundary) in enumerate(part["chunks"]):
                    if not isinstance(size, int) or boundary not in (0, 1):
                        raise CorruptParallelState(part)
                    if size == 0:
                        continue
                    on_disk = files.size(int(k), m)
                    if on_disk != size:
                        return (f"the staged part file {files.path(int(k), m)} "
                                + ("is gone" if on_disk is None else f"holds {on_disk} bytes, the checkpoint {size}"))
                if not isinstance(part["done"], bool) or not isinstance(part["count"], int) or not (
                        part["done"] or part["position"] is None or isinstance(part["position"], Mapping)):
                    raise CorruptParallelState(part)
        except (KeyError, TypeError, ValueError, AttributeError):
            return "it is corrupt (its per-sub-window state is missing or malformed)"
        return None

    def remaining(self, total: int) -> dict[int, Mapping[str, Any] | None]:
        """The sub-windows still to walk, each with its position (``None``: from its start)."""
        return {k: (p.position if p is not None else None)
                for k in range(total) if (p := self.parts.get(k)) is None or not p.done}

    @property
    def count(self) -> int:
        """Conversations spooled so far (by this try and the earlier ones)."""
        return sum(p.count for p in self.parts.values())

    def done_parts(self) -> int:
        return sum(p.done for p in self.parts.values())

    def start(self) -> None:
        """Remove leftovers of other runs' part files of this object (call holding the object's lock)."""
        if self.files is not None:
            self.stale_removed = self.files.remove(keep_own=True)

    def add(self, page: Page, data: bytes, records: int) -> None:
        """One page's JSON Lines; at the sub-window's boundaries (and its end) a chunk ends, and is staged."""
        self.descending = self.descending or page.descending
        part = self.parts.get(page.part)
        if part is None:
            part = self.parts[page.part] = _SubWindow(page.part)
        part.add(data)
        part.count += records
        state = page.resume_state() if page.resume_state is not None else None
        boundary = page.number % self.every == 0
        last = state is not None and state["next"] is None
        if not (boundary or last):
            return
        if state is None:
            raise RuntimeError(f"page {page.number} of sub-window {page.part} came without its position "
                               "(walk with checkpoint_every)")
        part.mark(boundary, state, last)
        if self.files is not None and self.save is not None:
            self._stage(part)
            self.save(self.walk_state())
            self.saved += 1

    def _stage(self, part: _SubWindow) -> None:
        assert self.files is not None
        while part.staged < len(part.marks):
            start = part.marks[part.staged - 1][0] if part.staged else 0
            end = part.marks[part.staged][0]
            assert part.temp is not None
            if end > start:  # an empty chunk (a page with nothing new) needs no file
                part.temp.seek(start)
                self.files.write(part.index, len(part.earlier) + part.staged, part.temp, end - start)
                part.temp.seek(0, os.SEEK_END)
            part.staged += 1

    def walk_state(self) -> dict[str, Any]:
        """What the checkpoint keeps of the walk: every sub-window started, with its staged chunks."""
        assert self.files is not None
        return {"version": STATE_VERSION, "number": sum(len(p.state()["chunks"]) for p in self.parts.values()),
                "parallel": {"token": self.files.token, "descending": self.descending,
                             "parts": {str(k): p.state() for k, p in sorted(self.parts.items())}}}

    def write(self, out: JsonLinesWriter) -> None:
        """Every sub-window's chunks into ``out``, in walk order; a gzip member ends after each boundary chunk."""
        for k in sorted(self.parts, reverse=self.descending):
            part = self.parts[k]
            for m, (size, boundary) in enumerate(part.earlier):
                assert self.files is not None
                for data in self.files.read(k, m) if size else ():
                    out.write_lines(data)
                if boundary:
                    out.checkpoint()
            start = 0
            if part.temp is not None:
                part.temp.seek(0)
            for end, boundary in part.marks:
                left = end - start
                while left > 0:
                    assert part.temp is not None
                    data = part.temp.read(min(COPY, left))
                    out.write_lines(data)
                    left -= len(data)
                start = end
                if boundary:
                    out.checkpoint()

    def close(self, *, success: bool) -> None:
        """Drop the local spools; on success (or when no checkpoint refers to them) the part files too."""
        for part in self.parts.values():
            part.close()
        if self.files is not None and success:
            self.files.remove(keep_own=False)


__all__ = ["CorruptParallelState", "ParallelSpool", "PartFiles"]
