"""Progress lines in the task log that a person can follow: the first page, then every N pages or seconds."""

from __future__ import annotations

import time

from airflow_provider_conversations.logs import Log
from airflow_provider_conversations.stats import HookStats
from airflow_provider_conversations.windows import Window, iso_z


class Progress:
    """Logs the walk of one window: called once per page (pages of parallel sub-windows count together)."""

    def __init__(self, log: Log, name: str, window: Window, stats: HookStats, *, every_pages: int,
                 every_seconds: float) -> None:
        self.log = log
        self.name = name
        self.window = window
        self.stats = stats
        self.every_pages = every_pages
        self.every_seconds = every_seconds
        self.started = time.monotonic()
        self.pages = 0
        self.last_logged_page = 0
        self._last_time = self.started

    def seconds(self) -> float:
        return time.monotonic() - self.started

    def page(self, count: int) -> None:
        """One more page; ``count`` conversations so far."""
        self.pages += 1
        now = time.monotonic()
        if (self.pages == 1 or self.pages - self.last_logged_page >= self.every_pages
                or now - self._last_time >= self.every_seconds):
            self._log(count, now)

    def done(self, count: int) -> None:
        """The walk is complete: log the last page unless it was just logged."""
        if self.pages and self.pages != self.last_logged_page:
            self._log(count, time.monotonic())

    def _log(self, count: int, now: float) -> None:
        self.last_logged_page, self._last_time = self.pages, now
        s = self.stats
        self.log.info(
            "%s %s to %s: page %d, %d conversations so far (%d fetched, %d requests, %d retries waiting %.1f s, "
            "%d rate-limit waits of %.1f s), %.1f s elapsed",
            self.name, iso_z(self.window.start), iso_z(self.window.end), self.pages, count, s.fetched,
            s.requests, s.retries, s.retry_wait_seconds, s.throttle_waits, s.throttle_wait_seconds,
            now - self.started,
        )


__all__ = ["Progress"]
