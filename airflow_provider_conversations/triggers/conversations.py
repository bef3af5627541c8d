"""The deferrable half of ``ConversationsSensor``: wait on the triggerer, not in a worker slot.

The trigger resolves its connection with Airflow's async helpers and runs the same synchronous check as the
sensor's poke (``tasks.window_check.check_plan``) in a worker thread, so the triggerer's event loop never blocks
and retries, ``Retry-After`` and error mapping are exactly the hooks'.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.connection import get_async_connection
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_conversations.exceptions import ConfigurationError
from airflow_provider_conversations.hooks.registry import build_hook
from airflow_provider_conversations.tasks.window_check import check_plan
from airflow_provider_conversations.transport.connection import decode_extra
from airflow_provider_conversations.transport.retry import RetryPolicy
from airflow_provider_conversations.windows import Window, iso_z

if TYPE_CHECKING:
    from airflow_provider_conversations.hooks.base import ConversationsHook


#: Hook arguments a sensor may pass through a deferral (JSON values only).
HOOK_KWARGS = ("page_size", *RetryPolicy.NAMES)
CLASSPATH = "airflow_provider_conversations.triggers.conversations.ConversationsTrigger"


class ConversationsTrigger(BaseTrigger):
    """Check a window every ``poke_interval`` seconds until it holds ``min_count`` conversations (and, with
    ``settled``, none in progress); then yield one ``success`` event, or one ``error`` event on a failure.

    Every argument is plain JSON, so the trigger survives Airflow's serialisation and a triggerer restart
    (it is idempotent: it only reads). The API key is never among them: the connection is resolved in
    :meth:`run`.

    :param conn_id: Airflow connection id of a conversations vendor.
    :param start: window start, ISO 8601 with an offset (inclusive).
    :param end: window end, ISO 8601 with an offset (exclusive).
    :param time_key: ``created`` or ``updated``.
    :param filters: the vendor's filters (JSON values).
    :param min_count: conversations the window must hold.
    :param settled: also require that none of them is in progress.
    :param poke_interval: seconds between checks.
    :param hook_kwargs: JSON arguments for the hook (``page_size``, ``timeout``, ``max_attempts``, ...).
    :param vendor: the connection type the connection must have, when the DAG pinned one.
    :param extra_params: query parameters the provider does not know, sent on every request (JSON values).
    :param checks_before: checks already made (by the sensor on the worker); the event's ``checks`` counts on.
    """

    def __init__(
        self,
        *,
        conn_id: str,
        start: str,
        end: str,
        time_key: str = "created",
        filters: Mapping[str, Any] | None = None,
        min_count: int = 1,
        settled: bool = False,
        poke_interval: float = 60.0,
        hook_kwargs: Mapping[str, Any] | None = None,
        vendor: str | None = None,
        checks_before: int = 0,
        extra_params: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.start = start
        self.end = end
        self.time_key = time_key
        self.filters = dict(filters or {})
        self.min_count = min_count
        self.settled = settled
        self.poke_interval = float(poke_interval)
        self.hook_kwargs = dict(hook_kwargs or {})
        self.vendor = vendor
        self.checks_before = checks_before
        self.extra_params = dict(extra_params or {})
        self.window = Window.of(start, end)
        self.page_size, self.retry = _hook_settings(self.hook_kwargs)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return CLASSPATH, {
            "conn_id": self.conn_id,
            "start": self.start,
            "end": self.end,
            "time_key": self.time_key,
            "filters": self.filters,
            "min_count": self.min_count,
            "settled": self.settled,
            "poke_interval": self.poke_interval,
            "hook_kwargs": self.hook_kwargs,
            "vendor": self.vendor,
            "checks_before": self.checks_before,
            "extra_params": self.extra_params,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        checks = self.checks_before
        hook: ConversationsHook | None = None
        try:
            hook = await self.get_hook()
            plan = hook.plan(self.window.start, self.window.end, time_key=self.time_key, filters=self.filters,
                             extra_params=self.extra_params)
            while True:
                checks += 1
                result = await asyncio.to_thread(check_plan, hook, plan, min_count=self.min_count,
                                                 settled=self.settled)
                if result.done:
                    self.log.info("check %d: %s: condition met", checks, result.message)
                    yield TriggerEvent({"status": "success", **self.describe(hook), **result.as_dict(),
                                        "checks": checks})
                    return
                self.log.info("check %d: %s; next check in %g s", checks, result.message, self.poke_interval)
                await asyncio.sleep(self.poke_interval)
        except Exception as exc:  # one error event, never a crashed triggerer
            message = redact(f"{type(exc).__name__}: {exc}", hook)
            self.log.error("waiting on conn_id %r failed after %d check(s): %s", self.conn_id, checks, message)
            yield TriggerEvent({"status": "error", "message": message, "conn_id": self.conn_id, "checks": checks})
        finally:
            if hook is not None:
                hook.close()

    async def get_hook(self) -> ConversationsHook:
        """The vendor hook of ``conn_id``, built without a blocking call on the event loop."""
        conn = await get_async_connection(self.conn_id)
        extra = decode_extra(conn)  # plain JSON: no blocking masking call on the loop
        return await asyncio.to_thread(build_hook, conn, extra=extra, vendor=self.vendor, page_size=self.page_size,
                                       retry=self.retry)

    def describe(self, hook: ConversationsHook) -> dict[str, Any]:
        return {
            "conn_id": self.conn_id,
            "vendor": hook.vendor,
            "start": iso_z(self.window.start),
            "end": iso_z(self.window.end),
            "time_key": self.time_key,
            "min_count": self.min_count,
            "settled": self.settled,
        }


def _hook_settings(hook_kwargs: Mapping[str, Any]) -> tuple[int | None, RetryPolicy]:
    """Only known hook arguments with values the hook can use, and only JSON values (they travel through a
    deferral)."""
    unknown = sorted(set(hook_kwargs) - set(HOOK_KWARGS))
    if unknown:
        raise ConfigurationError(
            f"hook_kwargs has unknown argument{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(HOOK_KWARGS)}"
        )
    try:
        json.dumps(dict(hook_kwargs))
    except TypeError as exc:
        raise ConfigurationError(f"hook_kwargs={dict(hook_kwargs)!r} must hold plain JSON values: {exc}") from None
    settings = {k: v for k, v in hook_kwargs.items() if k != "page_size"}
    page_size = hook_kwargs.get("page_size")
    if page_size is not None and (isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1):
        raise ConfigurationError(f"hook_kwargs page_size={page_size!r} is not allowed: expected a positive integer, "
                                 "or None for the vendor's largest page")
    return page_size, RetryPolicy.of(settings, lambda key, value, expected: ConfigurationError(
        f"hook_kwargs {key}={value!r} is not allowed: expected {expected}"))


def redact(message: str, hook: ConversationsHook | None) -> str:
    """Belt and braces: the hooks never put the key in a message, and an event must not either."""
    secret = hook.settings.secret if hook is not None and hook.has_settings else ""
    return message.replace(secret, "***") if len(secret) >= 4 else message


__all__ = ["ConversationsTrigger"]
