"""Strict validation of bodies against the response models of the vendor's own client (``elevenlabs`` on PyPI).

The client's pydantic models allow extra fields (``extra="allow"``) and its enums are ``Literal[...] | Any``,
so ``model_validate`` alone accepts a body with made-up fields or enum values. :func:`check` validates with
the model in strict mode *and* walks the body against the model's annotations, naming every key the model
does not declare, every value whose type does not match, and every value outside a ``Literal``.
"""

from __future__ import annotations

import types
import typing
from typing import Any

import pydantic


def check(model: type[pydantic.BaseModel], body: Any) -> list[str]:
    """Every way ``body`` departs from ``model`` (empty: it conforms strictly)."""
    problems: list[str] = []
    try:
        model.model_validate(body, strict=True)
    except pydantic.ValidationError as exc:
        problems.append(f"model_validate(strict=True): {exc}")
    _walk(model, body, "$", problems)
    return problems


def assert_strict(model: type[pydantic.BaseModel], body: Any) -> None:
    problems = check(model, body)
    assert not problems, f"{model.__name__}: " + "; ".join(problems[:10])


def _walk(annotation: Any, value: Any, path: str, problems: list[str]) -> None:
    if annotation is Any or annotation is object:
        return
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return
        options = [a for a in args if a is not type(None)]
        literals = [a for a in options if typing.get_origin(a) is typing.Literal]
        if literals and any(a is Any for a in options) and len(options) == len(literals) + 1:
            # The client's enums: Literal[...] | Any. A value outside the literal is a made-up enum value.
            allowed = {v for lit in literals for v in typing.get_args(lit)}
            if value not in allowed:
                problems.append(f"{path}: {value!r} is not one of {sorted(map(str, allowed))}")
            return
        for option in options:
            trial: list[str] = []
            _walk(option, value, path, trial)
            if not trial:
                return
        problems.append(f"{path}: {type(value).__name__} {str(value)[:60]!r} matches none of {annotation}")
        return
    if origin is typing.Literal:
        if value not in args:
            problems.append(f"{path}: {value!r} is not one of {args}")
        return
    if origin in (list, typing.List, typing.Sequence):  # noqa: UP006
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            _walk(args[0] if args else Any, item, f"{path}[{i}]", problems)
        return
    if origin in (dict, typing.Dict):  # noqa: UP006
        if not isinstance(value, dict):
            problems.append(f"{path}: expected an object, got {type(value).__name__}")
            return
        for k, item in value.items():
            if not isinstance(k, str):
                problems.append(f"{path}: key {k!r} is not a string")
            _walk(args[1] if len(args) == 2 else Any, item, f"{path}.{k}", problems)
        return
    if origin is typing.Annotated:
        _walk(args[0], value, path, problems)
        return
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        if not isinstance(value, dict):
            problems.append(f"{path}: expected an object for {annotation.__name__}, got {type(value).__name__}")
            return
        fields = annotation.model_fields
        names = {f.alias or n: f for n, f in fields.items()}
        for key, item in value.items():
            if key not in names:
                problems.append(f"{path}.{key}: not a field of {annotation.__name__}")
                continue
            _walk(names[key].annotation, item, f"{path}.{key}", problems)
        for key, f in names.items():
            if f.is_required() and key not in value:
                problems.append(f"{path}.{key}: required by {annotation.__name__}, missing")
        return
    if annotation is bool:
        if not isinstance(value, bool):
            problems.append(f"{path}: expected a boolean, got {value!r}")
        return
    if annotation is int:
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append(f"{path}: expected an integer, got {value!r}")
        return
    if annotation is float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            problems.append(f"{path}: expected a number, got {value!r}")
        return
    if annotation is str:
        if not isinstance(value, str):
            problems.append(f"{path}: expected a string, got {value!r}")
        return
    if isinstance(annotation, typing.ForwardRef | str):
        problems.append(f"{path}: unresolved annotation {annotation!r}")
        return
    if isinstance(annotation, type) and not isinstance(value, annotation):
        problems.append(f"{path}: expected {annotation.__name__}, got {type(value).__name__}")
