"""Where an export's object goes: a full object path as given, or one deterministic object per window below a
directory, so re-runs and backfills replace exactly the object of their own window::

    <destination>/vendor=<vendor>/conn_id=<conn_id>/time_key=<time_key>/
        start=<start, ISO 8601 Z>/end=<end, ISO 8601 Z>/conversations.jsonl[.gz]   (or conversations.parquet)
"""

from __future__ import annotations

from airflow.sdk import ObjectStoragePath

from airflow_provider_conversations.windows import Window, iso_z


def suffix_for(compression: str | None, file_format: str = "jsonl") -> str:
    if file_format == "parquet":
        return ".parquet"  # Parquet compresses inside the file: readers never look for .zstd or .gz
    return ".jsonl.gz" if compression == "gzip" else ".jsonl"


def object_path(destination: str | ObjectStoragePath, *, destination_conn_id: str | None, window: Window,
                vendor: str, conn_id: str, time_key: str, compression: str | None,
                file_format: str = "jsonl") -> ObjectStoragePath:
    """The object an export of ``window`` writes: ``destination`` itself, or its layout below a directory.

    A directory is a URL ending with ``/``, or an existing directory.
    """
    if isinstance(destination, ObjectStoragePath):
        base = destination
        if destination_conn_id and destination.conn_id != destination_conn_id:
            base = ObjectStoragePath(destination, conn_id=destination_conn_id)
        directory = written_with_slash(destination) or base.is_dir()
    else:
        text = str(destination).strip()
        base = ObjectStoragePath(text, conn_id=destination_conn_id or None)
        directory = text.endswith("/") or base.is_dir()
    if not directory:
        return base
    return (base / f"vendor={vendor}" / f"conn_id={conn_id}" / f"time_key={time_key}"
            / f"start={iso_z(window.start)}" / f"end={iso_z(window.end)}"
            / f"conversations{suffix_for(compression, file_format)}")


def written_with_slash(path: ObjectStoragePath) -> bool:
    """Whether an ObjectStoragePath was built from a URL ending with "/" (it drops the slash itself).

    universal-pathlib keeps the URL as given in ``_raw_urlpaths``; without it, only an existing directory counts.
    """
    raw = getattr(getattr(path, "__wrapped__", None), "_raw_urlpaths", None)
    return bool(raw) and str(raw[-1]).endswith("/")  # type: ignore[index]


__all__ = ["object_path", "suffix_for", "written_with_slash"]
