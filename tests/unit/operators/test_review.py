"""GPTProtoReviewVideosOperator: the HITL request it writes, and its answer (approve, reject, timeout)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import airflow
import pytest
from packaging.version import Version

if Version(Version(airflow.__version__).base_version) < Version("3.1"):
    pytest.skip("human-in-the-loop tasks need Airflow 3.1+", allow_module_level=True)

import airflow.sdk.exceptions
from airflow.providers.common.compat.sdk import TaskDeferred
from airflow.providers.standard.exceptions import HITLTimeoutError
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG
from airflow.sdk.exceptions import DownstreamTasksSkipped

from airflow_provider_gptproto.exceptions import GPTProtoRequestError
from airflow_provider_gptproto.operators.review import GPTProtoReviewVideosOperator
from tests.support.supervisor_comms import supervisor_comms

# Airflow 3.3 parks the task in AWAITING_INPUT; 3.1 and 3.2 defer to the HITL trigger.
WAITING = getattr(airflow.sdk.exceptions, "TaskAwaitingInput", TaskDeferred)

RUN = "manual__2026-12-05T02:00:00+00:00"
AT = datetime(2026, 12, 5, 3, 0, tzinfo=timezone.utc)


class FakeTI:
    """The task instance's XCom, as the operator uses it (its own pushes, pulled back on resume)."""

    def __init__(self, task_id: str = "review", map_index: int = -1) -> None:
        self.dag_id, self.run_id, self.task_id, self.map_index = "dag", RUN, task_id, map_index
        self.id = uuid.UUID("0199a0a0-0000-7000-8000-000000000001")
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = json.loads(json.dumps(value))  # JSON, as XCom stores it

    def xcom_pull(self, task_ids: str, key: str, map_indexes: int) -> Any:
        assert (task_ids, map_indexes) == (self.task_id, self.map_index)
        return self.xcom.get(key)


class Recorder:
    """The supervisor channel: records what the task sends (the HITL request)."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, msg: Any) -> None:
        self.sent.append(msg)


def manifest(tmp_path: Path) -> str:
    """A batch of two prompts x three takes; prompt 1's second take failed."""
    rows = []
    for p in (0, 1):
        for k in (1, 2, 3):
            ok = (p, k) != (1, 2)
            rows.append(
                {
                    "index": p * 3 + k - 1,
                    "key": f"{p}-{k}",
                    "prompt": f"prompt {p}",
                    "prompt_index": p,
                    "take": k,
                    "takes": 3,
                    "status": "succeeded" if ok else "failed",
                    "uri": str(tmp_path / f"{p}-{k}.mp4") if ok else None,
                    "seed": 10 * p + k,
                    "task_id": f"t{p}{k}",
                    "sha256": None,
                    "usage": None,
                    "request": {"prompt": f"prompt {p}"},
                }
            )
    path = tmp_path / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def review_dag(videos: Any, **kwargs: Any) -> tuple[GPTProtoReviewVideosOperator, FakeTI]:
    with DAG("dag", schedule=None):
        review = GPTProtoReviewVideosOperator(task_id="review", videos=videos, **kwargs)
        review >> EmptyOperator(task_id="publish")
    return review, FakeTI()


def ask(review: GPTProtoReviewVideosOperator, ti: FakeTI, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run ``execute`` up to the wait; the HITL request it wrote."""
    with supervisor_comms(monkeypatch, Recorder()) as comms, pytest.raises(WAITING) as waiting:
        review.execute({"ti": ti, "task_instance": ti, "task": review})  # type: ignore[arg-type]
    assert waiting.value.method_name == "execute_complete"
    (request,) = comms.sent
    return request


def batch(tmp_path: Path) -> dict[str, Any]:
    return {
        "kind": "batch",
        "total": 6,
        "succeeded": 5,
        "failed": 1,
        "manifest": manifest(tmp_path),
        "destination": "",
    }


def test_execute_writes_the_hitl_request_and_pushes_the_review(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    review, ti = review_dag(batch(tmp_path), response_timeout=timedelta(hours=1))
    request = ask(review, ti, monkeypatch)
    assert request.options == ["Approve", "Reject"] and request.multiple is False
    assert request.subject == "Review the generated videos"
    assert set(request.params) == {"pick_1", "pick_2"}
    pick_2 = request.params["pick_2"]
    assert pick_2["value"] == "take 1"
    assert pick_2["schema"]["enum"] == ["take 1", "take 3"]
    pushed = ti.xcom["gptproto_review"]
    assert pushed["mode"] == "pick"
    assert [[t["take"] for t in g["takes"]] for g in pushed["groups"]] == [[1, 2, 3], [1, 3]]
    assert pushed["groups"][1]["failed"] == [2]
    assert pushed["groups"][0]["takes"][0]["source"] == {
        "dag_id": "dag",
        "run_id": RUN,
        "task_id": "review",  # a literal value has no upstream task: its own
        "map_index": -1,
    }
    assert "/gptproto/review/dag/" in request.body and "/plugin/gptproto-video" in request.body


def test_upstream_task_and_map_index_are_the_takes_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mapped generate task's results: each take links to its own mapped task instance."""
    with DAG("dag", schedule=None):
        generate = EmptyOperator.partial(task_id="generate").expand(doc=["a", "b"])
        review = GPTProtoReviewVideosOperator(task_id="review", videos=generate.output)
    results = [
        {"kind": "generate", "task_id": f"g{i}", "status": "succeeded", "video_url": f"https://c/{i}",
         "seed": i, "request": {"prompt": "one prompt"}}
        for i in range(2)
    ]  # fmt: skip
    review.videos = results  # what rendering the XComArg gives
    ti = FakeTI()
    request = ask(review, ti, monkeypatch)
    takes = ti.xcom["gptproto_review"]["groups"][0]["takes"]
    assert [(t["source"]["task_id"], t["source"]["map_index"]) for t in takes] == [
        ("generate", 0),
        ("generate", 1),
    ]
    assert f"/dags/dag/runs/{RUN.replace(':', '%3A').replace('+', '%2B')}/tasks/generate/mapped/1/plugin" in (
        request.body
    )


def test_something_that_is_not_a_result_is_refused_naming_videos(monkeypatch: pytest.MonkeyPatch) -> None:
    review, ti = review_dag(["not a result"])
    with supervisor_comms(monkeypatch, Recorder()) as comms, pytest.raises(GPTProtoRequestError) as exc:
        review.execute({"ti": ti, "task_instance": ti, "task": review})  # type: ignore[arg-type]
    assert exc.value.field == "videos" and comms.sent == []


def answer(review: GPTProtoReviewVideosOperator, ti: FakeTI, event: dict[str, Any]) -> Any:
    return review.execute_complete({"ti": ti, "task_instance": ti, "task": review}, event)  # type: ignore[arg-type]


def test_approve_with_picks_returns_the_chosen_takes_and_who_chose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    review, ti = review_dag(batch(tmp_path))
    ask(review, ti, monkeypatch)
    user = {"id": "reviewer-7", "name": "Rita"}
    event = {"chosen_options": ["Approve"], "params_input": {"pick_1": "take 2", "pick_2": "take 3"},
             "responded_at": AT, "responded_by_user": user, "timedout": False}  # fmt: skip
    result = answer(review, ti, event)
    assert result["kind"] == "review" and result["approved"] is True
    assert [(c["group"], c["take"], c["seed"], c["uri"]) for c in result["chosen"]] == [
        (1, 2, 2, str(tmp_path / "0-2.mp4")),
        (2, 3, 13, str(tmp_path / "1-3.mp4")),
    ]
    assert result["responded_by"] == user and result["responded_at"] == AT.isoformat()
    assert result["timed_out"] is False


def test_approve_with_a_take_that_is_not_offered_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    review, ti = review_dag(batch(tmp_path))
    ask(review, ti, monkeypatch)
    event = {"chosen_options": ["Approve"], "params_input": {"pick_1": "take 1", "pick_2": "take 2"},
             "responded_at": AT, "responded_by_user": {"id": "a", "name": "a"}}  # fmt: skip
    with pytest.raises(GPTProtoRequestError, match="pick_2 must be one of 'take 1', 'take 3'"):
        answer(review, ti, event)


def test_reject_keeps_the_result_and_skips_downstream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    review, ti = review_dag(batch(tmp_path))
    ask(review, ti, monkeypatch)
    event = {"chosen_options": ["Reject"], "params_input": {"pick_1": "take 1", "pick_2": "take 1"},
             "responded_at": AT, "responded_by_user": {"id": "a", "name": "Ann"}}  # fmt: skip
    with pytest.raises(DownstreamTasksSkipped) as skipped:
        answer(review, ti, event)
    assert skipped.value.tasks == ["publish"]
    kept = ti.xcom["return_value"]
    assert kept["approved"] is False and kept["chosen"] == [] and kept["responded_by"]["name"] == "Ann"


def test_timeout_with_defaults_takes_the_default_picks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    review, ti = review_dag(batch(tmp_path), defaults="Approve", response_timeout=timedelta(minutes=5))
    request = ask(review, ti, monkeypatch)
    assert request.defaults == ["Approve"]
    # What Airflow 3.3's scheduler sends at the deadline: the defaults, each param's value, nobody.
    defaults = {name: spec["value"] for name, spec in request.params.items()}
    event = {"chosen_options": request.defaults, "params_input": defaults, "responded_at": AT,
             "responded_by_user": None, "timedout": True}  # fmt: skip
    result = answer(review, ti, event)
    assert result["approved"] and [(c["group"], c["take"]) for c in result["chosen"]] == [(1, 1), (2, 1)]
    assert result["responded_by"] is None and result["timed_out"] is True


def test_timeout_without_defaults_fails_the_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    review, ti = review_dag(batch(tmp_path), response_timeout=timedelta(minutes=5))
    assert ask(review, ti, monkeypatch).defaults is None
    event = {
        "error": "The Human-in-the-loop response timeout has passed without a response.",
        "error_type": "timeout",
    }
    with pytest.raises(HITLTimeoutError):
        answer(review, ti, event)
    assert "return_value" not in ti.xcom


def test_options_and_multiple_are_fixed() -> None:
    with pytest.raises(ValueError, match="options"):
        GPTProtoReviewVideosOperator(task_id="r", videos=[], options=["Yes"])
    with pytest.raises(ValueError, match="defaults"):
        GPTProtoReviewVideosOperator(task_id="r", videos=[], defaults="Maybe")
