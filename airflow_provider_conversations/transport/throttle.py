"""One pacing gate per hook, shared by every thread that sends for it, and optionally by every process.

Two mechanisms, one gate:

- the vendor's rate-limit headers and any ``Retry-After`` back-off move a single "not before" instant, so
  parallel sub-window workers slow down together instead of each discovering the limit with a 429;
- a request budget per API key (:class:`RateBudget`: ``rate_limit`` requests per ``seconds``, a moving window of
  the `limits <https://limits.readthedocs.io>`_ library). In process by default; with a shared storage
  (``rate_limit_storage``, e.g. Redis) every task of every worker using the key draws from the one budget, and a
  429 seen by one of them pauses the others, since the vendor counts per key, not per process.

The budget is keyed by vendor and a hash of the key, never the key itself. A shared storage that stops answering
mid-run costs the sharing, not the export: one warning, then in-process pacing.
"""

from __future__ import annotations

import email.utils
import hashlib
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

from limits import RateLimitItemPerSecond
from limits.errors import ConfigurationError as LimitsConfigurationError
from limits.errors import StorageError
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from airflow_provider_conversations.logs import Log


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


#: The form of the ``rate_limit`` extra, as error messages and the connection form show it.
RATE_LIMIT_FORM = "'<requests>/<seconds>' in whole numbers above zero, e.g. '100/60', or 'none' for no budget"
#: Storage URI schemes a budget can live in (``memory://`` is the in-process default).
STORAGE_SCHEMES = ("memory", "redis", "rediss", "redis+unix")
STORAGE_FORM = "a storage URI such as redis://127.0.0.1:6379/0 (also rediss://, redis+unix://, memory://)"
#: Prefix of every key the budget writes into a shared storage (the rest: vendor and a hash of the API key).
KEY_PREFIX = "airflow-provider-conversations"
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
#: Seconds a shared storage may take to answer before it counts as unreachable.
STORAGE_TIMEOUT = 2.0
#: Set "pause until" (a wall-clock timestamp) only if it is later than the stored one; expires with the pause.
_PAUSE_LUA = """
local current = tonumber(redis.call('get', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then
    redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 1
"""


@dataclass(frozen=True)
class RateLimit:
    """A request budget: at most ``requests`` in any ``seconds`` (whole seconds: Redis expires keys by them)."""

    requests: int
    seconds: int

    def __str__(self) -> str:
        return f"{self.requests}/{self.seconds}"


def parse_rate_limit(value: Any) -> RateLimit | None:
    """``"100/60"`` as a :class:`RateLimit`, ``"none"`` as ``None``; ``ValueError`` naming the form otherwise."""
    if isinstance(value, str):
        if value.strip().lower() == "none":
            return None
        m = _RATE.match(value)
        if m and int(m.group(1)) > 0 and int(m.group(2)) > 0:
            return RateLimit(int(m.group(1)), int(m.group(2)))
    raise ValueError(f"expected {RATE_LIMIT_FORM}")


def storage_problem(uri: Any) -> str | None:
    """Why ``uri`` cannot hold a rate budget, or None. Checked before any request; nothing is connected here."""
    if not isinstance(uri, str) or not uri.strip():
        return f"expected {STORAGE_FORM}"
    try:
        parts = urlsplit(uri.strip())
        parts.port  # noqa: B018  (raises ValueError for a malformed port)
    except ValueError:
        return f"expected {STORAGE_FORM}"
    scheme = parts.scheme.lower()
    if scheme not in STORAGE_SCHEMES:
        return f"unsupported scheme {scheme + '://' if scheme else '(none)'}; expected {STORAGE_FORM}"
    if scheme in ("redis", "rediss"):
        if not parts.hostname:
            return f"no host; expected {STORAGE_FORM}"
        if parts.path not in ("", "/") and not re.fullmatch(r"/\d+", parts.path):
            return f"the database must be a number, as in redis://127.0.0.1:6379/0; expected {STORAGE_FORM}"
    if scheme == "redis+unix" and not parts.path:
        return f"no socket path, as in redis+unix:///run/redis.sock; expected {STORAGE_FORM}"
    if scheme != "memory":
        import importlib.util

        if importlib.util.find_spec("redis") is None:
            return "the redis client is not installed: pip install 'airflow-provider-conversations[redis]'"
    return None


def redact_uri(uri: str) -> str:
    """A storage URI fit for logs and messages: any user name and password are dropped."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "(a malformed URI, not shown)"
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else "(a URI without a scheme, not shown)"


def key_digest(secret: str) -> str:
    """What identifies an API key in a shared storage: a hash prefix, never the key."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def slot_margin(limit: RateLimit | None) -> float:
    """Extra wait after a slot frees: 2% of the window, at least 50 ms.

    A slot is stamped when the request is handed out; the vendor stamps it on arrival, later by a varying
    delay (a new connection, a busy machine). A request sent the instant the oldest slot frees could arrive
    before the vendor's own window has moved past its oldest request, and meet a 429."""
    return max(0.05, 0.02 * limit.seconds) if limit else 0.0


class RateBudget:
    """A moving-window request budget for one API key, in process or in a storage shared by every worker.

    ``acquire()`` takes one request's slot or says how long to wait for one; ``pause()`` publishes a "pause
    until" instant to every process sharing the storage. A storage error is logged once as a warning and the
    budget continues in process (``shared`` turns False): pacing degrades, the export does not fail.
    """

    def __init__(self, limit: RateLimit | None, *, vendor: str, secret: str, storage_uri: str | None = None,
                 log: Log | None = None, name: str | None = None) -> None:
        self.limit = limit
        self.name = name or vendor
        self.log = log
        self.key = (vendor, key_digest(secret))
        self.storage_uri = storage_uri
        self._item = RateLimitItemPerSecond(limit.requests, limit.seconds) if limit else None
        self._lock = threading.Lock()
        self._pause_script: Any = None
        self.fallback_reason: str | None = None
        self._published = 0.0
        storage: Storage
        if storage_uri is None or urlsplit(storage_uri).scheme.lower() == "memory":
            storage = MemoryStorage()
            self.shared = False
        else:
            try:
                storage = cast(Storage, storage_from_string(
                    storage_uri, key_prefix=KEY_PREFIX, wrap_exceptions=True, socket_timeout=STORAGE_TIMEOUT,
                    socket_connect_timeout=STORAGE_TIMEOUT))
            except LimitsConfigurationError as exc:  # e.g. the redis client missing; validated earlier
                raise ValueError(f"rate_limit_storage={redact_uri(storage_uri)!r}: {exc}") from None
            self.shared = True
            self._pause_script = storage.get_connection().register_script(_PAUSE_LUA)  # type: ignore[attr-defined]
        self._storage = storage
        self._limiter = MovingWindowRateLimiter(storage)

    @property
    def pause_key(self) -> str:
        return f"{KEY_PREFIX}:pause:{self.key[0]}:{self.key[1]}"

    def describe(self) -> str:
        where = f"shared via {redact_uri(self.storage_uri)}" if self.shared and self.storage_uri else "in process"
        limit = self.limit
        return f"rate budget of {limit.requests} requests per {limit.seconds} s for this API key ({where})" \
            if limit else f"no rate budget ({where})"

    def acquire(self, *, take_slot: bool = True) -> tuple[float, str]:
        """``(0, "")`` once this request may go (its slot taken), else ``(seconds to wait, why)``."""
        try:
            if self.shared:
                until = float(self._storage.get_connection().get(self.pause_key) or 0)  # type: ignore[attr-defined]
                delay = until - time.time()
                if delay > 0:
                    # This process's own pause was already waited out (and reported) by its local gate; what
                    # is left of it is clock noise between the two copies, slept without a report.
                    own = until == self._published
                    return delay, "" if own else "paused for every task using this key (a 429 or an " \
                        "exhausted rate limit seen by another task)"
            if not take_slot or self._item is None:
                return 0.0, ""
            if self._limiter.hit(self._item, "conversations", *self.key):
                return 0.0, ""
            reset, _ = self._limiter.get_window_stats(self._item, "conversations", *self.key)
        except Exception as exc:  # any storage failure: degrade to in-process, never fail the export
            if not self._fall_back(exc):
                raise
            return self.acquire(take_slot=take_slot)
        return max(reset - time.time(), 0.001) + slot_margin(self.limit), self.describe()

    def pause(self, seconds: float) -> None:
        """Publish "nobody sends before now + ``seconds``" (in process, the throttle's own gate does this)."""
        if not self.shared or seconds <= 0:
            return
        until = time.time() + seconds
        self._published = float(repr(until))
        try:
            self._pause_script(keys=[self.pause_key], args=[repr(until), max(1, int(seconds * 1000) + 1000)])
        except Exception as exc:  # as above
            if not self._fall_back(exc):
                raise

    def _fall_back(self, exc: Exception) -> bool:
        """Switch to in-process pacing after a storage failure (True), or re-raise what is not one (False)."""
        if not _is_storage_failure(exc):
            return False
        with self._lock:
            if not self.shared:
                return True
            self.shared = False
            self._storage = MemoryStorage()
            self._limiter = MovingWindowRateLimiter(self._storage)
            cause = exc.storage_error if isinstance(exc, StorageError) else exc
            self.fallback_reason = f"{type(cause).__name__}: {cause}"
        if self.log is not None:
            self.log.warning(
                "%s: rate_limit_storage %s is unreachable (%s); pacing in process from now on, so tasks on other "
                "workers using this API key no longer share its rate budget and may meet HTTP 429s",
                self.name, redact_uri(self.storage_uri or ""), self.fallback_reason,
            )
        return True


def _is_storage_failure(exc: Exception) -> bool:
    if isinstance(exc, StorageError | OSError):
        return True
    try:
        import redis
    except ImportError:  # pragma: no cover - a shared storage needs redis, checked at configuration
        return False
    return isinstance(exc, redis.RedisError)


class Throttle:
    """Thread-safe gate: ``wait_turn()`` before each request, ``observe()`` after, ``pause()`` on back-off.

    With rate-limit headers, once fewer than ``reserve`` of the limit remain, requests are handed out in
    slots spread over what is left of the window, so the limit is approached smoothly and not hit, also
    when several threads share it. With a :class:`RateBudget` (``use_budget``), every request also takes a
    slot of the key's budget, and pauses are published to every process sharing it.
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
        self.budget: RateBudget | None = None

    def use_budget(self, budget: RateBudget | None) -> None:
        """Draw every request from ``budget`` (set once the connection, hence the key, is known)."""
        self.budget = budget

    def sleep(self, seconds: float) -> None:
        """Sleep with this throttle's clock (tests swap in a fake one)."""
        self._sleep(seconds)

    def wait_turn(self, *, take_slot: bool = True) -> None:
        """Block until this request's slot; records each wait and its reason.

        ``take_slot=False`` waits out the pauses only, without spending a slot of the budget (a back-off
        before the retry, whose own ``wait_turn()`` takes the slot)."""
        self._wait_local()
        first = True
        while self.budget is not None:
            with self._lock:
                # A pause set here while this thread slept for a slot (a response said the limit is used up, or
                # a 429) outlasts the slot: wait for it too before taking one.
                blocked = 0.0 if first else self._blocked_until - self._clock()
                reason = self._block_reason
            first = False
            if blocked <= 0:
                blocked, reason = self.budget.acquire(take_slot=take_slot)
                if blocked <= 0:
                    return
            delay = blocked
            if reason:
                with self._lock:
                    self.waits += 1
                    self.waited_seconds += delay
                if self._on_wait is not None:
                    self._on_wait(delay, reason)
            self._sleep(delay)

    def _wait_local(self) -> None:
        """This process's gate: the header pacing and the pauses seen here."""
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
        if self.budget is not None:
            self.budget.pause(seconds)

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
            budget = self.budget.limit if self.budget is not None else None
            if limit and (remaining >= limit * self.reserve or (budget is not None and budget.requests <= limit)):
                # A budget no larger than the vendor's announced limit already keeps requests within the window;
                # spreading the rest of a window as well would only add to the wait (20.3 against 22.0 s for
                # Replyful's 1,010 requests at 100 per 2 s, with 8 detail threads), and a used-up window still
                # pauses everyone (above).
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
