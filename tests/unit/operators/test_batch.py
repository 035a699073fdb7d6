"""GPTProtoBatchGenerateVideosOperator with a mocked hook: resume, partial failures, validation."""

from __future__ import annotations

import json
import logging
import os
import time
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, TaskDeferred

from airflow_provider_gptproto.exceptions import (
    GPTProtoError,
    GPTProtoRequestError,
    GPTProtoServerError,
    GPTProtoTaskMayExistError,
    GPTProtoVideoDownloadError,
)
from airflow_provider_gptproto.hooks.gptproto import GPTProtoHook
from airflow_provider_gptproto.models import GenerationTask, TaskList, TaskStatus
from airflow_provider_gptproto.operators.batch import GPTProtoBatchGenerateVideosOperator
from airflow_provider_gptproto.storage import STALE_PART_SECONDS, DownloadedVideo
from airflow_provider_gptproto.triggers.batch import GPTProtoBatchTrigger
from tests.unit.utils.test_batch_journal import DictKV


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, no except clause catches it."""


class FakeHook:
    """Remote tasks finish at once; ``outcomes`` maps a prompt word to a terminal status."""

    log = logging.getLogger(__name__)
    download_task_video = GPTProtoHook.download_task_video  # the real one, over this fake's I/O

    def __init__(self, outcomes: dict[str, TaskStatus] | None = None) -> None:
        self.outcomes = outcomes or {}
        self.created: list[str] = []  # prompts, one entry per paid create
        self.prompt_of: dict[str, str] = {}
        self.status_reads: list[list[str]] = []
        self.listed: list[GenerationTask] = []
        self.kill_on_read = False
        self.create_error: dict[str, BaseException] = {}
        self.settings = SimpleNamespace(timeout=0.0)
        self.download_kwargs: list[dict[str, Any]] = []
        self.broken_downloads: set[str] = set()  # task ids whose video stream breaks
        self.downloaded: list[str] = []  # video URLs, one per stored video

    def create_task(self, request: Any) -> GenerationTask:
        if request.prompt in self.create_error:
            raise self.create_error.pop(request.prompt)
        task_id = f"t{len(self.prompt_of)}"
        self.created.append(request.prompt)
        self.prompt_of[task_id] = request.prompt
        return GenerationTask(task_id=task_id, status=TaskStatus.PENDING)

    def _task(self, task_id: str) -> GenerationTask:
        prompt = self.prompt_of[task_id]
        status = next((s for word, s in self.outcomes.items() if word in prompt), TaskStatus.SUCCEEDED)
        return GenerationTask(
            task_id=task_id,
            status=status,
            video_url=f"http://videos/{task_id}.mp4" if status is TaskStatus.SUCCEEDED else None,
            error_code="OutputVideoSensitiveContentDetected" if "policy" in prompt else None,
            seed=7,
            usage={"total_tokens": 100},
        )

    def get_tasks(self, task_ids: list[str]) -> dict[str, GenerationTask]:
        self.status_reads.append(list(task_ids))
        if self.kill_on_read:
            raise Killed
        return {i: self._task(i) for i in task_ids}

    def get_task(self, task_id: str) -> GenerationTask:
        return self._task(task_id)

    def download_video(self, url: str, destination: Any, **kwargs: Any) -> DownloadedVideo:
        self.download_kwargs.append(kwargs)
        if any(f"/{task_id}.mp4" in url for task_id in self.broken_downloads):
            raise GPTProtoVideoDownloadError("Video truncated: got 10 of 20 bytes")
        self.downloaded.append(url)
        Path(destination.path).write_bytes(b"mp4 " + url.encode())
        return DownloadedVideo(str(destination), 4 + len(url), "ab" * 32, "video/mp4")

    def list_tasks(self, **_: Any) -> TaskList:
        return TaskList(items=self.listed, total=len(self.listed))

    def cancel_task(self, task_id: str) -> None:
        pass

    def close(self) -> None:
        pass


class OutletEvents:
    """``context["outlet_events"]`` keyed by asset name (Assets are unhashable on Airflow 3.1)."""

    def __init__(self) -> None:
        self.by_name: dict[str, SimpleNamespace] = defaultdict(lambda: SimpleNamespace(extra={}))

    def __getitem__(self, asset: Any) -> SimpleNamespace:
        return self.by_name[asset.name]


def _context(store: DictKV | None) -> dict[str, Any]:
    return {
        "task_state_store": store,
        "ti": SimpleNamespace(xcom_push=lambda **_: None),
        "outlet_events": OutletEvents(),
    }


def _operator(hook: FakeHook, tmp_path: Path, **kwargs: Any) -> GPTProtoBatchGenerateVideosOperator:
    if "retry_failed_from" not in kwargs and "requests_file" not in kwargs:
        kwargs.setdefault("prompts", [f"video {i}" for i in range(7)])
    op = GPTProtoBatchGenerateVideosOperator(
        task_id="batch",
        destination=str(tmp_path / "out"),
        max_in_flight=3,
        poll_interval=0.001,
        **{"deferrable": False, **kwargs},
    )
    op.__dict__["hook"] = hook  # the cached_property
    return op


def _manifest(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]


def test_batch_runs_with_bounded_concurrency_and_writes_the_manifest(tmp_path: Path) -> None:
    hook, store = FakeHook(), DictKV()
    context = _context(store)
    summary = _operator(hook, tmp_path).execute(context)  # type: ignore[arg-type]

    assert summary == {
        "kind": "batch",
        "total": 7,
        "succeeded": 7,
        "failed": 0,
        "manifest": str(tmp_path / "out" / "manifest.jsonl"),
        "destination": str(tmp_path / "out"),
    }
    assert sorted(hook.created) == sorted(f"video {i}" for i in range(7))
    assert max(len(ids) for ids in hook.status_reads) <= 3
    rows = _manifest(tmp_path)
    assert [r["index"] for r in rows] == list(range(7))
    assert rows[0]["uri"] == str(tmp_path / "out" / "00000.mp4") and Path(rows[0]["uri"]).exists()
    assert {"prompt", "task_id", "status", "bytes", "sha256", "seed", "usage", "error"} <= set(rows[0])
    assert rows[0]["usage"] == {"total_tokens": 100} and rows[0]["seed"] == 7
    assert context["outlet_events"].by_name["gptproto_videos"].extra["succeeded"] == 7  # one event per batch
    assert store.data == {}  # the journal is forgotten once the batch succeeded


def test_a_killed_downloads_leftovers_are_swept_once_per_phase_not_per_video(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    stale = tmp_path / "out" / ".00003.mp4.0123abcd.part"  # a download SIGKILLed in an earlier try
    stale.write_bytes(b"partial")
    idle = time.time() - STALE_PART_SECONDS - 5
    os.utime(stale, (idle, idle))
    hook = FakeHook()

    _operator(hook, tmp_path).execute(_context(DictKV()))  # type: ignore[arg-type]

    assert not stale.exists()
    assert hook.download_kwargs == [{"sweep_stale": False}] * 7  # the videos do not each list the folder


def test_invalid_item_fails_before_anything_is_paid(tmp_path: Path) -> None:
    hook = FakeHook()
    op = _operator(hook, tmp_path, prompts=["fine", {"prompt": "bad", "duration": "7s"}])
    with pytest.raises(GPTProtoRequestError, match=r"item 1: .*duration") as err:
        op.execute(_context(DictKV()))  # type: ignore[arg-type]
    assert err.value.field == "duration"
    assert hook.created == []


def test_an_s3_destination_without_s3fs_fails_when_the_dag_is_parsed() -> None:
    for destination in ("s3://aws_default@videos/nightly/", "s3://aws_default@videos/{{ ds }}/"):
        with pytest.raises(GPTProtoRequestError, match=r"amazon\[s3fs\]") as err:
            GPTProtoBatchGenerateVideosOperator(task_id="batch", prompts=["a"], destination=destination)
        assert err.value.field == "destination"


def test_partial_failures_are_recorded_and_the_budget_decides(tmp_path: Path) -> None:
    outcomes = {"policy": TaskStatus.FAILED, "broken": TaskStatus.FAILED, "late": TaskStatus.EXPIRED}
    prompts = ["ok 0", "policy 1", "broken 2", "ok 3", "late 4"]
    store = DictKV()
    op = _operator(FakeHook(outcomes), tmp_path, prompts=prompts, max_failed_items=2)
    with pytest.raises(GPTProtoError, match=r"3 of 5 items failed, over max_failed_items=2"):
        op.execute(_context(store))  # type: ignore[arg-type]
    rows = _manifest(tmp_path)
    assert [r["status"] for r in rows] == ["succeeded", "failed", "failed", "succeeded", "expired"]
    assert [r["error_kind"] for r in rows] == [None, "policy", "remote", None, "remote"]
    assert rows[1]["error"].startswith("OutputVideoSensitiveContentDetected")
    assert rows[1]["uri"] is None and rows[1]["usage"] == {"total_tokens": 100}

    # The Airflow retry: only the failures worth retrying are created again, nothing else.
    retry_hook = FakeHook({"late": TaskStatus.EXPIRED})
    retry = _operator(retry_hook, tmp_path, prompts=prompts, max_failed_items=2)
    summary = retry.execute(_context(store))  # type: ignore[arg-type]
    assert sorted(retry_hook.created) == ["broken 2", "late 4"]
    assert summary["failed"] == 2  # the policy rejection (not retried) and the expiry again


def test_fraction_budget(tmp_path: Path) -> None:
    prompts = ["ok 0", "broken 1", "ok 2", "ok 3"]
    op = _operator(FakeHook({"broken": TaskStatus.FAILED}), tmp_path, prompts=prompts, max_failed_items=0.25)
    assert op.execute(_context(DictKV()))["failed"] == 1  # type: ignore[arg-type]


def test_killed_worker_resumes_without_paying_twice(tmp_path: Path) -> None:
    store, hook = DictKV(), FakeHook()
    hook.kill_on_read = True  # dies in its first wait, after the first three creates
    with pytest.raises(Killed):
        _operator(hook, tmp_path).execute(_context(store))  # type: ignore[arg-type]
    assert len(hook.created) == 3

    again = FakeHook()
    again.prompt_of = dict(hook.prompt_of)
    again.created = list(hook.created)
    summary = _operator(again, tmp_path).execute(_context(store))  # type: ignore[arg-type]
    assert summary["succeeded"] == 7
    assert sorted(again.created) == sorted(f"video {i}" for i in range(7))  # each exactly once
    assert again.status_reads[0] == ["t0", "t1", "t2"]  # reattached to the first try's tasks


@pytest.mark.parametrize("landed", [True, False])
def test_lost_create_is_reconciled_like_the_single_operator(tmp_path: Path, landed: bool) -> None:
    store, hook = DictKV(), FakeHook()
    hook.create_error["video 1"] = GPTProtoTaskMayExistError("reply lost")
    if landed:
        hook.listed = [GenerationTask(task_id="stranger", status=TaskStatus.RUNNING)]
    summary = _operator(hook, tmp_path, max_failed_items=1).execute(_context(store))  # type: ignore[arg-type]
    rows = _manifest(tmp_path)
    if landed:  # a task nobody knows appeared since: maybe ours, so never pay again
        assert hook.created.count("video 1") == 0
        assert rows[1]["error_kind"] == "ambiguous" and "stranger" in rows[1]["error"]
        assert summary["failed"] == 1
    else:  # nothing landed: created once, now
        assert hook.created.count("video 1") == 1
        assert summary["failed"] == 0


def test_retry_failed_from_reruns_only_the_failed_items(tmp_path: Path) -> None:
    prompts = [{"prompt": "ok 0", "key": "a"}, {"prompt": "broken 1", "key": "b", "duration": "10s"}]
    _operator(FakeHook({"broken": TaskStatus.FAILED}), tmp_path, prompts=prompts, max_failed_items=1).execute(
        _context(DictKV())  # type: ignore[arg-type]
    )
    hook = FakeHook()
    manifest = str(tmp_path / "out" / "manifest.jsonl")
    rerun = _operator(hook, tmp_path / "rerun", retry_failed_from=manifest)
    summary = rerun.execute(_context(DictKV()))  # type: ignore[arg-type]
    assert hook.created == ["broken 1"]
    assert summary["total"] == 1
    (row,) = _manifest(tmp_path / "rerun")
    assert row["key"] == "b" and row["request"]["duration"] == "10s"


def _same_server(hook: FakeHook) -> FakeHook:
    """A hook for a later run: the server still knows the earlier run's tasks; everything succeeds now."""
    later = FakeHook()
    later.prompt_of = dict(hook.prompt_of)
    return later


def _first_run_with_failures(tmp_path: Path) -> tuple[FakeHook, list[dict[str, Any]]]:
    """Eight items from a JSONL file: a policy rejection, a remote failure, an expiry, a broken download."""
    lines = [
        {"prompt": "ok 0"},
        {"prompt": "policy 1"},
        {"prompt": "ok 2"},
        {"prompt": "broken 3"},
        {"prompt": "ok 4"},
        {"prompt": "late 5"},
        {"prompt": "ok 6"},
        {"prompt": "ok 7 stream"},
    ]
    catalogue = tmp_path / "catalogue.jsonl"
    catalogue.write_text("\n" + "".join(json.dumps(line) + "\n" for line in lines))  # items on lines 2-9
    outcomes = {"policy": TaskStatus.FAILED, "broken": TaskStatus.FAILED, "late": TaskStatus.EXPIRED}
    hook = FakeHook(outcomes)
    hook.broken_downloads = {"t7"}  # "ok 7 stream" is created last: its video is made, not stored
    op = _operator(hook, tmp_path, requests_file=str(catalogue), max_failed_items=4)
    op.execute(_context(DictKV()))  # type: ignore[arg-type]
    rows = _manifest(tmp_path)
    assert [r["error_kind"] for r in rows] == [
        None,
        "policy",
        None,
        "remote",
        None,
        "remote",
        None,
        "download",
    ]
    return hook, rows


def test_retry_into_the_same_destination_updates_the_earlier_manifest_and_loses_no_row(
    tmp_path: Path,
) -> None:
    earlier, first = _first_run_with_failures(tmp_path)
    hook = _same_server(earlier)
    manifest = str(tmp_path / "out" / "manifest.jsonl")
    summary = _operator(hook, tmp_path, retry_failed_from=manifest).execute(_context(DictKV()))  # type: ignore[arg-type]

    rows = _manifest(tmp_path)
    assert len(rows) == 8  # the first run's five successes are still on record
    assert [r["index"] for r in rows] == list(range(8)) and [r["line"] for r in rows] == list(range(2, 10))
    assert [r["key"] for r in rows] == [r["key"] for r in first]
    for kept in (0, 1, 2, 4, 6):  # untouched: the successes, and the policy rejection (not re-run)
        assert rows[kept] == first[kept]
    assert [rows[i]["status"] for i in (3, 5, 7)] == ["succeeded"] * 3
    assert rows[3]["uri"] == str(tmp_path / "out" / "00003.mp4") and Path(rows[3]["uri"]).exists()
    assert summary["manifest"] == manifest and (summary["total"], summary["succeeded"]) == (3, 3)


def test_retry_into_another_destination_leaves_the_earlier_manifest_and_keeps_positions(
    tmp_path: Path,
) -> None:
    earlier, first = _first_run_with_failures(tmp_path)
    before = (tmp_path / "out" / "manifest.jsonl").read_bytes()
    manifest = str(tmp_path / "out" / "manifest.jsonl")
    _operator(_same_server(earlier), tmp_path / "rerun", retry_failed_from=manifest).execute(
        _context(DictKV())
    )  # type: ignore[arg-type]

    assert (tmp_path / "out" / "manifest.jsonl").read_bytes() == before
    rows = _manifest(tmp_path / "rerun")
    assert [(r["key"], r["index"], r["line"]) for r in rows] == [
        (first[i]["key"], i, i + 2) for i in (3, 5, 7)
    ]


def test_retry_failed_from_skips_policy_rejections_like_a_resume_does(tmp_path: Path) -> None:
    earlier, _ = _first_run_with_failures(tmp_path)
    manifest = str(tmp_path / "out" / "manifest.jsonl")
    hook = _same_server(earlier)
    _operator(hook, tmp_path / "rerun", retry_failed_from=manifest).execute(_context(DictKV()))  # type: ignore[arg-type]
    assert sorted(hook.created) == ["broken 3", "late 5"]  # nothing paid again for "policy 1"

    opted_in = _same_server(earlier)
    _operator(opted_in, tmp_path / "rerun2", retry_failed_from=manifest, retry_policy_failures=True).execute(
        _context(DictKV())
    )  # type: ignore[arg-type]
    assert sorted(opted_in.created) == ["broken 3", "late 5", "policy 1"]


def test_retry_failed_from_fetches_a_failed_download_again_without_paying(tmp_path: Path) -> None:
    earlier, first = _first_run_with_failures(tmp_path)
    hook = _same_server(earlier)
    manifest = str(tmp_path / "out" / "manifest.jsonl")
    _operator(hook, tmp_path, retry_failed_from=manifest).execute(_context(DictKV()))  # type: ignore[arg-type]
    assert sorted(hook.created) == ["broken 3", "late 5"]  # "ok 7 stream" was paid for once, earlier
    assert f"http://videos/{first[7]['task_id']}.mp4" in hook.downloaded
    row = _manifest(tmp_path)[7]
    assert row["status"] == "succeeded" and row["task_id"] == first[7]["task_id"]


def test_retry_failed_from_with_only_policy_rejections_says_how_to_opt_in(tmp_path: Path) -> None:
    prompts = ["ok 0", "policy 1"]
    _operator(FakeHook({"policy": TaskStatus.FAILED}), tmp_path, prompts=prompts, max_failed_items=1).execute(
        _context(DictKV())  # type: ignore[arg-type]
    )
    hook = FakeHook()
    op = _operator(hook, tmp_path, retry_failed_from=str(tmp_path / "out" / "manifest.jsonl"))
    with pytest.raises(AirflowFailException, match="retry_policy_failures=True"):
        op.execute(_context(DictKV()))  # type: ignore[arg-type]
    assert hook.created == []


def test_without_a_state_store_a_retry_into_the_same_destination_meets_no_foreign_journal(
    tmp_path: Path,
) -> None:
    """Older Airflow: the failed batch's journal stays in its destination for an Airflow retry."""
    prompts = ["ok 0", "broken 1"]
    first = FakeHook({"broken": TaskStatus.FAILED})
    with pytest.raises(GPTProtoError, match="1 of 2 items failed"):
        _operator(first, tmp_path, prompts=prompts).execute(_context(None))  # type: ignore[arg-type]
    assert (tmp_path / "out" / ".gptproto-journal" / "gptproto_batch.json").exists()

    hook = _same_server(first)
    manifest = str(tmp_path / "out" / "manifest.jsonl")
    summary = _operator(hook, tmp_path, retry_failed_from=manifest).execute(_context(None))  # type: ignore[arg-type]
    assert hook.created == ["broken 1"] and summary["succeeded"] == 1
    assert [r["status"] for r in _manifest(tmp_path)] == ["succeeded", "succeeded"]


def test_a_resume_retries_policy_rejections_only_when_asked(tmp_path: Path) -> None:
    prompts = ["ok 0", "policy 1"]
    store = DictKV()
    first = _operator(FakeHook({"policy": TaskStatus.FAILED}), tmp_path, prompts=prompts)
    with pytest.raises(GPTProtoError, match="1 of 2 items failed"):
        first.execute(_context(store))  # type: ignore[arg-type]
    hook = FakeHook()
    _operator(hook, tmp_path, prompts=prompts, retry_policy_failures=True).execute(_context(store))  # type: ignore[arg-type]
    assert hook.created == ["policy 1"]


def test_deferrable_defers_one_trigger_for_all_in_flight_tasks(tmp_path: Path) -> None:
    hook, store = FakeHook(), DictKV()
    op = _operator(hook, tmp_path, deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(_context(store))  # type: ignore[arg-type]
    trigger = deferred.value.trigger
    assert isinstance(trigger, GPTProtoBatchTrigger)
    assert sorted(trigger.watch) == ["t0", "t1", "t2"]
    assert trigger.min_finished == 2  # half while items remain to be created

    event = {"status": "ready", "tasks": {i: hook._task(i).to_dict() for i in ("t0", "t1")}, "timed_out": []}
    with pytest.raises(TaskDeferred) as deferred:
        op.execute_complete(_context(store), event)  # type: ignore[arg-type]
    assert sorted(deferred.value.trigger.watch) == ["t2", "t3", "t4"]
    assert (tmp_path / "out" / "00000.mp4").exists() and (tmp_path / "out" / "00001.mp4").exists()


def test_no_state_store_keeps_the_journal_in_the_destination(tmp_path: Path) -> None:
    hook = FakeHook()
    hook.kill_on_read = True
    with pytest.raises(Killed):
        _operator(hook, tmp_path).execute(_context(None))  # type: ignore[arg-type]
    assert (tmp_path / "out" / ".gptproto-journal").is_dir()
    again = FakeHook()
    again.prompt_of = dict(hook.prompt_of)
    _operator(again, tmp_path).execute(_context(None))  # type: ignore[arg-type]
    assert len(again.created) == 4  # only the items the first try never created


def test_source_arguments_are_checked_at_parse_time() -> None:
    with pytest.raises(ValueError, match="exactly one of prompts"):
        GPTProtoBatchGenerateVideosOperator(task_id="b", destination="/tmp/x")
    with pytest.raises(ValueError, match="max_in_flight"):
        GPTProtoBatchGenerateVideosOperator(task_id="b", destination="/tmp/x", prompts=["a"], max_in_flight=0)
    with pytest.raises(GPTProtoRequestError, match="max_failed_items"):
        GPTProtoBatchGenerateVideosOperator(
            task_id="b", destination="/tmp/x", prompts=["a"], max_failed_items=2.0
        )


def test_a_retry_over_budget_leaves_the_earlier_manifest_so_its_airflow_retry_reruns_the_same_items(
    tmp_path: Path,
) -> None:
    earlier, first = _first_run_with_failures(tmp_path)
    before = (tmp_path / "out" / "manifest.jsonl").read_bytes()
    manifest = str(tmp_path / "out" / "manifest.jsonl")
    store = DictKV()  # one task instance: the journal lives on between its Airflow tries
    still_failing = FakeHook({"broken": TaskStatus.FAILED})
    still_failing.prompt_of = dict(earlier.prompt_of)
    with pytest.raises(GPTProtoError, match="over max_failed_items"):
        _operator(still_failing, tmp_path, retry_failed_from=manifest, max_failed_items=0).execute(
            _context(store)  # type: ignore[arg-type]
        )
    # The input of this task is untouched; what this try did is on record beside it.
    assert (tmp_path / "out" / "manifest.jsonl").read_bytes() == before
    retry_rows = [
        json.loads(line) for line in (tmp_path / "out" / "manifest.retry.jsonl").read_text().splitlines()
    ]
    assert [(r["key"], r["status"]) for r in retry_rows] == [
        (first[3]["key"], "failed"),
        (first[5]["key"], "succeeded"),
        (first[7]["key"], "succeeded"),
    ]

    # Airflow retries the task: the same items, the journal resumed (nothing paid twice), and once
    # within budget the earlier manifest is merged and the side record removed.
    hook = _same_server(still_failing)
    summary = _operator(hook, tmp_path, retry_failed_from=manifest, max_failed_items=0).execute(
        _context(store)  # type: ignore[arg-type]
    )
    assert hook.created == ["broken 3"]  # only the item that failed again is paid for again
    rows = _manifest(tmp_path)
    assert len(rows) == 8 and all(rows[i]["status"] == "succeeded" for i in (3, 5, 7))
    assert (summary["total"], summary["succeeded"]) == (3, 3)
    assert not (tmp_path / "out" / "manifest.retry.jsonl").exists()


def test_over_budget_the_error_names_the_failed_items_and_the_manifest(tmp_path: Path) -> None:
    prompts = ["ok 0", "broken 1", "ok 2", "broken 3"]
    op = _operator(FakeHook({"broken": TaskStatus.FAILED}), tmp_path, prompts=prompts, max_failed_items=1)
    with pytest.raises(GPTProtoError) as err:
        op.execute(_context(DictKV()))  # type: ignore[arg-type]
    assert str(err.value) == (
        f"2 of 4 items failed, over max_failed_items=1 (1 allowed): items 1, 3; see "
        f"{tmp_path / 'out' / 'manifest.jsonl'}. A retry re-runs the failed items only."
    )


def test_a_transient_error_while_polling_in_the_worker_is_waited_out(tmp_path: Path) -> None:
    """The in-worker wait is the trigger's plan: a 503 backs off and polls again, not a failed try."""
    hook = FakeHook()
    reads = hook.get_tasks
    failures = iter([GPTProtoServerError("busy", http_status=503)])

    def flaky_reads(task_ids: list[str]) -> dict[str, GenerationTask]:
        if (exc := next(failures, None)) is not None:
            hook.status_reads.append(list(task_ids))
            raise exc
        return reads(task_ids)

    hook.get_tasks = flaky_reads  # type: ignore[method-assign]
    summary = _operator(hook, tmp_path, prompts=["a", "b"]).execute(_context(DictKV()))  # type: ignore[arg-type]
    assert summary is not None and summary["succeeded"] == 2
    assert len(hook.created) == 2 and hook.status_reads[0] == hook.status_reads[1]  # read again, same ids


# ------------------------------------------------------------------------------------- takes
class SeedHook(FakeHook):
    """Records each create's seed; its tasks report none (as GPTProto's own envelope does)."""

    def __init__(self, outcomes: dict[str, TaskStatus] | None = None) -> None:
        super().__init__(outcomes)
        self.seeds: list[int | None] = []

    def create_task(self, request: Any) -> GenerationTask:
        self.seeds.append(request.seed)
        return super().create_task(request)

    def _task(self, task_id: str) -> GenerationTask:
        return super()._task(task_id).model_copy(update={"seed": None})


def test_takes_make_each_prompt_several_videos_with_their_own_seeds(tmp_path: Path) -> None:
    hook = SeedHook()
    prompts = ["a lake", {"prompt": "a hill", "seed": 500, "key": "hill"}]
    summary = _operator(hook, tmp_path, prompts=prompts, takes=3).execute(_context(DictKV()))  # type: ignore[arg-type]

    assert summary["total"] == 6 and summary["succeeded"] == 6
    rows = _manifest(tmp_path)
    assert [(r["index"], r["prompt_index"], r["take"], r["takes"]) for r in rows] == [
        (p * 3 + t - 1, p, t, 3) for p in range(2) for t in (1, 2, 3)
    ]
    assert [r["key"] for r in rows[3:]] == ["hill-take-1", "hill-take-2", "hill-take-3"]
    assert all(Path(r["uri"]).name == f"{r['key']}.mp4" for r in rows)
    # The seed recorded is the one sent; a given seed is take 1's, the others derived from it.
    assert sorted(hook.seeds) == sorted(r["seed"] for r in rows)  # type: ignore[type-var]
    assert [r["seed"] for r in rows[3:]] == [500, 500 + 104_729, 500 + 2 * 104_729]
    assert len({r["seed"] for r in rows[:3]}) == 3 and None not in hook.seeds
    assert [r["request"]["seed"] for r in rows] == [r["seed"] for r in rows]


def test_drawn_take_seeds_are_stable_for_the_task_instance_and_given_seeds_are_used(tmp_path: Path) -> None:
    def seeds(run_id: str, **kwargs: Any) -> list[int | None]:
        hook, context = SeedHook(), _context(DictKV())
        context["ti"] = SimpleNamespace(dag_id="d", run_id=run_id, task_id="batch", map_index=-1)
        _operator(hook, tmp_path / run_id, prompts=["x"], takes=2, **kwargs).execute(context)  # type: ignore[arg-type]
        return hook.seeds

    first = seeds("r1")
    assert seeds("r1") == first and seeds("r2") != first and len(set(first)) == 2
    assert seeds("r3", seeds=[11, 12]) == [11, 12]


def test_a_resume_with_other_takes_is_refused_like_other_changed_input(tmp_path: Path) -> None:
    store, hook = DictKV(), SeedHook()
    hook.kill_on_read = True
    with pytest.raises(Killed):
        _operator(hook, tmp_path, takes=2).execute(_context(store))  # type: ignore[arg-type]
    with pytest.raises(GPTProtoError, match="belongs to different input"):
        _operator(SeedHook(), tmp_path, takes=3).execute(_context(store))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs, field, message",
    [
        ({"takes": 0}, "takes", "takes must be an integer >= 1, got 0"),
        ({"takes": "3"}, "takes", "takes must be an integer >= 1"),
        ({"takes": True}, "takes", "takes must be an integer >= 1"),
        ({"takes": 2, "seeds": [1]}, "seeds", "seeds must be a list of 2 distinct integers"),
        ({"takes": 2, "seeds": [4, 4]}, "seeds", "seeds must be a list of 2 distinct integers"),
        ({"takes": 2, "seeds": [4, 0]}, "seeds", "1..2147483647"),
        ({"takes": 2, "seeds": [4, 5], "seed": 3}, "seeds", "not both"),
        ({"takes": 2, "retry_failed_from": "/m.jsonl", "prompts": None}, "takes", "not retry_failed_from"),
    ],
)
def test_bad_takes_or_seeds_fail_naming_the_field_before_any_request(
    tmp_path: Path, kwargs: dict[str, Any], field: str, message: str
) -> None:
    hook = SeedHook()
    with pytest.raises(GPTProtoRequestError, match=message) as caught:
        _operator(hook, tmp_path, **kwargs)
    assert caught.value.field == field and hook.created == []


def test_a_retry_of_a_takes_batch_reruns_the_failed_takes_with_their_seeds(tmp_path: Path) -> None:
    first = SeedHook({"broken": TaskStatus.FAILED})
    _operator(first, tmp_path, prompts=["ok", "broken"], takes=2, max_failed_items=2).execute(
        _context(DictKV())  # type: ignore[arg-type]
    )
    rows = _manifest(tmp_path)
    hook = SeedHook()
    manifest = str(tmp_path / "out" / "manifest.jsonl")
    _operator(hook, tmp_path / "rerun", retry_failed_from=manifest).execute(_context(DictKV()))  # type: ignore[arg-type]
    assert hook.created == ["broken", "broken"] and hook.seeds == [rows[2]["seed"], rows[3]["seed"]]
    rerun = _manifest(tmp_path / "rerun")
    assert [(r["key"], r["index"], r["prompt_index"], r["take"], r["takes"]) for r in rerun] == [
        ("00001-take-1", 2, 1, 1, 2),
        ("00001-take-2", 3, 1, 2, 2),
    ]
