"""GPTProtoDownloadVideoOperator: nothing paid before a fixable error, and if_exists."""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
import responses
from airflow.sdk import ObjectStoragePath

from airflow_provider_gptproto.exceptions import (
    GPTProtoRequestError,
    GPTProtoVideoDestinationExistsError,
    GPTProtoVideoDownloadError,
)
from airflow_provider_gptproto.hooks.gptproto import GPTProtoHook
from airflow_provider_gptproto.models import GenerationTask, TaskStatus
from airflow_provider_gptproto.operators.gptproto import GPTProtoDownloadVideoOperator

VIDEO_URL = "https://cdn.example.com/t1.mp4"
VIDEO = b"\x00\x00\x00\x18ftypmp42" + bytes(5000)


def operator(**kwargs: Any) -> GPTProtoDownloadVideoOperator:
    return GPTProtoDownloadVideoOperator(task_id="save", gptproto_task_id="t1", **kwargs)


# ----------------------------------------------------------------------------- parse time


def test_readme_s3_destination_fails_when_the_dag_is_parsed() -> None:
    with pytest.raises(GPTProtoRequestError, match=r'pip install "apache-airflow-providers-amazon\[s3fs\]"'):
        operator(destination="s3://aws_default@my-bucket/videos/")


def test_a_templated_s3_destination_fails_at_parse_time_on_its_static_part() -> None:
    with pytest.raises(GPTProtoRequestError, match="s3://"):
        operator(destination="s3://aws_default@my-bucket/{{ ds }}/")


def test_a_bad_if_exists_fails_at_parse_time() -> None:
    with pytest.raises(GPTProtoRequestError, match="if_exists must be one of") as caught:
        operator(destination="/tmp/videos/", if_exists="replace")
    assert caught.value.field == "if_exists"


@pytest.mark.filterwarnings("ignore:Task 'save' was never mapped")
def test_mapped_downloads_are_checked_at_parse_time_too() -> None:
    """``partial()`` does not run ``__init__`` until the mapped task runs, after the generate paid."""
    with pytest.raises(GPTProtoRequestError, match="amazon"):
        GPTProtoDownloadVideoOperator.partial(task_id="save", destination="s3://aws_default@b/videos/")
    with pytest.raises(GPTProtoRequestError, match="if_exists"):
        GPTProtoDownloadVideoOperator.partial(task_id="save", destination="/tmp/v/", if_exists="nope")
    GPTProtoDownloadVideoOperator.partial(task_id="save", destination="{{ params.out }}/", if_exists="skip")


def test_local_and_fully_templated_destinations_parse() -> None:
    assert operator(destination="/tmp/videos/").if_exists == "overwrite"
    assert operator(destination="{{ params.out }}/", if_exists="skip").if_exists == "skip"


# ----------------------------------------------------------------------------- render time


class OutletEvents:
    """``context["outlet_events"]``: an accessor per asset (Assets are not hashable on Airflow 3.1)."""

    def __init__(self) -> None:
        self.extra: dict[str, Any] = {}

    def __getitem__(self, asset: Any) -> SimpleNamespace:
        return SimpleNamespace(extra=self.extra)


def _context(tmp_path: Path) -> dict[str, Any]:
    return {"ti": mock.MagicMock(), "outlet_events": OutletEvents()}


def test_a_rendered_destination_is_checked_before_any_request(tmp_path: Path) -> None:
    op = operator(destination="{{ params.out }}")
    op.destination = "gs://bucket/videos/"  # what rendering produced
    hook = mock.create_autospec(GPTProtoHook, instance=True)
    op.__dict__["hook"] = hook
    with pytest.raises(GPTProtoRequestError, match="apache-airflow-providers-google gcsfs"):
        op.execute(_context(tmp_path))
    hook.get_task.assert_not_called()
    hook.download_video.assert_not_called()


# ----------------------------------------------------------------------------- if_exists


@pytest.fixture
def video_host() -> Any:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(VIDEO_URL, body=VIDEO, content_type="video/mp4")
        yield rsps


def _run(tmp_path: Path, if_exists: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    op = operator(destination=f"{tmp_path}/", if_exists=if_exists)
    hook = GPTProtoHook()
    monkeypatch.setattr(
        hook,
        "get_task",
        lambda task_id: GenerationTask(task_id="t1", status=TaskStatus.SUCCEEDED, video_url=VIDEO_URL),
    )
    op.__dict__["hook"] = hook
    return op.execute(_context(tmp_path))


def test_overwrite_replaces_an_existing_file(tmp_path: Path, video_host: Any, monkeypatch: Any) -> None:
    (tmp_path / "t1.mp4").write_bytes(b"old")
    saved = _run(tmp_path, "overwrite", monkeypatch)
    assert (tmp_path / "t1.mp4").read_bytes() == VIDEO
    assert saved["sha256"] == hashlib.sha256(VIDEO).hexdigest()
    assert len(video_host.calls) == 1


def test_skip_keeps_an_existing_file_and_reports_it(
    tmp_path: Path, video_host: Any, monkeypatch: Any
) -> None:
    (tmp_path / "t1.mp4").write_bytes(b"kept")
    saved = _run(tmp_path, "skip", monkeypatch)
    assert (tmp_path / "t1.mp4").read_bytes() == b"kept"
    assert (saved["bytes"], saved["sha256"]) == (4, hashlib.sha256(b"kept").hexdigest())
    assert len(video_host.calls) == 0  # nothing downloaded


def test_skip_downloads_when_nothing_is_there(tmp_path: Path, video_host: Any, monkeypatch: Any) -> None:
    saved = _run(tmp_path, "skip", monkeypatch)
    assert saved["bytes"] == len(VIDEO)


def test_fail_refuses_to_replace(tmp_path: Path, video_host: Any, monkeypatch: Any) -> None:
    (tmp_path / "t1.mp4").write_bytes(b"old")
    with pytest.raises(
        GPTProtoVideoDestinationExistsError, match=r"t1\.mp4 already exists and if_exists='fail'"
    ):
        _run(tmp_path, "fail", monkeypatch)
    assert (tmp_path / "t1.mp4").read_bytes() == b"old"
    assert len(video_host.calls) == 0


def test_an_unwritable_destination_is_named_not_the_part_file(tmp_path: Path, video_host: Any) -> None:
    """The parent is a file, so the temporary sibling cannot be created (works as root too)."""
    (tmp_path / "not-a-folder").write_bytes(b"")
    dest = ObjectStoragePath(f"file://{tmp_path}/not-a-folder/v.mp4")
    with pytest.raises(GPTProtoVideoDownloadError) as caught:
        GPTProtoHook().download_video(VIDEO_URL, dest)
    assert str(caught.value) == f"Cannot write the video to {dest}: Not a directory"
    assert ".part" not in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-folder"]


def test_a_folder_that_cannot_be_made_is_named(tmp_path: Path, video_host: Any, monkeypatch: Any) -> None:
    (tmp_path / "not-a-folder").write_bytes(b"")
    with pytest.raises(
        GPTProtoVideoDownloadError, match=r"Cannot create the folder of destination .*not-a-folder/sub"
    ):
        op = operator(destination=f"{tmp_path}/not-a-folder/sub/")
        op.__dict__["hook"] = mock.create_autospec(GPTProtoHook, instance=True)
        op.hook.get_task.return_value = GenerationTask(
            task_id="t1", status=TaskStatus.SUCCEEDED, video_url=VIDEO_URL
        )
        op.execute(_context(tmp_path))


README_DAG = """
from airflow.sdk import dag
from airflow_provider_gptproto.operators.gptproto import (
    GPTProtoDownloadVideoOperator, GPTProtoGenerateVideoOperator)

@dag(schedule=None)
def fox_video():
    video = GPTProtoGenerateVideoOperator(task_id="generate", prompt="A red fox in fresh snow",
                                          duration="5s", dimension="1280:768", deferrable=True)
    GPTProtoDownloadVideoOperator(task_id="save", gptproto_task=video.output, destination=DESTINATION)

fox_video()
"""


@pytest.mark.parametrize(
    ("destination", "error"),
    [
        ('"/tmp/gptproto_videos/"', None),
        ('"s3://aws_default@my-bucket/videos/"', 'pip install "apache-airflow-providers-amazon[s3fs]"'),
    ],
)
def test_the_readme_dag_parses_locally_and_names_the_s3_extra(
    tmp_path: Path, destination: str, error: str | None
) -> None:
    """The old README DAG (s3 destination) paid for a video, then failed; now it does not even load."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.2
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    (tmp_path / "fox.py").write_text(README_DAG.replace("DESTINATION", destination), encoding="utf-8")
    bag = DagBag(str(tmp_path))  # AIRFLOW__CORE__LOAD_EXAMPLES=False (tests/conftest.py)
    if error is None:
        assert not bag.import_errors
        assert "fox_video" in bag.dags
    else:
        (message,) = bag.import_errors.values()
        assert error in message
        assert bag.dags == {}
