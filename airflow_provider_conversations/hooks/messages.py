"""Building blocks for a vendor's ``messages_of``: one message shape, ``{"role", "text", "at"}``, across vendors.

Each vendor hook says where its transcript lives and what its fields are called; the shape, the role names and
the timestamps are made here once. ``role`` is ``user``, ``agent`` or ``system`` when the vendor's value means
one of them, else the vendor's own value (never guessed away); ``at`` is ISO 8601 UTC with ``Z``, or ``None``
when the vendor gives no usable time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_conversations.windows import iso_z, parse_iso, parse_unix

Message = dict[str, Any]

#: Vendor role values (lower-cased) that mean one of the three common roles.
ROLES: Mapping[str, str] = {
    **dict.fromkeys(("user", "customer", "contact", "caller", "human", "end_user", "visitor", "client"), "user"),
    **dict.fromkeys(("agent", "assistant", "ai", "bot", "operator", "teammate", "admin", "staff"), "agent"),
    **dict.fromkeys(("system", "note", "event", "internal"), "system"),
}


def role_of(value: Any) -> str | None:
    """The common role of a vendor's role value, or the vendor's own value when it means none of them."""
    if not isinstance(value, str):
        return None if value is None else str(value)
    return ROLES.get(value.strip().lower(), value)


def at_iso(value: Any) -> str | None:
    """ISO 8601 UTC (``Z``) from an ISO string or Unix seconds; ``None`` for anything else."""
    ts = parse_unix(value) if isinstance(value, int | float) else parse_iso(value)
    return iso_z(ts) if ts is not None else None


def at_offset(start: datetime | None, seconds: Any) -> str | None:
    """``start`` plus an offset in seconds into the call (ElevenLabs' ``time_in_call_secs``), as ISO 8601 UTC."""
    if start is None or isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return None
    return iso_z(start + timedelta(seconds=seconds))


def message(role: Any, text: Any, at: str | None) -> Message:
    return {"role": role_of(role), "text": text if text is None or isinstance(text, str) else str(text), "at": at}


def first(entry: Mapping[str, Any], names: Sequence[str]) -> Any:
    """The value of the first of ``names`` present (not None) in ``entry``; a dotted name looks inside."""
    for name in names:
        value: Any = entry
        for part in name.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if value is not None:
            return value
    return None


def entries(value: Any, *keys: str) -> list[Mapping[str, Any]] | None:
    """The message entries of a transcript field: a list, or a list under one of ``keys`` of an object."""
    if isinstance(value, Mapping):
        value = first(value, keys)
    if not isinstance(value, list):
        return None
    return [e for e in value if isinstance(e, Mapping)]


__all__ = ["ROLES", "Message", "at_iso", "at_offset", "entries", "first", "message", "role_of"]
