"""Operators: a task's window of conversations to XCom, or streamed to object storage exactly once.

Both operators read the window from the run's data interval ``[data_interval_start, data_interval_end)``
(or explicit ``start``/``end``), find the vendor hook from the connection's type, and shape every record
(raw or normalized, minus ``exclude_fields``) before anything leaves the task.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from airflow.sdk import Asset, AssetAlias, BaseOperator, ObjectStoragePath, XComArg

from airflow_provider_conversations.exceptions import ConfigurationError, ConversationsError, InvalidFilterError
from airflow_provider_conversations.hooks import (
    CONN_TYPES,
    HOOK_PARAMS,
    hook_arguments,
    hook_class,
    hook_for_connection,
    hook_param_problem,
)
from airflow_provider_conversations.records import OUTPUT_FORMATS, RecordShaper, parse_field_paths
from airflow_provider_conversations.storage import (
    DestinationError,
    JsonLinesWriter,
    PartSpool,
    json_lines,
    object_uri,
    suffix_for,
)
from airflow_provider_conversations.windows import Window, iso_z, window_for_task

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_conversations.hooks.base import ConversationsHook, Page

TIME_KEYS = ("created", "updated")
#: Default XCom guard: enough for small windows and tests, far below what makes XCom, the API server and
#: the UI slow (every record is a JSON document in the metadata database).
DEFAULT_MAX_CONVERSATIONS = 10_000


class TooManyConversationsError(ConversationsError):
    """The window holds more conversations than ``max_conversations`` allows in XCom."""


def _is_dynamic(value: Any) -> bool:
    """True when the value is only known at run time (a Jinja template or an upstream task's output)."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, XComArg):
        return True
    if isinstance(value, Mapping):
        return any(_is_dynamic(k) or _is_dynamic(v) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return any(_is_dynamic(v) for v in value)
    return False


def _written_with_slash(path: ObjectStoragePath) -> bool:
    """Whether an ObjectStoragePath was built from a URL ending with "/" (it drops the slash itself).

    universal-pathlib keeps the URL as given in ``_raw_urlpaths``; without it, only an existing directory counts.
    """
    raw = getattr(getattr(path, "__wrapped__", None), "_raw_urlpaths", None)
    return bool(raw) and str(raw[-1]).endswith("/")  # type: ignore[index]


class _Progress:
    """Log lines a person can follow: the first page, then every N pages or every few seconds."""

    def __init__(self, op: _ConversationsBaseOperator, hook: ConversationsHook, window: Window) -> None:
        self.op = op
        self.hook = hook
        self.window = window
        self.started = time.monotonic()
        self.pages = 0
        self.last_logged_page = 0
        self._last_time = self.started

    def seconds(self) -> float:
        return time.monotonic() - self.started

    def page(self, page: Page, count: int, *, force: bool = False) -> None:
        """Called once per page (``force``: log again for the last one); counts pages across parallel parts."""
        if not force:
            self.pages += 1
        now = time.monotonic()
        due = (self.pages == 1 or self.pages - self.last_logged_page >= self.op.progress_every_pages
               or now - self._last_time >= self.op.progress_every_seconds)
        if not (due or force):
            return
        self.last_logged_page, self._last_time = self.pages, now
        s = self.hook.stats
        self.op.log.info(
            "%s %s to %s: page %d, %d conversations so far (%d fetched, %d requests, %d retries waiting %.1f s, "
            "%d rate-limit waits of %.1f s), %.1f s elapsed",
            self.hook.hook_name, iso_z(self.window.start), iso_z(self.window.end), self.pages, count, s.fetched,
            s.requests, s.retries, s.retry_wait_seconds, s.throttle_waits, s.throttle_wait_seconds,
            now - self.started,
        )


class _ConversationsBaseOperator(BaseOperator):
    """Arguments, parse-time validation and the page loop shared by both operators."""

    template_fields: Sequence[str] = ("conn_id", "filters", "start", "end")
    template_fields_renderers = {"filters": "json"}
    ui_color = "#e8f4fd"
    #: Progress cadence in the task log (besides the first page).
    progress_every_pages = 100
    progress_every_seconds = 10.0

    def __init__(
        self,
        *,
        conn_id: str,
        filters: Mapping[str, Any] | str | None = None,
        time_key: str = "created",
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        finished_only: bool = False,
        output_format: str = "raw",
        page_size: int | None = None,
        exclude_fields: Sequence[str] | None = None,
        vendor: str | None = None,
        hook_params: Mapping[str, Any] | None = None,
        max_parallel: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.max_parallel = max_parallel
        self.filters = filters
        self.time_key = time_key
        self.start = start
        self.end = end
        self.finished_only = finished_only
        self.output_format = output_format
        self.page_size = page_size
        self.exclude_fields = exclude_fields
        self.vendor = vendor
        self.hook_params = hook_params
        self._validate_arguments()
        self._lineage_input: tuple[str, str] | None = None

    # ------------------------------------------------------------------ validation (DAG parse time)

    def _fail(self, message: str, cls: type[ConfigurationError] = ConfigurationError) -> ConfigurationError:
        return cls(f"{type(self).__name__} {self.task_id!r}: {message}")

    def _validate_arguments(self) -> None:
        if not _is_dynamic(self.conn_id) and (not isinstance(self.conn_id, str) or not self.conn_id.strip()):
            raise self._fail(f"conn_id={self.conn_id!r} is not valid; expected an Airflow connection id")
        vendor_cls: type[ConversationsHook] | None = None
        if self.vendor is not None:
            if self.vendor not in CONN_TYPES:
                raise self._fail(
                    f"vendor={self.vendor!r} is not valid; allowed: {', '.join(repr(t) for t in CONN_TYPES)} "
                    "(the connection type)"
                )
            vendor_cls = hook_class(self.vendor)
        if self.time_key not in TIME_KEYS:
            raise self._fail(f"time_key={self.time_key!r} is not valid; allowed: 'created', 'updated'")
        if vendor_cls is not None and self.time_key not in vendor_cls.time_keys:
            allowed = ", ".join(repr(k) for k in vendor_cls.time_keys)
            raise self._fail(
                f"time_key={self.time_key!r} is not supported by {vendor_cls.hook_name}; allowed: {allowed}"
            )
        if not isinstance(self.finished_only, bool):
            raise self._fail(f"finished_only={self.finished_only!r} is not valid; expected True or False")
        if self.output_format not in OUTPUT_FORMATS:
            raise self._fail(
                f"output_format={self.output_format!r} is not valid; allowed: "
                + ", ".join(repr(f) for f in OUTPUT_FORMATS)
            )
        if self.page_size is not None:
            if isinstance(self.page_size, bool) or not isinstance(self.page_size, int) or self.page_size < 1:
                raise self._fail(
                    f"page_size={self.page_size!r} is not valid; expected a positive integer, or None for the "
                    "vendor's largest page"
                )
            if vendor_cls is not None and self.page_size > vendor_cls.max_page_size:
                raise self._fail(
                    f"page_size={self.page_size!r} is not allowed for {vendor_cls.hook_name}: expected an integer "
                    f"from 1 to {vendor_cls.max_page_size}"
                )
        if isinstance(self.max_parallel, bool) or not isinstance(self.max_parallel, int) \
                or not 1 <= self.max_parallel <= 64:
            raise self._fail(f"max_parallel={self.max_parallel!r} is not valid; expected an integer from 1 to 64")
        if vendor_cls is not None and self.max_parallel > 1 and not vendor_cls.server_bounded:
            raise self._fail(
                f"max_parallel={self.max_parallel} needs server-side time bounds, which {vendor_cls.hook_name} does "
                "not have; use max_parallel=1"
            )
        try:
            self._exclude_paths = parse_field_paths(self.exclude_fields)
        except ConfigurationError as exc:
            raise self._fail(str(exc)) from None
        self._validate_hook_params()
        self._validate_filters(vendor_cls)
        self._validate_bounds()

    def _validate_hook_params(self) -> None:
        if self.hook_params is None:
            return
        if not isinstance(self.hook_params, Mapping):
            raise self._fail(
                f"hook_params={self.hook_params!r} is not valid; expected a dict with keys among: "
                + ", ".join(HOOK_PARAMS)
            )
        for key, value in self.hook_params.items():
            if key not in HOOK_PARAMS:
                raise self._fail(
                    f"hook_params key {key!r} is not valid; allowed: {', '.join(HOOK_PARAMS)}"
                    + (" (page_size is an argument of its own)" if key == "page_size" else "")
                )
            expected = hook_param_problem(key, value)
            if expected:
                raise self._fail(f"hook_params {key}={value!r} is not valid; expected {expected}")

    def _validate_filters(self, vendor_cls: type[ConversationsHook] | None) -> None:
        if self.filters is None or _is_dynamic(self.filters):
            return  # a template: checked at run time, after rendering
        if not isinstance(self.filters, Mapping):
            raise self._fail(
                f"filters={self.filters!r} is not valid; expected a dict of the vendor's filter names to values"
            )
        if vendor_cls is not None:
            try:
                validated = vendor_cls.filter_set.validate(self.filters)
                if self.finished_only:
                    # e.g. finished_only with PolyAI in_progress=True: a contradiction the run would refuse.
                    vendor_cls(None).finished_filters(validated)
            except InvalidFilterError as exc:
                raise self._fail(str(exc), InvalidFilterError) from None

    def _validate_bounds(self) -> None:
        if (self.start is None) != (self.end is None):
            missing = "end" if self.end is None else "start"
            raise self._fail(f"start and end go together; {missing} is missing")
        if self.start is None or _is_dynamic(self.start) or _is_dynamic(self.end):
            return
        try:
            Window.of(self.start, self.end)
        except ConfigurationError as exc:
            raise self._fail(str(exc)) from None

    # ------------------------------------------------------------------ run time

    def _task_label(self) -> str:
        return f"{type(self).__name__} {self.task_id!r}"

    def _window(self, context: Context) -> Window:
        return window_for_task(context, self.start, self.end, task=self._task_label())

    def _hook(self) -> ConversationsHook:
        kwargs: dict[str, Any] = hook_arguments(self.hook_params or {})
        if self.page_size is not None:
            kwargs["page_size"] = self.page_size
        hook = hook_for_connection(self.conn_id, **kwargs)
        if self.vendor is not None and hook.conn_type != self.vendor:
            hook.close()
            raise self._fail(
                f"connection {self.conn_id!r} has type {hook.conn_type!r}, but vendor={self.vendor!r}; use a "
                f"{self.vendor} connection or change vendor"
            )
        self._lineage_input = (hook.base_url, hook.list_path(hook.settings).strip("/") or "conversations")
        return hook

    def _filters(self, hook: ConversationsHook) -> dict[str, Any]:
        """The rendered filters, validated, with the vendor's server-side finished filter merged in."""
        filters = hook.validate_filters(self.filters)  # type: ignore[arg-type]  # a str is refused there
        if self.finished_only:
            filters = {**filters, **hook.finished_filters(filters)}
        return filters

    def _shaped_pages(self, hook: ConversationsHook, window: Window, filters: Mapping[str, Any],
                      shaper: RecordShaper, progress: _Progress) -> Iterator[tuple[Page, list[dict[str, Any]]]]:
        """Each page's records, shaped. Arguments are checked (and errors raised) before the first request."""
        pages = hook.iter_pages(window.start, window.end, time_key=self.time_key, filters=filters,
                                max_parallel=self.max_parallel)
        return self._loop(pages, shaper, progress)

    def _loop(self, pages: Iterator[Page], shaper: RecordShaper,
              progress: _Progress) -> Iterator[tuple[Page, list[dict[str, Any]]]]:
        count = 0
        last: Page | None = None
        for page in pages:
            records = shaper.shape(page)
            count += len(records)
            progress.page(page, count)
            last = page
            yield page, records
        if last is not None and progress.pages != progress.last_logged_page:
            progress.page(last, count, force=True)

    def _summary(self, hook: ConversationsHook, window: Window, filters: Mapping[str, Any], count: int,
                 shaper: RecordShaper, seconds: float) -> dict[str, Any]:
        s = hook.stats
        return {
            "count": count,
            "vendor": hook.vendor,
            "conn_id": self.conn_id,
            "start": iso_z(window.start),
            "end": iso_z(window.end),
            "time_key": self.time_key,
            "filters": dict(filters),
            "finished_only": self.finished_only,
            "output_format": self.output_format,
            "pages": s.pages,
            "requests": s.requests,
            "retries": s.retries,
            "retry_wait_seconds": round(s.retry_wait_seconds, 3),
            "throttle_waits": s.throttle_waits,
            "throttle_wait_seconds": round(s.throttle_wait_seconds, 3),
            "fetched": s.fetched,
            "duplicates": s.duplicates,
            "skipped_unfinished": shaper.skipped_unfinished,
            "seconds": round(seconds, 3),
        }

    # ------------------------------------------------------------------ OpenLineage (optional provider)

    def _lineage_inputs(self) -> list[Any]:
        from airflow.providers.common.compat.openlineage.facet import Dataset

        if self._lineage_input is None:
            return []
        namespace, name = self._lineage_input
        return [Dataset(namespace=namespace, name=name)]


class ConversationsOperator(_ConversationsBaseOperator):
    """Return the conversations of the task's window as a list of dicts (pushed to XCom).

    For small windows and for feeding a few records to a downstream task. XCom lives in the metadata
    database: above ``max_conversations`` (default 10,000) the task fails before returning anything and
    points to :class:`ConversationsToObjectStorageOperator`, which streams any volume in constant memory.

    :param conn_id: Airflow connection of one of the five vendor types (templated).
    :param filters: the vendor's filters, e.g. ``{"agent_id": "agent_123"}`` (templated).
    :param time_key: ``"created"`` or ``"updated"`` (the vendor must have it).
    :param start: window start overriding the data interval (with ``end``; templated).
    :param end: window end, exclusive (with ``start``; templated).
    :param finished_only: only finished conversations (the vendor's terminal statuses).
    :param output_format: ``"raw"`` (the vendor's dicts) or ``"normalized"`` (one shape across vendors).
    :param page_size: items per request; default the vendor's maximum.
    :param exclude_fields: dotted paths dropped from every record before it leaves the task (PII).
    :param vendor: the connection type, to validate filters and time key when the DAG is parsed.
    :param hook_params: hook settings: ``max_attempts``, ``max_retry_seconds``, ``backoff``, ``backoff_max``,
        ``retry_after_cap``, ``timeout``.
    :param max_parallel: fetch the window as this many sub-windows at once (vendors with server-side time
        bounds: not ParrotMob); one rate limiter and one back-off are shared, and the result is the same,
        in the same order, as a sequential run.
    :param max_conversations: XCom guard (default 10,000).
    """

    def __init__(self, *, max_conversations: int = DEFAULT_MAX_CONVERSATIONS, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(max_conversations, bool) or not isinstance(max_conversations, int) or max_conversations < 1:
            raise self._fail(f"max_conversations={max_conversations!r} is not valid; expected a positive integer")
        self.max_conversations = max_conversations

    def execute(self, context: Context) -> list[dict[str, Any]]:
        window = self._window(context)
        hook = self._hook()
        try:
            filters = self._filters(hook)
            shaper = RecordShaper(hook, output_format=self.output_format, exclude_fields=self._exclude_paths,
                                  finished_only=self.finished_only)
            progress = _Progress(self, hook, window)
            parts: dict[int, list[dict[str, Any]]] = {}
            descending = False
            total = 0
            for page, shaped in self._shaped_pages(hook, window, filters, shaper, progress):
                parts.setdefault(page.part, []).extend(shaped)
                descending = descending or page.descending
                total += len(shaped)
                if total > self.max_conversations:
                    raise TooManyConversationsError(
                        f"{self._task_label()}: the window {iso_z(window.start)} to {iso_z(window.end)} holds more "
                        f"than max_conversations={self.max_conversations} conversations, too many for XCom "
                        "(nothing was pushed). Export it with ConversationsToObjectStorageOperator, which streams "
                        "any number to object storage in constant memory and returns a small manifest, or raise "
                        "max_conversations."
                    )
            # Parallel sub-windows arrive in completion order: put them back in the order of a sequential walk.
            records = [r for part in sorted(parts, reverse=descending) for r in parts[part]]
            summary = self._summary(hook, window, filters, len(records), shaper, progress.seconds())
        finally:
            hook.close()
        self.log.info("Returning %d conversations to XCom; summary: %s", len(records),
                      orjson.dumps(summary).decode())
        return records

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the vendor's conversations endpoint as input (no output dataset: XCom is not one)."""
        from airflow.providers.openlineage.extractors import OperatorLineage

        return OperatorLineage(inputs=self._lineage_inputs(), outputs=[])


class ConversationsToObjectStorageOperator(_ConversationsBaseOperator):
    """Stream the conversations of the task's window to one object, atomically; return a manifest.

    ``destination`` is a directory (a URL ending with ``/``, or an existing directory) or a full object path.
    A directory gets one deterministic object per vendor, connection, time key and window::

        <destination>/vendor=<vendor>/conn_id=<conn_id>/time_key=<time_key>/
            start=<start, ISO 8601 Z>/end=<end, ISO 8601 Z>/conversations.jsonl[.gz]

    so re-runs and backfills replace exactly the object of their own window. The object is JSON Lines (one
    record per line), gzip by default (byte-deterministic), written page by page as pages arrive, and it
    appears atomically: a failed or killed task leaves the previous object untouched and no partial one (see
    :mod:`airflow_provider_conversations.storage`). An empty window writes an empty object.

    Asset events: a static ``outlets=[Asset(...)]`` is marked by Airflow on success (the manifest is attached
    as the event's extra); with ``outlets=[AssetAlias("...")]`` the task adds an event for
    ``Asset(<object uri>)`` with the manifest as extra, so downstream DAGs can schedule on each object.

    Takes every argument of :class:`ConversationsOperator` except ``max_conversations``, plus:

    :param destination: ``str`` URL (``file://``, ``s3://``, ``gs://``, ``memory://`` ...) or an
        ``ObjectStoragePath`` (templated).
    :param destination_conn_id: Airflow connection for the destination's filesystem, e.g. ``aws_default``
        (templated).
    :param compression: ``"gzip"`` (default) or ``None``.
    """

    template_fields: Sequence[str] = (*_ConversationsBaseOperator.template_fields, "destination",
                                      "destination_conn_id")

    def __init__(
        self,
        *,
        destination: str | ObjectStoragePath,
        destination_conn_id: str | None = None,
        compression: str | None = "gzip",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(destination, str):
            if not destination.strip():
                raise self._fail(
                    "destination='' is not valid; expected a URL such as 's3://bucket/conversations/' or an "
                    "ObjectStoragePath"
                )
            if not _is_dynamic(destination):
                try:
                    # Only parses the URL and looks the scheme up: no connection, no filesystem call.
                    ObjectStoragePath(destination.strip())
                except ValueError as exc:
                    raise self._fail(
                        f"destination={destination!r} is not valid ({exc}); expected a URL whose scheme has a "
                        "filesystem, e.g. 'file:///data/conversations/', 's3://bucket/conversations/' (with "
                        "apache-airflow-providers-amazon) or 'memory://conversations/'"
                    ) from None
        elif not isinstance(destination, ObjectStoragePath | XComArg):
            raise self._fail(
                f"destination={destination!r} is not valid; expected a URL such as 's3://bucket/conversations/' "
                "or an ObjectStoragePath"
            )
        if destination_conn_id is not None and not isinstance(destination_conn_id, str):
            raise self._fail(
                f"destination_conn_id={destination_conn_id!r} is not valid; expected a connection id or None"
            )
        if compression not in ("gzip", None):
            raise self._fail(f"compression={compression!r} is not valid; allowed: 'gzip' or None")
        self.destination = destination
        self.destination_conn_id = destination_conn_id
        self.compression = compression
        self._output: ObjectStoragePath | None = None
        self._manifest: dict[str, Any] | None = None

    def object_path(self, window: Window, vendor: str) -> ObjectStoragePath:
        """The object this task writes for ``window`` (after templating)."""
        dest = self.destination
        if isinstance(dest, ObjectStoragePath):
            base = dest
            if self.destination_conn_id and dest.conn_id != self.destination_conn_id:
                base = ObjectStoragePath(dest, conn_id=self.destination_conn_id)
            directory = _written_with_slash(dest) or base.is_dir()
        else:
            text = str(dest).strip()
            base = ObjectStoragePath(text, conn_id=self.destination_conn_id or None)
            directory = text.endswith("/") or base.is_dir()
        if not directory:
            return base
        return (base / f"vendor={vendor}" / f"conn_id={self.conn_id}" / f"time_key={self.time_key}"
                / f"start={iso_z(window.start)}" / f"end={iso_z(window.end)}"
                / f"conversations{suffix_for(self.compression)}")

    def execute(self, context: Context) -> dict[str, Any]:
        window = self._window(context)
        hook = self._hook()
        try:
            filters = self._filters(hook)
            shaper = RecordShaper(hook, output_format=self.output_format, exclude_fields=self._exclude_paths,
                                  finished_only=self.finished_only)
            path = self.object_path(window, hook.vendor)
            self._warn_on_suffix(path)
            progress = _Progress(self, hook, window)
            pages = self._shaped_pages(hook, window, filters, shaper, progress)
            self.log.info("Exporting %s conversations (%s) %s to %s into %s", hook.hook_name, self.time_key,
                          iso_z(window.start), iso_z(window.end), object_uri(path))
            out = JsonLinesWriter(path, compression=self.compression)
            try:
                out.open()  # before the first request: an unwritable destination costs no API call
            except DestinationError as exc:
                raise self._fail(str(exc), DestinationError) from None
            with out:
                if self.max_parallel == 1:
                    for _page, records in pages:
                        out.write_records(records)
                else:
                    # Sub-windows arrive in completion order; spool them and write them back in walk order,
                    # so the object is the same, byte for byte, as a sequential export's.
                    with PartSpool() as spool:
                        for page, records in pages:
                            spool.add(page.part, json_lines(records), descending=page.descending)
                        for chunk in spool.replay():
                            out.write_lines(chunk)
            manifest = {
                "uri": out.uri,
                **self._summary(hook, window, filters, out.count, shaper, progress.seconds()),
                "bytes": out.bytes,
                "uncompressed_bytes": out.uncompressed_bytes,
                "compression": self.compression,
                "format": "jsonl",
                "destination_conn_id": path.conn_id,
            }
        finally:
            hook.close()
        self._output = path
        self._manifest = manifest
        self._emit_asset_events(context, manifest)
        self.log.info("Exported %d conversations to %s; manifest: %s", manifest["count"], manifest["uri"],
                      orjson.dumps(manifest).decode())
        return manifest

    def _warn_on_suffix(self, path: ObjectStoragePath) -> None:
        gz = path.name.endswith(".gz")
        if gz != (self.compression == "gzip"):
            self.log.warning(
                "Writing %s output to %s, whose name %s; readers that infer compression from the name will "
                "misread it", "gzip" if self.compression else "uncompressed", object_uri(path),
                "does not end with .gz" if self.compression else "ends with .gz",
            )

    def _emit_asset_events(self, context: Context, manifest: dict[str, Any]) -> None:
        """Static Asset outlets get the manifest as event extra; an AssetAlias gets an event for the object."""
        if not self.outlets:
            return
        events = context.get("outlet_events")
        if events is None:
            return
        for outlet in self.outlets:
            if isinstance(outlet, AssetAlias):
                events[outlet].add(Asset(manifest["uri"]), extra=manifest)
            elif isinstance(outlet, Asset):
                events[outlet].extra.update(manifest)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the vendor's conversations endpoint in, the written object out (with row count, size)."""
        from airflow.providers.common.compat.openlineage.facet import (
            OutputDataset,
            OutputStatisticsOutputDatasetFacet,
        )
        from airflow.providers.openlineage.extractors import OperatorLineage

        outputs = []
        manifest = self._manifest
        if manifest is None and task_instance is not None:  # a fresh operator object: read the manifest back
            pulled = task_instance.xcom_pull(task_ids=task_instance.task_id, key="return_value")
            manifest = pulled if isinstance(pulled, dict) else None
        path = self._output
        if path is None and manifest is not None:
            path = ObjectStoragePath(manifest["uri"])
        if path is not None:
            facets: dict[str, Any] = {}
            if manifest is not None:
                facets["outputStatistics"] = OutputStatisticsOutputDatasetFacet(
                    rowCount=manifest["count"], size=manifest["bytes"]
                )
            outputs.append(OutputDataset(namespace=path.namespace or "file", name=path.key, outputFacets=facets))
        return OperatorLineage(inputs=self._lineage_inputs(), outputs=outputs)


__all__ = [
    "DEFAULT_MAX_CONVERSATIONS",
    "ConversationsOperator",
    "ConversationsToObjectStorageOperator",
    "TooManyConversationsError",
]
