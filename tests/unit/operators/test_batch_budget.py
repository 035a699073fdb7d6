"""Spending limits, dry runs and the flex tier on the batch, storyboard and generate operators."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_gptproto.exceptions import GPTProtoRequestError
from airflow_provider_gptproto.models import TaskStatus
from airflow_provider_gptproto.operators import gptproto as operator_module
from airflow_provider_gptproto.operators.batch import GPTProtoBatchGenerateVideosOperator
from airflow_provider_gptproto.operators.storyboard import GPTProtoStoryboardOperator
from tests.unit.fakes import CountingStore, HookFactory, make_context, patch_hook, task
from tests.unit.operators.test_batch import FakeHook, _context, _manifest, _operator
from tests.unit.operators.test_storyboard import StoryHook
from tests.unit.operators.test_storyboard import _operator as _storyboard
from tests.unit.utils.test_batch_journal import DictKV


class RecordingHook(FakeHook):
    def __init__(self, outcomes: dict[str, TaskStatus] | None = None) -> None:
        super().__init__(outcomes)
        self.requests: list[Any] = []

    def create_task(self, request: Any) -> Any:
        self.requests.append(request)
        return super().create_task(request)


def test_a_limit_stops_the_creating_records_the_rest_skipped_and_fails_after_the_manifest(
    tmp_path: Path,
) -> None:
    hook, store = FakeHook(), DictKV()
    op = _operator(hook, tmp_path, max_videos=4)  # 7 prompts, 3 in flight
    with pytest.raises(
        AirflowFailException, match=r"spending limit stopped the batch: 3 items not created.*max_videos=4"
    ):
        op.execute(_context(store))  # type: ignore[arg-type]

    assert len(hook.created) == 4
    rows = _manifest(tmp_path)
    assert [r["status"] for r in rows] == ["succeeded"] * 4 + ["skipped"] * 3
    assert [r["error_kind"] for r in rows] == [None] * 4 + ["budget"] * 3
    assert all(r["task_id"] is None and r["uri"] is None for r in rows[4:])
    assert store.data  # the journal is kept: with a higher limit, clearing the task goes on

    again = FakeHook()
    again.prompt_of = dict(hook.prompt_of)
    summary = _operator(again, tmp_path, max_videos=7).execute(_context(store))  # type: ignore[arg-type]
    assert sorted(again.created) == ["video 4", "video 5", "video 6"]  # only the skipped ones
    assert summary["succeeded"] == 7 and summary["skipped"] == 0 and not summary["budget_stopped"]
    assert summary["spent"]["videos"] == 7


def test_on_budget_succeed_returns_what_was_spent_and_skips_do_not_count_as_failures(tmp_path: Path) -> None:
    prompts = [{"prompt": f"video {i}", "duration": "10s"} for i in range(5)]
    hook, context = FakeHook(), _context(DictKV())
    op = _operator(
        hook, tmp_path, prompts=prompts, max_video_seconds=25, on_budget="succeed", max_failed_items=0
    )
    summary = op.execute(context)  # type: ignore[arg-type]

    assert len(hook.created) == 2
    assert summary is not None and summary["kind"] == "batch"
    assert (summary["succeeded"], summary["failed"], summary["skipped"]) == (2, 0, 3)  # type: ignore[typeddict-item]
    assert summary["budget_stopped"] is True  # type: ignore[typeddict-item]
    assert summary["spent"] == {"videos": 2, "video_seconds": 20, "usage_tokens": 200}  # type: ignore[typeddict-item]
    assert context["outlet_events"].by_name["gptproto_videos"].extra["budget_stopped"] is True
    assert "max_video_seconds=25" in _manifest(tmp_path)[2]["error"]


def test_the_token_limit_is_passed_by_at_most_what_is_in_flight(tmp_path: Path) -> None:
    hook = FakeHook()  # every task reports 100 tokens
    op = _operator(hook, tmp_path, max_usage_tokens=150, on_budget="succeed")  # 3 in flight
    summary = op.execute(_context(DictKV()))  # type: ignore[arg-type]
    assert len(hook.created) == 3  # the first wave: no estimate yet
    assert 150 < summary["spent"]["usage_tokens"] <= 150 + 3 * 100  # type: ignore[typeddict-item]


def test_a_dry_run_validates_logs_and_returns_the_plan_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts = ["a", {"prompt": "b", "duration": 10, "resolution": "1080p", "ratio": "16:9"}, "c"]
    hook = FakeHook()
    op = _operator(hook, tmp_path, prompts=prompts, dry_run=True, max_videos=2)
    assert op.outlets == []  # a dry run announces no videos
    result = op.execute(_context(DictKV()))  # type: ignore[arg-type]

    assert hook.created == [] and hook.status_reads == []
    assert not (tmp_path / "out").exists()  # not even the destination folder
    assert result == {
        "kind": "plan",
        "videos": 3,
        "video_seconds": 20,
        "resolutions": {"default": 2, "1080p 16:9": 1},
        "usage_tokens_estimate": None,
        "estimated": 0,
        "within_limits": 2,
        "stopped_by": "max_videos=2 (the next create would bring it to 3)",
    }
    logged = "".join(capsys.readouterr())
    assert "Dry run, nothing created" in logged and "1080p 16:9" in logged

    bad = _operator(hook, tmp_path, prompts=["a", {"prompt": "b", "duration": "7s"}], dry_run=True)
    with pytest.raises(GPTProtoRequestError, match="item 1"):
        bad.execute(_context(DictKV()))  # type: ignore[arg-type]


def test_a_dry_run_of_a_retry_estimates_usage_from_the_earlier_manifest(tmp_path: Path) -> None:
    prompts = ["ok 0", "broken 1", "ok 2"]
    _operator(FakeHook({"broken": TaskStatus.FAILED}), tmp_path, prompts=prompts, max_failed_items=1).execute(
        _context(DictKV())  # type: ignore[arg-type]
    )
    manifest = str(tmp_path / "out" / "manifest.jsonl")
    hook = FakeHook()
    result = _operator(hook, tmp_path / "dry", retry_failed_from=manifest, dry_run=True).execute(
        _context(DictKV())  # type: ignore[arg-type]
    )
    assert hook.created == []
    assert result is not None and result["kind"] == "plan"
    assert (result["videos"], result["usage_tokens_estimate"], result["estimated"]) == (1, 100, 1)  # type: ignore[typeddict-item]


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("max_videos", -1, "None or an integer >= 0"),
        ("max_video_seconds", "ten", "None or a number >= 0"),
        ("max_usage_tokens", 2.5, "None or an integer >= 0"),
        ("on_budget", "stop", "one of 'fail', 'succeed'"),
        ("dry_run", "yes", "True or False"),
    ],
)
@pytest.mark.parametrize("operator", ["batch", "storyboard"])
def test_bad_budget_arguments_fail_when_the_dag_is_parsed(
    tmp_path: Path, field: str, value: object, allowed: str, operator: str
) -> None:
    with pytest.raises(GPTProtoRequestError, match=f"{field} must be {allowed}") as err:
        if operator == "batch":
            GPTProtoBatchGenerateVideosOperator(
                task_id="b", prompts=["a"], destination=str(tmp_path), **{field: value}
            )
        else:
            GPTProtoStoryboardOperator(task_id="s", shots=["a"], destination=str(tmp_path), **{field: value})
    assert err.value.field == field


def test_flex_items_expire_with_the_item_timeout_capped_by_the_batch_deadline(tmp_path: Path) -> None:
    prompts = [
        "a",
        {"prompt": "b", "execution_expires_after": 86_400},
        {"prompt": "c", "service_tier": "default"},
    ]
    hook = RecordingHook()
    _operator(hook, tmp_path, prompts=prompts, service_tier="flex", timeout=7_200).execute(_context(DictKV()))  # type: ignore[arg-type]
    assert [r.execution_expires_after for r in hook.requests] == [7_200, 86_400, None]
    assert _manifest(tmp_path)[0]["request"] == {"prompt": "a", "service_tier": "flex"}  # as given

    capped = RecordingHook()
    _operator(
        capped, tmp_path / "c", prompts=["a"], service_tier="flex", timeout=7_200, deadline=5_000
    ).execute(
        _context(DictKV())  # type: ignore[arg-type]
    )
    (sent,) = capped.requests
    assert 4_990 <= sent.execution_expires_after <= 5_000  # what is left of the batch's deadline


def test_expired_items_are_recorded_as_expired(tmp_path: Path) -> None:
    op = _operator(
        FakeHook({"late": TaskStatus.EXPIRED}), tmp_path, prompts=["ok", "late"], max_failed_items=1
    )
    summary = op.execute(_context(DictKV()))  # type: ignore[arg-type]
    assert summary is not None and summary["failed"] == 1  # type: ignore[typeddict-item]
    row = _manifest(tmp_path)[1]
    assert (row["status"], row["error_kind"]) == ("expired", "expired")


def test_a_storyboard_stopped_by_a_limit_stitches_the_shots_made(tmp_path: Path) -> None:
    hook = StoryHook()
    op = _storyboard(hook, tmp_path, max_videos=2, on_budget="succeed")
    result = op.execute(_context(DictKV()))  # type: ignore[arg-type]

    assert hook.created == ["shot zero", "shot one"]
    assert result is not None and result["kind"] == "storyboard"
    assert result["shots"] == 2 and result["budget_stopped"] is True  # type: ignore[typeddict-item]
    assert result["spent"] == {"videos": 2, "video_seconds": 10, "usage_tokens": 200}  # type: ignore[typeddict-item]
    rows = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    assert [(r["status"], r["error_kind"]) for r in rows][2] == ("skipped", "budget")
    document = json.loads((tmp_path / "out" / "storyboard.json").read_text())
    assert [s["index"] for s in document["shots"]] == [0, 1]

    failing = StoryHook()
    with pytest.raises(AirflowFailException, match="spending limit"):
        _storyboard(failing, tmp_path / "f", max_videos=1).execute(_context(DictKV()))  # type: ignore[arg-type]
    assert failing.created == ["shot zero"] and not (tmp_path / "f" / "out" / "storyboard.mp4").exists()


def test_a_storyboard_dry_run_creates_nothing(tmp_path: Path) -> None:
    hook = StoryHook()
    result = _storyboard(hook, tmp_path, dry_run=True).execute(_context(DictKV()))  # type: ignore[arg-type]
    assert hook.created == [] and result is not None and result["kind"] == "plan"
    assert (result["videos"], result["video_seconds"]) == (3, 15)  # type: ignore[typeddict-item]


@pytest.mark.usefixtures("no_real_sleep")
def test_a_flex_generate_expires_with_its_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    factory: HookFactory = patch_hook(monkeypatch, operator_module)
    factory.hook.create_task.return_value = task("task-1", "pending")
    op = operator_module.GPTProtoGenerateVideoOperator(
        task_id="generate", prompt="a lake", service_tier="flex", timeout=9_000, wait_for_completion=False
    )
    op.execute(make_context(CountingStore()))
    assert factory.hook.create_task.call_args.args[0].execution_expires_after == 9_000
