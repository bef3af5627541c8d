"""Counters of one hook's work, for the task log and the manifest.

Shared by the transport (requests, retries, rate-limit waits) and the engine (pages, conversations,
duplicates), and safe to update from the threads of a parallel walk.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any


@dataclass
class HookStats:
    """Counters a task reports in its log and manifest (safe to update from parallel workers)."""

    requests: int = 0
    pages: int = 0
    fetched: int = 0
    yielded: int = 0
    duplicates: int = 0
    retries: int = 0
    retry_wait_seconds: float = 0.0
    throttle_waits: int = 0
    throttle_wait_seconds: float = 0.0
    #: Detail requests sent (also counted in ``requests``), details received, details gone (404), and the
    #: seconds spent fetching them, summed over the detail workers.
    detail_requests: int = 0
    details_fetched: int = 0
    details_missing: int = 0
    detail_seconds: float = 0.0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def add(self, **deltas: float) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {k: round(v, 3) if isinstance(v, float) else v for k, v in vars(self).items()
                    if not k.startswith("_")}


__all__ = ["HookStats"]
