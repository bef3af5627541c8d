"""Operators: a task's window of conversations to XCom, or streamed to object storage exactly once.

Both operators read the window from the run's data interval ``[data_interval_start, data_interval_end)``
(or explicit ``start``/``end``), find the vendor hook from the connection's type, and shape every record
(raw or normalized, minus ``exclude_fields``) before anything leaves the task.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, cast

import orjson
from airflow.sdk import BaseOperator, ObjectStoragePath, XComArg

from airflow_provider_conversations.engine.parallel import PARTS_PER_WORKER, FileParts, MemoryParts, in_walk_order
from airflow_provider_conversations.exceptions import ConfigurationError, ConversationsError
from airflow_provider_conversations.operators.lineage import emit_asset_events, input_datasets, output_datasets
from airflow_provider_conversations.output.layout import object_path
from airflow_provider_conversations.output.parquet import ArrowParts, Columns, ParquetWriter, file_metadata
from airflow_provider_conversations.output.records import OUTPUT_FORMATS, RecordShaper, parse_field_paths
from airflow_provider_conversations.output.storage import DestinationError, JsonLinesWriter, json_lines
from airflow_provider_conversations.output.targets import StagedPartsMissing, object_uri
from airflow_provider_conversations.tasks.arguments import (
    OPERATOR,
    SourceArguments,
    check_details,
    check_file_format,
    check_workers,
    is_dynamic,
)
from airflow_provider_conversations.tasks.checkpoint import (
    DEFAULT_CHECKPOINT_EVERY_PAGES,
    Checkpoints,
    check_checkpoint_every_pages,
    export_identity,
)
from airflow_provider_conversations.tasks.interval import window_for_task
from airflow_provider_conversations.tasks.parallel_checkpoint import ParallelSpool
from airflow_provider_conversations.tasks.progress import Progress
from airflow_provider_conversations.windows import Window, iso_z

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_conversations.engine.plan import WalkPlan
    from airflow_provider_conversations.engine.walk import Page
    from airflow_provider_conversations.hooks.base import ConversationsHook

#: Default XCom guard: enough for small windows and tests, far below what makes XCom, the API server and
#: the UI slow (every record is a JSON document in the metadata database).
DEFAULT_MAX_CONVERSATIONS = 10_000


class _Default(enum.Enum):
    """``compression`` not given: the file format's own default (gzip for JSON Lines, zstd for Parquet)."""

    COMPRESSION = "the file format's default"


class TooManyConversationsError(ConversationsError):
    """The window holds more conversations than ``max_conversations`` allows in XCom."""


class _ConversationsBaseOperator(BaseOperator):
    """Arguments, parse-time validation and the page loop shared by both operators."""

    template_fields: Sequence[str] = ("conn_id", "filters", "start", "end", "extra_params")
    template_fields_renderers = {"filters": "json", "extra_params": "json"}
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
        extra_params: Mapping[str, Any] | str | None = None,
        include_details: bool = False,
        detail_concurrency: int = 8,
        on_missing_detail: str = "keep",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.extra_params = extra_params
        self.max_parallel = max_parallel
        self.include_details = include_details
        self.detail_concurrency = detail_concurrency
        self.on_missing_detail = on_missing_detail
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
        try:
            if not isinstance(finished_only, bool):
                raise ConfigurationError(f"finished_only={finished_only!r} is not valid; expected True or False")
            if output_format not in OUTPUT_FORMATS:
                raise ConfigurationError(f"output_format={output_format!r} is not valid; allowed: "
                                         + ", ".join(repr(f) for f in OUTPUT_FORMATS))
            self._source = SourceArguments.check(
                label=self._task_label(), wording=OPERATOR, conn_id=conn_id, vendor=vendor, time_key=time_key,
                filters=filters, start=start, end=end, page_size=page_size, hook_params=hook_params,
                finished_only=finished_only, extra_params=extra_params,
            )
            check_workers(max_parallel, self._source.hook_cls)
            self._details = check_details(include_details, detail_concurrency, on_missing_detail,
                                          vendor_cls=self._source.hook_cls)
            self._exclude_paths = parse_field_paths(exclude_fields)
        except ConfigurationError as exc:  # InvalidFilterError stays an InvalidFilterError
            raise self._fail(str(exc), type(exc)) from None
        self._lineage_input: tuple[str, str] | None = None

    def _fail(self, message: str, cls: type[ConfigurationError] = ConfigurationError) -> ConfigurationError:
        return cls(f"{self._task_label()}: {message}")

    # ------------------------------------------------------------------ run time

    def _task_label(self) -> str:
        return f"{type(self).__name__} {self.task_id!r}"

    def _hook(self) -> ConversationsHook:
        """The vendor hook of the (rendered) connection; it must be of ``vendor``'s type when one was given."""
        hook = self._source.hook(self.conn_id)
        if self.vendor is not None and hook.conn_type != self.vendor:
            hook.close()
            raise self._fail(
                f"connection {self.conn_id!r} has type {hook.conn_type!r}, but vendor={self.vendor!r}; use a "
                f"{self.vendor} connection or change vendor"
            )
        if self._details is not None:
            try:
                hook.refuse_details_unless_supported()  # vendor= not given: refused here, before any request
            except ConfigurationError as exc:
                hook.close()
                raise self._fail(str(exc)) from None
        self._lineage_input = (hook.base_url, hook.list_path(hook.settings).strip("/") or "conversations")
        return hook

    def _shaped(self, hook: ConversationsHook, plan: WalkPlan, shaper: RecordShaper, progress: Progress,
                resume: Mapping[Any, Any] | None = None, count: int = 0, *,
                checkpoint_every: int | None = None) -> Iterator[tuple[Page, list[dict[str, Any]]]]:
        """Each page of the walk with its records, shaped; progress in the task log."""
        for page in hook.walk_with_details(plan, self._details, resume, checkpoint_every=checkpoint_every):
            records = shaper.shape(page)
            count += len(records)
            progress.page(count)
            yield page, records
        progress.done(count)

    def _progress(self, hook: ConversationsHook, window: Window) -> Progress:
        return Progress(self.log, hook.hook_name, window, hook.stats, every_pages=self.progress_every_pages,
                        every_seconds=self.progress_every_seconds)

    def _summary(self, hook: ConversationsHook, window: Window, plan: WalkPlan, count: int,
                 shaper: RecordShaper, seconds: float) -> dict[str, Any]:
        s = hook.stats
        return {
            "count": count,
            "vendor": hook.vendor,
            "conn_id": self.conn_id,
            "start": iso_z(window.start),
            "end": iso_z(window.end),
            "time_key": self.time_key,
            "filters": dict(plan.filters),
            "extra_params": dict(plan.extra_params),
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
            **({} if self._details is None else {
                "include_details": True,
                "details_fetched": s.details_fetched,
                "details_missing": s.details_missing,
                "detail_requests": s.detail_requests,
                "detail_seconds": round(s.detail_seconds, 3),
            }),
        }

    def _shaper(self, hook: ConversationsHook) -> RecordShaper:
        return RecordShaper(hook, output_format=self.output_format, exclude_fields=self._exclude_paths,
                            finished_only=self.finished_only, include_details=self._details is not None)

    # ------------------------------------------------------------------ OpenLineage (optional provider)


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
    :param extra_params: query parameters this provider does not know yet (a vendor's newer filters), e.g.
        ``{"new_filter": "x"}``: sent as given on every request, after checking that they are not the vendor's
        paging, window or order parameters and that values are strings, numbers, booleans or lists of them
        (a list is a repeated parameter); their names are logged (templated).
    :param max_parallel: fetch the window as this many sub-windows at once (vendors with server-side time
        bounds: not ParrotMob); one rate limiter and one back-off are shared, and the result is the same,
        in the same order, as a sequential run.
    :param include_details: also fetch each conversation's detail (transcript, messages) into ``"detail"``
        (ElevenLabs, Replyful, Anyreach; PolyAI's items already carry ``turns``; refused for ParrotMob).
    :param detail_concurrency: detail requests in flight at once (default 8, at most 64), under the hook's one
        rate limiter and back-off.
    :param on_missing_detail: a conversation listed but gone when its detail is fetched (404): ``"keep"``
        (default: ``"detail": null``, logged), ``"skip"`` or ``"fail"``.
    :param max_conversations: XCom guard (default 10,000).
    """

    def __init__(self, *, max_conversations: int = DEFAULT_MAX_CONVERSATIONS, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(max_conversations, bool) or not isinstance(max_conversations, int) or max_conversations < 1:
            raise self._fail(f"max_conversations={max_conversations!r} is not valid; expected a positive integer")
        self.max_conversations = max_conversations

    def execute(self, context: Context) -> list[dict[str, Any]]:
        window = window_for_task(context, self.start, self.end, task=self._task_label())
        hook = self._hook()
        try:
            filters = self._source.validated_filters(hook, self.filters, finished_only=self.finished_only)
            shaper = self._shaper(hook)
            extra = self._source.validated_extra_params(hook, self.extra_params)
            plan = self._source.plan(hook, window, filters, self.max_parallel, extra)
            progress = self._progress(hook, window)
            records: list[dict[str, Any]] = []
            pages = self._guarded(self._shaped(hook, plan, shaper, progress), window)
            for shaped in in_walk_order(pages, MemoryParts(), parallel=plan.workers > 1):
                records.extend(shaped)
            summary = self._summary(hook, window, plan, len(records), shaper, progress.seconds())
        finally:
            hook.close()
        self.log.info("Returning %d conversations to XCom; summary: %s", len(records),
                      orjson.dumps(summary).decode())
        return records

    def _guarded(self, pages: Iterator[tuple[Page, list[dict[str, Any]]]],
                 window: Window) -> Iterator[tuple[Page, list[dict[str, Any]]]]:
        """Fail as soon as the window holds more than ``max_conversations`` (before anything is pushed)."""
        total = 0
        for page, shaped in pages:
            total += len(shaped)
            if total > self.max_conversations:
                raise TooManyConversationsError(
                    f"{self._task_label()}: the window {iso_z(window.start)} to {iso_z(window.end)} holds more "
                    f"than max_conversations={self.max_conversations} conversations, too many for XCom "
                    "(nothing was pushed). Export it with ConversationsToObjectStorageOperator, which streams "
                    "any number to object storage in constant memory and returns a small manifest, or raise "
                    "max_conversations."
                )
            yield page, shaped

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the vendor's conversations endpoint as input (no output dataset: XCom is not one)."""
        from airflow.providers.openlineage.extractors import OperatorLineage

        return OperatorLineage(inputs=input_datasets(self._lineage_input), outputs=[])


class ConversationsToObjectStorageOperator(_ConversationsBaseOperator):
    """Stream the conversations of the task's window to one object, atomically; return a manifest.

    ``destination`` is a directory (a URL ending with ``/``, or an existing directory) or a full object path.
    A directory gets one deterministic object per vendor, connection, time key and window::

        <destination>/vendor=<vendor>/conn_id=<conn_id>/time_key=<time_key>/
            start=<start, ISO 8601 Z>/end=<end, ISO 8601 Z>/conversations.jsonl[.gz]   (or .parquet)

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
    :param file_format: ``"jsonl"`` (default: JSON Lines) or ``"parquet"`` (typed columns plus the record as
        JSON, in row groups; needs the extra ``airflow-provider-conversations[parquet]``; see
        :mod:`airflow_provider_conversations.output.parquet`).
    :param compression: for ``jsonl``, ``"gzip"`` (default) or ``None``; for ``parquet``, ``"zstd"`` (default),
        ``"snappy"``, ``"gzip"`` or ``None``.
    :param checkpoint_every_pages: pages between checkpoints (default 100; ``None``: none). At each one the
        object's bytes so far become durable staged parts and the walk's position goes to the task state store
        (Airflow 3.3+), so a retry continues there instead of at the window start; the object is the same, byte
        for byte; with ``max_parallel > 1`` each sub-window checkpoints on its own. See the README, "Resumable
        exports".
    """

    template_fields: Sequence[str] = (*_ConversationsBaseOperator.template_fields, "destination",
                                      "destination_conn_id")

    def __init__(
        self,
        *,
        destination: str | ObjectStoragePath,
        destination_conn_id: str | None = None,
        compression: str | _Default | None = _Default.COMPRESSION,
        file_format: str = "jsonl",
        checkpoint_every_pages: int | None = DEFAULT_CHECKPOINT_EVERY_PAGES,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        try:
            self.checkpoint_every_pages = check_checkpoint_every_pages(checkpoint_every_pages)
        except ConfigurationError as exc:
            raise self._fail(str(exc)) from None
        if isinstance(destination, str):
            if not destination.strip():
                raise self._fail(
                    "destination='' is not valid; expected a URL such as 's3://bucket/conversations/' or an "
                    "ObjectStoragePath"
                )
            if not is_dynamic(destination):
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
        try:
            self.file_format, self.compression = check_file_format(
                file_format, None if compression is _Default.COMPRESSION else compression,
                default=compression is _Default.COMPRESSION)
        except ConfigurationError as exc:
            raise self._fail(str(exc), type(exc)) from None
        self.destination = destination
        self.destination_conn_id = destination_conn_id
        self._output: ObjectStoragePath | None = None
        self._manifest: dict[str, Any] | None = None

    def object_path(self, window: Window, vendor: str) -> ObjectStoragePath:
        """The object this task writes for ``window`` (after templating)."""
        return object_path(self.destination, destination_conn_id=self.destination_conn_id, window=window,
                           vendor=vendor, conn_id=self.conn_id, time_key=self.time_key, compression=self.compression,
                           file_format=self.file_format)

    def execute(self, context: Context) -> dict[str, Any]:
        window = window_for_task(context, self.start, self.end, task=self._task_label())
        hook = self._hook()
        try:
            filters = self._source.validated_filters(hook, self.filters, finished_only=self.finished_only)
            shaper = self._shaper(hook)
            path = self.object_path(window, hook.vendor)
            self._warn_on_suffix(path)
            extra = self._source.validated_extra_params(hook, self.extra_params)
            plan = self._source.plan(hook, window, filters, self.max_parallel, extra)
            progress = self._progress(hook, window)
            self.log.info("Exporting %s conversations (%s) %s to %s into %s", hook.hook_name, self.time_key,
                          iso_z(window.start), iso_z(window.end), object_uri(path))
            if self.file_format == "parquet":
                checkpoints = self._checkpoints(context, hook, window, filters, plan, path)
                if checkpoints is not None and plan.workers > 1:
                    # Per-sub-window checkpoints are JSON Lines' (tasks/parallel_checkpoint.py); Parquet segments
                    # follow the walk order, which parallel sub-windows do not arrive in.
                    self.log.info("max_parallel=%d: no checkpoints (resuming is for sequential exports) with "
                                  "file_format='parquet'; a retry starts from the window start", plan.workers)
                    checkpoints = None
                saved = checkpoints.load() if checkpoints is not None else None
                out_pq = self._open_parquet(path, hook, window, filters, plan, checkpoints, saved)
                if saved is not None and out_pq.resume is None:
                    saved = None  # its staged segments are gone (logged): from the window start
                resumed_from = saved["walk"]["number"] + 1 if saved is not None else None
                if saved is not None:
                    self.log.info("Resuming from page %d of the window: %d conversations already written (staged "
                                  "segments) by an earlier try", resumed_from, out_pq.count)
                with out_pq:
                    shaped = self._shaped(hook, plan, shaper, progress, saved["walk"] if saved else None,
                                          out_pq.count)
                    if checkpoints is None:
                        self._write_parquet(out_pq, shaped, parallel=plan.workers > 1)
                    else:
                        self._write_parquet_checkpointed(shaped, out_pq, checkpoints)
                if checkpoints is not None:
                    checkpoints.clear()
                out: JsonLinesWriter | ParquetWriter = out_pq
                checkpoints_taken = out_pq.checkpoints
            else:
                checkpoints = self._checkpoints(context, hook, window, filters, plan, path)
                saved = checkpoints.load() if checkpoints is not None else None
                spool: ParallelSpool | None = None
                if plan.workers > 1 and self.checkpoint_every_pages is not None:
                    saved, spool = self._parallel_spool(path, checkpoints, saved)
                out_jl = self._open_writer(path, None if spool is not None else saved)
                if spool is not None:
                    with out_jl:
                        resumed_from = self._write_parallel(hook, plan, shaper, progress, out_jl, spool, saved)
                    spool.close(success=True)  # the object is complete: its part files go
                else:
                    if saved is not None and out_jl.resume is None:
                        saved = None  # its staged parts are gone (logged): from the window start
                    resumed_from = saved["walk"]["number"] + 1 if saved is not None else None
                    if saved is not None:
                        self.log.info("Resuming from page %d of the window: %d conversations already written (%d "
                                      "bytes, staged) by an earlier try", resumed_from, out_jl.count, out_jl.bytes)
                    with out_jl:
                        if plan.workers > 1:
                            # Parallel sub-windows arrive in completion order: spooled and written back in walk
                            # order, so the object is the same, byte for byte, as a sequential export's.
                            lines = ((page, json_lines(records))
                                     for page, records in self._shaped(hook, plan, shaper, progress))
                            for chunk in in_walk_order(lines, FileParts(), parallel=True):
                                out_jl.write_lines(chunk)
                        else:
                            self._write_checkpointed(
                                self._shaped(hook, plan, shaper, progress, saved["walk"] if saved else None,
                                             out_jl.count),
                                out_jl, checkpoints)
                if checkpoints is not None:
                    checkpoints.clear()
                out = out_jl
                checkpoints_taken = out_jl.checkpoints
            manifest = {
                "uri": out.uri,
                **self._summary(hook, window, plan, out.count, shaper, progress.seconds()),
                "bytes": out.bytes,
                "uncompressed_bytes": out.uncompressed_bytes,
                "compression": self.compression,
                "format": self.file_format,
                "file_format": self.file_format,
                "destination_conn_id": path.conn_id,
                "checkpoint_every_pages": self.checkpoint_every_pages,
                "checkpoints": checkpoints_taken,
                "resumed_from_page": resumed_from,
            }
        finally:
            hook.close()
        self._output = path
        self._manifest = manifest
        emit_asset_events(self.outlets, context.get("outlet_events"), manifest)
        self.log.info("Exported %d conversations to %s; manifest: %s", manifest["count"], manifest["uri"],
                      orjson.dumps(manifest).decode())
        return manifest

    @staticmethod
    def _write_parquet(out: ParquetWriter, shaped: Iterator[tuple[Page, list[dict[str, Any]]]], *,
                       parallel: bool) -> None:
        """Sequential: records straight into row groups. Parallel: each page as an Arrow batch, spooled per
        sub-window and replayed in walk order; row groups fall every ``row_group_rows`` records either way, so
        both give the same bytes."""
        if not parallel:
            for _page, records in shaped:
                out.write_records(records)
            return
        batches = ((page, out.columns.batch(records)) for page, records in shaped)
        for batch in in_walk_order(batches, ArrowParts(out.columns.schema), parallel=True):
            out.write_batch(batch)

    def _open_parquet(self, path: ObjectStoragePath, hook: ConversationsHook, window: Window,
                      filters: Mapping[str, Any], plan: WalkPlan, checkpoints: Checkpoints | None,
                      saved: Mapping[str, Any] | None) -> ParquetWriter:
        """The Parquet writer, opened before the first request (an unwritable destination costs no API call),
        continuing the checkpoint's staged segments when they are there as recorded."""

        def writer(resume: Mapping[str, Any] | None) -> ParquetWriter:
            return ParquetWriter(
                path, compression=self.compression,
                columns=Columns(self.output_format, id_field=hook.id_field, time_key=plan.key),
                metadata=file_metadata(self._identity(hook, window, filters)),
                checkpointed=checkpoints is not None, resume=resume)

        try:
            try:
                return writer(saved["output"] if saved else None).open()
            except StagedPartsMissing as exc:
                self.log.warning("Ignoring the checkpoint: %s; starting from the window start", exc)
            return writer(None).open()
        except DestinationError as exc:
            raise self._fail(str(exc), DestinationError) from None

    def _write_parquet_checkpointed(self, pages: Iterator[tuple[Page, list[dict[str, Any]]]], out: ParquetWriter,
                                    checkpoints: Checkpoints) -> None:
        """Sequential Parquet with checkpoints: every ``checkpoint_every_pages`` pages of the window the records
        so far become a durable segment and the walk's position is saved (see ``_write_checkpointed``)."""
        every = self.checkpoint_every_pages
        for page, records in pages:
            out.write_records(records)
            if every is None or page.number % every or page.resume_state is None:
                continue
            state = page.resume_state()
            if state is not None and state["next"] is not None:  # at the walk's end nothing is left to resume
                out.checkpoint(partial(checkpoints.save, state))

    def _identity(self, hook: ConversationsHook, window: Window, filters: Mapping[str, Any]) -> dict[str, Any]:
        """What a Parquet file says about itself (its key-value metadata): the manifest's identity and window,
        nothing that changes between runs."""
        return {
            "vendor": hook.vendor, "conn_id": self.conn_id, "time_key": self.time_key,
            "start": iso_z(window.start), "end": iso_z(window.end), "filters": dict(filters),
            "finished_only": self.finished_only, "output_format": self.output_format,
            "exclude_fields": [".".join(p) for p in self._exclude_paths],
            "file_format": self.file_format, "compression": self.compression,
        }

    def _checkpoints(self, context: Context, hook: ConversationsHook, window: Window, filters: Mapping[str, Any],
                     plan: WalkPlan, path: ObjectStoragePath) -> Checkpoints | None:
        """The export's checkpoints in the task state store, or ``None`` when it cannot resume."""
        store = cast("Mapping[str, Any]", context).get("task_state_store")  # Airflow 3.3+
        if self.checkpoint_every_pages is None or store is None:
            return None
        identity = export_identity({
            "vendor": hook.vendor, "conn_id": self.conn_id, "base_url": hook.base_url,
            "start": iso_z(window.start), "end": iso_z(window.end), "time_key": self.time_key,
            "filters": dict(filters), "finished_only": self.finished_only, "output_format": self.output_format,
            "exclude_fields": list(self.exclude_fields or ()), "page_size": plan.page_size,
            "compression": self.compression, "uri": object_uri(path),
            "checkpoint_every_pages": self.checkpoint_every_pages, "file_format": self.file_format,
            "extra_params": dict(plan.extra_params), "max_parallel": plan.workers,
            "on_missing_detail": None if self._details is None else self._details.on_missing,
        })
        return Checkpoints(store, identity, self.log)

    def _open_writer(self, path: ObjectStoragePath, saved: Mapping[str, Any] | None) -> JsonLinesWriter:
        """The writer, opened before the first request (an unwritable destination costs no API call), continuing
        the checkpoint's staged parts when they are there as recorded."""
        out = JsonLinesWriter(path, compression=self.compression, resume=saved["output"] if saved else None)
        try:
            try:
                return out.open()
            except StagedPartsMissing as exc:
                self.log.warning("Ignoring the checkpoint: %s; starting from the window start", exc)
            out = JsonLinesWriter(path, compression=self.compression)
            return out.open()
        except DestinationError as exc:
            raise self._fail(str(exc), DestinationError) from None

    def _parallel_spool(self, path: ObjectStoragePath, checkpoints: Checkpoints | None,
                        saved: dict[str, Any] | None) -> tuple[dict[str, Any] | None, ParallelSpool]:
        """The spool of a parallel export, continuing ``saved`` when its part files are there as recorded."""
        every = self.checkpoint_every_pages
        assert every is not None
        if saved is not None:
            why = ParallelSpool.check(saved["walk"], path)
            if why is not None:
                self.log.warning("Ignoring the checkpoint: %s; starting from the window start", why)
                saved = None
        save = None if checkpoints is None else partial(_save_parallel, checkpoints)
        return saved, ParallelSpool(path, every, save=save, saved=saved["walk"]["parallel"] if saved else None)

    def _write_parallel(self, hook: ConversationsHook, plan: WalkPlan, shaper: RecordShaper, progress: Progress,
                        out: JsonLinesWriter, spool: ParallelSpool, saved: Mapping[str, Any] | None) -> int | None:
        """Walk the sub-windows not done yet, each from its own position, spooling (and checkpointing) each on
        its own; then write them to ``out`` in walk order. Returns the resumed checkpoint's chunk count."""
        if not out.resumable:
            spool.save, spool.files = None, None  # the destination cannot stage: no checkpoints
        spool.start()
        total = len(plan.window.split(plan.workers * PARTS_PER_WORKER))
        todo = spool.remaining(total)
        if saved is not None:
            self.log.info("Resuming a parallel export: %d of %d sub-windows complete, %d continue from their "
                          "checkpoints; %d conversations already staged by an earlier try", spool.done_parts(),
                          total, sum(p is not None for p in todo.values()), spool.count)
        for page, records in self._shaped(hook, plan, shaper, progress, todo, spool.count,
                                          checkpoint_every=spool.every):
            spool.add(page, json_lines(records), len(records))
        spool.write(out)
        out.checkpoints = spool.saved  # (the manifest's "checkpoints": the writer itself stages nothing here)
        return saved["walk"]["number"] + 1 if saved is not None else None

    def _write_checkpointed(self, pages: Iterator[tuple[Page, list[dict[str, Any]]]], out: JsonLinesWriter,
                            checkpoints: Checkpoints | None) -> None:
        """Write each page; every ``checkpoint_every_pages`` pages (counted in the window, so the boundaries
        depend on the data only, never on where an earlier try stopped) end a gzip member there and, with a
        state store, save the walk's position once the bytes are durable."""
        every = self.checkpoint_every_pages
        for page, records in pages:
            out.write_lines(json_lines(records))
            if every is None or page.number % every:
                continue
            state = page.resume_state() if checkpoints is not None and page.resume_state is not None else None
            if state is None or state["next"] is None:
                out.checkpoint()  # the walk is over: only the member boundary, nothing left to resume
            else:
                out.checkpoint(partial(checkpoints.save, state) if checkpoints is not None else None)

    def _warn_on_suffix(self, path: ObjectStoragePath) -> None:
        if self.file_format == "parquet":
            if not path.name.endswith(".parquet"):
                self.log.warning("Writing Parquet output to %s, whose name does not end with .parquet; readers "
                                 "that infer the format from the name will misread it", object_uri(path))
            return
        gz = path.name.endswith(".gz")
        if gz != (self.compression == "gzip"):
            self.log.warning(
                "Writing %s output to %s, whose name %s; readers that infer compression from the name will "
                "misread it", "gzip" if self.compression else "uncompressed", object_uri(path),
                "does not end with .gz" if self.compression else "ends with .gz",
            )

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the vendor's conversations endpoint in, the written object out (with row count, size)."""
        from airflow.providers.openlineage.extractors import OperatorLineage

        manifest = self._manifest
        if manifest is None and task_instance is not None:  # a fresh operator object: read the manifest back
            pulled = task_instance.xcom_pull(task_ids=task_instance.task_id, key="return_value")
            manifest = pulled if isinstance(pulled, dict) else None
        return OperatorLineage(inputs=input_datasets(self._lineage_input),
                               outputs=output_datasets(self._output, manifest))


def _save_parallel(checkpoints: Checkpoints, walk: dict[str, Any]) -> None:
    """A parallel export's checkpoint: its state is all in the walk's sub-windows (the object is written last)."""
    checkpoints.save(walk, {"parallel": True})


__all__ = [
    "DEFAULT_MAX_CONVERSATIONS",
    "ConversationsOperator",
    "ConversationsToObjectStorageOperator",
    "TooManyConversationsError",
]
