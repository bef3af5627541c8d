"""What an error response means: the vendor's own error body, and who must act on the status.

Each vendor declares how its error bodies look by picking readers from this module (``error_envelope`` on the
hook); the engine never needs to know which vendor speaks which shape. The status decides the exception: a 429
or 5xx is :class:`Retryable` (nobody must act; the retry loop waits), 401/403 is an
:class:`~airflow_provider_conversations.exceptions.AuthenticationError` (the key's owner must act, never
retried), any other 4xx a :class:`~airflow_provider_conversations.exceptions.VendorAPIError` (the DAG author).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

import orjson

from airflow_provider_conversations.exceptions import AuthenticationError, VendorAPIError
from airflow_provider_conversations.transport.session import Label


@dataclass
class ErrorDetails:
    """What a vendor's error body says, in the vendor's own words."""

    code: str | None = None
    message: str | None = None
    param: str | None = None
    request_id: str | None = None


#: Reads one shape of error body; ``None`` when the body is not of that shape.
Reader = Callable[[Mapping[str, Any]], ErrorDetails | None]

def nested_error(body: Mapping[str, Any]) -> ErrorDetails | None:
    """``{"error": {"type", "code", "message", "param", "requestId"}}`` (Stripe style; Replyful)."""
    err = body.get("error")
    if not isinstance(err, dict):
        return None
    return ErrorDetails(_s(err.get("code") or err.get("type")), _s(err.get("message")), _s(err.get("param")),
                        _s(err.get("requestId") or err.get("request_id")))


def flat_error(body: Mapping[str, Any]) -> ErrorDetails | None:
    """``{"success": false, "error", "error_id", "error_code", "error_message"}`` (PolyAI)."""
    if "error_code" not in body and "error_message" not in body:
        return None
    return ErrorDetails(_s(body.get("error_code")), _s(body.get("error_message") or body.get("error")), None,
                        _s(body.get("error_id")))


def detail_object(body: Mapping[str, Any]) -> ErrorDetails | None:
    """``{"detail": {"type", "code", "message", "request_id", "param"}}`` (ElevenLabs)."""
    detail = body.get("detail")
    if not isinstance(detail, dict):
        return None
    return ErrorDetails(_s(detail.get("code") or detail.get("type") or detail.get("status")),
                        _s(detail.get("message")), _s(detail.get("param")), _s(detail.get("request_id")))


def validation_errors(body: Mapping[str, Any]) -> ErrorDetails | None:
    """FastAPI's 422: ``{"detail": [{"loc": [...], "msg", "type"}, ...]}`` (PolyAI, Anyreach)."""
    detail = body.get("detail")
    if not isinstance(detail, list) or not detail:
        return None
    first = detail[0] if isinstance(detail[0], dict) else {}
    loc = first.get("loc") or []
    param = str(loc[-1]) if isinstance(loc, list) and loc else None
    messages = "; ".join(
        f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg')}" for d in detail if isinstance(d, dict)
    )
    return ErrorDetails(_s(first.get("type")), messages or None, param, None)


def detail_text(body: Mapping[str, Any]) -> ErrorDetails | None:
    """``{"detail": "..."}`` (FastAPI's ``HTTPException``; Anyreach)."""
    detail = body.get("detail")
    return ErrorDetails(None, detail, None, None) if isinstance(detail, str) else None


def error_text(body: Mapping[str, Any]) -> ErrorDetails | None:
    """``{"error": "..."}``."""
    err = body.get("error")
    return ErrorDetails(None, err, None, None) if isinstance(err, str) else None


def phoenix_errors(body: Mapping[str, Any]) -> ErrorDetails | None:
    """``{"errors": {"detail", "code", "param"}}`` (Phoenix/Ecto style; ParrotMob)."""
    errors = body.get("errors")
    if not isinstance(errors, dict):
        return None
    return ErrorDetails(*(_s(errors.get(k)) for k in ("code", "detail", "param", "request_id")))


@dataclass(frozen=True)
class Envelope:
    """How one vendor's error bodies look: readers tried in order, then top-level ``code``/``message`` keys.

    An object rather than a function, so a hook can declare it as a plain class attribute.
    """

    readers: tuple[Reader, ...]

    def __call__(self, body: Any) -> ErrorDetails:
        if not isinstance(body, dict):
            return ErrorDetails()
        for reader in self.readers:
            details = reader(body)
            if details is not None:
                return details
        return ErrorDetails(_s(body.get("code")), _s(body.get("message")), None, None)


def envelope(*readers: Reader) -> Envelope:
    """A vendor's error envelope, e.g. ``envelope(flat_error, validation_errors)``."""
    return Envelope(readers)


#: Every shape above, for a vendor that declares none.
ANY_SHAPE = envelope(nested_error, flat_error, detail_object, validation_errors, detail_text, error_text,
                     phoenix_errors)


class Retryable(Exception):
    """An attempt that failed in a way worth retrying; carries what the wait and the log need."""

    def __init__(self, reason: str, *, status: int | None = None, retry_after: float | None = None,
                 details: ErrorDetails | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after
        self.details = details or ErrorDetails()


def raise_for_status(status: int, reason: str | None, content: bytes, *, read: Envelope, label: Label,
                     retry_after: float | None) -> None:
    """Nothing for a 2xx/3xx; otherwise the exception that says who must act (see the module docstring)."""
    if status < 400:
        return
    details = read(loads_or_none(content))
    if status == 429 or status >= 500:
        raise Retryable(describe(status, reason, details, retry_after), status=status, retry_after=retry_after,
                        details=details)
    if status in (401, 403):
        _raise(AuthenticationError,
               f"{label.name} rejected the API key of connection {label.conn_id!r}: "
               f"{describe(status, reason, details)}. Check the key in the connection's Password field (and its "
               "scopes).", label, status, details)
    _raise(VendorAPIError,
           f"{label.name} refused the request (connection {label.conn_id!r}): {describe(status, reason, details)}",
           label, status, details)


def _raise(cls: type[VendorAPIError], message: str, label: Label, status: int, d: ErrorDetails) -> NoReturn:
    raise cls(message, vendor=label.vendor, status=status, code=d.code, vendor_message=d.message, param=d.param,
              request_id=d.request_id)


def describe(status: int, reason: str | None, d: ErrorDetails, retry_after: float | None = None) -> str:
    """``HTTP 422 Unprocessable Entity, code=..., param=..., message='...', request_id=...``."""
    parts = [f"HTTP {status}" + (f" {reason}" if reason else "")]
    if d.code:
        parts.append(f"code={d.code}")
    if d.param:
        parts.append(f"param={d.param}")
    if d.message:
        parts.append(f"message={d.message!r}")
    if d.request_id:
        parts.append(f"request_id={d.request_id}")
    if retry_after is not None:
        parts.append(f"Retry-After={retry_after:g}s")
    return ", ".join(parts)


def loads_or_none(content: bytes) -> Any:
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return None


def _s(value: Any) -> str | None:
    return None if value is None else str(value)


__all__ = [
    "ANY_SHAPE",
    "Envelope",
    "ErrorDetails",
    "Reader",
    "Retryable",
    "describe",
    "detail_object",
    "detail_text",
    "envelope",
    "error_text",
    "flat_error",
    "nested_error",
    "phoenix_errors",
    "raise_for_status",
    "validation_errors",
]
