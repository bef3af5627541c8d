"""What leaves an operator for each conversation: the raw or normalized record, minus excluded fields.

Shaping happens before anything is written or pushed, so a field listed in ``exclude_fields`` never reaches
object storage, XCom or a log line: it is the place for PII minimisation (transcripts, phone numbers, e-mail
addresses) rather than a downstream clean-up job.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_conversations.exceptions import ConfigurationError
from airflow_provider_conversations.windows import iso_z

if TYPE_CHECKING:
    from airflow_provider_conversations.hooks.base import ConversationsHook

OutputFormat = Literal["raw", "normalized"]
OUTPUT_FORMATS: tuple[str, ...] = ("raw", "normalized")
#: The keys of every normalized record, in order (what :func:`normalize` returns for every vendor).
NORMALIZED_FIELDS: tuple[str, ...] = (
    "vendor", "id", "created_at", "updated_at", "status", "finished", "channel", "duration_seconds", "raw",
)
#: With ``include_details=True`` a normalized record also has ``messages`` (before ``raw``).
MESSAGES_FIELD = "messages"

FieldPath = tuple[str, ...]


def parse_field_paths(paths: Any, *, name: str = "exclude_fields") -> tuple[FieldPath, ...]:
    """Validate dotted paths such as ``"contact.email"`` and split them; raise ConfigurationError naming the bad one."""
    if paths is None:
        return ()
    if isinstance(paths, str) or not isinstance(paths, Sequence | set | frozenset):
        raise ConfigurationError(
            f"{name}={paths!r} is not valid: expected a list of dotted field paths, e.g. "
            "['transcript', 'contact.email']"
        )
    out: list[FieldPath] = []
    for path in paths:
        parts = tuple(path.split(".")) if isinstance(path, str) else ()
        if not parts or any(not p.strip() or p != p.strip() for p in parts):
            raise ConfigurationError(
                f"{name} entry {path!r} is not valid: expected a dotted field path such as 'contact.email' "
                "(non-empty names separated by single dots, no surrounding spaces)"
            )
        out.append(parts)
    return tuple(dict.fromkeys(out))


def drop_path(value: Any, path: FieldPath) -> Any:
    """``value`` without the field at ``path``; lists on the way apply the rest of the path to each element.

    Copy-on-write: dicts and lists along the path are copied, nothing the caller holds is modified, and a
    value without the field is returned as is. A missing field is not an error (vendors omit fields, e.g.
    Anyreach's sensitive fields without the ``conversations:read_sensitive`` scope).
    """
    if isinstance(value, list):
        new_items = [drop_path(item, path) for item in value]
        return value if all(a is b for a, b in zip(new_items, value, strict=True)) else new_items
    if not isinstance(value, Mapping):
        return value
    head, rest = path[0], path[1:]
    if head not in value:
        return value
    if not rest:
        return {k: v for k, v in value.items() if k != head}
    child = value[head]
    new_child = drop_path(child, rest)
    if new_child is child:
        return value
    copied = dict(value)
    copied[head] = new_child
    return copied


def drop_paths(record: Any, paths: Iterable[FieldPath]) -> Any:
    for path in paths:
        record = drop_path(record, path)
    return record


def normalize(hook: ConversationsHook, item: dict[str, Any]) -> dict[str, Any]:
    """One record shape across vendors (``output_format="normalized"``), from the vendor's declarations."""
    created = hook.time_keys["created"].of(item)
    updated_key = hook.time_keys.get("updated")
    updated = updated_key.of(item) if updated_key is not None else None
    duration = item.get(hook.duration_field) if hook.duration_field else None
    return {
        "vendor": hook.vendor,
        "id": str(item.get(hook.id_field)),
        "created_at": iso_z(created) if created else None,
        "updated_at": iso_z(updated) if updated else None,
        "status": hook.status_of(item),
        "finished": hook.finished_of(item),
        "channel": hook.channel_of(item),
        "duration_seconds": float(duration) if isinstance(duration, int | float)
        and not isinstance(duration, bool) else None,
        "raw": item,
    }


class RecordShaper:
    """Turns the vendor's raw items of one page into the records the operator writes or returns.

    - ``finished_only``: keeps only items for which ``hook.is_finished`` holds (the server-side filter is
      merged by the operator; this check covers vendors that cannot express it on the server);
    - ``output_format``: ``raw`` keeps the vendor's dict as it came, ``normalized`` is :func:`normalize`;
    - ``exclude_fields``: each dotted path is dropped from the record; for normalized records it is applied to
      the top-level fields and to the raw dict inside (``raw``), so ``["transcript"]`` removes the vendor's
      transcript and ``["raw"]`` keeps only the common fields. Detail paths work the same way
      (``detail.transcript``, ``messages.text``);
    - ``messages`` (normalized, with ``include_details``): the vendor's transcript as ``{"role", "text", "at"}``
      (:meth:`ConversationsHook.messages_of`), built from the item *after* ``exclude_fields``, so a transcript
      excluded from the raw body never reappears in ``messages``.
    """

    def __init__(self, hook: ConversationsHook, *, output_format: str = "raw",
                 exclude_fields: Iterable[FieldPath] = (), finished_only: bool = False,
                 include_details: bool = False) -> None:
        self.hook = hook
        self.include_details = include_details
        self.output_format = output_format
        self.paths = tuple(exclude_fields)
        self.finished_only = finished_only
        #: Items the vendor returned despite the server-side finished filter (or because it has none).
        self.skipped_unfinished = 0

    def shape(self, items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.output_format == "raw" and not self.paths and not self.finished_only:
            return list(items)  # nothing to change: skip the per-record calls (the export hot path)
        out: list[dict[str, Any]] = []
        for item in items:
            if self.finished_only and not self.hook.is_finished(item):
                self.skipped_unfinished += 1
                continue
            out.append(self.shape_one(item))
        return out

    def shape_one(self, item: dict[str, Any]) -> dict[str, Any]:
        if self.output_format == "raw":
            shaped: dict[str, Any] = drop_paths(item, self.paths)
            return shaped
        record: dict[str, Any] = drop_paths(normalize(self.hook, item), self.paths)
        raw = record.get("raw")
        if self.paths and isinstance(raw, Mapping):
            new_raw = drop_paths(raw, self.paths)
            if new_raw is not raw:
                record = {**record, "raw": new_raw}
        if self.include_details and (MESSAGES_FIELD,) not in self.paths:
            raw = record.get("raw")
            messages = self.hook.messages_of(dict(raw if isinstance(raw, Mapping) else drop_paths(item, self.paths)))
            with_messages = {k: v for k, v in record.items() if k != "raw"}
            with_messages[MESSAGES_FIELD] = drop_paths(messages, _under(self.paths, MESSAGES_FIELD))
            if "raw" in record:
                with_messages["raw"] = record["raw"]
            record = with_messages
        return record


def _under(paths: Iterable[FieldPath], head: str) -> tuple[FieldPath, ...]:
    """The rest of each path below ``head`` (``messages.text`` -> ``text``); ``messages`` alone drops it all."""
    return tuple(p[1:] for p in paths if p[0] == head and len(p) > 1)


__all__ = [
    "MESSAGES_FIELD",
    "NORMALIZED_FIELDS",
    "OUTPUT_FORMATS",
    "FieldPath",
    "OutputFormat",
    "RecordShaper",
    "drop_path",
    "drop_paths",
    "normalize",
    "parse_field_paths",
]
