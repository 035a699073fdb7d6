"""Results are read by their kind (one fallback for those without); a batch's from its manifest.

The manifest: succeeded rows only, local files inside the media roots.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_gptproto.hooks.gptproto import SavedVideo
from airflow_provider_gptproto.models import GenerationTask, TaskStatus, VideoGenerationRequest
from airflow_provider_gptproto.models.results import (
    BatchSummary,
    DownloadResult,
    GenerateResult,
    ManifestRow,
    StoryboardResult,
)
from airflow_provider_gptproto.plugins import pages
from airflow_provider_gptproto.plugins.records import (
    VideoRecord,
    as_type,
    event_record,
    manifest_videos,
    read_result,
    result_kind,
)
from airflow_provider_gptproto.storage import DownloadedVideo


def _manifest(folder: Path, rows: list[object]) -> Path:
    path = folder / "manifest.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


ROWS: list[object] = [
    {"index": 0, "prompt": "a", "status": "succeeded", "uri": "/v/0.mp4", "sha256": "0" * 64},
    {"index": 1, "prompt": "b", "status": "failed", "uri": None, "error": "content policy"},
    "not json {",
    {"index": 2, "prompt": "c", "status": "succeeded", "uri": "/v/2.mp4"},
]


def test_succeeded_rows_only_and_bad_lines_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW__GPTPROTO__UI_MEDIA_ROOTS", raising=False)
    path = _manifest(tmp_path, ROWS)
    assert [r["prompt"] for r in manifest_videos(str(path))] == ["a", "c"]
    assert [r["prompt"] for r in manifest_videos(f"file://{path}")] == ["a", "c"]
    assert [r["prompt"] for r in manifest_videos(str(path), limit=1)] == ["a"]


def test_manifests_it_may_not_read_give_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inside, outside = tmp_path / "inside", tmp_path / "outside"
    inside.mkdir()
    outside.mkdir()
    _manifest(inside, ROWS)
    path = _manifest(outside, ROWS)
    monkeypatch.setenv("AIRFLOW__GPTPROTO__UI_MEDIA_ROOTS", str(inside))
    assert manifest_videos(str(path)) == []  # outside [gptproto] ui_media_roots
    assert len(manifest_videos(str(inside / "manifest.jsonl"))) == 2
    assert manifest_videos(f"{inside}/../outside/manifest.jsonl") == []  # resolved before the check
    assert manifest_videos("s3://bucket/manifest.jsonl") == []  # not a local file
    assert manifest_videos("manifest.jsonl") == []  # relative: never resolved against the cwd
    assert manifest_videos(str(inside / "missing.jsonl")) == [] and manifest_videos(None) == []


def test_a_manifest_is_parsed_once_per_version_of_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _manifest(tmp_path, ROWS)
    parsed: list[str] = []
    real_loads = json.loads

    def counting_loads(text: str) -> object:
        parsed.append(text)
        return real_loads(text)

    monkeypatch.setattr("airflow_provider_gptproto.plugins.records.json.loads", counting_loads)
    first = manifest_videos(str(path))
    lines = len(parsed)
    assert lines > 0
    first[0]["prompt"] = "changed by a caller"
    again = manifest_videos(str(path))
    assert len(parsed) == lines  # the Video tab's next request: no second parse
    assert [r["prompt"] for r in again] == ["a", "c"]  # and a caller's change did not leak into it
    _manifest(tmp_path, [*ROWS, {"status": "succeeded", "uri": "/v/d.mp4", "prompt": "d"}])
    assert [r["prompt"] for r in manifest_videos(str(path))] == ["a", "c", "d"]  # rewritten: read again


# ------------------------------------------------------------------------- results read by their kind
TASK = GenerationTask(
    task_id="t1",
    status=TaskStatus.SUCCEEDED,
    video_url="https://cdn.example.com/t1.mp4",
    model="m1",
    usage={"total_tokens": 9},
)
REQUEST = VideoGenerationRequest.build(prompt="a fox", duration="5s", dimension="1280:768", seed=7).summary()
DOWNLOAD: DownloadResult = {
    "kind": "download",
    "task_id": "t1",
    "prompt": "a fox",
    "model": "m1",
    "seed": 7,
    "duration": "5s",
    "dimension": "1280:768",
    "sha256": "ab" * 32,
    "bytes": 1234,
    "uri": "/v/fox.mp4",
    "usage": None,
    "poster_uri": "/v/fox.jpg",
}
BASE = VideoRecord("dag", "run", "task")


def _fields(record: VideoRecord) -> tuple[object, ...]:
    return (
        record.gptproto_task_id,
        record.prompt,
        record.model,
        record.seed,
        record.duration,
        record.dimension,
    )


def test_a_generate_result_is_read_with_the_request_it_names() -> None:
    result: GenerateResult = {"kind": "generate", **TASK.to_dict(), "request": REQUEST}

    [record] = read_result(result, BASE)

    assert _fields(record) == ("t1", "a fox", "m1", 7, "5s", "1280:768")
    assert (record.dag_id, record.run_id, record.task_id) == ("dag", "run", "task")
    assert record.video_url == TASK.video_url and record.usage == {"total_tokens": 9}
    assert record.stored_uri is None and record.bytes is None


def test_the_hooks_saved_video_is_read_with_its_stored_copy() -> None:
    file = DownloadedVideo("/v/fox.mp4", 1234, "ab" * 32, "video/mp4")

    [record] = read_result(SavedVideo(TASK, file, REQUEST).to_dict(), BASE)

    assert _fields(record) == ("t1", "a fox", "m1", 7, "5s", "1280:768")
    assert (record.stored_uri, record.bytes, record.sha256) == ("/v/fox.mp4", 1234, "ab" * 32)


def test_a_download_result_is_read_with_its_poster() -> None:
    [record] = read_result(DOWNLOAD, BASE)

    assert _fields(record) == ("t1", "a fox", "m1", 7, "5s", "1280:768")
    assert (record.stored_uri, record.poster_uri, record.bytes) == ("/v/fox.mp4", "/v/fox.jpg", 1234)


def test_a_batch_summary_is_read_from_the_manifest_it_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIRFLOW__GPTPROTO__UI_MEDIA_ROOTS", raising=False)
    row: ManifestRow = {
        "index": 0, "key": "fox", "line": None, "prompt": "a fox", "task_id": "t1", "status": "succeeded",
        "uri": "/v/fox.mp4", "bytes": 1234, "sha256": "ab" * 32, "seed": None, "usage": None, "error": None,
        "error_kind": None, "request": {"prompt": "a fox", "model": "m1", "seed": 7, "resolution": "720p"},
    }  # fmt: skip
    failed: ManifestRow = {**row, "key": "owl", "status": "failed", "uri": None, "error": "content policy"}
    manifest = _manifest(tmp_path, [row, failed])
    summary: BatchSummary = {"kind": "batch", "total": 2, "succeeded": 1, "failed": 1,
                             "manifest": str(manifest), "destination": str(tmp_path)}  # fmt: skip

    [record] = read_result(summary, BASE)

    assert _fields(record) == ("t1", "a fox", "m1", 7, None, "720p")
    assert (record.stored_uri, record.bytes) == ("/v/fox.mp4", 1234)


def test_the_kind_not_the_shape_picks_the_reader() -> None:
    """A download result with keys a batch summary or a task has (a DAG's own extras) is a download."""
    result = {**DOWNLOAD, "status": "archived", "manifest": "/elsewhere/manifest.jsonl"}

    assert result_kind(result) == "download"
    assert [r.stored_uri for r in read_result(result, BASE)] == ["/v/fox.mp4"]


def test_a_dry_runs_plan_names_no_video() -> None:
    plan = {"kind": "plan", "videos": 3, "video_seconds": 15, "resolutions": {"default": 3}, "task_id": "t1"}
    assert read_result(plan, BASE) == []


def _without_kind(result: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in result.items() if name != "kind"}


@pytest.mark.parametrize(
    ("result", "kind", "stored_uri", "video_url"),
    [
        ({**TASK.to_dict(), "request": REQUEST}, "generate", None, TASK.video_url),
        (
            _without_kind(
                SavedVideo(TASK, DownloadedVideo("/v/f.mp4", 1, "a" * 64, "video/mp4"), REQUEST).to_dict()
            ),
            "saved_video",
            "/v/f.mp4",
            TASK.video_url,
        ),
        (_without_kind(DOWNLOAD), "download", "/v/fox.mp4", None),
        ({"task_id": "t1", "uri": "/v/fox.mp4", "prompt": "a fox"}, "download", "/v/fox.mp4", None),
        (
            {"kind": "video", "task_id": "t1", "uri": "/v/fox.mp4", "prompt": "a fox"},
            "download",
            "/v/fox.mp4",
            None,
        ),
    ],
    ids=["generate", "saved-video", "download", "a-tasks-own-dict", "an-unknown-kind"],
)
def test_a_result_without_a_known_kind_is_read_by_its_shape(
    result: dict[str, Any], kind: str, stored_uri: str | None, video_url: str | None
) -> None:
    """Results of the release before kinds, and tasks returning the same shape, still show."""
    assert result_kind(result) == kind
    [record] = read_result(result, BASE)
    assert (record.gptproto_task_id, record.prompt) == ("t1", "a fox")
    assert (record.stored_uri, record.video_url) == (stored_uri, video_url)


def test_a_batch_summary_without_a_kind_is_read_from_its_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIRFLOW__GPTPROTO__UI_MEDIA_ROOTS", raising=False)
    manifest = _manifest(tmp_path, ROWS)
    summary = {"total": 3, "succeeded": 2, "failed": 1, "manifest": str(manifest), "destination": "/v"}

    assert result_kind(summary) == "batch"
    assert [(r.prompt, r.stored_uri) for r in read_result(summary, BASE)] == [
        ("a", "/v/0.mp4"),
        ("c", "/v/2.mp4"),
    ]


def test_fields_of_another_type_than_declared_are_left_out() -> None:
    result = {
        "kind": "download",
        "task_id": 7,
        "prompt": {"text": "a fox"},
        "bytes": "many",
        "usage": "lots",
        "uri": "/v/fox.mp4",
        "seed": 3,
    }

    assert as_type(DownloadResult, result) == {"kind": "download", "uri": "/v/fox.mp4", "seed": 3}
    [record] = read_result(result, BASE)
    assert (record.stored_uri, record.seed) == ("/v/fox.mp4", 3)
    assert (record.gptproto_task_id, record.prompt, record.bytes, record.usage) == (None, None, None, None)


def _event(extra: dict[str, Any]) -> Any:
    return SimpleNamespace(
        extra=extra,
        source_dag_id="dag",
        source_run_id="run",
        source_task_id="download",
        source_map_index=None,
        id=5,
        timestamp=None,
    )


def test_an_asset_events_extra_is_read_as_a_download_result() -> None:
    record = event_record(_event(dict(DOWNLOAD)))

    assert _fields(record) == ("t1", "a fox", "m1", 7, "5s", "1280:768")
    assert (record.stored_uri, record.poster_uri, record.event_id, record.map_index) == (
        "/v/fox.mp4",
        "/v/fox.jpg",
        5,
        -1,
    )


@pytest.mark.parametrize("kind", [{"kind": "batch"}, {}], ids=["typed", "without-a-kind"])
def test_a_batch_events_extra_says_how_many_videos_it_made(kind: dict[str, str]) -> None:
    extra = {
        **kind,
        "total": 3,
        "succeeded": 2,
        "failed": 1,
        "manifest": "/v/manifest.jsonl",
        "destination": "/v",
    }

    record = event_record(_event(extra))

    assert record.prompt == "Batch: 2 of 3 videos (see the task's Video tab)" and record.stored_uri is None


def test_a_storyboard_is_its_stitched_video_with_the_shots_spans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__GPTPROTO__UI_MEDIA_ROOTS", str(tmp_path))
    document = {
        "shots": [
            {"index": 0, "prompt": "A bottle on a table", "start": 0.0, "end": 4.875, "task_id": "t0"},
            {"index": 1, "prompt": "The bottle turns", "start": 4.875, "end": "late"},  # not a number
            "not a shot",
        ]
    }
    (tmp_path / "storyboard.json").write_text(json.dumps(document))
    result: StoryboardResult = {
        "kind": "storyboard", "uri": str(tmp_path / "storyboard.mp4"), "manifest_uri": "m",
        "storyboard_uri": str(tmp_path / "storyboard.json"), "chapters_uri": "c",
        "destination": str(tmp_path), "duration": 9.75, "shots": 2, "method": "copy", "usage": None,
    }  # fmt: skip

    [record] = read_result(result, BASE)

    assert (record.stored_uri, record.duration) == (str(tmp_path / "storyboard.mp4"), 9.75)
    assert record.extra["shots"] == [
        {"index": 0, "prompt": "A bottle on a table", "start": 0.0, "end": 4.875},
        {"index": 1, "prompt": "The bottle turns", "start": 4.875, "end": None},
    ]
    page = pages.video_tab("storyboard", [(record, "/media/v", None, "")])
    assert "<caption>Shots</caption>" in page and "4.88 s" in page and "The bottle turns" in page

    monkeypatch.setenv("AIRFLOW__GPTPROTO__UI_MEDIA_ROOTS", str(tmp_path / "elsewhere"))
    assert read_result(result, BASE)[0].extra["shots"] == []  # outside the media roots: not read


def test_each_take_of_a_result_shows_which_take_it_is_and_its_seed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIRFLOW__GPTPROTO__UI_MEDIA_ROOTS", raising=False)
    takes: list[GenerateResult] = [
        {"kind": "generate", **TASK.to_dict(), "task_id": f"t{k}", "seed": 10 + k, "take": k, "takes": 2}
        for k in (1, 2)
    ]
    records = [r for result in takes for r in read_result(result, BASE)]
    assert [(r.metadata()["Take"], r.metadata()["Seed"]) for r in records] == [("1 of 2", 11), ("2 of 2", 12)]

    row = {"index": 3, "prompt_index": 1, "take": 2, "takes": 2, "prompt": "b", "status": "succeeded",
           "uri": "/v/b-take-2.mp4", "seed": 99}  # fmt: skip
    summary = {"kind": "batch", "manifest": str(_manifest(tmp_path, [row]))}
    [record] = read_result(summary, BASE)
    assert (record.metadata()["Take"], record.metadata()["Seed"]) == ("2 of 2", 99)

    single: GenerateResult = {"kind": "generate", **TASK.to_dict(), "request": REQUEST, "take": 1, "takes": 1}
    [record] = read_result(single, BASE)
    assert "Take" not in record.metadata() and record.metadata()["Seed"] == 7
