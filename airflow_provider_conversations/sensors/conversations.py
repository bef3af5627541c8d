"""Wait until a window holds conversations, or until every conversation in it is final.

Conversations are written while they happen: an export that runs the moment an interval closes captures calls
still in progress. Put this sensor (``settled=True``) in front of the export.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException, conf
from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_conversations.exceptions import ConfigurationError
from airflow_provider_conversations.tasks.arguments import SENSOR, SourceArguments
from airflow_provider_conversations.tasks.interval import window_for_task
from airflow_provider_conversations.tasks.window_check import WindowCheck, check_plan
from airflow_provider_conversations.triggers.conversations import ConversationsTrigger
from airflow_provider_conversations.windows import iso_z

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_conversations.engine.plan import WalkPlan
    from airflow_provider_conversations.hooks.base import ConversationsHook

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
    :param extra_params: query parameters this provider does not know yet, as for the operators (templated;
        a deferrable sensor hands them to the trigger).
    """

    template_fields: Sequence[str] = ("conn_id", "filters", "start", "end", "extra_params")
    template_fields_renderers = {"filters": "json", "extra_params": "json"}
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
        extra_params: Mapping[str, Any] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.extra_params = extra_params
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
        try:
            if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 0:
                raise ConfigurationError(
                    f"min_count={min_count!r} is not allowed: expected an integer >= 0 (the number of conversations "
                    "the window must hold)"
                )
            for name, value in (("settled", settled), ("deferrable", deferrable)):
                if not isinstance(value, bool):
                    raise ConfigurationError(f"{name}={value!r} is not allowed: expected True or False")
            self._source = SourceArguments.check(
                label=f"ConversationsSensor {self.task_id!r}", wording=SENSOR, conn_id=conn_id, vendor=vendor,
                time_key=time_key, filters=filters, start=start, end=end, page_size=page_size,
                hook_params=self.hook_params, json_only=True, extra_params=extra_params,
            )
        except ConfigurationError as exc:  # InvalidFilterError stays an InvalidFilterError
            raise type(exc)(f"ConversationsSensor {self.task_id!r}: {exc}") from None
        self._hook: ConversationsHook | None = None
        self._checks = 0

    # ------------------------------------------------------------------ the check

    def _get_hook(self) -> ConversationsHook:
        if self._hook is None:
            self._hook = self._source.hook(self.conn_id, vendor=self.vendor)
        return self._hook

    def _check(self, context: Context) -> tuple[WindowCheck, dict[str, Any], WalkPlan]:
        window = window_for_task(context, self.start, self.end, task=f"ConversationsSensor {self.task_id!r}")
        hook = self._get_hook()
        self._checks += 1
        plan = self._source.plan(hook, window, self._source.validated_filters(hook, self.filters),
                                 extra_params=self._source.validated_extra_params(hook, self.extra_params))
        result = check_plan(hook, plan, min_count=self.min_count, settled=self.settled)
        self.log.info("check %d: %s%s", self._checks, result.message, ": condition met" if result.done else "")
        seen = {
            "conn_id": self.conn_id, "vendor": hook.vendor, "start": iso_z(window.start), "end": iso_z(window.end),
            "time_key": self.time_key, "min_count": self.min_count, "settled": self.settled,
            **result.as_dict(), "checks": self._checks,
        }
        return result, {k: seen[k] for k in XCOM_KEYS}, plan

    def poke(self, context: Context) -> PokeReturnValue:
        result, xcom, _plan = self._check(context)
        return PokeReturnValue(is_done=result.done, xcom_value=xcom if result.done else None)

    # ------------------------------------------------------------------ deferrable path

    def execute(self, context: Context) -> Any:
        self._checks = 0
        try:
            if not self.deferrable:
                return super().execute(context)
            # One check on the worker first: a window that is already ready never visits the triggerer.
            result, xcom, plan = self._check(context)
            if result.done:
                return xcom
            trigger = ConversationsTrigger(
                conn_id=self.conn_id,
                start=xcom["start"],
                end=xcom["end"],
                time_key=self.time_key,
                filters=dict(plan.filters),  # as validated by this check (JSON: sets became lists)
                extra_params=dict(plan.extra_params),
                min_count=self.min_count,
                settled=self.settled,
                poke_interval=self.poke_interval,
                hook_kwargs=self._source.hook_kwargs(),
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


__all__ = ["ConversationsSensor"]
