"""utils/openlineage.py and the operators' get_openlineage_facets_on_complete (mocked hook)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

pytest.importorskip("airflow.providers.openlineage")

from openlineage.client.naming.dataset import LocalFileSystem
from openlineage.client.serde import Serde

from airflow_provider_gptproto.models import VideoGenerationRequest, parse_task
from airflow_provider_gptproto.operators.gptproto import (
    GPTProtoDownloadVideoOperator,
    GPTProtoGenerateVideoOperator,
)
from airflow_provider_gptproto.storage import DownloadedVideo
from airflow_provider_gptproto.utils import openlineage as ol

FACET_SCHEMA = json.loads((Path(ol.__file__).parent / "gptproto_run_facet.json").read_text())
USAGE = {"completion_tokens": 108900, "total_tokens": 108900}


def names(datasets: list[Any]) -> list[tuple[str, str]]:
    return [(d.namespace, d.name) for d in datasets]


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("/data/videos/a.mp4", ("file", "/data/videos/a.mp4")),
        ("file:///data/videos/a.mp4", ("file", "/data/videos/a.mp4")),
        ("s3://aws_default@my-bucket/videos/a.mp4", ("s3://my-bucket", "videos/a.mp4")),
        ("s3://my-bucket/videos/a.mp4", ("s3://my-bucket", "videos/a.mp4")),
        ("gs://my-bucket/videos/a.mp4", ("gs://my-bucket", "videos/a.mp4")),
        ("gcs://google_cloud_default@my-bucket/a.mp4", ("gs://my-bucket", "a.mp4")),
    ],
)
def test_stored_video_follows_openlineage_naming(location: str, expected: tuple[str, str]) -> None:
    assert names([ol.storage_dataset(location)]) == [expected]


def test_local_naming_agrees_with_the_airflow_asset_converter() -> None:
    """The common-io converter (used for file:// assets) and the client's naming class agree."""
    client_named = ol._named(LocalFileSystem(path="/data/a.mp4"))
    assert names([ol._translated("file:///data/a.mp4")]) == names([client_named])


def test_only_http_reference_images_are_inputs_and_lose_secrets() -> None:
    request = VideoGenerationRequest.build(
        images=[
            {"url": "https://u:pw@cdn.example/refs/a.png?X-Amz-Signature=s3cr3t#x", "role": "first_frame"},
            {"url": "http://cdn.example:8080/refs/b.png", "role": "last_frame"},
        ],
        prompt="p",
    )
    datasets = ol.image_datasets(request.images or ())
    assert names(datasets) == [
        ("https://cdn.example", "/refs/a.png"),
        ("http://cdn.example:8080", "/refs/b.png"),
    ]
    assert ol.image_datasets(["data:image/png;base64,AAAA"]) == []


def test_run_facet_serializes_to_its_schema() -> None:
    facet = ol.run_facet(
        {"task_id": "cgt-1", "model": "m", "seed": 7, "usage": USAGE},
        {"duration": 5, "ratio": "16:9", "resolution": "720p"},
    )
    data = Serde.to_dict(facet)
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(data, FACET_SCHEMA)
    assert data["_schemaURL"] == FACET_SCHEMA["$id"]
    assert {k: v for k, v in data.items() if not k.startswith("_")} == {
        "taskId": "cgt-1",
        "model": "m",
        "seed": 7,
        "duration": 5,
        "dimension": "16:9",
        "resolution": "720p",
        "usage": USAGE,
    }


def test_run_facet_without_usage_leaves_it_out() -> None:
    data = Serde.to_dict(ol.run_facet({"task_id": "t"}, {"dimension": "1280x720", "duration": "5s"}))
    assert "usage" not in data and data["dimension"] == "1280x720" and data["duration"] == "5s"


def test_generate_operator_lineage_has_inputs_and_the_facet() -> None:
    op = GPTProtoGenerateVideoOperator(
        task_id="g", prompt="p", images=["https://cdn.example/a.png"], resolution="480p", seed=3
    )
    before = op.get_openlineage_facets_on_complete(mock.Mock())
    assert names(before.inputs) == [("https://cdn.example", "/a.png")] and before.run_facets == {}

    op._result = {
        "task_id": "cgt-9",
        "model": "m",
        "seed": 3,
        "usage": USAGE,
        "request": {"resolution": "480p"},
    }
    lineage = op.get_openlineage_facets_on_complete(mock.Mock())
    facet = lineage.run_facets["gptproto"]
    assert (facet.taskId, facet.seed, facet.resolution, facet.usage) == ("cgt-9", 3, "480p", USAGE)


def test_download_records_usage_in_the_asset_extra_and_lineage(tmp_path: Path) -> None:
    op = GPTProtoDownloadVideoOperator(
        task_id="d",
        gptproto_task={"task_id": "cgt-9", "request": {"prompt": "p", "dimension": "1280x720"}},
        destination=str(tmp_path) + "/",
    )
    task = parse_task(
        {
            "id": "cgt-9",
            "status": "succeeded",
            "model": "m",
            "seed": 5,
            "usage": USAGE,
            "content": {"video_url": "https://cdn.example/v.mp4"},
        }
    )
    dest = tmp_path / "cgt-9.mp4"
    hook = mock.Mock()
    hook.get_task.return_value = task
    hook.download_task_video.return_value = DownloadedVideo(str(dest), 10, "ab" * 32, "video/mp4")
    events: list[Any] = []  # one accessor per outlet (Assets are unhashable on Airflow 3.0)
    outlet_events = mock.MagicMock()
    outlet_events.__getitem__.side_effect = lambda key: events.append(mock.Mock(extra={})) or events[-1]
    with mock.patch.object(GPTProtoDownloadVideoOperator, "hook", hook):
        result = op.execute({"ti": mock.Mock(), "outlet_events": outlet_events})  # type: ignore[arg-type]

    assert result["usage"] == USAGE
    assert [e.extra["usage"] for e in events] == [USAGE]
    lineage = op.get_openlineage_facets_on_complete(mock.Mock())
    assert names(lineage.outputs) == [("file", str(dest))]
    facet = lineage.run_facets["gptproto"]
    assert (facet.taskId, facet.model, facet.seed, facet.dimension, facet.usage) == (
        "cgt-9",
        "m",
        5,
        "1280x720",
        USAGE,
    )


def test_the_provider_works_without_the_openlineage_provider(tmp_path: Path) -> None:
    """Operators import and build without the OpenLineage client, and never load our lineage module."""
    script = tmp_path / "probe.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            sys.modules["openlineage"] = None  # any import of the OpenLineage client raises ImportError
            from airflow_provider_gptproto.operators.gptproto import (
                GPTProtoDownloadVideoOperator, GPTProtoGenerateVideoOperator,
            )
            op = GPTProtoGenerateVideoOperator(task_id="g", prompt="p")
            GPTProtoDownloadVideoOperator(task_id="d", gptproto_task_id="t", destination="/tmp/x.mp4")
            assert op.build_request().prompt == "p"
            assert "airflow_provider_gptproto.utils.openlineage" not in sys.modules
            print("ok")
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=os.environ.copy()
    )
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]


def test_without_a_transport_openlineage_stays_off() -> None:
    """Installed but unconfigured (as in the rest of the suite), the listener is not registered."""
    from airflow.providers.openlineage import conf
    from airflow.providers.openlineage.plugins.openlineage import OpenLineageProviderPlugin

    assert not any(k.startswith(("OPENLINEAGE", "AIRFLOW__OPENLINEAGE")) for k in os.environ)
    assert conf.is_disabled()
    assert not OpenLineageProviderPlugin.listeners
