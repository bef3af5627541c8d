"""Vendor hooks by connection type, without importing the other vendors.

The built-in vendors come from the catalog (one list feeds this registry, ``get_provider_info()`` and the
simulators); a vendor defined outside the package can :func:`register` its hook class.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import import_module
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowNotFoundException

from airflow_provider_conversations.catalog import BY_CONN_TYPE
from airflow_provider_conversations.exceptions import ConfigurationError
from airflow_provider_conversations.transport.connection import not_found

if TYPE_CHECKING:
    from airflow_provider_conversations.hooks.base import ConversationsHook

#: connection type -> hook class path. ``get_provider_info()`` declares the same mapping to Airflow.
HOOK_CLASSES: dict[str, str] = {v.conn_type: v.hook_class_path for v in BY_CONN_TYPE.values()}
_REGISTERED: dict[str, type[ConversationsHook]] = {}


def conn_types() -> tuple[str, ...]:
    """Every connection type a conversations hook serves (built-in first)."""
    return (*HOOK_CLASSES, *(t for t in _REGISTERED if t not in HOOK_CLASSES))


@contextmanager
def register(cls: type[ConversationsHook]) -> Iterator[type[ConversationsHook]]:
    """Serve ``cls.conn_type`` with ``cls`` while the ``with`` block runs (a vendor outside the package)."""
    previous = _REGISTERED.get(cls.conn_type)
    _REGISTERED[cls.conn_type] = cls
    try:
        yield cls
    finally:
        if previous is None:
            _REGISTERED.pop(cls.conn_type, None)
        else:
            _REGISTERED[cls.conn_type] = previous


def hook_class(conn_type: str) -> type[ConversationsHook]:
    """The hook class for a connection type such as ``"polyai"``."""
    normalized = (conn_type or "").replace("-", "_")
    if normalized in _REGISTERED:
        return _REGISTERED[normalized]
    path = HOOK_CLASSES.get(normalized)
    if path is None:
        raise ConfigurationError(
            f"connection type {conn_type!r} is not a conversations vendor; allowed: {', '.join(conn_types())}"
        )
    module, _, name = path.rpartition(".")
    cls: type[ConversationsHook] = getattr(import_module(module), name)
    return cls


def validate_filters(conn_type_or_hook: str | type[ConversationsHook],
                     filters: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate ``filters`` for a vendor (a connection type such as ``"polyai"``, or a hook class).

    What the operators run when the DAG is parsed; it imports only the vendor's hook module and sends nothing.
    """
    cls = hook_class(conn_type_or_hook) if isinstance(conn_type_or_hook, str) else conn_type_or_hook
    return cls.filter_set.validate(filters)


def build_hook(conn: Any, *, extra: Mapping[str, Any] | None = None, vendor: str | None = None,
               **hook_kwargs: Any) -> ConversationsHook:
    """The vendor hook for an already-fetched connection, chosen by its type (``extra``: decoded by the caller,
    as a trigger does without blocking; ``hook_kwargs``: the hook's own arguments, e.g. ``retry=``)."""
    conn_type = (conn.conn_type or "").replace("-", "_")
    if conn_type not in conn_types():
        raise ConfigurationError(
            f"connection {conn.conn_id!r} has type {conn.conn_type!r}, which is not a conversations vendor; "
            f"allowed types: {', '.join(conn_types())}"
        )
    check_vendor(conn.conn_id, conn_type, vendor)
    hook = hook_class(conn_type)(conn.conn_id, **hook_kwargs)
    hook.use_connection(conn, extra)
    return hook


def hook_for_connection(conn_id: str, *, vendor: str | None = None, **hook_kwargs: Any) -> ConversationsHook:
    """Build the right vendor hook for an Airflow connection id, from the connection's type."""
    from airflow.sdk import BaseHook

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise not_found(conn_id, conn_types()) from None
    return build_hook(conn, vendor=vendor, **hook_kwargs)


def check_vendor(conn_id: str, conn_type: str, vendor: str | None) -> None:
    """A task declared with ``vendor=`` gets a connection of that type."""
    if vendor is not None and conn_type != vendor:
        raise ConfigurationError(
            f"connection {conn_id!r} has type {conn_type!r}, but the task was declared with vendor={vendor!r}; "
            "point conn_id at a connection of that type or change vendor"
        )


__all__ = ["HOOK_CLASSES", "build_hook", "check_vendor", "conn_types", "hook_class", "hook_for_connection",
           "register", "validate_filters"]
