"""The base of the vendor hooks: the points a vendor declares, and the wiring that puts the layers together.

A vendor hook declares its API (connection form and base URL, auth header, time keys, filters, which query
parameters a window becomes, how a page is read and which pagination it uses, its error envelope and its
statuses). Everything else lives once below it: the connection rules, the session and retries
(``transport/``), the walk with its de-duplication and loop detection and the parallel fan-out (``engine/``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

import requests
from airflow.providers.common.compat.sdk import AirflowNotFoundException
from airflow.sdk import BaseHook

from airflow_provider_conversations.catalog import BY_CONN_TYPE, CONN_TYPES, FormField
from airflow_provider_conversations.engine.details import (
    DEFAULT_DETAIL_CONCURRENCY,
    DetailEndpoint,
    DetailOptions,
    with_details,
)
from airflow_provider_conversations.engine.paginators import Context, Item, Order, Paginator
from airflow_provider_conversations.engine.parallel import MAX_WORKERS, PARTS_PER_WORKER, run_parallel
from airflow_provider_conversations.engine.plan import TimeKey, WalkPlan
from airflow_provider_conversations.engine.walk import MAX_STALLED_PAGES, Page, Walk, run_walk
from airflow_provider_conversations.exceptions import (
    AuthenticationError,
    ConfigurationError,
    InvalidFilterError,
    InvalidResponseError,
    MissingDetailError,
    VendorAPIError,
)
from airflow_provider_conversations.filters import FilterSet
from airflow_provider_conversations.hooks.statuses import NO_STATUS, Statuses
from airflow_provider_conversations.stats import HookStats
from airflow_provider_conversations.transport.client import ApiClient
from airflow_provider_conversations.transport.connection import (
    ConnectionSettings,
    not_found,
    path_segment,
    read_settings,
)
from airflow_provider_conversations.transport.errors import ANY_SHAPE, Envelope
from airflow_provider_conversations.transport.retry import BACKOFF_REASON, RetryPolicy, Timeout
from airflow_provider_conversations.transport.session import Label, Params, new_session
from airflow_provider_conversations.transport.throttle import (
    RateBudget,
    RateLimit,
    RateLimitHeaders,
    Throttle,
    parse_rate_limit,
)
from airflow_provider_conversations.windows import Window


@dataclass(frozen=True)
class Paging:
    """How a vendor pages one walk: its paginator, and what the order on the time key guarantees (see Walk)."""

    paginator: Paginator
    order: Order | None = None
    repeats: bool = False


class ConversationsHook(BaseHook):
    """Base class of the vendor hooks. Subclasses declare; this class wires.

    :param conn_id: Airflow connection id (defaults to ``<conn_type>_default``).
    :param page_size: items per request; defaults to the vendor's maximum (fewest requests).
    :param timeout: ``(connect, read)`` timeouts in seconds for every request.
    :param max_attempts: attempts per request for retryable failures (429, 5xx, connection errors,
        timeouts, truncated bodies).
    :param max_retry_seconds: total time budget for the attempts of one request.
    :param backoff: first exponential back-off wait in seconds (doubles per attempt, with full jitter).
    :param backoff_max: cap of one exponential back-off wait.
    :param retry_after_cap: cap of a wait asked for by ``Retry-After`` (or a rate-limit reset).
    :param retry: all of the settings above at once, already checked (what the operators pass); wins over them.
    """

    conn_name_attr = "conn_id"
    #: The connection type; ``vendor`` and ``default_conn_name`` (``<conn_type>_default``) follow from it.
    conn_type: ClassVar[str]
    #: The vendor's name in messages and logs.
    hook_name: ClassVar[str]
    default_conn_name: ClassVar[str]
    vendor: ClassVar[str]

    # ------------------------------------------------------------------ what a vendor declares

    #: The connection's extra fields (name, default, allowed values): the catalog's form, unless declared here.
    form_fields: ClassVar[Sequence[FormField]] = ()
    #: Base URL when the connection has no host (vendors with regions pick one from ``regions``).
    default_base_url: ClassVar[str | None] = None
    regions: ClassVar[Mapping[str, str]] = {}
    time_keys: ClassVar[Mapping[str, TimeKey]]
    id_field: ClassVar[str] = "id"
    max_page_size: ClassVar[int]
    filter_set: ClassVar[FilterSet]
    #: How the vendor's error bodies look (readers from ``transport/errors.py``).
    error_envelope: ClassVar[Envelope] = ANY_SHAPE
    rate_limit_headers: ClassVar[RateLimitHeaders | None] = None
    #: The documented request budget per API key (the catalog's, unless declared here); the extra
    #: ``rate_limit`` overrides it.
    default_rate_limit: ClassVar[RateLimit | None] = None
    #: The status field and the vendor's own in-progress / finished values (sensors, ``finished_only``).
    statuses: ClassVar[Statuses] = NO_STATUS
    #: Field holding the conversation's duration in seconds, if the vendor has one.
    duration_field: ClassVar[str | None] = None
    #: Server-side time bounds exist for this vendor (sub-windows can then be fetched in parallel).
    server_bounded: ClassVar[bool] = True
    #: Pages in a row that bring nothing new after which a walk is declared stuck.
    max_stalled_pages: ClassVar[int] = MAX_STALLED_PAGES
    #: The per-conversation endpoint serving the transcript or messages (``include_details=True``), if any.
    detail_endpoint: ClassVar[DetailEndpoint | None] = None
    #: The list items already carry the transcript (PolyAI's ``turns``): details need no request.
    details_inline: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        conn_type = cls.__dict__.get("conn_type")
        if conn_type is None:
            return
        cls.vendor = conn_type
        cls.default_conn_name = f"{conn_type}_default"
        entry = BY_CONN_TYPE.get(conn_type)
        if entry is not None and "form_fields" not in cls.__dict__:
            cls.form_fields = entry.fields
            cls.regions = entry.regions
        if entry is not None and entry.rate_limit and "default_rate_limit" not in cls.__dict__:
            cls.default_rate_limit = parse_rate_limit(entry.rate_limit)

    def validate_extras(self, extras: Mapping[str, Any], secret: str) -> None:
        """Refuse a connection whose vendor fields are missing or malformed (raise ConfigurationError).

        The form's enums and URL-path ids are checked for every vendor; this is for what a vendor adds."""

    def auth_headers(self, settings: ConnectionSettings) -> dict[str, str]:
        raise NotImplementedError

    def list_path(self, settings: ConnectionSettings) -> str:
        """Path of the list endpoint, relative to the base URL."""
        raise NotImplementedError

    def fixed_params(self, key: TimeKey) -> Params:
        """Query parameters every request of a walk on ``key`` carries besides the filters (e.g. a sort)."""
        return {}

    def window_params(self, window: Window, key: TimeKey) -> Params:
        """The server-side bounds that select ``window`` (inclusive or coarse ones are cut exactly later)."""
        return {}

    def paging(self, key: TimeKey, page_size: int, window: Window | None) -> Paging:
        """The pagination of one walk (``window`` is ``None`` for the connection test's one-item request)."""
        raise NotImplementedError

    def page_items(self, body: Any) -> list[Item]:
        """The conversations of one response body; raise InvalidResponseError if it is not a page."""
        raise NotImplementedError

    def page_limit(self) -> int:
        """The largest page the vendor accepts (may depend on the connection, e.g. PolyAI's API version)."""
        return self.max_page_size

    def check_connection_filters(self, filters: Mapping[str, Any]) -> None:
        """Refuse filters this connection cannot send (e.g. PolyAI's v3-only filters on a v1 connection)."""

    def channel_of(self, item: Item) -> str | None:
        channel = item.get("channel")
        return channel if isinstance(channel, str) else None

    def messages_of(self, record: Item) -> list[dict[str, Any]] | None:
        """The conversation's messages as ``{"role", "text", "at"}`` (``output_format="normalized"``), from the
        list item and its ``"detail"``; ``None`` when the vendor (or this record) has no transcript."""
        return None

    @classmethod
    def finished_filters(cls, filters: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side filters that keep only finished conversations, merged into ``filters`` by
        ``finished_only`` (which also applies :meth:`is_finished` to every record)."""
        return {}

    @classmethod
    def in_progress_filters(cls, filters: Mapping[str, Any]) -> dict[str, Any] | None:
        """Server-side filters that select only conversations still in progress, or ``None`` when the vendor
        cannot express that (the settled sensor then checks :meth:`is_in_progress` on every record)."""
        return None

    # ------------------------------------------------------------------ construction and connection

    def __init__(
        self,
        conn_id: str | None = None,
        *,
        page_size: int | None = None,
        timeout: Timeout = (10.0, 60.0),
        max_attempts: int = 6,
        max_retry_seconds: float = 300.0,
        backoff: float = 1.0,
        backoff_max: float = 60.0,
        retry_after_cap: float = 300.0,
        retry: RetryPolicy | None = None,
        logger_name: str | None = None,
    ) -> None:
        super().__init__(logger_name=logger_name)
        self.conn_id = conn_id or self.default_conn_name
        if expected := self.page_size_problem(page_size):
            raise ConfigurationError(f"page_size={page_size!r} is not allowed for {self.hook_name}: {expected}")
        if retry is None:
            retry = RetryPolicy.of(
                {"timeout": timeout, "max_attempts": max_attempts, "max_retry_seconds": max_retry_seconds,
                 "backoff": backoff, "backoff_max": backoff_max, "retry_after_cap": retry_after_cap},
                lambda name, value, expected: ConfigurationError(
                    f"{name}={value!r} is not valid for {self.hook_name}: expected {expected}"),
            )
        self.page_size = page_size
        self.retry = retry
        self.stats = HookStats()
        self.throttle = Throttle(self.rate_limit_headers, max_wait=retry.retry_after_cap, on_wait=self._log_throttle)
        self._settings: ConnectionSettings | None = None
        self._session: requests.Session | None = None
        self._client: ApiClient | None = None
        self._client_lock = threading.Lock()
        self._detail_client: ApiClient | None = None

    @classmethod
    def page_size_problem(cls, page_size: Any) -> str | None:
        """What ``page_size`` must be for this vendor, or None when it is fine (``None``: the largest page)."""
        if page_size is None or (isinstance(page_size, int) and not isinstance(page_size, bool)
                                 and 1 <= page_size <= cls.max_page_size):
            return None
        return f"expected an integer from 1 to {cls.max_page_size}"

    @property
    def timeout(self) -> Timeout:
        return self.retry.timeout

    @property
    def settings(self) -> ConnectionSettings:
        """The connection, fetched and checked on first use."""
        if self._settings is None:
            try:
                conn = self.get_connection(self.conn_id)
            except AirflowNotFoundException:
                types = CONN_TYPES if self.conn_type in CONN_TYPES else (*CONN_TYPES, self.conn_type)
                raise not_found(self.conn_id, types) from None
            self._settings = self.settings_from_connection(conn)
        return self._settings

    def settings_from_connection(self, conn: Any, extra: Mapping[str, Any] | None = None) -> ConnectionSettings:
        """Check an already-fetched connection for this vendor (``extra`` decoded by the caller, if given)."""
        return read_settings(conn, self, extra)

    @property
    def has_settings(self) -> bool:
        """Whether the connection was already read (it is looked up on first use)."""
        return self._settings is not None

    def use_connection(self, conn: Any, extra: Mapping[str, Any] | None = None) -> None:
        """Use an already-fetched connection (a trigger fetches it asynchronously) instead of looking it up."""
        self._settings = self.settings_from_connection(conn, extra)

    def resolve_default_base_url(self, extras: Mapping[str, Any]) -> str | None:
        if self.regions:
            region = extras.get("region", next(f.default for f in self.form_fields if f.name == "region"))
            return self.regions[region]
        return self.default_base_url

    @property
    def base_url(self) -> str:
        return self.settings.base_url

    def get_conn(self) -> requests.Session:
        """The hook's one keep-alive session, created on first use."""
        if self._session is None:
            with self._client_lock:  # parallel walks start together: one session, one budget
                if self._session is None:
                    settings = self.settings
                    if self.throttle.budget is None and (settings.rate_limit or settings.rate_limit_storage):
                        self.throttle.use_budget(RateBudget(
                            settings.rate_limit, vendor=self.vendor, secret=settings.secret,
                            storage_uri=settings.rate_limit_storage, log=self.log, name=self.hook_name))
                    self._session = new_session(settings.base_url, self.auth_headers(settings),
                                                verify=settings.verify)
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def get_json(self, params: Params, *, path: str | None = None, max_attempts: int | None = None,
                 max_seconds: float | None = None) -> Any:
        """GET one page (of the list endpoint, or ``path``) with retries; returns the decoded JSON body."""
        if self._client is None:
            self.get_conn()  # the key's rate budget comes with the session
            self._client = ApiClient(self.get_conn, policy=self.retry, throttle=self.throttle, stats=self.stats,
                                     envelope=self.error_envelope,
                                     label=Label(self.vendor, self.hook_name, self.conn_id), log=self.log)
        url = f"{self.base_url}/{(path or self.list_path(self.settings)).lstrip('/')}"
        return self._client.get_json(url, params, max_attempts=max_attempts, max_seconds=max_seconds)

    # ------------------------------------------------------------------ details

    @classmethod
    def detail_options(cls, include_details: Any = True, detail_concurrency: Any = DEFAULT_DETAIL_CONCURRENCY,
                       on_missing_detail: Any = "keep") -> DetailOptions | None:
        """The checked detail settings for this vendor (``None`` without ``include_details``), before any
        request; ParrotMob, which documents no detail endpoint, refuses ``include_details=True``."""
        options = DetailOptions.of(include_details, detail_concurrency, on_missing_detail)
        if options is not None:
            cls.refuse_details_unless_supported()
        return options

    @classmethod
    def refuse_details_unless_supported(cls) -> None:
        if cls.detail_endpoint is None and not cls.details_inline:
            raise ConfigurationError(
                f"include_details=True is not supported by {cls.hook_name}: {cls.hook_name} documents no detail "
                "endpoint (no per-conversation transcript or messages to fetch); use include_details=False"
            )

    def get_conversation(self, conversation_id: str) -> dict[str, Any]:
        """One conversation's detail body (transcript, messages), retried and mapped like every request.

        Raises :class:`MissingDetailError` on a 404 (listed, then archived or deleted), AuthenticationError on
        a 403 naming the scope the token needs, InvalidResponseError when the body is not this conversation's.
        """
        endpoint = self.detail_endpoint
        if endpoint is None:
            self.refuse_details_unless_supported()
            raise ConfigurationError(
                f"{self.hook_name} has no detail endpoint to request: its list items already carry the transcript")
        if self._detail_client is None:
            self._detail_client = ApiClient(self.get_conn, policy=self.retry, throttle=self.throttle,
                                            stats=self.stats, envelope=self.error_envelope,
                                            label=Label(self.vendor, self.hook_name, self.conn_id), log=self.log,
                                            kind="detail")
        url = f"{self.base_url}/{endpoint.path.format(id=path_segment(conversation_id)).lstrip('/')}"
        try:
            body = self._detail_client.get_json(url, self.detail_params())
        except AuthenticationError as exc:
            if exc.status != 403 or endpoint.scope is None:
                raise
            raise AuthenticationError(
                f"{self.hook_name} refused the detail of conversation {conversation_id} (HTTP 403, connection "
                f"{self.conn_id!r}): the token lacks the scope {endpoint.scope!r}; grant it to the token, or use "
                f"include_details=False. Vendor said: {exc.vendor_message or exc}",
                vendor=exc.vendor, status=exc.status, code=exc.code, vendor_message=exc.vendor_message,
                param=exc.param, request_id=exc.request_id,
            ) from None
        except VendorAPIError as exc:
            if exc.status != 404 or isinstance(exc, MissingDetailError):
                raise
            raise MissingDetailError(
                f"{self.hook_name} has no detail for conversation {conversation_id}, listed in this window "
                f"(HTTP 404{', code=' + exc.code if exc.code else ''}: archived or deleted since it was listed)",
                conversation_id=str(conversation_id), vendor=exc.vendor, status=404, code=exc.code,
                vendor_message=exc.vendor_message, request_id=exc.request_id,
            ) from None
        got = body.get(endpoint.id_field) if isinstance(body, dict) else None
        if str(got) != str(conversation_id):
            shown = f"{endpoint.id_field}={got!r}" if isinstance(body, dict) else f"{str(body)[:120]!r}"
            raise InvalidResponseError(
                f"{self.hook_name} answered the detail request for conversation {conversation_id} with "
                f"{'another conversation' if isinstance(body, dict) else 'something that is not an object'} "
                f"({shown}); refusing to attach it", vendor=self.vendor,
            )
        result: dict[str, Any] = body
        return result

    def detail_params(self) -> Params:
        """Query parameters of every detail request (none unless the vendor declares some)."""
        return {}

    def walk_with_details(self, plan: WalkPlan, options: DetailOptions | None,
                          resume: Mapping[Any, Any] | None = None, *,
                          checkpoint_every: int | None = None) -> Iterator[Page]:
        """The pages of :meth:`walk` (from ``resume``, if given), with each item's detail under ``"detail"`` when
        ``options`` is given."""
        pages = self.walk(plan, resume, checkpoint_every=checkpoint_every)
        if options is None or self.detail_endpoint is None:
            return pages  # no details, or inline ones (PolyAI: the items carry them)
        return with_details(pages, self.get_conversation, id_field=self.id_field, options=options,
                            stats=self.stats, context=Context(self.vendor, self.hook_name, self.log))

    def _log_throttle(self, seconds: float, reason: str) -> None:
        if reason == BACKOFF_REASON:
            return  # already logged and counted as a retry
        self.stats.add(throttle_waits=1, throttle_wait_seconds=seconds)
        self.log.info("%s: waiting %.2f s: %s", self.hook_name, seconds, reason)

    # ------------------------------------------------------------------ the walk

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
        """Check and normalise ``filters`` (raises InvalidFilterError); logs the vendor's deprecations."""
        validated = self.filter_set.validate(filters)
        self.warn_deprecated(validated)
        return validated

    def validate_extra_params(self, extra_params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Check ``extra_params`` (raises InvalidFilterError) and log, once, the names that will be sent."""
        validated = self.filter_set.validate_extra(extra_params)
        self.log_extra_params(validated)
        return validated

    def log_extra_params(self, extra_params: Mapping[str, Any]) -> None:
        """One log line naming the (checked) extra query parameters: sent as given, unknown to this provider."""
        if extra_params:
            self.log.info("%s: sending extra query parameters this provider does not know, unchecked: %s",
                          self.hook_name, ", ".join(sorted(extra_params)))

    def warn_deprecated(self, filters: Mapping[str, Any]) -> None:
        """Log the vendor's deprecation notice of each deprecated filter in ``filters`` (validated ones)."""
        for warning in self.filter_set.deprecations(filters):
            self.log.warning("%s", warning)

    def check_parallel(self, max_parallel: Any) -> int:
        if isinstance(max_parallel, bool) or not isinstance(max_parallel, int) or not 1 <= max_parallel <= MAX_WORKERS:
            raise ConfigurationError(
                f"max_parallel={max_parallel!r} is not allowed: expected an integer from 1 to {MAX_WORKERS}")
        if max_parallel > 1 and not self.server_bounded:
            raise ConfigurationError(
                f"max_parallel={max_parallel} needs server-side time bounds, which {self.hook_name} does not have "
                "(sub-windows would each walk the same list); use max_parallel=1"
            )
        return max_parallel

    def plan(self, start: Any, end: Any, *, time_key: str = "created", filters: Mapping[str, Any] | None = None,
             max_parallel: int = 1, extra_params: Mapping[str, Any] | None = None) -> WalkPlan:
        """A walk's plan from a caller's raw values, each checked once (raises before any request)."""
        window = Window.of(start, end)
        key = self.resolve_time_key(time_key)
        validated = self.validate_filters(filters)
        extra = self.validate_extra_params(extra_params)
        return self.plan_for(window, key, validated, self.check_parallel(max_parallel), extra)

    def plan_for(self, window: Window, key: TimeKey, filters: Mapping[str, Any], workers: int = 1,
                 extra_params: Mapping[str, Any] | None = None) -> WalkPlan:
        """A walk's plan from values already checked; only what depends on the connection is checked here."""
        self.settings  # noqa: B018  (a bad connection fails here, at the call, for every vendor)
        limit = self.page_limit()
        if self.page_size is not None and self.page_size > limit:
            raise ConfigurationError(
                f"page_size={self.page_size} is larger than {self.hook_name} allows for connection "
                f"{self.conn_id!r} (at most {limit})"
            )
        self.check_connection_filters(filters)
        return WalkPlan(window, key, filters, self.page_size or limit, workers, dict(extra_params or {}))

    def walk(self, plan: WalkPlan, resume: Mapping[Any, Any] | None = None, *,
             checkpoint_every: int | None = None) -> Iterator[Page]:
        """The pages of a planned walk: in walk order, or with ``plan.workers > 1`` sub-windows fetched by that
        many threads (pages then arrive in completion order, tagged with ``page.part``; see ``in_walk_order``).

        ``resume``: for a sequential walk, a ``page.resume_state()`` of an earlier walk of the same plan, to
        continue from instead of the window start; for a parallel one, the sub-windows still to walk, each
        index mapped to such a position or to ``None`` (from its start); the others are not walked.
        ``checkpoint_every`` (parallel walks): see ``run_parallel``'s ``freeze_every``."""
        if plan.workers == 1:
            return self._walk_window(plan, plan.window, resume)
        parts = plan.window.split(plan.workers * PARTS_PER_WORKER)
        todo: Mapping[Any, Any] = dict.fromkeys(range(len(parts))) if resume is None else resume
        if any(not isinstance(i, int) or not 0 <= i < len(parts) for i in todo):
            raise ValueError(f"resume names sub-windows {sorted(todo)!r}, but this walk has {len(parts)}")
        indexes = sorted(todo)
        return run_parallel([partial(self._walk_window, plan, parts[i], todo[i]) for i in indexes], plan.workers,
                            thread_name=f"{self.vendor}-window", indexes=indexes, freeze_every=checkpoint_every)

    def _walk_window(self, plan: WalkPlan, window: Window,
                     resume: Mapping[str, Any] | None = None) -> Iterator[Page]:
        paging = self.paging(plan.key, plan.page_size, window)
        params = {**self.fixed_params(plan.key), **self.filter_set.to_params(plan.filters),
                  **self.filter_set.to_params(plan.extra_params), **self.window_params(window, plan.key)}
        walk = Walk(params, paging.paginator, order=paging.order, repeats=paging.repeats)
        return run_walk(walk, window, plan.key, fetch=self.get_json, items_of=self.page_items, id_field=self.id_field,
                        context=Context(self.vendor, self.hook_name, self.log), stats=self.stats,
                        max_stalled=self.max_stalled_pages, resume=resume)

    def iter_pages(self, start: Any, end: Any, *, time_key: str = "created",
                   filters: Mapping[str, Any] | None = None, max_parallel: int = 1,
                   extra_params: Mapping[str, Any] | None = None, include_details: bool = False,
                   detail_concurrency: int = DEFAULT_DETAIL_CONCURRENCY,
                   on_missing_detail: str = "keep") -> Iterator[Page]:
        """Yield, page by page, the conversations whose time key lies in ``[start, end)``, each once.

        With ``max_parallel > 1`` (vendors with server-side time bounds only) the window is cut into
        contiguous sub-windows fetched by that many threads; pages then arrive in completion order, each
        tagged with ``page.part`` (the sub-window's index, in time order) so a writer can restore a
        deterministic order. ``extra_params`` are query parameters this provider does not know yet (a vendor's
        newer filters), sent as given on every request after a shape check; the vendor's paging, window and order
        parameters are refused there. Arguments are checked here, before any request.

        With ``include_details=True`` each item carries its detail body under ``"detail"`` (same order, same
        set), fetched by ``detail_concurrency`` threads sharing this hook's session, throttle and back-off;
        ``on_missing_detail`` says what a 404 on a detail means (``keep``: ``"detail": None``; ``skip``;
        ``fail``). PolyAI's items already carry their ``turns``: no request is made.
        """
        options = self.detail_options(include_details, detail_concurrency, on_missing_detail)
        plan = self.plan(start, end, time_key=time_key, filters=filters, max_parallel=max_parallel,
                         extra_params=extra_params)
        return self.walk_with_details(plan, options)

    def iter_conversations(self, start: Any, end: Any, *, time_key: str = "created",
                           filters: Mapping[str, Any] | None = None, max_parallel: int = 1,
                           extra_params: Mapping[str, Any] | None = None, include_details: bool = False,
                           detail_concurrency: int = DEFAULT_DETAIL_CONCURRENCY,
                           on_missing_detail: str = "keep") -> Iterator[Item]:
        """Yield each conversation (the vendor's raw dict) whose time key lies in ``[start, end)``, once
        (with ``include_details=True``, with its detail body under ``"detail"``; see :meth:`iter_pages`)."""
        pages = self.iter_pages(start, end, time_key=time_key, filters=filters, max_parallel=max_parallel,
                                extra_params=extra_params, include_details=include_details,
                                detail_concurrency=detail_concurrency, on_missing_detail=on_missing_detail)
        return (item for page in pages for item in page)

    # ------------------------------------------------------------------ statuses, sensors, UI

    def status_of(self, item: Item) -> Any:
        return self.statuses.status(item)

    def finished_of(self, item: Item) -> bool | None:
        """True/False by the vendor's own statuses; None when the status is missing or unknown."""
        return self.statuses.finished_of(item)

    def is_finished(self, item: Item) -> bool:
        return self.statuses.finished_of(item) is True

    def is_in_progress(self, item: Item) -> bool:
        return self.statuses.finished_of(item) is False

    @classmethod
    def refuse_in_progress_status(cls, filters: Mapping[str, Any], hint: str = "") -> None:
        """``finished_only`` beside a single-valued ``status`` filter that selects an in-progress status."""
        status = filters.get("status")
        if status in cls.statuses.in_progress:
            raise InvalidFilterError(
                f"finished_only=True contradicts {cls.hook_name} filter status={status!r} (an in-progress "
                f"status); drop one of them{hint}"
            )

    def test_connection(self) -> tuple[bool, str]:
        """One cheap authenticated request (a one-item list); never raises."""
        try:
            key = next(iter(self.time_keys.values()))
            paging = self.paging(key, 1, None)
            params = paging.paginator.first({**self.fixed_params(key)})
            self.get_json(params, max_attempts=2, max_seconds=10.0)
            return True, f"Connected to {self.hook_name} at {self.base_url}: the API key was accepted."
        except Exception as exc:  # the UI Test button must get a message, never a traceback
            return False, f"{self.hook_name} connection test failed: {exc}"


__all__ = ["ConnectionSettings", "ConversationsHook", "Paging", "TimeKey", "Walk"]
