"""Errors the provider raises, split by who must act: the DAG author, the vendor, or nobody (retry)."""

from __future__ import annotations

from typing import Any


class ConversationsError(Exception):
    """Base class for every error raised by this provider."""


class ConfigurationError(ConversationsError, ValueError):
    """Bad input from the DAG author or the connection; raised before any request is sent."""


class ConnectionNotFoundError(ConfigurationError, LookupError):
    """The connection id is not defined anywhere Airflow looks."""


class InvalidFilterError(ConfigurationError):
    """A filter name or value the vendor does not accept."""


class VendorAPIError(ConversationsError):
    """The vendor answered with an error, or with something that is not a valid page.

    ``code``, ``vendor_message``, ``param`` and ``request_id`` come from the vendor's own error body when it
    has one, so the task log shows what the vendor said rather than just a status line.
    """

    def __init__(
        self,
        message: str,
        *,
        vendor: str,
        status: int | None = None,
        code: str | None = None,
        vendor_message: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.vendor = vendor
        self.status = status
        self.code = code
        self.vendor_message = vendor_message
        self.param = param
        self.request_id = request_id

    def details(self) -> dict[str, Any]:
        return {
            "vendor": self.vendor,
            "status": self.status,
            "code": self.code,
            "message": self.vendor_message,
            "param": self.param,
            "request_id": self.request_id,
        }


class AuthenticationError(VendorAPIError):
    """401/403: the key is missing, wrong or lacks a scope. Never retried."""


class InvalidResponseError(VendorAPIError):
    """A 2xx response whose body is not the JSON page the vendor documents."""


class RetriesExhaustedError(VendorAPIError):
    """Every attempt failed with a retryable error (429, 5xx, connection error, timeout)."""


class MissingDetailError(VendorAPIError):
    """A conversation was listed, but its detail endpoint answers 404 (archived or deleted in between).

    A typed outcome rather than a failure: the export decides by ``on_missing_detail`` whether the record is kept
    with ``"detail": null``, left out, or the export fails.
    """

    def __init__(self, message: str, *, conversation_id: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.conversation_id = conversation_id


class PaginationError(ConversationsError):
    """The vendor's pagination cannot make progress (a repeated cursor, an offset that does not advance)."""
