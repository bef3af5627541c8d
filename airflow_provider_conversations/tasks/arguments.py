"""The arguments every conversations task shares, checked once when the task is built.

Both operators and the sensor take a connection, an optional ``vendor``, a ``time_key``, ``filters``, an
optional ``start``/``end``, a ``page_size`` and ``hook_params``. :meth:`SourceArguments.check` checks what can be
checked without the connection (everything that is not a Jinja template or an upstream task's output), so a
typo breaks the DAG import instead of a 3 a.m. run, and keeps the results typed: the vendor's hook class, the
validated filters, a :class:`RetryPolicy`. At run time :meth:`SourceArguments.plan` builds the hook and the
:class:`WalkPlan` from them, checking only what only the rendered values or the connection can tell.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow.sdk import XComArg

from airflow_provider_conversations.engine.details import DEFAULT_DETAIL_CONCURRENCY, DetailOptions
from airflow_provider_conversations.engine.parallel import MAX_WORKERS
from airflow_provider_conversations.engine.plan import WalkPlan
from airflow_provider_conversations.exceptions import ConfigurationError
from airflow_provider_conversations.filters import FilterSet
from airflow_provider_conversations.hooks.registry import conn_types, hook_class, hook_for_connection
from airflow_provider_conversations.output import parquet, storage
from airflow_provider_conversations.transport.retry import RetryPolicy
from airflow_provider_conversations.windows import Window

if TYPE_CHECKING:
    from airflow_provider_conversations.hooks.base import ConversationsHook

TIME_KEYS = ("created", "updated")


def is_dynamic(value: Any) -> bool:
    """True when the value is only known at run time (a Jinja template or an upstream task's output)."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, XComArg):
        return True
    if isinstance(value, Mapping):
        return any(is_dynamic(k) or is_dynamic(v) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return any(is_dynamic(v) for v in value)
    return False


@dataclass(frozen=True)
class Wording:
    """How one kind of task words a refused argument (kept per kind: the messages users know do not move)."""

    #: ``<name>=<value> {expected} <what it must be>`` and ``... {allowed} <the choices>``.
    expected: str
    allowed: str
    conn_id: str
    vendor_choices: Callable[[tuple[str, ...]], str]
    filters_hint: str
    hook_param_names: tuple[str, ...]


OPERATOR = Wording(
    expected="is not valid; expected", allowed="is not valid; allowed:",
    conn_id="is not valid; expected an Airflow connection id",
    vendor_choices=lambda types: ", ".join(repr(t) for t in types) + " (the connection type)",
    filters_hint="", hook_param_names=tuple(sorted(RetryPolicy.NAMES)),
)
SENSOR = Wording(
    expected="is not allowed: expected", allowed="is not allowed; allowed:",
    conn_id="must be a non-empty connection id",
    vendor_choices=lambda types: ", ".join(types),
    filters_hint=" (or a Jinja template rendering to one)", hook_param_names=RetryPolicy.NAMES,
)


@dataclass(frozen=True)
class SourceArguments:
    """Where a task reads conversations from, and how, as checked when the task was built.

    ``filters`` holds the validated filters when they were known when the DAG was parsed and ``vendor`` was
    given (else ``None``: they are validated once at run time, after rendering); ``hook_params`` the checked
    retry settings as the DAG gave them (plain JSON values, for a trigger).
    """

    label: str
    vendor: str | None
    time_key: str
    page_size: int | None
    hook_params: Mapping[str, Any]
    retry: RetryPolicy
    filters: Mapping[str, Any] | None = None
    hook_cls: type[ConversationsHook] | None = field(default=None, repr=False)
    #: The checked ``extra_params`` when known at parse time with ``vendor`` given (else ``None``: checked at run time).
    extra_params: Mapping[str, Any] | None = None

    @classmethod
    def check(cls, *, label: str, wording: Wording, conn_id: Any, vendor: str | None, time_key: str,
              filters: Any, start: Any, end: Any, page_size: Any, hook_params: Any,
              finished_only: bool = False, json_only: bool = False, extra_params: Any = None) -> SourceArguments:
        """Check the shared arguments (raise ConfigurationError / InvalidFilterError, without ``label``)."""
        w = wording
        if not is_dynamic(conn_id) and (not isinstance(conn_id, str) or not conn_id.strip()):
            raise ConfigurationError(f"conn_id={conn_id!r} {w.conn_id}")
        vendor_cls = None
        if vendor is not None:
            if vendor not in conn_types():
                raise ConfigurationError(f"vendor={vendor!r} {w.allowed} {w.vendor_choices(conn_types())}")
            vendor_cls = hook_class(vendor)
        if time_key not in TIME_KEYS:
            raise ConfigurationError(f"time_key={time_key!r} {w.allowed} 'created', 'updated'")
        if vendor_cls is not None and time_key not in vendor_cls.time_keys:
            raise ConfigurationError(
                f"time_key={time_key!r} is not supported by {vendor_cls.hook_name}; allowed: "
                + ", ".join(repr(k) for k in vendor_cls.time_keys)
            )
        if page_size is not None:
            if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
                raise ConfigurationError(
                    f"page_size={page_size!r} {w.expected} a positive integer, or None for the vendor's largest page"
                )
            if vendor_cls is not None and (expected := vendor_cls.page_size_problem(page_size)):
                raise ConfigurationError(
                    f"page_size={page_size!r} is not allowed for {vendor_cls.hook_name}: {expected}")
        params, retry = _retry(hook_params, w, json_only)
        validated = _filters(filters, w, vendor_cls, finished_only)
        extra = _extra_params(extra_params, w, vendor_cls)
        _window(start, end)
        return cls(label, vendor, time_key, page_size, params, retry, validated, vendor_cls, extra_params=extra)

    # ------------------------------------------------------------------ run time

    def hook(self, conn_id: str, *, vendor: str | None = None) -> ConversationsHook:
        """The vendor hook of ``conn_id`` (rendered), built with the checked settings."""
        return hook_for_connection(conn_id, vendor=vendor, page_size=self.page_size, retry=self.retry)

    def validated_filters(self, hook: ConversationsHook, rendered: Any, *, finished_only: bool = False
                          ) -> dict[str, Any]:
        """The task's filters, validated once (at parse time when they were known then), with the vendor's
        server-side finished filter merged in for ``finished_only``."""
        if self.filters is None:
            filters = hook.validate_filters(rendered)
        else:
            filters = dict(self.filters)
            hook.warn_deprecated(filters)
        return {**filters, **hook.finished_filters(filters)} if finished_only else filters

    def validated_extra_params(self, hook: ConversationsHook, rendered: Any) -> dict[str, Any]:
        """The task's ``extra_params``, checked once (at parse time when they were known then), names logged."""
        if self.extra_params is None:
            return hook.validate_extra_params(rendered)
        hook.log_extra_params(self.extra_params)
        return dict(self.extra_params)

    def plan(self, hook: ConversationsHook, window: Window, filters: Mapping[str, Any], workers: int = 1,
             extra_params: Mapping[str, Any] | None = None) -> WalkPlan:
        """The walk of ``window``: what depends on the connection is checked here, before any request."""
        return hook.plan_for(window, hook.resolve_time_key(self.time_key), filters, hook.check_parallel(workers),
                             extra_params)

    def hook_kwargs(self) -> dict[str, Any]:
        """The hook settings as plain JSON values (what a deferrable sensor hands its trigger)."""
        return {**self.hook_params, **({} if self.page_size is None else {"page_size": self.page_size})}


def check_workers(max_parallel: Any, vendor_cls: type[ConversationsHook] | None) -> int:
    """``max_parallel`` as the operators word it (the hook checks it again, against the connection's vendor)."""
    if isinstance(max_parallel, bool) or not isinstance(max_parallel, int) or not 1 <= max_parallel <= MAX_WORKERS:
        raise ConfigurationError(
            f"max_parallel={max_parallel!r} is not valid; expected an integer from 1 to {MAX_WORKERS}")
    if vendor_cls is not None and max_parallel > 1 and not vendor_cls.server_bounded:
        raise ConfigurationError(
            f"max_parallel={max_parallel} needs server-side time bounds, which {vendor_cls.hook_name} does not have; "
            "use max_parallel=1"
        )
    return max_parallel


FILE_FORMATS = ("jsonl", "parquet")
#: What ``compression`` takes per ``file_format``, the default first.
FILE_COMPRESSIONS: dict[str, tuple[str | None, ...]] = {"jsonl": storage.COMPRESSIONS, "parquet": parquet.COMPRESSIONS}


def check_file_format(file_format: Any, compression: Any, *, default: bool = False) -> tuple[str, str | None]:
    """``file_format`` and ``compression`` of an object-storage export, checked together; returns them with the
    format's default compression when ``default`` (none was given). Parquet also needs pyarrow, imported here so
    a DAG without the extra fails when it is parsed, naming the extra."""
    if file_format not in FILE_FORMATS:
        raise ConfigurationError(f"file_format={file_format!r} is not valid; allowed: "
                                 + ", ".join(repr(f) for f in FILE_FORMATS))
    allowed = FILE_COMPRESSIONS[file_format]
    if default:
        compression = allowed[0]
    elif compression not in allowed:
        other = [f for f, c in FILE_COMPRESSIONS.items() if f != file_format and compression in c]
        choices = ", ".join(repr(c) for c in allowed[:-1]) + f" or {allowed[-1]!r}"
        raise ConfigurationError(
            f"compression={compression!r} is not valid"
            + ("" if file_format == "jsonl" else f" with file_format={file_format!r}")  # (the 0.1 wording)
            + f"; allowed: {choices}"
            + (f" (with file_format={other[0]!r} only)" if other else ""))
    if file_format == "parquet":
        parquet.require_pyarrow()
    return file_format, compression


def check_details(include_details: Any, detail_concurrency: Any = DEFAULT_DETAIL_CONCURRENCY,
                  on_missing_detail: Any = "keep", *, vendor_cls: type[ConversationsHook] | None = None,
                  wording: Wording = OPERATOR) -> DetailOptions | None:
    """``include_details``, ``detail_concurrency`` and ``on_missing_detail`` as the operators word them; with
    ``vendor`` given, a vendor without a detail endpoint (ParrotMob) is refused here, at DAG parse time (else the
    hook refuses it at run time, before any request)."""
    options = DetailOptions.of(include_details, detail_concurrency, on_missing_detail, expected=wording.expected,
                               allowed=wording.allowed)
    if options is not None and vendor_cls is not None:
        vendor_cls.refuse_details_unless_supported()
    return options


def _retry(hook_params: Any, w: Wording, json_only: bool) -> tuple[dict[str, Any], RetryPolicy]:
    if hook_params is None:
        return {}, RetryPolicy()
    names = ", ".join(w.hook_param_names)
    if not isinstance(hook_params, Mapping):
        raise ConfigurationError(f"hook_params={hook_params!r} {w.expected} a dict with keys among: {names}")
    for key in hook_params:
        if key not in RetryPolicy.NAMES:
            raise ConfigurationError(f"hook_params key {key!r} {w.allowed} {names}"
                                     + (" (page_size is an argument of its own)" if key == "page_size" else ""))
    if json_only:
        try:
            json.dumps(dict(hook_params))
        except TypeError as exc:
            raise ConfigurationError(
                f"hook_params={dict(hook_params)!r} must hold plain JSON values (a deferrable sensor hands them to "
                f"its trigger): {exc}"
            ) from None
    policy = RetryPolicy.of(hook_params, lambda name, value, expected: ConfigurationError(
        f"hook_params {name}={value!r} {w.expected} {expected}"))
    return dict(hook_params), policy


def _filters(filters: Any, w: Wording, vendor_cls: type[ConversationsHook] | None,
             finished_only: bool) -> dict[str, Any] | None:
    if filters is None or is_dynamic(filters):
        return None  # a template: validated at run time, after rendering
    if not isinstance(filters, Mapping):
        raise ConfigurationError(
            f"filters={filters!r} {w.expected} a dict of the vendor's filter names to values{w.filters_hint}"
        )
    if vendor_cls is None:
        return None
    validated = vendor_cls.filter_set.validate(filters)
    if finished_only:
        vendor_cls.finished_filters(validated)  # e.g. finished_only with PolyAI in_progress=True
    return validated


def _extra_params(extra_params: Any, w: Wording, vendor_cls: type[ConversationsHook] | None
                  ) -> dict[str, Any] | None:
    """``extra_params`` as far as they can be checked now: their shape always, their names against the vendor's
    reserved parameters and filters when ``vendor`` is given."""
    if extra_params is None or is_dynamic(extra_params):
        return None  # a template: checked at run time, after rendering
    if not isinstance(extra_params, Mapping):
        raise ConfigurationError(
            f"extra_params={extra_params!r} {w.expected} a dict of query parameter names to strings, numbers, "
            f"booleans or lists of them{w.filters_hint}"
        )
    if vendor_cls is None:
        FilterSet("the vendor", ()).validate_extra(extra_params)  # the values' shape; names at run time
        return None
    return vendor_cls.filter_set.validate_extra(extra_params)


def _window(start: Any, end: Any) -> None:
    if (start is None) != (end is None):
        raise ConfigurationError(f"start and end go together; {'end' if end is None else 'start'} is missing")
    if start is not None and not is_dynamic(start) and not is_dynamic(end):
        Window.of(start, end)


__all__ = ["FILE_COMPRESSIONS", "FILE_FORMATS", "OPERATOR", "SENSOR", "TIME_KEYS", "SourceArguments", "Wording",
           "check_details", "check_file_format", "check_workers", "is_dynamic"]
