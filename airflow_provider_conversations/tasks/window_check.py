"""The one condition the sensor's poke and the deferrable trigger both evaluate.

Kept apart from Airflow so it exists once: the sensor calls it on a worker, the trigger calls it in a worker
thread of the triggerer, and both report the same fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from airflow_provider_conversations.engine.plan import WalkPlan
from airflow_provider_conversations.windows import Window, iso_z

if TYPE_CHECKING:
    from airflow_provider_conversations.hooks.base import ConversationsHook


@dataclass(frozen=True)
class WindowCheck:
    """What one check of a window saw.

    ``count`` is exact when ``count_exact`` is true; otherwise the walk stopped early and the window holds at
    least that many. ``in_progress`` is the number of in-progress conversations seen: exact when the check
    succeeded, a lower bound (at least one) when the window was found still in progress.
    """

    done: bool
    count: int
    in_progress: int
    message: str
    count_exact: bool = True
    requests: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON fields for a trigger event and the sensor's XCom."""
        return {
            "count": self.count,
            "count_exact": self.count_exact,
            "in_progress": self.in_progress,
            "requests": self.requests,
            "message": self.message,
        }


def check_window(
    hook: ConversationsHook,
    window: Window,
    *,
    time_key: str = "created",
    filters: Mapping[str, Any] | None = None,
    min_count: int = 1,
    settled: bool = False,
) -> WindowCheck:
    """:func:`check_plan` for a window and a caller's raw ``time_key`` and ``filters`` (checked here, once)."""
    plan = hook.plan(window.start, window.end, time_key=time_key, filters=filters)
    return check_plan(hook, plan, min_count=min_count, settled=settled)


def check_plan(hook: ConversationsHook, plan: WalkPlan, *, min_count: int = 1, settled: bool = False) -> WindowCheck:
    """Does the planned window hold at least ``min_count`` conversations and, with ``settled``, none still in
    progress?

    Cheap by construction:

    - without ``settled``, paging stops at the first page that brings the count to ``min_count``;
    - with ``settled`` and a vendor that can select in-progress conversations server-side
      (``hook.in_progress_filters``), one query for in-progress conversations comes first and stops at the
      first page holding one; only a window with none is then counted, again stopping at ``min_count``;
    - with ``settled`` and a vendor that cannot, every conversation of the window is read and checked with
      ``hook.is_in_progress``, stopping at the first page holding an in-progress one.
    """
    before = hook.stats.requests
    where = f"{hook.hook_name} window [{iso_z(plan.window.start)}, {iso_z(plan.window.end)}) by {plan.key.name}"
    need = f"need {min_count}"

    def result(done: bool, count: int, in_progress: int, message: str, exact: bool) -> WindowCheck:
        return WindowCheck(done, count, in_progress, f"{where}: {message}", exact, hook.stats.requests - before)

    server_side = hook.in_progress_filters(plan.filters) if settled else None
    if server_side is not None:
        live = _first_in_progress_page(hook, replace(plan, filters={**plan.filters, **server_side}))
        if live:
            return result(False, live, live, f"at least {live} conversation{_s(live)} still in progress", False)

    read_all = settled and server_side is None
    count = in_progress = 0
    exact = True
    for page in hook.walk(plan):
        count += len(page)
        in_progress += sum(1 for item in page if hook.is_in_progress(item))
        if settled and in_progress:  # read_all, or one that started after the in-progress query
            return result(False, count, in_progress, f"at least {in_progress} conversation{_s(in_progress)} still "
                          f"in progress (among the first {count} read)", False)
        if not read_all and count >= min_count:
            exact = False
            break

    shown = f"{count}" if exact else f"at least {count}"
    if count < min_count:
        return result(False, count, in_progress, f"{shown} conversation{_s(count)} so far, {need}", exact)
    state = ", none in progress" if settled else ""
    return result(True, count, in_progress, f"{shown} conversation{_s(count)} ({need}){state}", exact)


def _first_in_progress_page(hook: ConversationsHook, plan: WalkPlan) -> int:
    """In-progress conversations on the first page that has any (0: the window has none)."""
    for page in hook.walk(plan):
        live = sum(1 for item in page if hook.is_in_progress(item))
        if live:
            return live
    return 0


def _s(n: int) -> str:
    return "" if n == 1 else "s"


__all__ = ["WindowCheck", "check_plan", "check_window"]
