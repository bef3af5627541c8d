"""Vendor hooks, found by connection type without importing the other vendors."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from airflow_provider_conversations.exceptions import ConfigurationError

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

    conn = BaseHook.get_connection(conn_id)
    if (conn.conn_type or "").replace("-", "_") not in HOOK_CLASSES:
        raise ConfigurationError(
            f"connection {conn_id!r} has type {conn.conn_type!r}, which is not a conversations vendor; "
            f"allowed types: {', '.join(CONN_TYPES)}"
        )
    cls = hook_class(conn.conn_type or "")
    hook = cls(conn_id, **hook_kwargs)  # type: ignore[arg-type]
    hook._settings = hook.settings_from_connection(conn)
    return hook
