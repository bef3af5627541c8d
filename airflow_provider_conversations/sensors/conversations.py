"""Wait until a window holds conversations, or until every conversation in it is final.

Conversations are written while they happen: an export that runs the moment an interval closes captures calls
still in progress. Put this sensor (``settled=True``) in front of the export.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException, conf
from airflow.sdk import BaseSensorOperator, PokeReturnValue, XComArg

from airflow_provider_conversations.exceptions import ConfigurationError
from airflow_provider_conversations.filters import validate_filters
from airflow_provider_conversations.hooks import CONN_TYPES, hook_class, hook_for_connection, hook_param_problem
from airflow_provider_conversations.triggers.conversations import (
    HOOK_KWARGS,
    ConversationsTrigger,
    check_vendor,
    hook_arguments,
)
from airflow_provider_conversations.window_check import WindowCheck, check_window
from airflow_provider_conversations.windows import Window, iso_z, window_for_task

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_conversations.hooks.base import ConversationsHook

TIME_KEYS = ("created", "updated")
#: Hook arguments besides ``page_size`` (the same set the operators take as ``hook_params``).
HOOK_PARAMS = tuple(k for k in HOOK_KWARGS if k != "page_size")
#: What the sensor returns to XCom (the trigger's success event carries the same fields).
XCOM_KEYS = ("conn_id", "vendor", "start", "end", "time_key", "min_count", "settled", "count", "count_exact",
             "in_progress", "checks")


class ConversationsSensor(BaseSensorOperator):
    """Succeed when the window holds at least ``min_count`` conversations and, with ``settled=True``, none of
    them is still in progress by the vendor's own statuses.

    The window is ``[start, end)`` when both are given, else the run's data interval (as for the operators).
    Returns to XCom a dict: ``count`` (with ``count_exact``: false when paging stopped as soon as
    ``min_count`` was reached), ``in_progress``, ``checks`` and the window, connection and vendor.

    :param conn_id: Airflow connection of any of the five vendors (templated).
    :param filters: the vendor's filters, as for the operators (templated).
    :param time_key: ``created`` (default) or ``updated``.
    :param min_count: conversations the window must hold (``0``: any number, e.g. with ``settled``).
    :param settled: also wait until none of the window's conversations is in progress.
    :param start: window start overriding the data interval (templated; together with ``end``).
    :param end: window end, exclusive (templated).
    :param deferrable: wait on the triggerer (``ConversationsTrigger``) instead of in a worker slot; defaults
        to ``[operators] default_deferrable``.
    :param vendor: optional connection type (``polyai``, ...): filters and ``time_key`` are then checked when
        the DAG is parsed, and the connection must be of that type.
    :param page_size: items per request (default: the vendor's largest page, fewest requests).
    :param hook_params: other hook arguments, as for the operators (``timeout``, ``max_attempts``,
        ``max_retry_seconds``, ``backoff``, ``backoff_max``, ``retry_after_cap``); plain JSON values, since a
        deferrable sensor hands them to the trigger.
    """

    template_fields: Sequence[str] = ("conn_id", "filters", "start", "end")
    template_fields_renderers = {"filters": "json"}
    ui_color = "#d8ecf7"

    def __init__(
        self,
        *,
        conn_id: str,
        filters: Mapping[str, Any] | str | None = None,
        time_key: str = "created",
        min_count: int = 1,
        settled: bool = False,
        start: Any = None,
        end: Any = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        vendor: str | None = None,
        page_size: int | None = None,
        hook_params: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.filters = filters
        self.time_key = time_key
        self.min_count = min_count
        self.settled = settled
        self.start = start
        self.end = end
        self.deferrable = deferrable
        self.vendor = vendor
        self.page_size = page_size
        self.hook_params = dict(hook_params or {})
        self._validate()
        self._hook: ConversationsHook | None = None
        self._checks = 0

    # ------------------------------------------------------------------ parse-time validation

    def _validate(self) -> None:
        """Everything that can be checked without the connection, so a typo breaks the DAG import."""
        try:
            self._check_arguments()
        except ConfigurationError as exc:  # InvalidFilterError stays an InvalidFilterError
            raise type(exc)(f"ConversationsSensor {self.task_id!r}: {exc}") from None

    def _check_arguments(self) -> None:
        if not _templated(self.conn_id) and (not isinstance(self.conn_id, str) or not self.conn_id.strip()):
            raise ConfigurationError(f"conn_id={self.conn_id!r} must be a non-empty connection id")
        if self.time_key not in TIME_KEYS:
            raise ConfigurationError(f"time_key={self.time_key!r} is not allowed; allowed: 'created', "
                                     "'updated'")
        if isinstance(self.min_count, bool) or not isinstance(self.min_count, int) or self.min_count < 0:
            raise ConfigurationError(
                f"min_count={self.min_count!r} is not allowed: expected an integer >= 0 (the number of "
                "conversations the window must hold)"
            )
        for name in ("settled", "deferrable"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigurationError(f"{name}={getattr(self, name)!r} is not allowed: expected True or "
                                         "False")
        if self.filters is not None and not isinstance(self.filters, Mapping) and not _templated(self.filters):
            raise ConfigurationError(
                f"filters={self.filters!r} is not allowed: expected a dict of the vendor's filter names "
                "to values (or a Jinja template rendering to one)"
            )
        if (self.start is None) != (self.end is None):
            missing = "end" if self.end is None else "start"
            raise ConfigurationError(f"start and end go together; {missing} is missing")
        if self.start is not None and not _templated(self.start) and not _templated(self.end):
            Window.of(self.start, self.end)
        if self.page_size is not None and (
            isinstance(self.page_size, bool) or not isinstance(self.page_size, int) or self.page_size < 1
        ):
            raise ConfigurationError(
                f"page_size={self.page_size!r} is not allowed: expected a positive integer, or None for "
                "the vendor's largest page"
            )
        for key in self.hook_params:
            if key not in HOOK_PARAMS:
                raise ConfigurationError(
                    f"hook_params key {key!r} is not allowed; allowed: {', '.join(HOOK_PARAMS)}"
                    + (" (page_size is an argument of its own)" if key == "page_size" else "")
                )
        try:
            json.dumps(self.hook_params)
        except TypeError as exc:
            raise ConfigurationError(
                f"hook_params={self.hook_params!r} must hold plain JSON values (a deferrable sensor hands "
                f"them to its trigger): {exc}"
            ) from None
        for key, value in self.hook_params.items():
            expected = hook_param_problem(key, value)
            if expected:
                raise ConfigurationError(f"hook_params {key}={value!r} is not allowed: expected {expected}")
        if self.vendor is None:
            return
        if self.vendor not in CONN_TYPES:
            raise ConfigurationError(
                f"vendor={self.vendor!r} is not allowed; allowed: {', '.join(CONN_TYPES)}"
            )
        cls = hook_class(self.vendor)
        if self.time_key not in cls.time_keys:
            raise ConfigurationError(
                f"time_key={self.time_key!r} is not supported by {cls.hook_name}; allowed: "
                + ", ".join(repr(k) for k in cls.time_keys)
            )
        if not _templated(self.filters):
            validate_filters(cls, self.filters)  # type: ignore[arg-type]
        cls(self.conn_id, **hook_arguments(self._hook_kwargs()))  # page_size and friends, against the vendor

    def _hook_kwargs(self) -> dict[str, Any]:
        return {**self.hook_params, **({} if self.page_size is None else {"page_size": self.page_size})}

    # ------------------------------------------------------------------ the check

    def _get_hook(self) -> ConversationsHook:
        if self._hook is None:
            hook = hook_for_connection(self.conn_id, **hook_arguments(self._hook_kwargs()))
            check_vendor(self.conn_id, hook.conn_type, self.vendor)
            self._hook = hook
        return self._hook

    def _check(self, context: Context) -> tuple[WindowCheck, dict[str, Any]]:
        window = window_for_task(context, self.start, self.end, task=f"ConversationsSensor {self.task_id!r}")
        hook = self._get_hook()
        self._checks += 1
        result = check_window(hook, window, time_key=self.time_key, filters=self._filters(), min_count=self.min_count,
                              settled=self.settled)
        self.log.info("check %d: %s%s", self._checks, result.message, ": condition met" if result.done else "")
        seen = {
            "conn_id": self.conn_id, "vendor": hook.vendor, "start": iso_z(window.start), "end": iso_z(window.end),
            "time_key": self.time_key, "min_count": self.min_count, "settled": self.settled,
            **result.as_dict(), "checks": self._checks,
        }
        return result, {k: seen[k] for k in XCOM_KEYS}

    def _filters(self) -> Mapping[str, Any] | None:
        """The rendered filters; anything but a dict is refused by the hook's validation, naming it."""
        return self.filters  # type: ignore[return-value]

    def poke(self, context: Context) -> PokeReturnValue:
        result, xcom = self._check(context)
        return PokeReturnValue(is_done=result.done, xcom_value=xcom if result.done else None)

    # ------------------------------------------------------------------ deferrable path

    def execute(self, context: Context) -> Any:
        self._checks = 0
        try:
            if not self.deferrable:
                return super().execute(context)
            # One check on the worker first: a window that is already ready never visits the triggerer.
            result, xcom = self._check(context)
            if result.done:
                return xcom
            trigger = ConversationsTrigger(
                conn_id=self.conn_id,
                start=xcom["start"],
                end=xcom["end"],
                time_key=self.time_key,
                filters=self._get_hook().validate_filters(self._filters()),  # JSON: sets become lists
                min_count=self.min_count,
                settled=self.settled,
                poke_interval=self.poke_interval,
                hook_kwargs=self._hook_kwargs(),
                vendor=self.vendor,
                checks_before=self._checks,
            )
            self.log.info("Not ready yet: deferring to the triggerer, which checks every %g s (timeout %g s)",
                          self.poke_interval, self.timeout)
            self.defer(trigger=trigger, method_name="execute_complete", timeout=timedelta(seconds=self.timeout))
        finally:
            if self._hook is not None:
                self._hook.close()
                self._hook = None

    def execute_complete(self, context: Context, event: Any = None) -> dict[str, Any]:
        """Resume after the trigger: return the counts on success, fail loudly on anything else.

        Failures raise ``AirflowException``, so ``soft_fail=True`` turns them into a skip, as for every
        Airflow sensor resumed from a trigger.
        """
        where = f"ConversationsSensor {self.task_id!r}"
        if not isinstance(event, Mapping) or "status" not in event:
            raise AirflowException(f"{where}: the trigger returned no valid event: {event!r}")
        status = event["status"]
        if status == "error":
            raise AirflowException(f"{where}: the trigger failed after {event.get('checks', '?')} check(s): "
                                   f"{event.get('message') or 'no message'}")
        if status != "success":
            raise AirflowException(f"{where}: the trigger returned an event with unknown status {status!r}: {event!r}")
        missing = [k for k in XCOM_KEYS if k not in event]
        if missing:
            raise AirflowException(f"{where}: the trigger's success event lacks {', '.join(missing)}: {event!r}")
        xcom = {k: event[k] for k in XCOM_KEYS}
        self.log.info("%s: condition met after %d check(s)", event.get("message", where), xcom["checks"])
        return xcom


def _templated(value: Any) -> bool:
    """Is ``value`` only known at run time: a Jinja template (anywhere inside it) or an upstream task's output?"""
    if isinstance(value, XComArg):
        return True
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, Mapping):
        return any(_templated(k) or _templated(v) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return any(_templated(v) for v in value)
    return False


__all__ = ["ConversationsSensor"]
