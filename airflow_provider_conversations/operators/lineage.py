"""What an export tells Airflow about its data: Asset events and OpenLineage datasets (optional provider)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import Asset, AssetAlias, ObjectStoragePath


def emit_asset_events(outlets: Sequence[Any], outlet_events: Any, manifest: Mapping[str, Any]) -> None:
    """Static Asset outlets get the manifest as event extra; an AssetAlias gets an event for the object."""
    if not outlets or outlet_events is None:
        return
    for outlet in outlets:
        if isinstance(outlet, AssetAlias):
            outlet_events[outlet].add(Asset(manifest["uri"]), extra=dict(manifest))
        elif isinstance(outlet, Asset):
            outlet_events[outlet].extra.update(manifest)


def input_datasets(source: tuple[str, str] | None) -> list[Any]:
    """The vendor's conversations endpoint (``(base URL, path)``) as an OpenLineage input."""
    from airflow.providers.common.compat.openlineage.facet import Dataset

    if source is None:
        return []
    namespace, name = source
    return [Dataset(namespace=namespace, name=name)]


def output_datasets(path: ObjectStoragePath | None, manifest: Mapping[str, Any] | None) -> list[Any]:
    """The written object as an OpenLineage output, with its row count and size when the manifest is known."""
    from airflow.providers.common.compat.openlineage.facet import OutputDataset, OutputStatisticsOutputDatasetFacet

    if path is None and manifest is not None:
        path = ObjectStoragePath(manifest["uri"])
    if path is None:
        return []
    facets: dict[str, Any] = {}
    if manifest is not None:
        facets["outputStatistics"] = OutputStatisticsOutputDatasetFacet(rowCount=manifest["count"],
                                                                        size=manifest["bytes"])
    return [OutputDataset(namespace=path.namespace or "file", name=path.key, outputFacets=facets)]


__all__ = ["emit_asset_events", "input_datasets", "output_datasets"]
