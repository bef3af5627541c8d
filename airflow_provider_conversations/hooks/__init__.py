"""Vendor hooks: one small module per vendor on ``base.py``, found by connection type (``registry.py``)."""

from __future__ import annotations

from airflow_provider_conversations.hooks.registry import (
    HOOK_CLASSES,
    build_hook,
    conn_types,
    hook_class,
    hook_for_connection,
    register,
    validate_filters,
)
from airflow_provider_conversations.transport.connection import ConnectionNotFoundError

__all__ = ["HOOK_CLASSES", "ConnectionNotFoundError", "build_hook", "conn_types", "hook_class",
           "hook_for_connection", "register", "validate_filters"]
