"""Declarative filter tables: each vendor lists what it accepts, validation happens before any request.

A vendor hook declares a :class:`FilterSet`; the operators run the same check when the DAG is parsed (see
``hooks.registry.validate_filters``), so a typo in a filter name breaks the DAG import instead of a 3 a.m. run.
A filter's quirks are declared on it: a deprecation the vendor announced, a value rewritten into the form the
vendor documents.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from airflow_provider_conversations.exceptions import InvalidFilterError
from airflow_provider_conversations.transport.session import Params

Kind = Literal["str", "int", "bool", "enum", "json"]


@dataclass(frozen=True)
class Filter:
    """One query filter of a vendor's list endpoint."""

    name: str
    kind: Kind = "str"
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    repeatable: bool = False
    #: For ``str`` filters: a regular expression each value must match in full, and how to describe it.
    pattern: str | None = None
    pattern_hint: str = ""
    #: A deprecated spelling accepted for compatibility; its value is sent under ``alias_of``.
    alias_of: str | None = None
    description: str = ""
    #: Logged (once per validation) when the filter is used: the vendor deprecated it but still accepts it.
    deprecated: str = ""
    #: Rewrites each valid value into the form the vendor documents (applied when validating).
    normalize: Callable[[Any], Any] | None = None
    #: For repeatable filters: the most values the vendor accepts in one request (``None``: no documented limit).
    max_values: int | None = None

    def allowed(self) -> str:
        if self.kind == "enum":
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        elif self.kind == "int":
            bounds = [f">= {self.minimum}" if self.minimum is not None else "",
                      f"<= {self.maximum}" if self.maximum is not None else ""]
            text = " ".join(["an integer", " and ".join(b for b in bounds if b)]).strip()
        elif self.kind == "bool":
            text = "true or false"
        elif self.kind == "json":
            text = "a JSON object (a dict, or a string holding one)"
        elif self.pattern:
            text = f"a string {self.pattern_hint}".strip()
        else:
            text = "a non-empty string"
        if not self.repeatable:
            return text
        return f"{text}, or a list of such values" + (f" (at most {self.max_values})" if self.max_values else "")


@dataclass(frozen=True)
class FilterSet:
    """Everything a vendor's list endpoint accepts besides paging and time bounds."""

    vendor: str
    filters: tuple[Filter, ...]
    #: Pairs of filters that may not be combined (e.g. PolyAI ``variant_id`` / ``variant_name``).
    exclusive: tuple[tuple[str, str], ...] = ()
    #: Pairs ``(low, high)`` of integer filters where ``low`` must not exceed ``high``.
    ordered: tuple[tuple[str, str], ...] = ()
    #: Parameters the hook sets itself, with the reason shown to a user who passes them as filters.
    reserved: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {f.name: f for f in self.filters})

    def get(self, name: str) -> Filter | None:
        by_name: dict[str, Filter] = self._by_name  # type: ignore[attr-defined]
        return by_name.get(name)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.filters]

    def validate(self, filters: Mapping[str, Any] | None) -> dict[str, Any]:
        """Check names and values; return them normalised (aliases resolved, ``None`` values dropped)."""
        if filters is None:
            return {}
        if not isinstance(filters, Mapping):
            raise InvalidFilterError(
                f"filters must be a dict of {self.vendor} filter names to values, got "
                f"{type(filters).__name__} {filters!r}"
            )
        out: dict[str, Any] = {}
        for name, value in filters.items():
            spec = self.get(name) if isinstance(name, str) else None
            if spec is None:
                if isinstance(name, str) and name in self.reserved:
                    raise InvalidFilterError(
                        f"{self.vendor} filter {name!r} cannot be passed in filters: {self.reserved[name]}"
                    )
                raise InvalidFilterError(
                    f"unknown {self.vendor} filter {name!r}; allowed filters: {', '.join(sorted(self.names))}. "
                    f"To send a query parameter this provider does not know yet, pass it in extra_params"
                )
            if value is None:
                continue
            target = spec.alias_of or spec.name
            if target in out:
                raise InvalidFilterError(
                    f"{self.vendor} filter {name!r} is a deprecated alias of {target!r}; pass only one of them"
                )
            value = _coerce(self.vendor, spec, value)
            if spec.normalize is not None:
                value = [spec.normalize(v) for v in value] if spec.repeatable else spec.normalize(value)
            out[target] = value
        for a, b in self.exclusive:
            if a in out and b in out:
                raise InvalidFilterError(
                    f"{self.vendor} filters {a!r} and {b!r} are mutually exclusive; pass only one of them"
                )
        for low, high in self.ordered:
            if low in out and high in out and out[low] > out[high]:
                raise InvalidFilterError(
                    f"{self.vendor} filter {low!r}={out[low]} is greater than {high!r}={out[high]}; "
                    "the range would be empty"
                )
        return out

    def deprecations(self, validated: Mapping[str, Any]) -> list[str]:
        """The warnings of the deprecated filters among ``validated`` (for the caller to log)."""
        return [f.deprecated for f in self.filters if f.deprecated and f.name in validated]

    def validate_extra(self, extra_params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Check ``extra_params``: query parameters the provider does not know yet, sent as given.

        They are not declared filters (those go through ``filters``, where their values are checked), not the
        vendor's paging, window or order parameters (``reserved``: the hook sets those, and a walk that pages
        or orders differently would lose or repeat conversations), and their values are scalars or non-empty
        lists of scalars (a list goes out as a repeated parameter). ``None`` values are dropped.
        """
        if extra_params is None:
            return {}
        if not isinstance(extra_params, Mapping):
            raise InvalidFilterError(
                f"extra_params must be a dict of query parameter names to values (strings, numbers, booleans, or "
                f"lists of them), got {type(extra_params).__name__} {extra_params!r}"
            )
        out: dict[str, Any] = {}
        for name, value in extra_params.items():
            if not isinstance(name, str) or not name.strip():
                raise InvalidFilterError(f"extra_params name {name!r} is not valid; expected a non-empty string")
            if name in self.reserved:
                raise InvalidFilterError(
                    f"extra_params {name!r} is refused: it is one of the paging, window or order parameters the "
                    f"{self.vendor} hook sets itself ({self.reserved[name]})"
                )
            known = self.get(name)
            if known is not None:
                raise InvalidFilterError(
                    f"extra_params {name!r} is a known {self.vendor} filter; pass it in filters, where its value "
                    f"is checked (allowed: {known.allowed()})"
                )
            if value is None:
                continue
            out[name] = _extra_value(self.vendor, name, value)
        return out

    def to_params(self, validated: Mapping[str, Any]) -> Params:
        """Render validated values as query parameters (repeatable ones as repeated parameters)."""
        params: Params = {}
        for name, value in validated.items():
            if isinstance(value, list):
                params[name] = [_render(v) for v in value]
            else:
                params[name] = _render(value)
        return params


def _render(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


Scalar = str | bool | int | float


def _extra_value(vendor: str, name: str, value: Any) -> Scalar | list[Scalar]:
    """A scalar, or a list of scalars (a tuple becomes a list, a set a sorted list: the query is deterministic)."""
    def scalar(v: Any) -> Scalar:
        if isinstance(v, str | bool | int) or (isinstance(v, float) and math.isfinite(v)):
            return v
        raise InvalidFilterError(
            f"extra_params {name!r} got {value!r}; allowed: a string, a number, true or false, or a non-empty "
            f"list of them (sent to {vendor} as a repeated query parameter)"
        )

    if isinstance(value, list | tuple | set | frozenset):
        values = sorted(value, key=str) if isinstance(value, set | frozenset) else list(value)
        if not values:
            raise InvalidFilterError(
                f"extra_params {name!r} got {value!r} (an empty list); allowed: a string, a number, true or false, "
                f"or a non-empty list of them (sent to {vendor} as a repeated query parameter)"
            )
        return [scalar(v) for v in values]
    return scalar(value)


def _bad(vendor: str, spec: Filter, value: Any, extra: str = "") -> InvalidFilterError:
    return InvalidFilterError(
        f"{vendor} filter {spec.name!r} got {value!r}{extra}; allowed: {spec.allowed()}"
    )


def _coerce(vendor: str, spec: Filter, value: Any) -> Any:
    if spec.repeatable:
        values = list(value) if isinstance(value, list | tuple | set | frozenset) else [value]
        if not values:
            raise _bad(vendor, spec, value, " (an empty list)")
        if isinstance(value, set | frozenset):
            values = sorted(values, key=str)
        if spec.max_values is not None and len(values) > spec.max_values:
            raise _bad(vendor, spec, value, f" ({len(values)} values)")
        return [_coerce_one(vendor, spec, v) for v in values]
    if isinstance(value, list | tuple | set | frozenset):
        raise _bad(vendor, spec, value, " (a list, but this filter takes a single value)")
    return _coerce_one(vendor, spec, value)


def _coerce_one(vendor: str, spec: Filter, value: Any) -> Any:
    kind = spec.kind
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise _bad(vendor, spec, value)
    if kind == "int":
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            number = int(value)
        if number is None:
            raise _bad(vendor, spec, value)
        if (spec.minimum is not None and number < spec.minimum) or (
            spec.maximum is not None and number > spec.maximum
        ):
            raise _bad(vendor, spec, value, " (out of range)")
        return number
    if kind == "enum":
        if isinstance(value, str) and value in spec.choices:
            return value
        raise _bad(vendor, spec, value)
    if kind == "json":
        obj = value
        if isinstance(value, str):
            try:
                obj = json.loads(value)
            except ValueError:
                raise _bad(vendor, spec, value, " (not valid JSON)") from None
        if not isinstance(obj, dict):
            raise _bad(vendor, spec, value)
        return json.dumps(obj, separators=(",", ":"), sort_keys=True)
    # str
    if not isinstance(value, str) or not value.strip():
        raise _bad(vendor, spec, value)
    if spec.pattern and not re.fullmatch(spec.pattern, value):
        raise _bad(vendor, spec, value)
    return value
