"""A bounded loopback HTTP server that vendor simulators plug into, with fault and rate-limit switches."""

from __future__ import annotations

import hashlib
import itertools
import os
import random
import re
import signal
import socket
import struct
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from airflow_provider_conversations.testing import cursors
from airflow_provider_conversations.testing.dataset import DEFAULT_START, Conversation, generate
from airflow_provider_conversations.testing.store import SortedStore

#: Faults every simulator serves and a client must survive by retrying; the default of random faults.
FAULT_KINDS = ("429", "500", "502", "503", "reset", "truncated", "garbage", "slow")
#: More generic faults: ``429`` whose ``Retry-After`` is an HTTP date (one second ahead, at the header's
#: whole-second granularity), and ``429`` without ``Retry-After``.
GENERIC_KINDS = (*FAULT_KINDS, "429-date", "429-none")
#: Faults that need the vendor's pagination (see :meth:`VendorSimulator.vendor_fault`): ``empty`` (a page
#: with no conversations that still announces more, with a fresh continuation at the same position) and
#: ``stuck`` (a page whose continuation is the one it was asked with: a client that follows it loops).
VENDOR_KINDS = ("empty", "stuck")
ALL_KINDS = (*GENERIC_KINDS, *VENDOR_KINDS)
#: Kinds that ``burst`` repeats (server errors come in runs, e.g. while a backend restarts).
BURST_KINDS = ("500", "502", "503")


@dataclass
class SimRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    raw_query: str
    headers: Mapping[str, str]
    #: time.monotonic() when the request arrived, and the fault (or status) the simulator answered with
    received: float = 0.0
    outcome: str = ""

    def one(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None


@dataclass
class SimResponse:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, obj: Any, headers: dict[str, str] | None = None) -> SimResponse:
        return cls(status, orjson.dumps(obj), dict(headers or {}))


@dataclass
class Faults:
    """Which requests fail, and how. Requests are numbered from 1 in arrival order.

    - ``schedule``: exact request numbers and the fault each gets (deterministic unit tests);
    - ``every``: a fault on every k-th request, e.g. ``{"429": 5}``;
    - ``rate`` with ``kinds`` and ``seed``: random faults on that share of requests (fault-injection runs;
      a kind listed twice is drawn twice as often); ``burst=k`` repeats a drawn ``500``/``502``/``503`` on
      the next ``k - 1`` requests too;
    - ``fail_after``: after this many successful pages, every request fails with ``fail_status`` (or, with
      ``fail_kind``, with that fault kind): retries exhausted.

    Kinds: ``429`` (with ``retry_after``: seconds, ``"http-date"``, or ``None`` for no header), ``429-date``
    (``Retry-After`` as an HTTP date), ``429-none`` (no ``Retry-After``), ``500``, ``502``, ``503``, ``reset``
    (connection dropped mid-body), ``truncated`` (200 with half a JSON body), ``garbage`` (200 with a body that
    is not JSON), ``slow`` (answer after ``slow_seconds``), and the vendor kinds ``empty`` and ``stuck``.
    """

    schedule: dict[int, str] = field(default_factory=dict)
    every: dict[str, int] = field(default_factory=dict)
    rate: float = 0.0
    kinds: tuple[str, ...] = FAULT_KINDS
    seed: int = 0
    retry_after: str | None = "0"
    slow_seconds: float = 2.0
    fail_after: int | None = None
    fail_status: int = 500
    fail_kind: str | None = None
    burst: int = 1
    #: After this many successful pages, the process that sends the next request is killed with SIGKILL (once;
    #: found through the request's socket, so it must run on this machine): a worker lost mid-export.
    kill_after: int | None = None

    def __post_init__(self) -> None:
        unknown = {*self.schedule.values(), *self.every, *self.kinds} - set(ALL_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; allowed: {', '.join(ALL_KINDS)}")
        if self.fail_kind is not None and self.fail_kind not in GENERIC_KINDS:
            raise ValueError(f"fail_kind={self.fail_kind!r}; allowed: {', '.join(GENERIC_KINDS)}")
        if self.burst < 1:
            raise ValueError(f"burst={self.burst!r} must be at least 1")
        self._rng = random.Random(self.seed)
        self._burst_kind: str | None = None
        self._burst_left = 0
        #: Bursts started so far (each is ``burst`` consecutive faulty requests).
        self.bursts = 0
        #: The pid ``kill_after`` killed, once it has (0: it found no other local process to kill).
        self.killed: int | None = None

    def possible_kinds(self) -> set[str]:
        """Every kind these settings can produce (a simulator refuses kinds its vendor cannot serve)."""
        return {*self.schedule.values(), *self.every, *(self.kinds if self.rate else ())}

    def decide(self, n: int) -> str | None:
        if n in self.schedule:
            return self.schedule[n]
        for kind, k in self.every.items():
            if k and n % k == 0:
                return kind
        if self._burst_left:
            self._burst_left -= 1
            return self._burst_kind
        if self.rate and self._rng.random() < self.rate:
            kind = self._rng.choice(self.kinds)
            if self.burst > 1 and kind in BURST_KINDS:
                self._burst_kind, self._burst_left = kind, self.burst - 1
                self.bursts += 1
            return kind
        return None


@dataclass
class Churn:
    """Conversations inserted and updated while walks run: the data does not stand still during an export.

    Before each authenticated request, with probability ``inserts``, ``batch`` new conversations are inserted
    at ``present`` (an instant after every window a test walks; it moves 1 ms per conversation, so they are
    the newest of all and land on top of newest-first lists, where they shift offset pages under a walk); with
    probability ``updates``, ``batch`` existing conversations, picked at random, are updated (see
    :meth:`VendorSimulator.update`: the update time becomes ``present``, the creation time never changes).
    So the ids created in a window before ``present`` are the same before, during and after any walk.
    """

    present: datetime
    inserts: float = 0.0
    updates: float = 0.0
    batch: int = 1
    seed: int = 0
    inserted: int = 0
    updated: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def apply(self, sim: VendorSimulator) -> None:
        with self._lock:
            insert = self.inserts and self._rng.random() < self.inserts
            update = self.updates and self._rng.random() < self.updates
            new: list[Conversation] = []
            if insert:
                for _ in range(self.batch):
                    new.append(self._conversation(self.inserted))
                    self.inserted += 1
                    self.present += timedelta(milliseconds=1)
            picked: list[str] = []
            if update:
                records = sim.records
                picked = [str(records[self._rng.randrange(len(records))][sim.id_field])
                          for _ in range(self.batch)] if records else []
                self.updated += len(picked)
            at = self.present
        if new:
            sim.add(new)
        if picked:
            sim.update(picked, at=at)

    def _conversation(self, n: int) -> Conversation:
        rng = self._rng
        return Conversation(
            index=10**8 + n, created=self.present, updated=self.present, status=rng.randrange(1 << 16),
            channel=rng.randrange(1 << 16), direction=rng.randrange(2), duration=rng.randint(5, 1800),
            agent=rng.randrange(5), user=rng.randrange(1000), turns=rng.randint(1, 40), rating=rng.randint(1, 5),
            in_progress=True,
        )


@dataclass
class SimStats:
    requests: int = 0
    connections: int = 0
    ok_pages: int = 0
    #: Requests being answered (from arrival, through the added latency, until the answer is decided), and the
    #: most at once: a client's concurrency shows here without timing anything.
    in_flight: int = 0
    max_in_flight: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    throttled: int = 0
    #: Requests for one conversation's detail (counted in ``requests`` too), the ones answered 2xx, and the
    #: most that were in flight at once (from arrival until the answer was ready to send), so a test can assert
    #: a client's concurrency bound without timing anything.
    detail_requests: int = 0
    ok_details: int = 0
    details_in_flight: int = 0
    max_details_in_flight: int = 0


class VendorSimulator(ABC):
    """A vendor's list endpoint on 127.0.0.1, speaking the vendor's wire format.

    Subclasses implement :meth:`render` (a conversation in the vendor's format), :meth:`new_store` (how the
    rendered records are sorted and indexed), :meth:`handle` (routing, validation, paging) and :meth:`error`
    (the vendor's error body). This class owns the data set, the socket, auth check, faults, latency, rate
    limit and lifetime.

    :param conversations: how many conversations to generate, or the conversations themselves.
    :param seed: seed of the generated conversations.
    :param start: the generated conversations lie in ``[start, start + span)``.
    :param token: the only key the simulator accepts (default: the vendor's :attr:`default_token`).
    :param latency_ms: added to every request, list pages and details alike (benchmarks use 50).
    :param vanish_share: this share of the conversations (picked by ``vanish_seed`` and the id, so the same ones
        on every run) are listed but answer 404 on their detail, as if deleted between listing and detail fetch.

    Vendors with a detail endpoint set :attr:`detail_path` and implement :meth:`detail` (the ground truth of
    a detail body) and :meth:`handle_detail`; detail requests share the auth check, rate limit, latency and
    fault injection with list pages (the vendor kinds ``empty``/``stuck``, which rewrite a page's
    continuation, do not apply to them).
    """

    vendor: ClassVar[str]
    #: Header carrying the key, and the prefix before the token (``"Bearer "`` or ``""``).
    auth_header: ClassVar[str] = "Authorization"
    auth_prefix: ClassVar[str] = "Bearer "
    #: The key accepted unless ``token`` says otherwise (vendors whose keys have a format use one of it).
    default_token: ClassVar[str] = "sim-token"
    #: The field of a rendered record that holds its id.
    id_field: ClassVar[str] = "id"
    #: The :data:`VENDOR_KINDS` this vendor's pagination can serve (see :meth:`vendor_fault`).
    vendor_fault_kinds: ClassVar[frozenset[str]] = frozenset()
    #: Continuation paging, for the vendors whose pages carry a token for the next one: the key of the items
    #: in a page body, of the token, of the "more" flag (``None``: the vendor has none), and the query
    #: parameter that takes the token back. The default :meth:`vendor_fault` serves ``empty`` and ``stuck``
    #: from them.
    items_key: ClassVar[str | None] = None
    next_cursor_key: ClassVar[str | None] = None
    has_more_key: ClassVar[str | None] = None
    cursor_param: ClassVar[str | None] = None
    #: Timestamp precision of generated conversations (the vendor's wire precision; a subclass may take it as
    #: a switch), and the share of them still in progress.
    precision: timedelta = timedelta(microseconds=1)
    in_progress_fraction: float = 0.05
    #: The path of one conversation's detail, with the id as its one group (``None``: the vendor documents no
    #: detail endpoint, and such paths are unknown routes like any other).
    detail_path: ClassVar[re.Pattern[str] | None] = None

    def __init__(
        self,
        conversations: int | list[Conversation] = 1000,
        *,
        seed: int = 0,
        start: datetime = DEFAULT_START,
        span: timedelta = timedelta(days=3),
        token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        max_seconds: float = 600.0,
        max_requests: int = 2_000_000,
        latency_ms: float = 0.0,
        faults: Faults | None = None,
        rate_limit: tuple[int, float] | None = None,
        log_requests: bool = True,
        churn: Churn | None = None,
        vanish_share: float = 0.0,
        vanish_seed: int = 0,
    ) -> None:
        if not 0.0 <= vanish_share <= 1.0:
            raise ValueError(f"vanish_share={vanish_share!r} must be between 0 and 1")
        if vanish_share and self.detail_path is None:
            raise ValueError(f"vanish_share: the {self.vendor} simulator serves no detail endpoint")
        self.vanish_share = vanish_share
        self.vanish_seed = vanish_seed
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("simulators bind to loopback only")
        self.token = self.default_token if token is None else token
        self.host = host
        self.port = port
        self.max_seconds = max_seconds
        self.max_requests = max_requests
        self.latency_ms = latency_ms
        self.faults = faults or Faults()
        self.rate_limit = rate_limit
        self.log_requests = log_requests
        self.churn = churn
        self._nonces = itertools.count(1)
        self.requests: list[SimRequest] = []
        self.stats = SimStats()
        self.lock = threading.RLock()
        self._window_start = 0.0
        self._window_count = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None
        self.store = self.new_store()
        self.add(self.data_set(conversations, seed=seed, start=start, span=span))

    # ---------------------------------------------------------------- vendor part

    @abstractmethod
    def render(self, c: Conversation) -> dict[str, Any]:
        """``c`` as the vendor's list endpoint returns it."""

    @abstractmethod
    def new_store(self) -> SortedStore:
        """An empty store that sorts and indexes this vendor's rendered records (called once, by ``__init__``)."""

    @abstractmethod
    def handle(self, request: SimRequest) -> SimResponse:
        """Answer an authenticated request that no fault replaced."""

    @abstractmethod
    def error(self, status: int, code: str, message: str, param: str | None = None) -> SimResponse:
        """The vendor's error body for ``status``."""

    @abstractmethod
    def connection(self, conn_id: str | None = None) -> dict[str, Any]:
        """An Airflow connection (JSON form, for ``AIRFLOW_CONN_<ID>``) pointing at this simulator."""

    @property
    def records(self) -> list[dict[str, Any]]:
        """The conversations as the vendor renders them, in the store's order."""
        return self.store.records

    @abstractmethod
    def ground_truth(self, start: datetime, end: datetime, *, time_key: str = "created",
                     **filters: Any) -> list[str]:
        """Ids of the conversations whose ``time_key`` lies in ``[start, end)``: what an export must hold."""

    def data_set(self, conversations: int | list[Conversation], *, seed: int, start: datetime,
                 span: timedelta) -> list[Conversation]:
        """The conversations to start with: the ones given, or as many generated in the vendor's precision."""
        if isinstance(conversations, list):
            return conversations
        return generate(conversations, seed=seed, start=start, span=span, precision=self.precision,
                        in_progress_fraction=self.in_progress_fraction)

    def add(self, conversations: list[Conversation]) -> None:
        """Insert conversations, also while a walk is running."""
        self.store.add([self.render(c) for c in conversations])

    @abstractmethod
    def finish_all(self) -> None:
        """Turn every in-progress conversation into a finished one (what sensors wait for)."""

    def update(self, ids: list[str], *, at: datetime) -> int:
        """Update conversations (also while a walk is running): an in-progress one finishes, the update time
        (where the vendor has one) becomes ``at``; the creation time never changes. Returns how many were found.
        """
        raise NotImplementedError(f"{type(self).__name__} does not model updates")

    # ---------------------------------------------------------------- details

    def detail_id(self, request: SimRequest) -> str | None:
        """The conversation id a request asks the detail of, or ``None`` for any other request."""
        if self.detail_path is None:
            return None
        m = self.detail_path.match(request.path)
        return unquote(m.group(1)) if m else None

    def vanished(self, conversation_id: str) -> bool:
        """Whether ``conversation_id`` is one of the ``vanish_share`` whose detail answers 404 (deterministic:
        a hash of ``vanish_seed`` and the id, the same on every run and in every process)."""
        if not self.vanish_share:
            return False
        digest = hashlib.blake2b(f"{self.vanish_seed}:{conversation_id}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") < self.vanish_share * 2**64

    def record(self, conversation_id: str) -> dict[str, Any] | None:
        """The stored record (as listed) of ``conversation_id``, or ``None``."""
        return self.store.get(conversation_id)

    def detail(self, conversation_id: str, **options: Any) -> dict[str, Any] | None:
        """The ground truth of the detail body of ``conversation_id`` (``None``: the API answers 404, because
        it is unknown, vanished, or the vendor hides it), for tests to compare exports with."""
        raise NotImplementedError(f"the {self.vendor} simulator serves no detail endpoint")

    def handle_detail(self, conversation_id: str, request: SimRequest) -> SimResponse:
        """Answer an authenticated detail request that no fault replaced."""
        raise NotImplementedError(f"the {self.vendor} simulator serves no detail endpoint")

    def _detail_started(self) -> None:
        with self.lock:
            self.stats.details_in_flight += 1
            self.stats.max_details_in_flight = max(self.stats.max_details_in_flight, self.stats.details_in_flight)

    def _detail_finished(self) -> None:
        with self.lock:
            self.stats.details_in_flight -= 1

    def _answer(self, request: SimRequest) -> SimResponse:
        conversation_id = self.detail_id(request)
        if conversation_id is None:
            return self.handle(request)
        return self.handle_detail(conversation_id, request)

    def vendor_fault(self, kind: str, request: SimRequest) -> SimResponse | None:
        """Answer ``request`` with a vendor kind of fault (``empty`` or ``stuck``), or ``None`` when it does
        not apply to this request (e.g. ``stuck`` on a first page, which has no cursor to repeat).

        The page the request would get is rewritten by :meth:`continuation_fault`.
        """
        normal = self.handle(request)
        if normal.status != 200:
            return None  # a request the API refuses gets its error, not a fault
        body = orjson.loads(normal.body)
        if not self.continuation_fault(kind, request, body):
            return None
        return SimResponse.json(200, body)

    def continuation_fault(self, kind: str, request: SimRequest, body: dict[str, Any]) -> bool:
        """Turn the page ``body`` into fault ``kind``; ``False`` when it does not apply to this request.

        ``empty``: no items, "more" set, and a fresh token (a new nonce) for the position the request continues
        from, which a client must follow. ``stuck``: "more" set and the token the request was asked with, which
        a client that follows it loops on; a first page has none to repeat.
        """
        if self.items_key is None or self.next_cursor_key is None or self.cursor_param is None:
            raise NotImplementedError(f"{type(self).__name__} declares no continuation paging")
        if kind == "empty":
            body[self.items_key] = []
            body[self.next_cursor_key] = cursors.encode(self.cursor_position(request), self.nonce())
        else:
            token = request.one(self.cursor_param)
            if not token:
                return False
            body[self.next_cursor_key] = token
        if self.has_more_key is not None:
            body[self.has_more_key] = True
        return True

    def cursor_position(self, request: SimRequest) -> tuple[Any, ...] | None:
        """The position a (valid) request continues from, as :func:`cursors.encode` takes it: what its cursor
        points at, or the top of the list."""
        raise NotImplementedError(f"{type(self).__name__} declares no continuation paging")

    def nonce(self) -> int:
        """A fresh number, to make a continuation token new while it points at the same position."""
        with self.lock:
            return next(self._nonces)

    # ---------------------------------------------------------------- faults

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        unsupported = (faults.possible_kinds() & set(VENDOR_KINDS)) - self.vendor_fault_kinds
        if unsupported:
            raise ValueError(
                f"the {self.vendor} simulator cannot serve fault kinds {sorted(unsupported)}: "
                + "; ".join(self.vendor_fault_reasons.get(k, "not modelled") for k in sorted(unsupported))
            )
        self._faults = faults

    #: Why a vendor kind of fault does not apply to this vendor (shown when it is asked for).
    vendor_fault_reasons: ClassVar[dict[str, str]] = {}

    # ---------------------------------------------------------------- lifecycle

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("simulator is not running")
        return f"http://{self.host}:{self._server.server_address[1]}"

    def start(self) -> VendorSimulator:
        handler = _make_handler(self)
        self._server = ThreadingHTTPServer((self.host, self.port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"{self.vendor}-simulator", daemon=True)
        self._thread.start()
        self._timer = threading.Timer(self.max_seconds, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if self._timer is not None:
            self._timer.cancel()
        if server is not None:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> VendorSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset_log(self) -> None:
        with self.lock:
            self.requests.clear()

    # ---------------------------------------------------------------- request path

    def _authorized(self, request: SimRequest) -> bool:
        return request.headers.get(self.auth_header) == f"{self.auth_prefix}{self.token}"

    def unauthorized(self, request: SimRequest) -> SimResponse:
        present = request.headers.get(self.auth_header) is not None
        return self.error(401, "invalid_api_key" if present else "missing_api_key",
                          "Invalid API key" if present else "Missing API key")

    def dispatch(self, request: SimRequest) -> tuple[SimResponse | None, str | None]:
        """Decide the answer: (response, fault kind that needs special socket handling)."""
        with self.lock:
            self.stats.in_flight += 1
            self.stats.max_in_flight = max(self.stats.max_in_flight, self.stats.in_flight)
        try:
            return self._dispatch(request)
        finally:
            with self.lock:
                self.stats.in_flight -= 1

    def _dispatch(self, request: SimRequest) -> tuple[SimResponse | None, str | None]:
        with self.lock:
            self.stats.requests += 1
            n = self.stats.requests
            request.received = time.monotonic()
            detail = self.detail_id(request) is not None
            if detail:
                self.stats.detail_requests += 1
            if self.log_requests:
                self.requests.append(request)
            if n > self.max_requests:
                threading.Thread(target=self.stop, daemon=True).start()
                return self.error(503, "simulator_exhausted", "request budget exhausted"), None
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000.0)
        if not self._authorized(request):
            return self.unauthorized(request), None
        rl_headers: dict[str, str] = {}
        if self.rate_limit is not None:
            limit, window = self.rate_limit
            with self.lock:
                now = time.monotonic()
                if now - self._window_start >= window:
                    self._window_start, self._window_count = now, 0
                reset = max(0.0, window - (now - self._window_start))
                if self._window_count >= limit:
                    self.stats.throttled += 1
                    resp = self.error(429, "too_many_requests", "Rate limit exceeded")
                    resp.headers.update({"Retry-After": f"{reset:.3f}", "RateLimit-Limit": str(limit),
                                         "RateLimit-Remaining": "0", "RateLimit-Reset": f"{reset:.3f}"})
                    return resp, None
                self._window_count += 1
                rl_headers = {"RateLimit-Limit": str(limit),
                              "RateLimit-Remaining": str(limit - self._window_count),
                              "RateLimit-Reset": f"{reset:.3f}"}
        if self.churn is not None:
            self.churn.apply(self)
        faults = self.faults
        with self.lock:
            failing = faults.fail_after is not None and self.stats.ok_pages >= faults.fail_after
            kind = faults.fail_kind if failing else faults.decide(n)
        vendor_response = None
        if kind in VENDOR_KINDS and detail:
            kind = None  # a detail has no continuation to rewrite: answered normally, not counted
        if kind in VENDOR_KINDS:
            vendor_response = self.vendor_fault(str(kind), request)
            if vendor_response is None:
                kind = None  # does not apply to this request: answered normally, not counted
        if failing or kind:
            key = f"permanent {kind or faults.fail_status}" if failing else str(kind)
            with self.lock:
                self.stats.faults[key] = self.stats.faults.get(key, 0) + 1
            request.outcome = key
        if failing and not kind:
            return self.error(faults.fail_status, "internal_error", "simulated permanent failure"), None
        if vendor_response is not None:
            with self.lock:
                self.stats.ok_pages += 1
            return vendor_response, None
        if kind in ("429", "429-date", "429-none", "500", "502", "503"):
            status = int(str(kind)[:3])
            resp = self.error(status, "rate_limit_exceeded" if status == 429 else "server_error",
                              "simulated fault")
            retry_after = {"429": faults.retry_after, "429-date": "http-date"}.get(str(kind))
            if retry_after is not None:
                resp.headers["Retry-After"] = (
                    formatdate(time.time() + 1, usegmt=True) if retry_after == "http-date" else retry_after
                )
            return resp, None
        if kind == "slow":
            time.sleep(faults.slow_seconds)
        response = self._answer(request)
        response.headers.update(rl_headers)
        if 200 <= response.status < 300 and not kind:  # a page a fault mangles or delays is not delivered
            with self.lock:
                if detail:
                    self.stats.ok_details += 1
                else:
                    self.stats.ok_pages += 1
        return response, kind if kind in ("reset", "truncated", "garbage") else None


def _make_handler(sim: VendorSimulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Without this, headers and body leave as two small writes and Nagle + delayed ACK add ~40 ms.
        disable_nagle_algorithm = True
        server_version = f"{sim.vendor}-simulator"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:
            return

        def setup(self) -> None:
            super().setup()
            with sim.lock:
                sim.stats.connections += 1

        def do_GET(self) -> None:
            if self._kill_requested():
                return
            parts = urlsplit(self.path)
            request = SimRequest(
                method="GET",
                path=parts.path,
                query=parse_qs(parts.query, keep_blank_values=True),
                raw_query=parts.query,
                headers={k: v for k, v in self.headers.items()},
            )
            # A detail is in flight from its arrival until its answer is ready (latency and faults included);
            # it ends before the first byte is written, so a client that has its answer sees it counted out.
            detail = sim.detail_id(request) is not None
            if detail:
                sim._detail_started()
            try:
                response, special = sim.dispatch(request)
            except Exception as exc:  # a simulator bug must surface as a 500, not a hung client
                response, special = SimResponse.json(500, {"simulator_error": repr(exc)}), None
            finally:
                if detail:
                    sim._detail_finished()
            assert response is not None
            body = response.body
            if special == "garbage":
                body = b"<html><body>502 Bad Gateway (simulated garbage)</body></html>"
            elif special == "truncated":
                body = body[: max(1, len(body) // 2)]
            self.send_response(response.status)
            self.send_header("Content-Type", "application/json" if special != "garbage" else "text/html")
            for k, v in response.headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            try:
                self.end_headers()
                if special == "reset":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    # RST instead of FIN: the client sees a connection reset mid-body.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    return
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up first (a ``slow`` answer after its read timeout): nothing to report.
                self.close_connection = True

        def _kill_requested(self) -> bool:
            """``Faults.kill_after``: SIGKILL the requesting process, and answer nothing."""
            faults = sim.faults
            with sim.lock:
                due = (faults.kill_after is not None and faults.killed is None
                       and sim.stats.ok_pages >= faults.kill_after)
                if not due:
                    return False
                pid = peer_pid(self.client_address[1])
                faults.killed = pid or 0  # 0: the requester is this process (or not on this machine): no kill
                if pid is None:
                    return False
            os.kill(pid, signal.SIGKILL)
            self.close_connection = True
            return True

    return Handler


def peer_pid(client_port: int) -> int | None:
    """The pid of the local process whose TCP socket has ``client_port`` (Linux ``/proc``), or ``None``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == client_port:
                inodes.add(f"socket:[{fields[9]}]")
    own = os.getpid()
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
        if pid == own:
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in fds):
                return pid
        except OSError:
            continue
    return None
