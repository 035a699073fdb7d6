"""A batch's Video tab reads its manifest: succeeded rows only, local files inside the media roots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_provider_gptproto.plugins.records import manifest_videos


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
