"""Where an object's bytes go until it is complete, so it appears whole or not at all, per kind of filesystem.

- **Local paths** (``file://``, bare paths): a hidden temp file *in the destination directory*
  (``.<name>.<uuid>.tmp``), fsync'ed, then ``os.replace()`` onto the final name (atomic on POSIX within one
  filesystem), then the directory is fsync'ed. fsspec's ``LocalFileSystem`` transaction is not used: it
  writes to the system temp dir and ``shutil.move()``s, which is a copy (not atomic) when ``/tmp`` is another
  filesystem, as it usually is for a mounted data volume.
- **S3** (s3fs, through the Amazon provider's filesystem): the object is written with the filesystem's own
  transactional file (``autocommit=False``): parts stream up as a multipart upload, ``commit()`` completes
  it, ``discard()`` aborts it. S3 never shows an incomplete multipart upload as an object. This is what
  ``with fs.transaction:`` does, scoped to this one file rather than to the filesystem instance, which
  Airflow caches and shares. A local spool + ``put`` would also be atomic but costs local disk the size of
  the object and a second pass; streaming needs neither.
- **Anything else** (``memory://``, GCS, Azure, ...): a hidden temp object next to the final one, then
  ``fs.mv()`` onto the final name (a server-side copy: the final object appears at once, with its full
  content) and the temp object is deleted; a failure deletes the temp object.

Clean-up of what a killed task leaves behind: before writing, stale temp files/objects of the *same* final
object are removed (local and generic strategies), and incomplete multipart uploads to the *same* key are
aborted (S3). Nothing else in the destination is touched. On S3, also set a bucket lifecycle rule
``AbortIncompleteMultipartUpload`` for windows that are never re-run.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import uuid
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, BinaryIO, cast

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

LOCAL_PROTOCOLS = ("", "file", "local")


def is_local(path: ObjectStoragePath) -> bool:
    return (path.protocol or "") in LOCAL_PROTOCOLS


def object_uri(path: ObjectStoragePath) -> str:
    """The object's URL without the Airflow connection id (``s3://bucket/key``, ``file:///abs/path``)."""
    if is_local(path):
        return "file://" + os.path.abspath(path.path)
    return f"{path.protocol}://{path.path.lstrip('/')}"


def _temp_name(name: str) -> str:
    return f".{name}.{uuid.uuid4().hex}.tmp"


def _stale_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"^\.{re.escape(name)}\.[0-9a-f]{{32}}\.tmp$")


class AtomicTarget(ABC):
    """Where the bytes go until :meth:`commit` makes them the final object."""

    strategy: str

    def check(self) -> None:  # noqa: B027  (optional: most targets find problems when they open)
        """Refuse a destination that cannot work before anything is written (raise OSError)."""

    @abstractmethod
    def cleanup_stale(self) -> int:
        """Remove leftovers of earlier killed writes of the same object; return how many."""

    @abstractmethod
    def open(self) -> BinaryIO:
        """Start writing; the returned stream takes bytes."""

    @abstractmethod
    def commit(self) -> None:
        """Make everything written the final object, in one step."""

    @abstractmethod
    def discard(self) -> None:
        """Forget everything written; the final object stays as it was."""


class _LocalTarget(AtomicTarget):
    strategy = "local temp file + os.replace"

    def __init__(self, final: str) -> None:
        self.final = os.path.abspath(final)
        self.directory, self.name = os.path.split(self.final)
        self.temp = os.path.join(self.directory, _temp_name(self.name))
        self._file: BinaryIO | None = None

    def check(self) -> None:
        if os.path.isdir(self.final):  # os.replace() would fail only after the whole window was fetched
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), self.final)

    def cleanup_stale(self) -> int:
        pattern = _stale_pattern(self.name)
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return 0
        removed = 0
        for name in names:
            if pattern.match(name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.directory, name))
                    removed += 1
        return removed

    def open(self) -> BinaryIO:
        os.makedirs(self.directory, exist_ok=True)
        self._file = open(self.temp, "xb")  # noqa: SIM115  (closed by commit/discard)
        return self._file

    def commit(self) -> None:
        assert self._file is not None
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self.temp, self.final)
        # Durability of the rename; atomicity does not depend on it, and some filesystems refuse it.
        with contextlib.suppress(OSError):
            fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def discard(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.temp)


class _MultipartTarget(AtomicTarget):
    """S3 through s3fs: a transactional file, i.e. a multipart upload completed on commit, aborted on discard."""

    strategy = "multipart upload, completed on success, aborted on failure"

    def __init__(self, fs: Any, path: str, block_size: int | None) -> None:
        self.fs = fs
        self.path = fs._strip_protocol(path)
        self.block_size = block_size
        self._file: Any = None

    def cleanup_stale(self) -> int:
        bucket, key, _ = self.fs.split_path(self.path)
        response = self.fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=key)
        removed = 0
        for upload in response.get("Uploads") or []:
            if upload.get("Key") == key:
                self.fs.abort_mpu(bucket, key, upload["UploadId"])
                removed += 1
        return removed

    def open(self) -> BinaryIO:
        # fs._open, not fs.open: fs.open would also enlist the file in the (shared, cached) filesystem's
        # transaction queue; this writer commits or discards it itself.
        self._file = self.fs._open(self.path, mode="wb", block_size=self.block_size, autocommit=False)
        return cast(BinaryIO, self._file)

    def commit(self) -> None:
        self._file.close()  # uploads the last part; nothing is visible yet
        self._file.commit()  # complete the multipart upload (or one PUT for a small object)

    def discard(self) -> None:
        if self._file is None:
            return
        self._file.discard()  # abort the multipart upload, if one was started
        self._file.closed = True  # never flush a discarded buffer (e.g. from __del__)


class _TempObjectTarget(AtomicTarget):
    strategy = "temp object + server-side move"

    def __init__(self, fs: Any, path: str) -> None:
        self.fs = fs
        self.path = fs._strip_protocol(path)
        self.parent, _, self.name = self.path.rpartition("/")
        self.temp = f"{self.parent}/{_temp_name(self.name)}"
        self._file: Any = None

    def cleanup_stale(self) -> int:
        pattern = _stale_pattern(self.name)
        try:
            entries = self.fs.ls(self.parent, detail=False)
        except FileNotFoundError:
            return 0
        stale = [e for e in entries if pattern.match(str(e).rstrip("/").rpartition("/")[2])]
        for entry in stale:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm(entry)
        return len(stale)

    def open(self) -> BinaryIO:
        self._file = self.fs.open(self.temp, "wb")
        return cast(BinaryIO, self._file)

    def commit(self) -> None:
        self._file.close()
        self.fs.mv(self.temp, self.path)

    def discard(self) -> None:
        if self._file is not None:
            with contextlib.suppress(Exception):
                self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(self.temp)


def atomic_target(path: ObjectStoragePath, *, block_size: int | None = None) -> AtomicTarget:
    """The atomic write strategy for ``path`` (see the module docstring)."""
    if is_local(path):
        return _LocalTarget(path.path)
    fs = path.fs
    protocols = fs.protocol if isinstance(fs.protocol, tuple | list) else (fs.protocol,)
    if "s3" in protocols and hasattr(fs, "call_s3") and hasattr(fs, "abort_mpu"):
        return _MultipartTarget(fs, path.path, block_size)
    return _TempObjectTarget(fs, path.path)


__all__ = ["LOCAL_PROTOCOLS", "atomic_target", "is_local", "object_uri"]
