"""Each listed conversation with its detail body (transcript, messages), fetched by a bounded pool.

A vendor declares its detail endpoint (:class:`DetailEndpoint`: a path template and the id field of the body);
everything else lives here once. :func:`with_details` takes the pages of a walk (sequential, or parallel
sub-windows in completion order) and yields the same pages, in the same order, each item with its detail under
``"detail"``. Details are fetched by ``concurrency`` threads that send through the hook's own client, so they
share its session, its throttle (rate-limit pacing and 429 back-off) and its retry policy with the listing: the
total request rate is the one the vendor's limit allows, whoever sends.

Memory stays flat however large the window: a page is handed to the pool only when fewer than
``LOOKAHEAD_PAGES`` pages are waiting for their details, so at most that many pages of items and bodies are
held, and never more than ``concurrency`` detail requests are in flight (the pool has that many threads).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from airflow_provider_conversations.engine.paginators import Context, Item
from airflow_provider_conversations.engine.walk import Page
from airflow_provider_conversations.exceptions import ConfigurationError, MissingDetailError
from airflow_provider_conversations.stats import HookStats

#: The key under which an item carries its detail body.
DETAIL_KEY = "detail"
#: Default detail requests in flight at once.
DEFAULT_DETAIL_CONCURRENCY = 8
#: The most detail requests one export may have in flight.
MAX_DETAIL_CONCURRENCY = 64
#: Pages handed to the pool ahead of the one being yielded: enough to keep every thread busy across a page
#: boundary (and while the next page is listed), few enough that memory does not grow with the window.
LOOKAHEAD_PAGES = 2

OnMissing = Literal["keep", "skip", "fail"]
ON_MISSING_DETAIL: tuple[str, ...] = ("keep", "skip", "fail")


@dataclass(frozen=True)
class DetailEndpoint:
    """A vendor's per-conversation endpoint, as its hook declares it.

    :param path: relative path with ``{id}`` where the (percent-encoded) conversation id goes.
    :param id_field: the body's field holding the conversation id (checked against the id asked for).
    :param scope: the token scope the detail needs, named when the vendor answers 403.
    """

    path: str
    id_field: str = "id"
    scope: str | None = None


@dataclass(frozen=True)
class DetailOptions:
    """How details are fetched for one export: threads, and what a conversation gone before its detail means."""

    concurrency: int = DEFAULT_DETAIL_CONCURRENCY
    on_missing: OnMissing = "keep"

    @classmethod
    def of(cls, include_details: Any, detail_concurrency: Any = DEFAULT_DETAIL_CONCURRENCY,
           on_missing_detail: Any = "keep", *, expected: str = "is not valid; expected",
           allowed: str = "is not valid; allowed:") -> DetailOptions | None:
        """The checked settings, or ``None`` without ``include_details``; raises ConfigurationError naming the
        parameter, its value and what is allowed (``expected``/``allowed`` word it like the caller's other
        refusals). All three are checked even when details are off, so a typo never waits for the day they
        are switched on."""
        if not isinstance(include_details, bool):
            raise ConfigurationError(f"include_details={include_details!r} {expected} True or False")
        if (isinstance(detail_concurrency, bool) or not isinstance(detail_concurrency, int)
                or not 1 <= detail_concurrency <= MAX_DETAIL_CONCURRENCY):
            raise ConfigurationError(f"detail_concurrency={detail_concurrency!r} {expected} an integer from 1 to "
                                     f"{MAX_DETAIL_CONCURRENCY}")
        if on_missing_detail not in ON_MISSING_DETAIL:
            raise ConfigurationError(f"on_missing_detail={on_missing_detail!r} {allowed} "
                                     + ", ".join(repr(m) for m in ON_MISSING_DETAIL))
        return cls(detail_concurrency, on_missing_detail) if include_details else None


class _Missing:
    """The outcome of a 404 on a detail (the conversation was listed, then archived or deleted)."""

    __slots__ = ("error",)

    def __init__(self, error: MissingDetailError) -> None:
        self.error = error


def with_details(pages: Iterator[Page], fetch: Callable[[str], dict[str, Any]], *, id_field: str,
                 options: DetailOptions, stats: HookStats, context: Context) -> Iterator[Page]:
    """``pages`` again, each item as ``{**item, "detail": body}``, in the same order (see the module docstring).

    ``fetch(conversation_id)`` returns one detail body (retried, paced) or raises :class:`MissingDetailError`
    (a 404). A missing detail is ``"detail": None`` (``keep``, logged with its id), leaves the item out
    (``skip``) or fails the export (``fail``). Any other error stops the pool at once: requests not yet sent are
    not sent, and the error reaches the caller as soon as it happens, not when its page's turn comes.
    """
    failed: list[BaseException] = []
    stop = threading.Event()

    def one(conversation_id: str) -> dict[str, Any] | _Missing | None:
        if stop.is_set():
            return None
        started = time.monotonic()
        try:
            body = fetch(conversation_id)
        except MissingDetailError as exc:
            stats.add(details_missing=1, detail_seconds=time.monotonic() - started)
            return _Missing(exc)
        except BaseException as exc:
            failed.append(exc)
            stop.set()
            raise
        stats.add(details_fetched=1, detail_seconds=time.monotonic() - started)
        return body

    def finish(page: Page, futures: list[Future[dict[str, Any] | _Missing | None]],
               state: dict[str, Any] | None) -> Page:
        items: list[Item] = []
        for item, future in zip(page, futures, strict=True):
            outcome = future.result()
            if failed:
                raise failed[0]
            if isinstance(outcome, _Missing):
                conversation_id = str(item.get(id_field))
                if options.on_missing == "fail":
                    raise MissingDetailError(
                        f"{outcome.error}; on_missing_detail='fail' stops the export (use 'keep' to write the "
                        "conversation with \"detail\": null, or 'skip' to leave it out)",
                        vendor=context.vendor, status=404, conversation_id=conversation_id,
                    ) from None
                if options.on_missing == "skip":
                    context.log.warning("%s: conversation %s was listed but its detail is gone (HTTP 404); "
                                        "skipped (on_missing_detail='skip')", context.name, conversation_id)
                    continue
                context.log.warning("%s: conversation %s was listed but its detail is gone (HTTP 404); "
                                    "written with \"detail\": null (on_missing_detail='keep')", context.name,
                                    conversation_id)
                outcome = None
            items.append({**item, DETAIL_KEY: outcome})
        done = Page(items, number=page.number, fetched=page.fetched, part=page.part, descending=page.descending)
        if state is not None:
            done.resume_state = lambda: state
        return done

    pool = ThreadPoolExecutor(max_workers=options.concurrency, thread_name_prefix=f"{context.vendor}-detail")
    waiting: deque[tuple[Page, list[Future[dict[str, Any] | _Missing | None]], dict[str, Any] | None]] = deque()
    try:
        for page in pages:
            if failed:
                raise failed[0]
            # The walk's position after this page, taken now: by the time the page is yielded the walk has read
            # up to LOOKAHEAD_PAGES further, and a checkpoint must name this page's position, not a later one.
            state = page.resume_state() if page.resume_state is not None else None
            waiting.append((page, [pool.submit(one, str(item.get(id_field))) for item in page], state))
            while len(waiting) > LOOKAHEAD_PAGES or (waiting and all(f.done() for f in waiting[0][1])):
                yield finish(*waiting.popleft())
        while waiting:
            yield finish(*waiting.popleft())
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)


__all__ = ["DEFAULT_DETAIL_CONCURRENCY", "DETAIL_KEY", "LOOKAHEAD_PAGES", "MAX_DETAIL_CONCURRENCY",
           "ON_MISSING_DETAIL", "DetailEndpoint", "DetailOptions", "OnMissing", "with_details"]
