"""JSON for a walk's resumable state: the typed values paginators and de-duplication keep, and back.

A checkpoint lives in Airflow's task state store, whose values are JSON. Paginator state holds datetimes and
tuples (e.g. Anyreach's probe in flight), which JSON cannot say; they are tagged here (``{"$dt": iso}``,
``{"$t": [...]}``) so :func:`decode` gives back exactly what :func:`encode` was given (timezone and
microseconds included), and a value of any other type fails loudly instead of being stringified.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


def encode(value: Any) -> Any:
    """``value`` as JSON-compatible data (datetimes and tuples tagged)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, tuple):
        return {"$t": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    raise TypeError(f"cannot checkpoint a value of type {type(value).__name__}: {value!r}")


def decode(value: Any) -> Any:
    """The inverse of :func:`encode`."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if isinstance(value, dict):
        if len(value) == 1:
            if "$dt" in value:
                return datetime.fromisoformat(value["$dt"])
            if "$t" in value:
                return tuple(decode(v) for v in value["$t"])
        return {k: decode(v) for k, v in value.items()}
    return value


__all__ = ["decode", "encode"]
