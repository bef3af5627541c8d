"""How hard one request tries: the retry settings a DAG may tune, checked once, and the tenacity loop.

:class:`RetryPolicy` is the one definition of those settings (names, defaults, what each must be); the
operators, the sensor, the trigger and the hook constructor all check a DAG's values with
:meth:`RetryPolicy.problem` and then pass the frozen policy inward. JSON-serialisable, so a deferrable sensor
hands it to its trigger as plain values.

The loop honours ``Retry-After`` (seconds or an HTTP date, capped), backs off exponentially with full jitter
otherwise, stops after ``max_attempts`` or ``max_retry_seconds`` (whichever comes first), and turns a 429 into
a pause of the hook's shared :class:`~airflow_provider_conversations.transport.throttle.Throttle`: a 429 is
about the key, not the request, so every worker of the hook waits it out together.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import tenacity

from airflow_provider_conversations.exceptions import RetriesExhaustedError
from airflow_provider_conversations.logs import Log
from airflow_provider_conversations.stats import HookStats
from airflow_provider_conversations.transport.errors import Retryable
from airflow_provider_conversations.transport.session import Label
from airflow_provider_conversations.transport.throttle import Throttle

T = TypeVar("T")
Timeout = float | tuple[float, float]
#: The reason a throttle pause was set by a 429: already logged and counted as a retry.
BACKOFF_REASON = "back-off after HTTP 429"


@dataclass(frozen=True)
class RetryPolicy:
    """Timeouts and retry limits of every request a hook sends.

    :param timeout: ``(connect, read)`` timeouts in seconds (or one number for both).
    :param max_attempts: attempts per request for retryable failures (429, 5xx, connection errors, timeouts,
        truncated bodies).
    :param max_retry_seconds: total time budget for the attempts of one request.
    :param backoff: first exponential back-off wait in seconds (doubles per attempt, with full jitter).
    :param backoff_max: cap of one exponential back-off wait.
    :param retry_after_cap: cap of a wait asked for by ``Retry-After`` (or a rate-limit reset).
    """

    timeout: Timeout = (10.0, 60.0)
    max_attempts: int = 6
    max_retry_seconds: float = 300.0
    backoff: float = 1.0
    backoff_max: float = 60.0
    retry_after_cap: float = 300.0

    #: The setting names, in the order of the fields (what ``hook_params`` may hold).
    NAMES = ("timeout", "max_attempts", "max_retry_seconds", "backoff", "backoff_max", "retry_after_cap")

    @staticmethod
    def problem(name: str, value: Any) -> str | None:
        """What setting ``name`` must be, or None when ``value`` is fine."""
        if name == "max_attempts":
            return None if isinstance(value, int) and not isinstance(value, bool) and value >= 1 \
                else "an integer >= 1"
        if name == "timeout":
            pair = isinstance(value, list | tuple) and len(value) == 2 and all(_number(v, 0, strict=True)
                                                                                for v in value)
            return None if pair or _number(value, 0, strict=True) else "seconds > 0, or a (connect, read) pair of them"
        return None if _number(value, 0) else "a number of seconds >= 0"

    @classmethod
    def of(cls, values: Mapping[str, Any], refuse: Callable[[str, Any, str], Exception]) -> RetryPolicy:
        """A policy from checked values; ``refuse(name, value, expected)`` builds the error for a bad one
        (each entry point words it in its own terms)."""
        for name, value in values.items():
            if expected := cls.problem(name, value):
                raise refuse(name, value, expected)
        timeout = values.get("timeout")
        if isinstance(timeout, list):  # JSON has no tuples; requests takes a number or a tuple, not a list
            values = {**values, "timeout": (timeout[0], timeout[1])}
        return cls(**values)


class Retrier:
    """Runs one attempt function until it succeeds, fails for good, or the policy's limits are reached."""

    def __init__(self, policy: RetryPolicy, *, throttle: Throttle, stats: HookStats, log: Log,
                 label: Label) -> None:
        self.policy = policy
        self.throttle = throttle
        self.stats = stats
        self.log = log
        self.label = label
        self._shared = threading.local()
        self._loops: dict[tuple[int, float], tenacity.Retrying] = {}

    def call(self, attempt: Callable[[], T], *, what: str, max_attempts: int | None = None,
             max_seconds: float | None = None) -> T:
        """``attempt()`` with retries on :class:`Retryable`; ``what`` names the request in the final error."""
        attempts = max_attempts or self.policy.max_attempts
        budget = self.policy.max_retry_seconds if max_seconds is None else max_seconds
        started = time.monotonic()
        try:
            return self._retrying(attempts, budget)(attempt)
        except tenacity.RetryError as exc:
            last = exc.last_attempt.exception()
            assert isinstance(last, Retryable)
            n = exc.last_attempt.attempt_number
            d = last.details
            raise RetriesExhaustedError(
                f"{self.label.name} request to {what} failed after {n} attempt{'s' if n != 1 else ''} over "
                f"{time.monotonic() - started:.1f} s (limits: {attempts} attempts, {budget:g} s); last error: "
                f"{last.reason}",
                vendor=self.label.vendor, status=last.status, code=d.code, vendor_message=d.message,
                param=d.param, request_id=d.request_id,
            ) from None

    def _retrying(self, attempts: int, budget: float) -> tenacity.Retrying:
        """One tenacity loop per pair of limits, kept for the hook's life (its state is per thread).

        Not one per request: a ``Retrying`` and its per-thread state point at each other, a reference cycle that
        only Python's cyclic collector frees, so a new one per request left 22 objects of garbage per request
        and made that collector run more often.
        """
        retrying = self._loops.get((attempts, budget))
        if retrying is None:
            retrying = self._loops[attempts, budget] = tenacity.Retrying(
                stop=tenacity.stop_after_attempt(attempts) | tenacity.stop_after_delay(budget),
                wait=self._wait,
                retry=tenacity.retry_if_exception_type(Retryable),
                sleep=self._sleep,
                before_sleep=lambda rs: self._log_retry(rs, attempts),
                reraise=False,
            )
        return retrying

    def _wait(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        p = self.policy
        exp = min(p.backoff_max, p.backoff * (2 ** (retry_state.attempt_number - 1)))
        wait = random.uniform(exp / 2, exp)
        if isinstance(exc, Retryable) and exc.retry_after is not None:
            wait = min(exc.retry_after, p.retry_after_cap)
        self._shared.pause = isinstance(exc, Retryable) and exc.status == 429
        return wait

    def _sleep(self, seconds: float) -> None:
        self.stats.add(retries=1, retry_wait_seconds=seconds)
        if getattr(self._shared, "pause", False):
            self.throttle.pause(seconds, BACKOFF_REASON)
            self.throttle.wait_turn(take_slot=False)
        else:
            self.throttle.sleep(seconds)

    def _log_retry(self, rs: tenacity.RetryCallState, attempts: int) -> None:
        exc = rs.outcome.exception() if rs.outcome else None
        reason = exc.reason if isinstance(exc, Retryable) else repr(exc)
        wait = rs.next_action.sleep if rs.next_action else 0.0
        self.log.warning("%s: attempt %d/%d failed (%s); retrying in %.2f s", self.label.name, rs.attempt_number,
                         attempts, reason, wait)


def _number(value: Any, minimum: float, *, strict: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return value > minimum if strict else value >= minimum


__all__ = ["BACKOFF_REASON", "Retrier", "RetryPolicy", "Timeout"]
