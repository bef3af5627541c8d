"""The shared HTTP engine every vendor hook stands on.

A vendor hook declares its API (base URL, auth header, time keys, filters, how a window becomes query
parameters, how a page is read and which pagination style it uses). This module does the rest once:
the session, retries with ``Retry-After``, error mapping, the half-open window, de-duplication, loop
detection and the page loop.
"""

from __future__ import annotations

import json
import math
import os
import queue
import random
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal
from urllib.parse import urljoin, urlsplit

import orjson
import requests
import tenacity
from airflow.sdk import BaseHook
from requests.adapters import HTTPAdapter

from airflow_provider_conversations import __version__
from airflow_provider_conversations.exceptions import (
    AuthenticationError,
    ConfigurationError,
    InvalidResponseError,
    PaginationError,
    RetriesExhaustedError,
    VendorAPIError,
)
from airflow_provider_conversations.filters import FilterSet, Params
from airflow_provider_conversations.paging import Item, Paginator
from airflow_provider_conversations.throttle import RateLimitHeaders, Throttle, parse_retry_after
from airflow_provider_conversations.windows import Window, iso_z

Order = Literal["asc", "desc"]
USER_AGENT = f"airflow-provider-conversations/{__version__} python-requests/{requests.__version__}"
_BACKOFF = "back-off after HTTP 429"
#: Sub-windows per worker with max_parallel: more parts than threads evens out uneven data.
PARTS_PER_WORKER = 4
#: Redirects followed within the API's host (e.g. http to https) before giving up.
MAX_REDIRECTS = 5


@dataclass(frozen=True)
class TimeKey:
    """A vendor field that places a conversation in time, and how to read it."""

    name: Literal["created", "updated"]
    field: str
    parse: Any  # Callable[[Any], datetime | None]; Any keeps dataclass + staticmethod-free declarations

    def of(self, item: Item) -> datetime | None:
        value: datetime | None = self.parse(item.get(self.field))
        return value


@dataclass(frozen=True)
class Walk:
    """One pass over a window: the first request, how to get the next, and what the order guarantees.

    ``order`` is the order the vendor guarantees on the time key for this request (documented, or asked
    for with a sort parameter). It lets de-duplication keep only the ids at the frontier instead of every
    id, so memory stays flat however many conversations the window holds. ``repeats`` says whether the
    pagination itself can serve an item twice behind the frontier (offset paging while rows are inserted).
    """

    params: Params
    paginator: Paginator
    order: Order | None = None
    repeats: bool = False


@dataclass(frozen=True)
class ConnectionSettings:
    """What a hook needs from its Airflow connection, resolved once and validated."""

    conn_id: str
    base_url: str
    secret: str
    extras: Mapping[str, Any]
    verify: bool = True


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


class Page(list[Item]):
    """The in-window, not-yet-seen conversations of one vendor page.

    ``number`` counts pages within a (sub-)window walk; ``part`` is the sub-window's index when the window is
    fetched in parallel (0 otherwise); ``descending`` says the walk goes newest first, so a writer that
    reassembles parallel parts puts them in the order a sequential walk would have produced.
    """

    def __init__(self, items: list[Item], *, number: int, fetched: int, part: int = 0,
                 descending: bool = False) -> None:
        super().__init__(items)
        self.number = number
        self.fetched = fetched
        self.part = part
        self.descending = descending


@dataclass
class ErrorDetails:
    code: str | None = None
    message: str | None = None
    param: str | None = None
    request_id: str | None = None


class _Retryable(Exception):
    """An attempt that failed in a way worth retrying; carries what the wait and the log need."""

    def __init__(self, reason: str, *, status: int | None = None, retry_after: float | None = None,
                 details: ErrorDetails | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after
        self.details = details or ErrorDetails()


class Dedup:
    """Exactly-once within one walk.

    In a walk whose order on the time key is guaranteed, a repeat can only sit at or behind the frontier
    (the newest instant seen in an ascending walk, the oldest in a descending one), so only the ids at the
    frontier instant are kept. Without an order guarantee, every id is kept.

    An item behind the frontier is a repeat when the pagination can repeat (offset paging under inserts).
    When it cannot (cursors), the vendor broke the order we rely on: the item is kept, a warning is logged
    and de-duplication falls back to remembering every id, so nothing is lost and nothing doubled.
    """

    def __init__(self, order: Order | None, *, repeats: bool = False, on_disorder: Any = None) -> None:
        self.order = order
        self.repeats = repeats
        self._on_disorder = on_disorder
        self._frontier: datetime | None = None
        self._ids: set[str] = set()

    def first_time(self, item_id: str, ts: datetime) -> bool:
        if self.order is None:
            if item_id in self._ids:
                return False
            self._ids.add(item_id)
            return True
        f = self._frontier
        if f is None or (ts > f if self.order == "asc" else ts < f):
            self._frontier = ts
            self._ids = {item_id}
            return True
        if ts == f or not self.repeats:
            if item_id in self._ids:
                return False
            self._ids.add(item_id)
            if ts != f:
                if self._on_disorder is not None:
                    self._on_disorder(item_id, ts, f)
                self.order = None  # keep every id from now on
            return True
        return False


class ConversationsHook(BaseHook):
    """Base class of the five vendor hooks. Subclasses declare; this class pages.

    :param conn_id: Airflow connection id (defaults to ``<vendor>_default``).
    :param page_size: items per request; defaults to the vendor's maximum (fewest requests).
    :param timeout: ``(connect, read)`` timeouts in seconds for every request.
    :param max_attempts: attempts per request for retryable failures (429, 5xx, connection errors,
        timeouts, truncated bodies).
    :param max_retry_seconds: total time budget for the attempts of one request.
    :param backoff: first exponential back-off wait in seconds (doubles per attempt, with full jitter).
    :param backoff_max: cap of one exponential back-off wait.
    :param retry_after_cap: cap of a wait asked for by ``Retry-After`` (or a rate-limit reset).
    """

    conn_name_attr = "conn_id"
    default_conn_name: ClassVar[str]
    conn_type: ClassVar[str]
    hook_name: ClassVar[str]

    #: Vendor declaration, filled in by subclasses.
    vendor: ClassVar[str]
    default_base_url: ClassVar[str | None] = None
    extra_fields: ClassVar[tuple[str, ...]] = ()
    time_keys: ClassVar[Mapping[str, TimeKey]]
    id_field: ClassVar[str] = "id"
    max_page_size: ClassVar[int]
    filter_set: ClassVar[FilterSet]
    rate_limit_headers: ClassVar[RateLimitHeaders | None] = None
    #: Status field and the vendor's own in-progress / finished statuses (sensors, ``finished_only``).
    status_field: ClassVar[str | None] = "status"
    in_progress_statuses: ClassVar[frozenset[str]] = frozenset()
    finished_statuses: ClassVar[frozenset[str]] = frozenset()
    #: Server-side time bounds exist for this vendor (sub-windows can then be fetched in parallel).
    server_bounded: ClassVar[bool] = True
    #: Consecutive pages without any item after which a walk is declared stuck.
    max_empty_pages: ClassVar[int] = 50

    def __init__(
        self,
        conn_id: str | None = None,
        *,
        page_size: int | None = None,
        timeout: tuple[float, float] = (10.0, 60.0),
        max_attempts: int = 6,
        max_retry_seconds: float = 300.0,
        backoff: float = 1.0,
        backoff_max: float = 60.0,
        retry_after_cap: float = 300.0,
        logger_name: str | None = None,
    ) -> None:
        super().__init__(logger_name=logger_name)
        self.conn_id = conn_id or self.default_conn_name
        if page_size is not None and (
            isinstance(page_size, bool) or not isinstance(page_size, int)
            or not 1 <= page_size <= self.max_page_size
        ):
            raise ConfigurationError(
                f"page_size={page_size!r} is not allowed for {self.hook_name}: expected an integer from 1 to "
                f"{self.max_page_size}"
            )
        from airflow_provider_conversations.hooks import hook_param_problem

        for name, value in (("timeout", timeout), ("max_attempts", max_attempts),
                            ("max_retry_seconds", max_retry_seconds), ("backoff", backoff),
                            ("backoff_max", backoff_max), ("retry_after_cap", retry_after_cap)):
            if expected := hook_param_problem(name, value):
                raise ConfigurationError(f"{name}={value!r} is not valid for {self.hook_name}: expected {expected}")
        if isinstance(timeout, list):
            timeout = (timeout[0], timeout[1])  # requests takes a number or a tuple, not a list
        self.page_size = page_size
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.max_retry_seconds = max_retry_seconds
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.retry_after_cap = retry_after_cap
        self.stats = HookStats()
        self.throttle = Throttle(self.rate_limit_headers, max_wait=retry_after_cap, on_wait=self._log_throttle)
        self._settings: ConnectionSettings | None = None
        self._session: requests.Session | None = None
        self._retry_state = threading.local()

    # ------------------------------------------------------------------ vendor declaration points

    def resolve_default_base_url(self, extras: Mapping[str, Any]) -> str | None:
        """The base URL when the connection has no host (regional vendors choose from extras)."""
        return self.default_base_url

    def validate_extras(self, extras: Mapping[str, Any], secret: str) -> None:
        """Refuse a connection whose vendor fields are missing or malformed (raise ConfigurationError)."""

    def auth_headers(self, settings: ConnectionSettings) -> dict[str, str]:
        raise NotImplementedError

    def list_path(self, settings: ConnectionSettings) -> str:
        """Path of the list endpoint, relative to the base URL."""
        raise NotImplementedError

    def new_walk(self, window: Window | None, time_key: TimeKey, filters: Mapping[str, Any],
                 page_size: int) -> Walk:
        """The first request of a walk over ``window`` (``None``: unbounded, used by the connection test)."""
        raise NotImplementedError

    def page_items(self, body: Any) -> list[Item]:
        """The conversations of one response body; raise InvalidResponseError if it is not a page."""
        raise NotImplementedError

    #: Field holding the conversation's duration in seconds, if the vendor has one.
    duration_field: ClassVar[str | None] = None

    def normalize(self, item: Item) -> dict[str, Any]:
        """One record shape across vendors (``output_format="normalized"``), from the declarations above."""
        created = self.time_keys["created"].of(item)
        updated_key = self.time_keys.get("updated")
        updated = updated_key.of(item) if updated_key is not None else None
        duration = item.get(self.duration_field) if self.duration_field else None
        return {
            "vendor": self.vendor,
            "id": str(item.get(self.id_field)),
            "created_at": iso_z(created) if created else None,
            "updated_at": iso_z(updated) if updated else None,
            "status": self.status_of(item),
            "finished": self.finished_of(item),
            "channel": self.channel_of(item),
            "duration_seconds": float(duration) if isinstance(duration, int | float)
            and not isinstance(duration, bool) else None,
            "raw": item,
        }

    def status_of(self, item: Item) -> Any:
        return item.get(self.status_field) if self.status_field else None

    def finished_of(self, item: Item) -> bool | None:
        """True/False by the vendor's own statuses; None when the status is missing or unknown."""
        status = self.status_of(item)
        if status in self.finished_statuses:
            return True
        if status in self.in_progress_statuses:
            return False
        return None

    def channel_of(self, item: Item) -> str | None:
        channel = item.get("channel")
        return channel if isinstance(channel, str) else None

    def finished_filters(self, filters: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side filters that keep only finished conversations, merged into ``filters`` by
        ``finished_only`` (which also applies :meth:`is_finished` to every record)."""
        return {}

    def in_progress_filters(self, filters: Mapping[str, Any]) -> dict[str, Any] | None:
        """Server-side filters that select only conversations still in progress, or ``None`` when the
        vendor cannot express that (the settled sensor then checks :meth:`is_in_progress` on every record)."""
        return None

    def error_details(self, body: Any) -> ErrorDetails:
        """Read the vendor's error envelope. Handles every shape the five vendors use."""
        if not isinstance(body, dict):
            return ErrorDetails()
        err = body.get("error")
        if isinstance(err, dict):  # Replyful: {"error": {"type", "code", "message", "param", "requestId"}}
            return ErrorDetails(_s(err.get("code") or err.get("type")), _s(err.get("message")),
                                _s(err.get("param")), _s(err.get("requestId") or err.get("request_id")))
        if "error_code" in body or "error_message" in body:  # PolyAI
            return ErrorDetails(_s(body.get("error_code")), _s(body.get("error_message") or err),
                                None, _s(body.get("error_id")))
        detail = body.get("detail")
        if isinstance(detail, dict):  # ElevenLabs: {"detail": {"type", "code", "message", "request_id", "param"}}
            return ErrorDetails(_s(detail.get("code") or detail.get("type") or detail.get("status")),
                                _s(detail.get("message")), _s(detail.get("param")),
                                _s(detail.get("request_id")))
        if isinstance(detail, list) and detail:  # FastAPI 422: [{"loc": [...], "msg", "type"}]
            first = detail[0] if isinstance(detail[0], dict) else {}
            loc = first.get("loc") or []
            param = str(loc[-1]) if isinstance(loc, list) and loc else None
            msgs = "; ".join(
                f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg')}" for d in detail if isinstance(d, dict)
            )
            return ErrorDetails(_s(first.get("type")), msgs or None, param, None)
        if isinstance(detail, str):  # Anyreach: {"detail": "..."}
            return ErrorDetails(None, detail, None, None)
        if isinstance(err, str):
            return ErrorDetails(None, err, None, None)
        return ErrorDetails(_s(body.get("code")), _s(body.get("message")), None, None)

    # ------------------------------------------------------------------ connection and session

    @property
    def settings(self) -> ConnectionSettings:
        if self._settings is None:
            from airflow.providers.common.compat.sdk import AirflowNotFoundException

            from airflow_provider_conversations.hooks import not_found

            try:
                conn = self.get_connection(self.conn_id)
            except AirflowNotFoundException:
                raise not_found(self.conn_id) from None
            self._settings = self.settings_from_connection(conn)
        return self._settings

    def settings_from_connection(self, conn: Any, extra: Mapping[str, Any] | None = None) -> ConnectionSettings:
        """Validate a connection for this vendor.

        Triggers fetch the connection asynchronously and pass its ``extra`` already decoded (with
        ``aextra_dejson``), since the synchronous ``extra_dejson`` must not run on the triggerer's loop.
        """
        if conn.conn_type and conn.conn_type.replace("-", "_") != self.conn_type:
            raise ConfigurationError(
                f"connection {conn.conn_id!r} has type {conn.conn_type!r}, but {type(self).__name__} needs "
                f"a {self.conn_type!r} connection"
            )
        if extra is None:
            extra = decode_extra(conn)
        extras = self.read_extras(extra)
        secret = conn.password or ""
        if not secret:
            raise ConfigurationError(
                f"connection {conn.conn_id!r} has no API key: put the {self.hook_name} API key in its "
                "Password field"
            )
        if secret != secret.strip() or any(ord(c) < 32 or ord(c) == 127 for c in secret):
            # requests would refuse the header with an error quoting its value, i.e. the key
            raise ConfigurationError(
                f"connection {conn.conn_id!r} has an API key with leading or trailing whitespace or a control "
                "character such as a line break (the key is not shown here): paste the key alone into the "
                "Password field"
            )
        self.validate_extras(extras, secret)
        base_url = self._base_url(conn, extras)
        verify = extras.get("verify_ssl", True)
        if isinstance(verify, str):
            verify = verify.strip().lower() not in ("false", "0", "no", "off")
        if not verify:
            self.log.warning(
                "TLS certificate verification is OFF for connection %r (extra verify_ssl=false); "
                "responses from %s are not authenticated", conn.conn_id, base_url,
            )
        return ConnectionSettings(conn.conn_id, base_url, secret, extras, bool(verify))

    def read_extras(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Declared extras, accepting the legacy ``extra__<type>__<field>`` keys older UIs wrote."""
        out: dict[str, Any] = {}
        for name in (*self.extra_fields, "verify_ssl"):
            for key in (name, f"extra__{self.conn_type}__{name}"):
                value = raw.get(key)
                if value not in (None, ""):
                    out[name] = value.strip() if isinstance(value, str) else value
                    break
        return out

    def _base_url(self, conn: Any, extras: Mapping[str, Any]) -> str:
        host = (conn.host or "").strip()
        if not host:
            default = self.resolve_default_base_url(extras)
            if not default:
                raise ConfigurationError(
                    f"connection {conn.conn_id!r} has no host, and {self.hook_name} has no public default base "
                    "URL: set Host to the API base URL, e.g. https://api.example.com"
                )
            return default.rstrip("/")
        if "://" in host:
            url = host
        else:
            scheme = (conn.schema or "https").strip() or "https"
            url = f"{scheme}://{host}"
            if conn.port:
                url = f"{url}:{conn.port}"
        parts = urlsplit(url)
        try:
            parts.port  # noqa: B018  (raises ValueError for a malformed port)
        except ValueError:
            parts = parts._replace(netloc="")
        if "@" in parts.netloc:
            raise ConfigurationError(
                f"connection {conn.conn_id!r} has credentials in its host (user:password@...; not shown here): "
                "put the API key in the Password field and only the base URL in Host"
            )
        if (parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url)
                or parts.query or parts.fragment):
            raise ConfigurationError(
                f"connection {conn.conn_id!r} has a malformed host {host!r}: expected a base URL such as "
                "https://api.example.com or http://127.0.0.1:8931, or a bare host name with Schema and Port"
            )
        return url.rstrip("/")

    @property
    def base_url(self) -> str:
        return self.settings.base_url

    def get_conn(self) -> requests.Session:
        """The hook's one keep-alive session, created on first use."""
        if self._session is None:
            settings = self.settings
            session = requests.Session()
            session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
            session.headers.update(self.auth_headers(settings))
            # Proxy and CA-bundle environment variables are read once here instead of on every request
            # (requests re-scans os.environ per call, a measurable share of a fast page loop). No .netrc:
            # credentials come from the Airflow connection only.
            session.trust_env = False
            session.proxies = requests.utils.get_environ_proxies(settings.base_url)
            ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            session.verify = (ca_bundle or True) if settings.verify else False
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._session = session
        return self._session

    session = property(get_conn)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    # ------------------------------------------------------------------ requests and retries

    def get_json(self, params: Params, *, path: str | None = None, max_attempts: int | None = None,
                 max_seconds: float | None = None) -> Any:
        """GET one page with retries; returns the decoded JSON body."""
        attempts = max_attempts or self.max_attempts
        budget = self.max_retry_seconds if max_seconds is None else max_seconds
        url = f"{self.base_url}/{(path or self.list_path(self.settings)).lstrip('/')}"
        started = time.monotonic()
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(attempts) | tenacity.stop_after_delay(budget),
            wait=self._wait,
            retry=tenacity.retry_if_exception_type(_Retryable),
            sleep=self._sleep,
            before_sleep=lambda rs: self._log_retry(rs, attempts),
            reraise=False,
        )
        try:
            return retrying(self._attempt, url, params)
        except tenacity.RetryError as exc:
            last = exc.last_attempt.exception()
            assert isinstance(last, _Retryable)
            n = exc.last_attempt.attempt_number
            d = last.details
            raise RetriesExhaustedError(
                f"{self.hook_name} request to {url} failed after {n} attempt{'s' if n != 1 else ''} over "
                f"{time.monotonic() - started:.1f} s (limits: {attempts} attempts, {budget:g} s); last error: "
                f"{last.reason}",
                vendor=self.vendor, status=last.status, code=d.code, vendor_message=d.message, param=d.param,
                request_id=d.request_id,
            ) from None

    def _attempt(self, url: str, params: Params) -> Any:
        self.throttle.wait_turn()
        self.stats.add(requests=1)
        try:
            response = self._send(url, params)
            content = response.content
        except requests.Timeout as exc:
            raise _Retryable(f"timeout ({type(exc).__name__}) after {self.timeout} s") from None
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError) as exc:
            raise _Retryable(f"connection error ({type(exc).__name__}: {_short(exc)})") from None
        self.throttle.observe(response.headers)
        status = response.status_code
        if status == 429 or status >= 500:
            details = self.error_details(_loads_or_none(content))
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            raise _Retryable(_describe(status, response.reason, details, retry_after), status=status,
                             retry_after=retry_after, details=details)
        if status >= 400:
            details = self.error_details(_loads_or_none(content))
            if status in (401, 403):
                raise AuthenticationError(
                    f"{self.hook_name} rejected the API key of connection {self.conn_id!r}: "
                    f"{_describe(status, response.reason, details)}. Check the key in the connection's "
                    "Password field (and its scopes).",
                    vendor=self.vendor, status=status, code=details.code, vendor_message=details.message,
                    param=details.param, request_id=details.request_id,
                )
            raise VendorAPIError(
                f"{self.hook_name} refused the request (connection {self.conn_id!r}): "
                f"{_describe(status, response.reason, details)}",
                vendor=self.vendor, status=status, code=details.code, vendor_message=details.message,
                param=details.param, request_id=details.request_id,
            )
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError:
            snippet = content[:80].decode("utf-8", "replace")
            raise _Retryable(
                f"HTTP {status} with a body that is not valid JSON ({len(content)} bytes, starts {snippet!r})",
                status=status,
            ) from None

    def _send(self, url: str, params: Params) -> requests.Response:
        """One GET, following redirects only within the API's own host.

        ``Session.get`` would merge the session's settings into every request (a measurable share of a fast page
        loop: they are fixed when the session is created) and follow a redirect to any host with the vendor's
        API-key header, which requests strips only when it is ``Authorization``.
        """
        session = self.session
        request = requests.PreparedRequest()
        request.prepare(method="GET", url=url, params=params, headers=session.headers)
        for _ in range(MAX_REDIRECTS + 1):
            response = session.send(request, allow_redirects=False, timeout=self.timeout, proxies=session.proxies)
            if not response.is_redirect:
                return response
            current = request.url or url  # (always set once prepared; typed optional by requests)
            target = urljoin(current, response.headers["location"])
            response.close()
            if not _same_host(current, target):
                raise VendorAPIError(
                    f"{self.hook_name} answered HTTP {response.status_code} redirecting to "
                    f"{urlsplit(target)._replace(query='', fragment='').geturl()} (connection {self.conn_id!r}); "
                    "redirects to another host are not followed, so the API key is never sent there: set the "
                    "connection's Host to the base URL the vendor redirects to",
                    vendor=self.vendor, status=response.status_code,
                )
            request = request.copy()
            request.prepare_url(target, None)
        raise VendorAPIError(
            f"{self.hook_name} redirected more than {MAX_REDIRECTS} times in a row (connection {self.conn_id!r})",
            vendor=self.vendor, status=response.status_code,
        )

    def _wait(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        n = retry_state.attempt_number
        exp = min(self.backoff_max, self.backoff * (2 ** (n - 1)))
        wait = random.uniform(exp / 2, exp)
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            wait = min(exc.retry_after, self.retry_after_cap)
        # A 429 is about the key, not the request: every worker of this hook waits it out together.
        self._retry_state.shared = isinstance(exc, _Retryable) and exc.status == 429
        return wait

    def _sleep(self, seconds: float) -> None:
        self.stats.add(retries=1, retry_wait_seconds=seconds)
        if getattr(self._retry_state, "shared", False):
            self.throttle.pause(seconds, _BACKOFF)
            self.throttle.wait_turn()
        else:
            self.throttle.sleep(seconds)

    def _log_retry(self, rs: tenacity.RetryCallState, attempts: int) -> None:
        exc = rs.outcome.exception() if rs.outcome else None
        reason = exc.reason if isinstance(exc, _Retryable) else repr(exc)
        wait = rs.next_action.sleep if rs.next_action else 0.0
        self.log.warning(
            "%s: attempt %d/%d failed (%s); retrying in %.2f s", self.hook_name, rs.attempt_number, attempts,
            reason, wait,
        )

    def _log_throttle(self, seconds: float, reason: str) -> None:
        if reason == _BACKOFF:
            return  # already logged and counted as a retry
        self.stats.add(throttle_waits=1, throttle_wait_seconds=seconds)
        self.log.info("%s: waiting %.2f s: %s", self.hook_name, seconds, reason)

    # ------------------------------------------------------------------ windows and pages

    def resolve_time_key(self, time_key: str) -> TimeKey:
        key = self.time_keys.get(time_key)
        if key is None:
            allowed = ", ".join(repr(k) for k in self.time_keys)
            raise ConfigurationError(
                f"time_key={time_key!r} is not supported by {self.hook_name}; allowed: {allowed}"
                + ("" if "updated" in self.time_keys or time_key != "updated"
                   else f" ({self.hook_name} conversations have no update time)")
            )
        return key

    def validate_filters(self, filters: Mapping[str, Any] | None) -> dict[str, Any]:
        return self.filter_set.validate(filters)

    def iter_pages(self, start: Any, end: Any, *, time_key: str = "created",
                   filters: Mapping[str, Any] | None = None, max_parallel: int = 1) -> Iterator[Page]:
        """Yield, page by page, the conversations whose time key lies in ``[start, end)``, each once.

        With ``max_parallel > 1`` (vendors with server-side time bounds only) the window is cut into
        contiguous sub-windows fetched by that many threads; pages then arrive in completion order, each
        tagged with ``page.part`` (the sub-window's index, in time order) so a writer can restore a
        deterministic order. Arguments are checked here, before any request.
        """
        window = Window.of(start, end)
        key = self.resolve_time_key(time_key)
        validated = self.validate_filters(filters)
        workers = self.check_parallel(max_parallel)
        self.settings  # noqa: B018  (a bad connection fails here, at the call, for every vendor)
        size = self.effective_page_size()
        if workers == 1:
            walk = self.new_walk(window, key, validated, size)
            return self._run(walk, window, key)
        parts = window.split(workers * PARTS_PER_WORKER)
        walks = [(self.new_walk(part, key, validated, size), part) for part in parts]
        return self._run_parallel(walks, key, workers)

    def check_parallel(self, max_parallel: Any) -> int:
        if isinstance(max_parallel, bool) or not isinstance(max_parallel, int) or not 1 <= max_parallel <= 64:
            raise ConfigurationError(f"max_parallel={max_parallel!r} is not allowed: expected an integer from 1 to 64")
        if max_parallel > 1 and not self.server_bounded:
            raise ConfigurationError(
                f"max_parallel={max_parallel} needs server-side time bounds, which {self.hook_name} does not have "
                "(sub-windows would each walk the same list); use max_parallel=1"
            )
        return max_parallel

    def iter_conversations(self, start: Any, end: Any, *, time_key: str = "created",
                           filters: Mapping[str, Any] | None = None, max_parallel: int = 1) -> Iterator[Item]:
        """Yield each conversation (the vendor's raw dict) whose time key lies in ``[start, end)``, once."""
        pages = self.iter_pages(start, end, time_key=time_key, filters=filters, max_parallel=max_parallel)
        return (item for page in pages for item in page)

    def _run_parallel(self, walks: list[tuple[Walk, Window]], key: TimeKey, workers: int) -> Iterator[Page]:
        """Fetch sub-windows concurrently; a bounded queue keeps memory flat, the first error stops everyone."""
        pages: queue.Queue[Page | BaseException | None] = queue.Queue(maxsize=workers * 2)
        stop = threading.Event()

        def put(item: Page | BaseException | None) -> None:
            while not stop.is_set():
                try:
                    pages.put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue

        def work(index: int, walk: Walk, part: Window) -> None:
            try:
                for page in self._run(walk, part, key):
                    if stop.is_set():
                        return
                    page.part = index
                    put(page)
            except BaseException as exc:  # handed to the consumer, which re-raises it
                put(exc)

        remaining = len(walks)
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"{self.vendor}-window")

        def done_callback(_: Any) -> None:
            put(None)

        try:
            for index, (walk, part) in enumerate(walks):
                pool.submit(work, index, walk, part).add_done_callback(done_callback)
            while remaining:
                item = pages.get()
                if item is None:
                    remaining -= 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield item
        finally:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)

    def _run(self, walk: Walk, window: Window, key: TimeKey) -> Iterator[Page]:
        dedup = Dedup(walk.order, repeats=walk.repeats, on_disorder=self._log_disorder(walk, key))
        id_field = self.id_field
        params: Params | None = walk.params
        seen: set[tuple[Any, ...]] = set()
        number = 0
        empty_run = 0
        while params is not None:
            fingerprint = _fingerprint(params)
            if fingerprint in seen:
                raise PaginationError(
                    f"{self.hook_name} pagination is not making progress: the request {_show(params)} was "
                    f"already sent in this walk (page {number + 1}); stopping instead of looping forever"
                )
            seen.add(fingerprint)
            body = self.get_json(params)
            items = self.page_items(body)
            number += 1
            kept: list[Item] = []
            duplicates = 0
            # The per-conversation hot path: locals instead of attribute lookups.
            field, parse, lo, hi, first_time = key.field, key.parse, window.start, window.end, dedup.first_time
            for item in items:
                ts = parse(item.get(field))
                if ts is None:
                    raise InvalidResponseError(
                        f"{self.hook_name} returned a conversation ({id_field}={item.get(id_field)!r}) without a "
                        f"valid {key.field!r}: {item.get(key.field)!r}",
                        vendor=self.vendor,
                    )
                if lo <= ts < hi:
                    if first_time(str(item.get(id_field)), ts):
                        kept.append(item)
                    else:
                        duplicates += 1
            self.stats.add(pages=1, fetched=len(items), yielded=len(kept), duplicates=duplicates)
            yield Page(kept, number=number, fetched=len(items), descending=walk.order == "desc")
            next_params = walk.paginator.next_params(params, body, items)
            empty_run = empty_run + 1 if not items else 0
            if next_params is not None and empty_run >= self.max_empty_pages:
                raise PaginationError(
                    f"{self.hook_name} returned {empty_run} empty pages in a row while still announcing more; "
                    "stopping instead of paging forever"
                )
            params = next_params

    def _log_disorder(self, walk: Walk, key: TimeKey) -> Any:
        def log(item_id: str, ts: datetime, frontier: datetime) -> None:
            self.log.warning(
                "%s returned conversation %s (%s=%s) after %s, against the %s order this walk relies on; "
                "keeping it and remembering every id from now on", self.hook_name, item_id, key.field,
                ts.isoformat(), frontier.isoformat(), "ascending" if walk.order == "asc" else "descending",
            )
        return log

    def page_limit(self) -> int:
        """The largest page the vendor accepts (may depend on the connection, e.g. PolyAI's API version)."""
        return self.max_page_size

    def effective_page_size(self) -> int:
        limit = self.page_limit()
        if self.page_size is None:
            return limit
        if self.page_size > limit:
            raise ConfigurationError(
                f"page_size={self.page_size} is larger than {self.hook_name} allows for connection "
                f"{self.conn_id!r} (at most {limit})"
            )
        return self.page_size

    # ------------------------------------------------------------------ sensors, operators, UI

    def is_finished(self, item: Item) -> bool:
        status = item.get(self.status_field) if self.status_field else None
        return status in self.finished_statuses

    def is_in_progress(self, item: Item) -> bool:
        status = item.get(self.status_field) if self.status_field else None
        return status in self.in_progress_statuses

    def test_connection(self) -> tuple[bool, str]:
        """One cheap authenticated request (a one-item list); never raises."""
        try:
            first = next(iter(self.time_keys.values()))
            walk = self.new_walk(None, first, {}, 1)
            self.get_json(walk.params, max_attempts=2, max_seconds=10.0)
            return True, f"Connected to {self.hook_name} at {self.base_url}: the API key was accepted."
        except Exception as exc:  # the UI Test button must get a message, never a traceback
            return False, f"{self.hook_name} connection test failed: {exc}"


# ---------------------------------------------------------------------- helpers


def decode_extra(conn: Any) -> dict[str, Any]:
    """The connection's extra as a dict; a malformed one is a configuration error naming the connection.

    Plain ``json.loads``: Airflow already registered the extra for masking when it fetched the connection, and
    ``Connection.extra_dejson`` would do it again with a blocking call (not allowed on a triggerer's loop) and
    log an unparsable extra instead of refusing it.
    """
    if not conn.extra:
        return {}
    try:
        value = json.loads(conn.extra)
    except ValueError:
        raise ConfigurationError(
            f"connection {conn.conn_id!r} has an Extra that is not valid JSON; expected a JSON object such as "
            '{"account_id": "..."}'
        ) from None
    if not isinstance(value, dict):
        raise ConfigurationError(f"connection {conn.conn_id!r} has an Extra that is not a JSON object")
    return value


def widen(window: Window, margin: timedelta) -> tuple[datetime, datetime]:
    """Server bounds a little wider than the window, for bounds of undocumented inclusivity or precision."""
    return window.start - margin, window.end + margin


def unix_bounds(window: Window) -> tuple[int, int]:
    """Whole-second bounds that contain ``[start, end)`` whether the vendor treats them as inclusive or not."""
    return math.floor(window.start.timestamp()) - 1, math.ceil(window.end.timestamp()) + 1


def _same_host(url: str, target: str) -> bool:
    """Same host and port, or the same host upgraded from http to https (never a downgrade)."""
    a, b = urlsplit(url), urlsplit(target)
    if a.scheme == b.scheme:
        return a.netloc.lower() == b.netloc.lower()
    return a.scheme == "http" and b.scheme == "https" and a.hostname == b.hostname


def _fingerprint(params: Params) -> tuple[Any, ...]:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in params.items()))


def _show(params: Params) -> str:
    return "&".join(f"{k}={v}" for k, v in sorted(params.items()))


def _s(value: Any) -> str | None:
    return None if value is None else str(value)


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "..."


def _loads_or_none(content: bytes) -> Any:
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return None


def _describe(status: int, reason: str | None, d: ErrorDetails, retry_after: float | None = None) -> str:
    parts = [f"HTTP {status}" + (f" {reason}" if reason else "")]
    if d.code:
        parts.append(f"code={d.code}")
    if d.param:
        parts.append(f"param={d.param}")
    if d.message:
        parts.append(f"message={d.message!r}")
    if d.request_id:
        parts.append(f"request_id={d.request_id}")
    if retry_after is not None:
        parts.append(f"Retry-After={retry_after:g}s")
    return ", ".join(parts)


__all__ = [
    "ConnectionSettings",
    "ConversationsHook",
    "Dedup",
    "ErrorDetails",
    "HookStats",
    "Page",
    "TimeKey",
    "Walk",
    "unix_bounds",
    "widen",
]
