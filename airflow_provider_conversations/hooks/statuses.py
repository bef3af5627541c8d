"""A vendor's status, declared once: where it is read and which values mean finished or still in progress.

Sensors wait on ``in progress``, ``finished_only`` keeps ``finished``, and normalized records carry both the
vendor's own status and ``finished``; all three derive from this one declaration.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Statuses:
    """The status ``field`` of a listed conversation and the vendor's in-progress and finished values."""

    field: str | None
    in_progress: frozenset[str]
    finished: frozenset[str]

    @classmethod
    def of(cls, field: str | None, *, in_progress: Iterable[str] = (), finished: Iterable[str] = ()) -> Statuses:
        return cls(field, frozenset(in_progress), frozenset(finished))

    def status(self, item: Mapping[str, Any]) -> Any:
        """The vendor's status of ``item`` (``None`` when it has none)."""
        return item.get(self.field) if self.field else None

    def finished_of(self, item: Mapping[str, Any]) -> bool | None:
        """True/False by the vendor's own statuses; None when the status is missing or unknown."""
        status = self.status(item)
        if status in self.finished:
            return True
        if status in self.in_progress:
            return False
        return None


@dataclass(frozen=True)
class BooleanStatus(Statuses):
    """A vendor without a status, whose boolean ``field`` says "still in progress" (PolyAI ``in_progress``).

    Read as the status ``"in_progress"`` or ``"finished"``, and ``None`` when the field is not a boolean.
    """

    @classmethod
    def of(cls, field: str | None, *, in_progress: Iterable[str] = ("in_progress",),
           finished: Iterable[str] = ("finished",)) -> Statuses:
        return cls(field, frozenset(in_progress), frozenset(finished))

    def status(self, item: Mapping[str, Any]) -> Any:
        value = item.get(self.field) if self.field else None
        if not isinstance(value, bool):
            return None
        return "in_progress" if value else "finished"


#: A vendor that declares no statuses: nothing is known to be in progress or finished.
NO_STATUS = Statuses.of(None)

__all__ = ["NO_STATUS", "BooleanStatus", "Statuses"]
