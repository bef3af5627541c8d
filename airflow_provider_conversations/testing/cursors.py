"""Opaque continuation tokens for the simulators whose APIs page with a cursor (PolyAI v3, ElevenLabs, Replyful).

A token is URL-safe base64 (no padding) of a small JSON array: the position to continue from and, optionally,
a nonce. The nonce exists for the ``empty`` fault: a page that announces more with a *new* token for the *same*
position, which a client must follow rather than take for a loop. What a position means (an offset, the last
key served, ...) is each simulator's business; this module only checks its shape, so every vendor answers a
malformed token with its own error body.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import orjson


class InvalidCursor(ValueError):
    """A token this codec did not make, or one whose position has another shape than the caller expects."""


def encode(position: Sequence[Any] | None, nonce: int | None = None) -> str:
    """The token for ``position`` (``None``: the top of the list); a nonce makes it new for the same position."""
    payload: list[Any] = [None if position is None else list(position)]
    if nonce is not None:
        payload.append(nonce)
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")


def decode(token: str, shape: tuple[type, ...]) -> tuple[Any, ...] | None:
    """The position in ``token``: one value of each type in ``shape``, or ``None`` for the top of the list.

    Raises :class:`InvalidCursor` for anything else, including a nonce that is not an integer.
    """
    try:
        payload = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except ValueError:  # binascii.Error and orjson.JSONDecodeError are ValueErrors
        raise InvalidCursor(token) from None
    if not isinstance(payload, list) or not 1 <= len(payload) <= 2 or (
            len(payload) == 2 and type(payload[1]) is not int):
        raise InvalidCursor(token)
    position = payload[0]
    if position is None:
        return None
    if (not isinstance(position, list) or len(position) != len(shape)
            or any(type(value) is not kind for value, kind in zip(position, shape, strict=True))):
        raise InvalidCursor(token)
    return tuple(position)
