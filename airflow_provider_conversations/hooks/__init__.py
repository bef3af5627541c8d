"""Vendor hooks, found by connection type without importing the other vendors.

Also the checks every entry point (operators, sensor, trigger) runs on what a DAG or a connection hands to a
hook, so a bad value fails before the first request rather than on the first retry.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.providers.common.compat.sdk import AirflowNotFoundException

from airflow_provider_conversations.exceptions import ConfigurationError
from airflow_provider_conversations.exceptions import ConnectionNotFoundError as _ConnectionNotFoundError

if TYPE_CHECKING:
    from airflow_provider_conversations.hooks.base import ConversationsHook

#: connection type -> hook class path. ``get_provider_info()`` declares the same mapping to Airflow.
HOOK_CLASSES: dict[str, str] = {
    "parrotmob": "airflow_provider_conversations.hooks.parrotmob.ParrotMobHook",
    "anyreach": "airflow_provider_conversations.hooks.anyreach.AnyreachHook",
    "polyai": "airflow_provider_conversations.hooks.polyai.PolyAIHook",
    "elevenlabs": "airflow_provider_conversations.hooks.elevenlabs.ElevenLabsHook",
    "replyful": "airflow_provider_conversations.hooks.replyful.ReplyfulHook",
}
CONN_TYPES = tuple(HOOK_CLASSES)


class ConnectionNotFoundError(_ConnectionNotFoundError, AirflowNotFoundException):
    """The connection id is not defined anywhere Airflow looks (still an ``AirflowNotFoundException``)."""


def not_found(conn_id: str) -> ConnectionNotFoundError:
    return ConnectionNotFoundError(
        f"connection {conn_id!r} is not defined: create it (Admin > Connections, an AIRFLOW_CONN_"
        f"{str(conn_id).upper()} environment variable or a secrets backend) with one of the types "
        f"{', '.join(CONN_TYPES)}"
    )


def hook_class(conn_type: str) -> type[ConversationsHook]:
    """The hook class for a connection type such as ``"polyai"``."""
    path = HOOK_CLASSES.get((conn_type or "").replace("-", "_"))
    if path is None:
        raise ConfigurationError(
            f"connection type {conn_type!r} is not a conversations vendor; allowed: {', '.join(CONN_TYPES)}"
        )
    module, _, name = path.rpartition(".")
    cls: type[ConversationsHook] = getattr(import_module(module), name)
    return cls


def hook_for_connection(conn_id: str, **hook_kwargs: object) -> ConversationsHook:
    """Build the right vendor hook for an Airflow connection id, from the connection's type."""
    from airflow.sdk import BaseHook

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise not_found(conn_id) from None
    if (conn.conn_type or "").replace("-", "_") not in HOOK_CLASSES:
        raise ConfigurationError(
            f"connection {conn_id!r} has type {conn.conn_type!r}, which is not a conversations vendor; "
            f"allowed types: {', '.join(CONN_TYPES)}"
        )
    cls = hook_class(conn.conn_type or "")
    hook = cls(conn_id, **hook_kwargs)  # type: ignore[arg-type]
    hook._settings = hook.settings_from_connection(conn)
    return hook


# ---------------------------------------------------------------------- hook settings from DAGs

#: Hook settings a DAG may pass (operators' and the sensor's ``hook_params``); ``page_size`` is separate.
HOOK_PARAMS = ("backoff", "backoff_max", "max_attempts", "max_retry_seconds", "retry_after_cap", "timeout")


def _number(value: Any, minimum: float, *, strict: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return value > minimum if strict else value >= minimum


def hook_param_problem(key: str, value: Any) -> str | None:
    """What hook setting ``key`` must be, or None when ``value`` is fine (``page_size`` included).

    The hooks use these values only when a request is sent or retried: checked here, a typo fails when the
    DAG is parsed instead of on the first retry of the first run.
    """
    if key == "page_size":
        return None if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1) \
            else "a positive integer, or None for the vendor's largest page"
    if key == "max_attempts":
        return None if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else "an integer >= 1"
    if key == "timeout":
        pair = isinstance(value, list | tuple) and len(value) == 2 and all(_number(v, 0, strict=True) for v in value)
        return None if pair or _number(value, 0, strict=True) else "seconds > 0, or a (connect, read) pair of them"
    return None if _number(value, 0) else "a number of seconds >= 0"


def hook_arguments(hook_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Hook settings as the hook takes them: a ``timeout`` pair given as a list (JSON has no tuples) becomes a
    tuple, the only sequence ``requests`` accepts."""
    out = dict(hook_kwargs)
    if isinstance(out.get("timeout"), list):
        out["timeout"] = tuple(out["timeout"])
    return out


# ---------------------------------------------------------------------- connection fields in URL paths


def path_segment(value: Any) -> str:
    """An id from a connection as one URL path segment: every reserved character is percent-encoded."""
    return quote(str(value), safe="")


def path_segment_problem(value: Any) -> str | None:
    """Why ``value`` cannot be an id in the endpoint's URL path, or None.

    Ids are percent-encoded (:func:`path_segment`), so ``/`` or ``?`` stay inside the segment; but ``.`` and ``..``
    survive encoding and are resolved as dot-segments: ``accounts/../conversations`` would send the API key to
    another endpoint.
    """
    if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
        return "expected a non-empty id"
    if str(value) in (".", ".."):
        return "expected an id, not '.' or '..' (a dot-segment would change which endpoint the request goes to)"
    return None
