"""OpenLineage for GPTProto tasks: what the operators' ``get_openlineage_facets_on_complete`` return
(docs/openlineage.md). Imported lazily, so the provider works without the openlineage provider.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attr
from airflow.providers.common.compat.openlineage.facet import Dataset, RunFacet
from airflow.providers.common.compat.openlineage.utils.utils import translate_airflow_asset
from airflow.providers.common.compat.sdk import Asset
from airflow.providers.openlineage.extractors import OperatorLineage
from openlineage.client.naming.dataset import GCS, S3, LocalFileSystem

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    from airflow_provider_gptproto.models import VideoGenerationRequest

RUN_FACET_NAME = "gptproto"
RUN_FACET_SCHEMA_URL = (
    "https://raw.githubusercontent.com/gptproto/airflow-provider-gptproto/main/"
    "airflow_provider_gptproto/utils/gptproto_run_facet.json"
)
LOCAL_PROTOCOLS = ("", "file", "local")
BUCKET_NAMING: dict[str, type[S3 | GCS]] = {"s3": S3, "s3a": S3, "gs": GCS, "gcs": GCS}


@attr.define
class GPTProtoRunFacet(RunFacet):
    """What was generated, and what it cost (``usage`` exactly as the API reported it)."""

    taskId: str
    model: str | None = attr.field(default=None)
    seed: int | None = attr.field(default=None)
    duration: str | int | None = attr.field(default=None)
    dimension: str | None = attr.field(default=None)
    resolution: str | None = attr.field(default=None)
    usage: dict[str, int] | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return RUN_FACET_SCHEMA_URL


def run_facet(result: Mapping[str, Any], request: Mapping[str, Any] | None) -> GPTProtoRunFacet:
    """The ``gptproto`` facet of a finished task (an XCom-shaped dict); the request fills the rest."""
    asked = request or {}
    frames = asked.get("frames")

    def first(*values: Any) -> Any:
        return next((v for v in values if v is not None), None)

    return GPTProtoRunFacet(
        taskId=str(result["task_id"]),
        model=first(result.get("model"), asked.get("model")),
        seed=first(result.get("seed"), asked.get("seed")),
        duration=first(asked.get("duration"), f"{frames} frames" if frames else None),
        dimension=first(asked.get("dimension"), asked.get("ratio")),
        resolution=asked.get("resolution"),
        usage=result.get("usage"),
    )


def storage_dataset(location: str | ObjectStoragePath) -> Dataset:
    """The OpenLineage dataset of a stored object (an ``ObjectStoragePath`` or its URI).

    The connection id of ``s3://conn@bucket/key`` is Airflow's, not part of the object's name.
    """
    parts = urlsplit(str(location))
    protocol = parts.scheme.lower()
    if protocol in LOCAL_PROTOCOLS:
        return _translated(f"file://{parts.netloc}{parts.path}") or _named(LocalFileSystem(path=parts.path))
    bucket, key = parts.netloc.rpartition("@")[2], parts.path.lstrip("/")
    uri = f"{protocol}://{bucket}/{key}"
    if protocol in BUCKET_NAMING:
        return _translated(uri) or _named(BUCKET_NAMING[protocol](bucket_name=bucket, object_key=key))
    return _translated(uri) or Dataset(namespace=f"{protocol}://{bucket}", name=key)


def image_datasets(images: Iterable[Any]) -> list[Dataset]:
    """Input datasets for the reference images that are http(s) URLs.

    Namespace ``scheme://host[:port]``, name the path: no credentials, query or fragment, which for
    presigned URLs hold signatures that must not reach a lineage backend.
    """
    datasets = []
    for image in images:
        url = getattr(image, "url", image)
        parts = urlsplit(str(url))
        if parts.scheme in ("http", "https") and parts.hostname:
            host = parts.hostname + (f":{parts.port}" if parts.port else "")
            datasets.append(Dataset(namespace=f"{parts.scheme}://{host}", name=parts.path or "/"))
    return datasets


def generate_lineage(result: Mapping[str, Any] | None, request: VideoGenerationRequest) -> OperatorLineage:
    """The generate task's lineage: reference image URLs in, the ``gptproto`` facet once a task exists."""
    inputs = image_datasets(request.images or ())
    if not result or not result.get("task_id"):
        return OperatorLineage(inputs=inputs)
    facet = run_facet(result, result.get("request") or request.summary())
    return OperatorLineage(inputs=inputs, run_facets={RUN_FACET_NAME: facet})


def download_lineage(saved: Mapping[str, Any] | None, request: Mapping[str, Any] | None) -> OperatorLineage:
    """The download task's lineage: the stored video out, and the ``gptproto`` facet."""
    if not saved:
        return OperatorLineage()
    return OperatorLineage(
        outputs=[storage_dataset(saved["uri"])], run_facets={RUN_FACET_NAME: run_facet(saved, request)}
    )


def storyboard_lineage(result: Mapping[str, Any] | None) -> OperatorLineage:
    """A storyboard's lineage: the stitched video out (its shots' tasks are in storyboard.json)."""
    return OperatorLineage(outputs=[storage_dataset(result["uri"])] if result else [])


def _translated(uri: str) -> Dataset | None:
    """What Airflow's openlineage integration makes of this URI as an asset (provider converters)."""
    try:
        asset = Asset(uri=uri)
    except ValueError:  # a URI Airflow refuses as an asset: name it ourselves
        return None
    return translate_airflow_asset(asset, None)


def _named(naming: LocalFileSystem | S3 | GCS) -> Dataset:
    """The dataset the OpenLineage client's naming class gives (when Airflow's converter gives none)."""
    return Dataset(namespace=naming.get_namespace(), name=naming.get_name())
