"""One pacing gate per hook, shared by every thread that sends for it.

The vendor's rate-limit headers and any ``Retry-After`` back-off move a single "not before" instant, so
parallel sub-window workers slow down together instead of each discovering the limit with a 429.
"""

from __future__ import annotations

import email.utils
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date; ``None`` if absent/bad."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


@dataclass(frozen=True)
class RateLimitHeaders:
    """Names of a vendor's rate-limit headers (IETF draft ``RateLimit-*`` style)."""

    remaining: str = "RateLimit-Remaining"
    reset: str = "RateLimit-Reset"
    limit: str = "RateLimit-Limit"


class Throttle:
    """Thread-safe gate: ``wait_turn()`` before each request, ``observe()`` after, ``pause()`` on back-off.

    With rate-limit headers, once fewer than ``reserve`` of the limit remain, requests are handed out in
    slots spread over what is left of the window, so the limit is approached smoothly and not hit, also
    when several threads share it.
    """

    def __init__(
        self,
        headers: RateLimitHeaders | None = None,
        *,
        reserve: float = 0.2,
        max_wait: float = 300.0,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
        on_wait: Callable[[float, str], None] | None = None,
    ) -> None:
        self.headers = headers
        self.reserve = reserve
        self.max_wait = max_wait
        # Looked up at call time so tests can patch time.sleep / time.monotonic.
        self._clock = clock or (lambda: time.monotonic())
        self._sleep = sleep or (lambda seconds: time.sleep(seconds))
        self._on_wait = on_wait
        self._lock = threading.Lock()
        self._blocked_until = 0.0
        self._block_reason = ""
        self._interval = 0.0
        self._interval_reason = ""
        self._last_slot = float("-inf")
        self.waits = 0
        self.waited_seconds = 0.0

    def sleep(self, seconds: float) -> None:
        """Sleep with this throttle's clock (tests swap in a fake one)."""
        self._sleep(seconds)

    def wait_turn(self) -> None:
        """Block until this request's slot; records the wait and its reason."""
        with self._lock:
            now = self._clock()
            # The interval is read now, so a response that just announced a low remaining count already
            # spaces the very next request.
            slot = max(now, self._last_slot + self._interval, self._blocked_until)
            reason = self._block_reason if slot == self._blocked_until else self._interval_reason
            self._last_slot = slot
            delay = slot - now
            if delay <= 0:
                return
            self.waits += 1
            self.waited_seconds += delay
        if self._on_wait is not None:
            self._on_wait(delay, reason)
        self._sleep(delay)

    def pause(self, seconds: float, reason: str) -> None:
        """Close the gate for everyone for ``seconds`` (capped), e.g. after a 429 with ``Retry-After``."""
        seconds = min(max(0.0, seconds), self.max_wait)
        with self._lock:
            until = self._clock() + seconds
            if until > self._blocked_until:
                self._blocked_until = until
                self._block_reason = reason

    def observe(self, response_headers: Mapping[str, str]) -> None:
        """Read the vendor's remaining/reset headers and pace the next requests accordingly."""
        if self.headers is None:
            return
        remaining = _number(response_headers.get(self.headers.remaining))
        reset = _number(response_headers.get(self.headers.reset))
        limit = _number(response_headers.get(self.headers.limit))
        if remaining is None or reset is None:
            return
        if remaining <= 0:
            self.pause(reset, f"rate limit used up ({self.headers.remaining}: 0); window resets in {reset:g} s")
            with self._lock:
                self._interval = 0.0  # the pause covers the rest of this window; the next one starts fresh
            return
        with self._lock:
            if limit and remaining >= limit * self.reserve:
                self._interval = 0.0
                return
            # Spread what is left evenly over the rest of the window.
            self._interval = min(reset / remaining, self.max_wait)
            self._interval_reason = (
                f"pacing to the rate limit ({self.headers.remaining}: {remaining:g}, resets in {reset:g} s)"
            )


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None
