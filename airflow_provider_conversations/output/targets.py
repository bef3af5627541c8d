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
import fcntl
import os
import re
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO, cast

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

LOCAL_PROTOCOLS = ("", "file", "local")


def fsync_directory(directory: str) -> None:
    """Make a new name in ``directory`` durable (after a rename or a new file); some filesystems refuse it."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


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


class StagedPartsMissing(Exception):
    """A checkpoint's staged parts are gone or not what it recorded: the export cannot continue from it."""


class AtomicTarget(ABC):
    """Where the bytes go until :meth:`commit` makes them the final object."""

    strategy: str
    #: Whether :meth:`stage` can make the bytes written so far durable for a resumed run.
    resumable = False
    #: Set once a checkpoint refers to the staged parts: :meth:`discard` then leaves them for the retry.
    keep_staged = False

    def check(self) -> None:  # noqa: B027  (optional: most targets find problems when they open)
        """Refuse a destination that cannot work before anything is written (raise OSError)."""

    def lock(self, on_wait: Callable[[], None] | None = None) -> None:  # noqa: B027  (optional)
        """Hold the object against a concurrent run of the same object until commit/discard (waits)."""

    def resume(self, staged: Mapping[str, Any]) -> None:
        """Continue after the parts :meth:`stage` recorded (call before :meth:`open`); raise
        :class:`StagedPartsMissing` when they are not there as recorded."""
        raise StagedPartsMissing(f"{self.strategy} cannot resume")

    def stage(self) -> dict[str, Any]:
        """Make every byte written so far durable as staged (hidden) parts; return what a resume needs."""
        raise NotImplementedError(f"{self.strategy} cannot stage parts")

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
    resumable = True

    def __init__(self, final: str) -> None:
        self.final = os.path.abspath(final)
        self.directory, self.name = os.path.split(self.final)
        self.temp = os.path.join(self.directory, _temp_name(self.name))
        self._file: BinaryIO | None = None
        self._resume_size: int | None = None
        self._lock: int | None = None
        self._lock_path = ""

    def check(self) -> None:
        if os.path.isdir(self.final):  # os.replace() would fail only after the whole window was fetched
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), self.final)

    def lock(self, on_wait: Callable[[], None] | None = None) -> None:
        """``flock`` on a hidden ``.<name>.lock`` beside the object: a second run of the same object waits.

        The holder removes the lock file when done; a waiter that then gets the lock of a removed file tries
        again on the path's current file, so two runs never both hold it and nothing is left behind."""
        os.makedirs(self.directory, exist_ok=True)
        lock_path = os.path.join(self.directory, f".{self.name}.lock")
        waited = False
        while True:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    if on_wait is not None and not waited:
                        on_wait()
                    waited = True
                    fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    current = os.stat(lock_path).st_ino
                except FileNotFoundError:
                    current = None
            except BaseException:
                os.close(fd)
                raise
            if current == os.fstat(fd).st_ino:
                self._lock, self._lock_path = fd, lock_path
                return
            os.close(fd)  # the holder removed that file on its way out: lock the new one

    def _unlock(self) -> None:
        if self._lock is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._lock_path)  # still holding the lock: see lock()
            os.close(self._lock)  # releases the flock
            self._lock = None

    def resume(self, staged: Mapping[str, Any]) -> None:
        temp, size = staged.get("temp"), staged.get("size")
        if not (isinstance(temp, str) and _stale_pattern(self.name).match(temp) and isinstance(size, int)):
            raise StagedPartsMissing(f"the checkpoint does not describe a staged file of {self.name}: {staged!r}")
        path = os.path.join(self.directory, temp)
        try:
            on_disk = os.path.getsize(path)
        except OSError:
            raise StagedPartsMissing(f"the staged file {path} is gone") from None
        if on_disk < size:
            raise StagedPartsMissing(f"the staged file {path} holds {on_disk} bytes, the checkpoint {size}")
        self.temp, self._resume_size = path, size

    def stage(self) -> dict[str, Any]:
        assert self._file is not None
        self._file.flush()
        os.fsync(self._file.fileno())
        return {"temp": os.path.basename(self.temp), "size": self._file.tell()}

    def cleanup_stale(self) -> int:
        pattern = _stale_pattern(self.name)
        keep = os.path.basename(self.temp) if self._resume_size is not None else None
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return 0
        removed = 0
        for name in names:
            if pattern.match(name) and name != keep:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.directory, name))
                    removed += 1
        return removed

    def open(self) -> BinaryIO:
        os.makedirs(self.directory, exist_ok=True)
        if self._resume_size is not None:
            # Bytes after the checkpoint belong to pages the resumed walk fetches again.
            self._file = open(self.temp, "r+b")  # noqa: SIM115  (closed by commit/discard)
            self._file.truncate(self._resume_size)
            self._file.seek(self._resume_size)
        else:
            self._file = open(self.temp, "xb")  # noqa: SIM115  (closed by commit/discard)
        return self._file

    def commit(self) -> None:
        assert self._file is not None
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self.temp, self.final)
            fsync_directory(self.directory)  # the rename's durability (atomicity does not depend on it)
        finally:
            self._unlock()

    def discard(self) -> None:
        """Drop the temp file, unless a checkpoint refers to it (``keep_staged``: the retry continues it)."""
        try:
            if self._file is not None:
                with contextlib.suppress(OSError):
                    self._file.close()
            if not self.keep_staged:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.temp)
        finally:
            self._unlock()


class _MultipartTarget(AtomicTarget):
    """S3: a multipart upload this target drives itself, completed on commit, aborted on discard.

    Parts of ``block_size`` bytes (at least S3's 5 MiB minimum) go up as they fill. :meth:`stage` makes the rest
    durable too: the bytes not yet in a part go to a hidden ``.<name>.<token>.tail`` object beside the final one,
    and the upload id, part numbers, sizes and ETags are returned for the checkpoint. A resumed run checks the
    parts with ``ListParts`` (ETags and sizes), reads the tail back, and goes on uploading from the next part
    number. A small object (no part filled) is one PUT at commit. S3 never shows an incomplete multipart upload
    as an object.
    """

    strategy = "multipart upload, completed on success, aborted on failure"
    resumable = True
    MIN_PART = 5 * 2**20
    DEFAULT_PART = 8 * 2**20

    def __init__(self, fs: Any, path: str, block_size: int | None) -> None:
        self.fs = fs
        self.path = fs._strip_protocol(path)
        self.bucket, self.key, _ = fs.split_path(self.path)
        self.parent, _, self.name = self.key.rpartition("/")
        self.part_size = max(block_size or self.DEFAULT_PART, self.MIN_PART)
        self.token = uuid.uuid4().hex
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []
        self._buffer = bytearray()
        self._tails: list[str] = []  # staged tail objects, oldest first
        self._seq = 0
        self._lease: str | None = None
        self._lease_etag = ""

    #: How long a lease on the object lasts without renewal: a killed run's lease holds the next run of the
    #: object back at most this long (Airflow's default retry_delay is longer).
    LEASE_SECONDS = 60.0

    def lock(self, on_wait: Callable[[], None] | None = None) -> None:
        """A lease object ``.<name>.lease`` beside the final one, created with ``If-None-Match: *`` and renewed
        with ``If-Match`` by a thread while the write lasts; a second run waits until it is removed or expired."""
        lease = f"{self.parent}/.{self.name}.lease" if self.parent else f".{self.name}.lease"
        waited = False
        while True:
            etag = self._put_lease(lease, {"IfNoneMatch": "*"})
            if etag is None:
                try:
                    head = self.fs.call_s3("head_object", Bucket=self.bucket, Key=lease)
                except FileNotFoundError:
                    continue  # released meanwhile: try again
                if float((head.get("Metadata") or {}).get("expires", "0")) < time.time():
                    etag = self._put_lease(lease, {"IfMatch": head["ETag"]})  # take over an expired lease
            if etag is not None:
                break
            if on_wait is not None and not waited:
                on_wait()
            waited = True
            time.sleep(1.0)
        self._lease, self._lease_etag = lease, etag
        self._lease_stop = threading.Event()
        self._lease_thread = threading.Thread(target=self._renew, name="s3-lease", daemon=True)
        self._lease_thread.start()

    def _put_lease(self, lease: str, condition: dict[str, str]) -> str | None:
        """Write the lease under ``condition``; its ETag, or ``None`` when the condition failed (HTTP 412)."""
        expires = f"{time.time() + self.LEASE_SECONDS:.6f}"
        try:
            # The body makes each lease's ETag its own (If-Match compares ETags; empty bodies would all match).
            response = self.fs.call_s3("put_object", Bucket=self.bucket, Key=lease,
                                       Body=f"{self.token} {expires}".encode(),
                                       Metadata={"owner": self.token, "expires": expires}, **condition)
        except OSError as exc:
            # s3fs turns 412 PreconditionFailed into FileExistsError (or an EINVAL OSError in older versions)
            if isinstance(exc, FileExistsError | FileNotFoundError) or exc.errno == errno.EINVAL:
                return None  # (FileNotFoundError: If-Match on a lease removed meanwhile)
            raise
        return str(response["ETag"])

    def _renew(self) -> None:
        lease = self._lease
        assert lease is not None
        while not self._lease_stop.wait(self.LEASE_SECONDS / 4):
            try:
                etag = self._put_lease(lease, {"IfMatch": self._lease_etag})
            except Exception:  # S3 unreachable for a moment: try again at the next renewal
                continue
            if etag is None:
                return  # taken over (this run stalled past the lease): its commit still writes a whole object
            self._lease_etag = etag

    def _unlock(self) -> None:
        if self._lease is None:
            return
        self._lease_stop.set()
        self._lease_thread.join()
        with contextlib.suppress(Exception):
            self.fs.call_s3("delete_object", Bucket=self.bucket, Key=self._lease)
        self._lease = None

    def _tail_key(self, seq: int) -> str:
        name = f".{self.name}.{self.token}.{seq}.tail"
        return f"{self.parent}/{name}" if self.parent else name

    def _tail_pattern(self) -> re.Pattern[str]:
        return re.compile(rf"^\.{re.escape(self.name)}\.[0-9a-f]{{32}}\.[0-9]+\.tail$")

    def resume(self, staged: Mapping[str, Any]) -> None:
        try:
            token, upload_id, tail = staged["token"], staged["upload_id"], staged["tail"]
            parts = [dict(p) for p in staged["parts"]]
            if not isinstance(token, str) or not re.fullmatch("[0-9a-f]{32}", token):
                raise ValueError(token)
            if tail is not None and not (isinstance(tail, str) and self._tail_pattern().match(tail.rpartition("/")[2])):
                raise ValueError(tail)
        except (KeyError, TypeError, ValueError):
            raise StagedPartsMissing(f"the checkpoint does not describe staged parts of {self.key}") from None
        if upload_id is not None:
            listed = self.fs.call_s3("list_parts", Bucket=self.bucket, Key=self.key, UploadId=upload_id,
                                     MaxParts=1000) if parts else {}
            have = {p["PartNumber"]: (p["ETag"], p["Size"]) for p in listed.get("Parts") or []}
            for part in parts:
                if have.get(part["n"]) != (part["etag"], part["size"]):
                    raise StagedPartsMissing(f"part {part['n']} of upload {upload_id} to {self.key} is not the one "
                                             "the checkpoint recorded (or the upload is gone)")
        self.token, self.upload_id, self.parts = token, upload_id, parts
        if tail is not None:
            try:
                data = self.fs.cat_file(f"{self.bucket}/{tail}")
            except FileNotFoundError:
                raise StagedPartsMissing(f"the staged tail object {tail} is gone") from None
            if len(data) != staged.get("tail_size"):
                raise StagedPartsMissing(f"the staged tail object {tail} is not the recorded size")
            self._buffer = bytearray(data)
            self._tails = [tail]
            self._seq = int(tail.rsplit(".", 2)[-2])

    def cleanup_stale(self) -> int:
        response = self.fs.call_s3("list_multipart_uploads", Bucket=self.bucket, Prefix=self.key)
        removed = 0
        for upload in response.get("Uploads") or []:
            if upload.get("Key") == self.key and upload["UploadId"] != self.upload_id:
                self.fs.abort_mpu(self.bucket, self.key, upload["UploadId"])
                removed += 1
        pattern, own = self._tail_pattern(), {t.rpartition("/")[2] for t in self._tails}
        try:
            entries = self.fs.ls(f"{self.bucket}/{self.parent}", detail=False, refresh=True)
        except FileNotFoundError:
            entries = []
        for entry in entries:
            name = str(entry).rstrip("/").rpartition("/")[2]
            if pattern.match(name) and name not in own:
                with contextlib.suppress(FileNotFoundError):
                    self.fs.rm_file(str(entry))
                    removed += 1
        return removed

    def open(self) -> BinaryIO:
        return cast(BinaryIO, self)

    # the stream the writer writes to
    def write(self, data: bytes) -> int:
        self._buffer += data
        if len(self._buffer) >= self.part_size:
            self._upload_part()
        return len(data)

    def flush(self) -> None:
        """Parts go up when full (see :meth:`stage` for making the rest durable)."""

    def _upload_part(self) -> None:
        if self.upload_id is None:
            self.upload_id = self.fs.call_s3("create_multipart_upload", Bucket=self.bucket, Key=self.key)["UploadId"]
        number = len(self.parts) + 1
        body = bytes(self._buffer)
        etag = self.fs.call_s3("upload_part", Bucket=self.bucket, Key=self.key, UploadId=self.upload_id,
                               PartNumber=number, Body=body)["ETag"]
        self.parts.append({"n": number, "etag": etag, "size": len(body)})
        self._buffer = bytearray()

    def stage(self) -> dict[str, Any]:
        tail: str | None = None
        if self._buffer:
            self._seq += 1
            tail = self._tail_key(self._seq)
            self.fs.pipe_file(f"{self.bucket}/{tail}", bytes(self._buffer))
            self._tails.append(tail)
        # The tail the previous checkpoint names stays until this one is saved: only older ones go now.
        while len(self._tails) > (2 if tail is not None else 1):
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(f"{self.bucket}/{self._tails.pop(0)}")
        return {"token": self.token, "upload_id": self.upload_id, "parts": [dict(p) for p in self.parts],
                "tail": tail, "tail_size": len(self._buffer)}

    def commit(self) -> None:
        if self.upload_id is None:
            self.fs.call_s3("put_object", Bucket=self.bucket, Key=self.key, Body=bytes(self._buffer))
        else:
            if self._buffer or not self.parts:
                self._upload_part()
            self.fs.call_s3("complete_multipart_upload", Bucket=self.bucket, Key=self.key, UploadId=self.upload_id,
                            MultipartUpload={"Parts": [{"PartNumber": p["n"], "ETag": p["etag"]}
                                                       for p in self.parts]})
        self.fs.invalidate_cache(self.path)
        self._remove_tails()
        self._unlock()  # (on a failed commit the writer calls discard, which unlocks)

    def _remove_tails(self) -> None:
        while self._tails:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(f"{self.bucket}/{self._tails.pop()}")

    def discard(self) -> None:
        self._buffer = bytearray()
        try:
            if self.keep_staged:
                return
            if self.upload_id is not None:
                with contextlib.suppress(Exception):
                    self.fs.abort_mpu(self.bucket, self.key, self.upload_id)
            self._remove_tails()
        finally:
            self._unlock()


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


__all__ = ["LOCAL_PROTOCOLS", "AtomicTarget", "StagedPartsMissing", "atomic_target", "fsync_directory", "is_local",
           "object_uri"]
