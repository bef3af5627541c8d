"""One GET to a vendor's API with everything around it: pacing, retries, status mapping, JSON decoding.

Composes the pieces of this package for one hook: the session (``session.py``), the rate-limit gate
(``throttle.py``), the retry loop (``retry.py``) and the vendor's error envelope (``errors.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import requests

from airflow_provider_conversations.logs import Log
from airflow_provider_conversations.stats import HookStats
from airflow_provider_conversations.transport.errors import Envelope, Retryable, raise_for_status
from airflow_provider_conversations.transport.retry import Retrier, RetryPolicy
from airflow_provider_conversations.transport.session import Label, Params, send
from airflow_provider_conversations.transport.throttle import Throttle, parse_retry_after


class ApiClient:
    """Sends a hook's requests: ``get_json(url, params)`` returns the decoded body of a 2xx answer or raises."""

    def __init__(self, session: Callable[[], requests.Session], *, policy: RetryPolicy, throttle: Throttle,
                 stats: HookStats, envelope: Envelope, label: Label, log: Log, kind: str | None = None) -> None:
        self._session = session
        self.policy = policy
        self.throttle = throttle
        self.stats = stats
        self.envelope = envelope
        self.label = label
        #: Requests of this client are also counted as ``<kind>_requests`` (e.g. ``detail_requests``).
        self._counts = {"requests": 1, **({f"{kind}_requests": 1} if kind else {})}
        self.retrier = Retrier(policy, throttle=throttle, stats=stats, log=log, label=label)

    def get_json(self, url: str, params: Params, *, max_attempts: int | None = None,
                 max_seconds: float | None = None) -> Any:
        """GET ``url`` with ``params``, retried by the policy (or the given limits); the decoded JSON body."""
        return self.retrier.call(lambda: self._attempt(url, params), what=url, max_attempts=max_attempts,
                                 max_seconds=max_seconds)

    def _attempt(self, url: str, params: Params) -> Any:
        self.throttle.wait_turn()
        self.stats.add(**self._counts)
        try:
            response = send(self._session(), url, params, timeout=self.policy.timeout, label=self.label)
            content = response.content
        except requests.Timeout as exc:
            raise Retryable(f"timeout ({type(exc).__name__}) after {self.policy.timeout} s") from None
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError) as exc:
            raise Retryable(f"connection error ({type(exc).__name__}: {_short(exc)})") from None
        self.throttle.observe(response.headers)
        status = response.status_code
        raise_for_status(status, response.reason, content, read=self.envelope, label=self.label,
                         retry_after=parse_retry_after(response.headers.get("Retry-After")))
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError:
            snippet = content[:80].decode("utf-8", "replace")
            raise Retryable(
                f"HTTP {status} with a body that is not valid JSON ({len(content)} bytes, starts {snippet!r})",
                status=status,
            ) from None


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "..."


__all__ = ["ApiClient"]
