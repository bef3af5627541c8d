"""What a hook needs from its Airflow connection, read once and checked before any request.

The rules every vendor shares live here (the key in Password, a well-formed base URL in Host, the declared
extras, ids that go into URL paths); what a vendor adds (required extras, key formats) it declares on its hook
(:class:`ConnectionRules`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from airflow.providers.common.compat.sdk import AirflowNotFoundException

from airflow_provider_conversations.catalog import RATE_LIMIT, RATE_LIMIT_STORAGE, VERIFY_SSL, FormField
from airflow_provider_conversations.exceptions import ConfigurationError
from airflow_provider_conversations.exceptions import ConnectionNotFoundError as _ConnectionNotFoundError
from airflow_provider_conversations.logs import Log
from airflow_provider_conversations.transport.throttle import RateLimit, parse_rate_limit, redact_uri, storage_problem


@dataclass(frozen=True)
class ConnectionSettings:
    """What a hook needs from its Airflow connection, resolved once and validated."""

    conn_id: str
    base_url: str
    secret: str
    extras: Mapping[str, Any]
    verify: bool = True
    #: The key's request budget (the extra ``rate_limit``, else the vendor's default); None: no budget.
    rate_limit: RateLimit | None = None
    #: Where the budget is shared (the extra ``rate_limit_storage``); None: in process.
    rate_limit_storage: str | None = None


class ConnectionRules(Protocol):
    """What a vendor declares about its connections (a hook class provides all of it)."""

    @property
    def conn_type(self) -> str: ...

    @property
    def hook_name(self) -> str: ...

    @property
    def conn_id(self) -> str: ...

    @property
    def log(self) -> Log: ...

    @property
    def form_fields(self) -> Sequence[FormField]: ...

    def resolve_default_base_url(self, extras: Mapping[str, Any]) -> str | None: ...

    @property
    def default_rate_limit(self) -> RateLimit | None: ...

    def validate_extras(self, extras: Mapping[str, Any], secret: str) -> None: ...


class ConnectionNotFoundError(_ConnectionNotFoundError, AirflowNotFoundException):
    """The connection id is not defined anywhere Airflow looks (still an ``AirflowNotFoundException``)."""


def not_found(conn_id: str, conn_types: Sequence[str]) -> ConnectionNotFoundError:
    return ConnectionNotFoundError(
        f"connection {conn_id!r} is not defined: create it (Admin > Connections, an AIRFLOW_CONN_"
        f"{str(conn_id).upper()} environment variable or a secrets backend) with one of the types "
        f"{', '.join(conn_types)}"
    )


def read_settings(conn: Any, rules: ConnectionRules, extra: Mapping[str, Any] | None = None) -> ConnectionSettings:
    """Validate a fetched connection for the vendor of ``rules``.

    Triggers fetch the connection asynchronously and pass its ``extra`` already decoded, since the synchronous
    ``extra_dejson`` must not run on the triggerer's loop.
    """
    if conn.conn_type and conn.conn_type.replace("-", "_") != rules.conn_type:
        raise ConfigurationError(
            f"connection {conn.conn_id!r} has type {conn.conn_type!r}, but {type(rules).__name__} needs "
            f"a {rules.conn_type!r} connection"
        )
    extras = _declared_extras(decode_extra(conn) if extra is None else extra, rules)
    secret = conn.password or ""
    if not secret:
        raise ConfigurationError(
            f"connection {conn.conn_id!r} has no API key: put the {rules.hook_name} API key in its Password field"
        )
    if secret != secret.strip() or any(ord(c) < 32 or ord(c) == 127 for c in secret):
        # requests would refuse the header with an error quoting its value, i.e. the key
        raise ConfigurationError(
            f"connection {conn.conn_id!r} has an API key with leading or trailing whitespace or a control "
            "character such as a line break (the key is not shown here): paste the key alone into the "
            "Password field"
        )
    rules.validate_extras(extras, secret)
    _check_fields(extras, rules)
    base_url = _base_url(conn, rules.resolve_default_base_url(extras), rules.hook_name)
    verify = extras.get(VERIFY_SSL, True)
    if isinstance(verify, str):
        verify = verify.strip().lower() not in ("false", "0", "no", "off")
    if not verify:
        rules.log.warning(
            "TLS certificate verification is OFF for connection %r (extra verify_ssl=false); "
            "responses from %s are not authenticated", conn.conn_id, base_url,
        )
    rate_limit, storage = _rate_budget(extras, rules)
    return ConnectionSettings(conn.conn_id, base_url, secret, extras, bool(verify), rate_limit, storage)


def _rate_budget(extras: Mapping[str, Any], rules: ConnectionRules) -> tuple[RateLimit | None, str | None]:
    """The extras ``rate_limit`` and ``rate_limit_storage``, checked (nothing is connected yet)."""
    rate_limit = rules.default_rate_limit
    if RATE_LIMIT in extras:
        try:
            rate_limit = parse_rate_limit(extras[RATE_LIMIT])
        except ValueError as exc:
            raise ConfigurationError(
                f"{rules.hook_name} connection {rules.conn_id!r} has {RATE_LIMIT}={extras[RATE_LIMIT]!r}; {exc}"
            ) from None
    storage = extras.get(RATE_LIMIT_STORAGE)
    if storage is not None and (problem := storage_problem(storage)):
        shown = redact_uri(storage) if isinstance(storage, str) else storage
        raise ConfigurationError(
            f"{rules.hook_name} connection {rules.conn_id!r} has {RATE_LIMIT_STORAGE}={shown!r}; {problem}"
        )
    return rate_limit, storage


def decode_extra(conn: Any) -> dict[str, Any]:
    """The connection's extra as a dict; a malformed one is a configuration error naming the connection.

    Plain ``json.loads``: Airflow already registered the extra for masking when it fetched the connection, and
    ``Connection.extra_dejson`` would do it again with a blocking call (not allowed on a triggerer's loop) and
    log an unparsable extra instead of refusing it.
    """
    if not conn.extra:
        return {}
    try:
        value = json.loads(conn.extra)
    except ValueError:
        raise ConfigurationError(
            f"connection {conn.conn_id!r} has an Extra that is not valid JSON; expected a JSON object such as "
            '{"account_id": "..."}'
        ) from None
    if not isinstance(value, dict):
        raise ConfigurationError(f"connection {conn.conn_id!r} has an Extra that is not a JSON object")
    return value


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


def _declared_extras(raw: Mapping[str, Any], rules: ConnectionRules) -> dict[str, Any]:
    """Declared extras, accepting the legacy ``extra__<type>__<field>`` keys older UIs wrote."""
    out: dict[str, Any] = {}
    for name in (*(f.name for f in rules.form_fields), VERIFY_SSL, RATE_LIMIT, RATE_LIMIT_STORAGE):
        for key in (name, f"extra__{rules.conn_type}__{name}"):
            value = raw.get(key)
            if value not in (None, ""):
                out[name] = value.strip() if isinstance(value, str) else value
                break
    return out


def _check_fields(extras: Mapping[str, Any], rules: ConnectionRules) -> None:
    """Ids that become URL path segments, and fields with a fixed set of values (the form's enums)."""
    for f in rules.form_fields:
        if f.name not in extras:
            continue
        value = extras[f.name]
        problem = path_segment_problem(value) if f.path_segment else None
        if problem is None and f.choices and value not in f.choices:
            problem = "allowed: " + ", ".join(f.choices)
        if problem:
            raise ConfigurationError(
                f"{rules.hook_name} connection {rules.conn_id!r} has {f.name}={value!r}; {problem}"
            )


def _base_url(conn: Any, default: str | None, name: str) -> str:
    host = (conn.host or "").strip()
    if not host:
        if not default:
            raise ConfigurationError(
                f"connection {conn.conn_id!r} has no host, and {name} has no public default base "
                "URL: set Host to the API base URL, e.g. https://api.example.com"
            )
        return default.rstrip("/")
    if "://" in host:
        url = host
    else:
        scheme = (conn.schema or "https").strip() or "https"
        url = f"{scheme}://{host}"
        if conn.port:
            url = f"{url}:{conn.port}"
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018  (raises ValueError for a malformed port)
    except ValueError:
        parts = parts._replace(netloc="")
    if "@" in parts.netloc:
        raise ConfigurationError(
            f"connection {conn.conn_id!r} has credentials in its host (user:password@...; not shown here): "
            "put the API key in the Password field and only the base URL in Host"
        )
    if (parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url)
            or parts.query or parts.fragment):
        raise ConfigurationError(
            f"connection {conn.conn_id!r} has a malformed host {host!r}: expected a base URL such as "
            "https://api.example.com or http://127.0.0.1:8931, or a bare host name with Schema and Port"
        )
    return url.rstrip("/")


__all__ = [
    "ConnectionNotFoundError",
    "ConnectionRules",
    "ConnectionSettings",
    "decode_extra",
    "not_found",
    "path_segment",
    "path_segment_problem",
    "read_settings",
]
