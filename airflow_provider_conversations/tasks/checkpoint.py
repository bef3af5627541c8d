"""An export's checkpoint in Airflow's task state store: where a retry of the task continues from.

Airflow 3.3 gives each task instance a key/value store that survives retries (``context["task_state_store"]``,
JSON values). An export saves one key there at every checkpoint boundary: the walk's position (the paginator's
typed state, de-duplication's frontier, page counts; see ``engine/walk.py``), the staged parts of the object
written so far (see ``output/targets.py``) and the counts, under the export's identity: a hash of everything
that decides the object's bytes (window, connection, vendor, filters, time key, output options). A retry
resumes only from a checkpoint of the very same export; anything else (another export, another version of this
code, corrupt or oversized data) is ignored with a log line saying why, and the export starts from the window
start. On success the key is deleted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Protocol

import orjson

from airflow_provider_conversations.engine.walk import STATE_VERSION
from airflow_provider_conversations.exceptions import ConfigurationError
from airflow_provider_conversations.logs import Log

#: The task state store key (one per task instance; the store is namespaced per map index).
KEY = "airflow_provider_conversations.export_checkpoint"
#: Pages between checkpoints: a checkpoint (a gzip member ends, an fsync or a part upload, one store write,
#: all in the writer's thread) costs far less than 1% of 100 page requests, and a retry re-requests at most
#: this many pages.
DEFAULT_CHECKPOINT_EVERY_PAGES = 100
#: Larger checkpoints are neither saved nor read (the store lives in the metadata database). The walk state
#: of an ordered walk is a few hundred bytes; without an order de-duplication remembers every id.
MAX_CHECKPOINT_BYTES = 256 * 1024


class StateStore(Protocol):
    """What this module uses of Airflow's ``TaskStateStoreAccessor``."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...

    def delete(self, key: str) -> None: ...


def check_checkpoint_every_pages(value: Any) -> int | None:
    """``checkpoint_every_pages``: a positive integer, or ``None`` (no checkpoints); raises ConfigurationError."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    raise ConfigurationError(
        f"checkpoint_every_pages={value!r} is not valid; expected a positive integer (pages between checkpoints, "
        f"default {DEFAULT_CHECKPOINT_EVERY_PAGES}) or None (no checkpoints: a retry starts from the window start)"
    )


def export_identity(fields: Mapping[str, Any]) -> str:
    """A hash of what decides an export's bytes; a checkpoint resumes only an export with the same one."""
    payload = orjson.dumps({"state_version": STATE_VERSION, **fields}, option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha256(payload).hexdigest()


class Checkpoints:
    """Load, save and clear one export's checkpoint in a task state store."""

    def __init__(self, store: StateStore, identity: str, log: Log) -> None:
        self.store = store
        self.identity = identity
        self.log = log
        self.saved = 0
        self._warned_size = False

    def load(self) -> dict[str, Any] | None:
        """The checkpoint to resume from, or ``None`` (logged: why one found is not used)."""
        try:
            value = self.store.get(KEY)
        except Exception as exc:  # an unreadable store must not fail the export: it costs a restart only
            self.log.warning("Could not read the export's checkpoint (%s); starting from the window start", exc)
            return None
        if value is None:
            return None
        why = self._unusable(value)
        if why is not None:
            self.log.warning("Ignoring the checkpoint in the task state store: %s; starting from the window start",
                             why)
            return None
        return dict(value)

    def _unusable(self, value: Any) -> str | None:
        try:
            size = len(orjson.dumps(value))
        except TypeError:
            return "it is not JSON"
        if size > MAX_CHECKPOINT_BYTES:
            return f"it is {size} bytes, more than the {MAX_CHECKPOINT_BYTES} a checkpoint may hold"
        if not isinstance(value, Mapping):
            return f"it is not an object but {type(value).__name__}"
        if value.get("identity") != self.identity:
            return ("it belongs to another export (window, connection, vendor, filters, time key or output options "
                    "differ)")
        walk, output = value.get("walk"), value.get("output")
        if isinstance(walk, Mapping) and "parallel" in walk:  # per-sub-window state: see parallel_checkpoint.py
            if walk.get("version") == STATE_VERSION and isinstance(walk["parallel"], Mapping):
                return None
            return "it is corrupt (its walk or output state is missing or malformed)"
        if not (isinstance(walk, Mapping) and walk.get("version") == STATE_VERSION
                and isinstance(output, Mapping) and isinstance(output.get("staged"), Mapping)
                and all(isinstance(output.get(k), int) for k in ("count", "bytes", "uncompressed_bytes"))
                and isinstance(walk.get("number"), int)):
            return "it is corrupt (its walk or output state is missing or malformed)"
        return None

    def save(self, walk: Mapping[str, Any], output: Mapping[str, Any]) -> None:
        """Save a checkpoint (called in the writer's thread once ``output``'s parts are durable)."""
        value = {"identity": self.identity, "walk": walk, "output": output}
        size = len(orjson.dumps(value))
        if size > MAX_CHECKPOINT_BYTES:
            if not self._warned_size:
                self._warned_size = True
                self.log.warning(
                    "Not saving a checkpoint of %d bytes (more than %d: this walk's de-duplication remembers every "
                    "id); a retry resumes from the last smaller one or from the window start", size,
                    MAX_CHECKPOINT_BYTES)
            return
        self.store.set(KEY, value)
        self.saved += 1

    def clear(self) -> None:
        """Forget the checkpoint (the export is complete)."""
        try:
            self.store.delete(KEY)
        except Exception as exc:  # the object is complete; a stale checkpoint only costs a check on a rerun
            self.log.warning("Could not delete the export's checkpoint: %s", exc)


__all__ = ["DEFAULT_CHECKPOINT_EVERY_PAGES", "KEY", "MAX_CHECKPOINT_BYTES", "Checkpoints", "StateStore",
           "check_checkpoint_every_pages", "export_identity"]
