"""GPTProtoPublishVideosOperator: only the chosen takes, whole files, stable names, one asset event."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowSkipException
from airflow.sdk.execution_time.context import OutletEventAccessors

from airflow_provider_gptproto.exceptions import GPTProtoRequestError, GPTProtoVideoDownloadError
from airflow_provider_gptproto.operators.publish import PUBLISHED, GPTProtoPublishVideosOperator
from airflow_provider_gptproto.storage import DownloadedVideo

SOURCE = {"dag_id": "d", "run_id": "r", "task_id": "generate", "map_index": -1}


class DownloadHook:
    """Stands in for the hook's download path (a take known only by its signed URL)."""

    def __init__(self) -> None:
        self.downloads: list[tuple[str, str, str]] = []

    def close(self) -> None:
        pass

    def download_task_video(self, task: Any, destination: Any) -> DownloadedVideo:
        self.downloads.append((task.task_id, task.video_url, str(destination)))
        data = b"downloaded " + task.video_url.encode()
        Path(destination.path).write_bytes(data)
        return DownloadedVideo(str(destination), len(data), hashlib.sha256(data).hexdigest(), "video/mp4")


def takes(tmp_path: Path) -> list[Path]:
    """Three stored takes of one prompt."""
    folder = tmp_path / "generated"
    folder.mkdir()
    paths = []
    for k in (1, 2, 3):
        path = folder / f"take-{k}.mp4"
        path.write_bytes(f"video take {k} ".encode() * 1000)
        paths.append(path)
    return paths


def chosen(path: Path | None, group: int, take: int, **extra: Any) -> dict[str, Any]:
    data = path.read_bytes() if path else None
    return {
        "group": group,
        "prompt": "A lighthouse at dusk",
        "take": take,
        "seed": take,
        "uri": str(path) if path else None,
        "video_url": None,
        "sha256": hashlib.sha256(data).hexdigest() if data else None,
        "gptproto_task_id": f"t{take}",
        "source": SOURCE,
        **extra,
    }


def review(*picks: dict[str, Any], approved: bool = True) -> dict[str, Any]:
    return {"kind": "review", "approved": approved, "chosen": list(picks), "responded_by": None,
            "responded_at": None, "timed_out": False}  # fmt: skip


def publish(
    value: Any, destination: Path, hook: DownloadHook | None = None
) -> tuple[Any, OutletEventAccessors]:
    op = GPTProtoPublishVideosOperator(task_id="publish", review=value, destination=str(destination))
    op.__dict__["hook"] = hook or DownloadHook()
    events = OutletEventAccessors()
    return op.execute({"outlet_events": events}), events  # type: ignore[arg-type]


def test_only_the_chosen_takes_are_copied_under_stable_names(tmp_path: Path) -> None:
    paths = takes(tmp_path)
    out = tmp_path / "site"
    result, events = publish(review(chosen(paths[1], 1, 2)), out)
    assert sorted(p.name for p in out.iterdir()) == ["01-a-lighthouse-at-dusk-take2.mp4"]
    published = out / "01-a-lighthouse-at-dusk-take2.mp4"
    assert published.read_bytes() == paths[1].read_bytes()
    (entry,) = result["published"]
    assert entry == {
        "group": 1,
        "take": 2,
        "prompt": "A lighthouse at dusk",
        "uri": str(published),
        "bytes": paths[1].stat().st_size,
        "sha256": hashlib.sha256(paths[1].read_bytes()).hexdigest(),
        "source_uri": str(paths[1]),
    }
    assert result["kind"] == "publish" and result["destination"] == str(out)
    # One event, on the asset that is the destination folder, its extra the result.
    (event,) = events[PUBLISHED].asset_alias_events
    assert event.dest_asset_key.uri == f"file://{out}" and event.extra == result


def test_a_take_without_a_stored_copy_is_downloaded_through_the_hook(tmp_path: Path) -> None:
    hook = DownloadHook()
    take = chosen(None, 2, 3, video_url="https://cdn.test/v3.mp4?X-Tos-Expires=60")
    result, _ = publish(review(take), tmp_path / "site", hook)
    target = tmp_path / "site" / "02-a-lighthouse-at-dusk-take3.mp4"
    assert hook.downloads == [("t3", "https://cdn.test/v3.mp4?X-Tos-Expires=60", str(target))]
    assert result["published"][0]["uri"] == str(target) and target.is_file()


def test_a_failed_copy_leaves_nothing_at_the_destination(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = takes(tmp_path)
    out = tmp_path / "site"
    out.mkdir()
    import airflow_provider_gptproto.operators.publish as module

    def broken(source: Any) -> Any:
        yield paths[0].read_bytes()[:100]
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(module, "_chunks", broken)
    with pytest.raises(GPTProtoVideoDownloadError, match="Input/output error"):
        publish(review(chosen(paths[0], 1, 1)), out)
    assert list(out.iterdir()) == []  # neither the video nor its temporary file


def test_a_take_changed_since_the_review_is_not_published(tmp_path: Path) -> None:
    paths = takes(tmp_path)
    take = chosen(paths[0], 1, 1)
    paths[0].write_bytes(b"replaced after the review")
    earlier = tmp_path / "site" / "01-a-lighthouse-at-dusk-take1.mp4"  # an earlier run's publication
    earlier.parent.mkdir()
    earlier.write_bytes(b"published before")
    with pytest.raises(GPTProtoVideoDownloadError, match=r"not published: Video has sha256 \w+, expected"):
        publish(review(take), tmp_path / "site")
    assert [p.name for p in earlier.parent.iterdir()] == [earlier.name]  # no temporary file left
    assert earlier.read_bytes() == b"published before"


def test_a_rejected_review_publishes_nothing(tmp_path: Path) -> None:
    paths = takes(tmp_path)
    with pytest.raises(AirflowSkipException, match="rejected"):
        publish(review(chosen(paths[0], 1, 1), approved=False), tmp_path / "site")
    assert not (tmp_path / "site").exists()


def test_input_that_is_not_a_review_is_refused(tmp_path: Path) -> None:
    with pytest.raises(GPTProtoRequestError) as exc:
        publish({"kind": "batch", "manifest": "m"}, tmp_path / "site")
    assert exc.value.field == "review"


def test_a_destination_without_its_filesystem_package_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from fsspec.registry import known_implementations

    monkeypatch.setitem(known_implementations, "gptprotofs", {"class": "gptprotofs_missing.FS"})
    import airflow_provider_gptproto.utils.destination as destination

    monkeypatch.setattr(destination, "filesystem_registered", lambda protocol: True)
    with pytest.raises(GPTProtoRequestError, match="needs the Python package 'gptprotofs_missing'") as exc:
        GPTProtoPublishVideosOperator(task_id="p", review={}, destination="gptprotofs://bucket/site")
    assert exc.value.field == "destination"
