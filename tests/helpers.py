"""Assertions shared by the per-vendor suites, and stopping what a test started."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any


def stop_process_group(proc: subprocess.Popen[Any], grace: float = 20) -> None:
    """Stop a process started with ``start_new_session=True`` and everything it started: SIGTERM to its group,
    SIGKILL after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def hourly_windows(start: datetime, hours: int) -> list[tuple[datetime, datetime]]:
    return [(start + timedelta(hours=i), start + timedelta(hours=i + 1)) for i in range(hours)]


def walk_back_to_back(hook: Any, start: datetime, hours: int, id_field: str = "id", **kwargs: Any) -> list[str]:
    """Ids exported by consecutive 1-hour windows, in order (duplicates kept, so tests can see them)."""
    ids: list[str] = []
    for s, e in hourly_windows(start, hours):
        ids.extend(str(c[id_field]) for c in hook.iter_conversations(s, e, **kwargs))
    return ids


def assert_exactly_once(got: Iterable[str], truth: Iterable[str]) -> None:
    got = list(got)
    truth = list(truth)
    dupes = [i for i, n in Counter(got).items() if n > 1]
    assert not dupes, f"{len(dupes)} conversations exported more than once, e.g. {dupes[:5]}"
    missing = set(truth) - set(got)
    extra = set(got) - set(truth)
    assert not missing, f"{len(missing)} conversations missing, e.g. {sorted(missing)[:5]}"
    assert not extra, f"{len(extra)} conversations not in the ground truth, e.g. {sorted(extra)[:5]}"
