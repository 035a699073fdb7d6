"""Spending limits, dry runs and the flex tier through DAG.test() against the emulator over loopback.

The emulator is the witness: the creates it received, and the usage it reported for each video.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from airflow_provider_gptproto.exceptions import GPTProtoTaskExpiredError
from airflow_provider_gptproto.hooks.gptproto import GPTProtoHook
from tests.integration.dagrun import run_dag
from tests.integration.versions import AIRFLOW_VERSION

pytestmark = pytest.mark.usefixtures("airflow_db")

# Airflow 3.1+ hands the failure callbacks the exception (3.0 passes None).
CALLBACKS_SEE_EXCEPTION = Version("3.1") <= AIRFLOW_VERSION
# As in dags/gptproto_it_budget_dags.py.
TOKENS_PER_VIDEO = 69_120
TOKEN_LIMIT = 172_800


@pytest.fixture
def emu(emulator: Any) -> Any:
    emulator.configure(queue_seconds=0.2, run_seconds=0.4)
    return emulator


def _creates(emulator: Any) -> int:
    return int(emulator.stats()["requests"]["create"])


def _rows(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("dag_id", ["it_budget_videos", "it_budget_videos_defer"])
def test_max_videos_stops_the_creating_and_fails_the_task_after_the_manifest(
    emu: Any, tmp_path: Path, dag_id: str
) -> None:
    log = tmp_path / "failures.log"
    prompts = [f"budget video {i}" for i in range(6)]
    result = run_dag(dag_id, prompts=prompts, destination=str(tmp_path), failure_log=str(log))

    assert result.state == "failed" and result.tries("batch") == 1  # not retried: a retry stops again
    assert _creates(emu) == 3  # never passed
    rows = _rows(tmp_path)
    assert [r["status"] for r in rows] == ["succeeded"] * 3 + ["skipped"] * 3
    assert [r["error_kind"] for r in rows][3:] == ["budget"] * 3
    assert "not created: the next create would pass max_videos=3" in rows[3]["error"]
    if CALLBACKS_SEE_EXCEPTION:
        assert "max_videos=3" in log.read_text() and "manifest.jsonl" in log.read_text()


def test_max_video_seconds_counts_requested_seconds_and_on_budget_succeed_reports_the_spend(
    emu: Any, tmp_path: Path
) -> None:
    prompts = [{"prompt": f"budget seconds {i}", "duration": "5s"} for i in range(5)]
    result = run_dag("it_budget_seconds", prompts=prompts, destination=str(tmp_path))

    assert result.state == "success"
    assert _creates(emu) == 2  # 10 s; a third would make 15 > 12, though four may be in flight
    summary = result.xcom("batch")
    assert summary["budget_stopped"] is True and (summary["succeeded"], summary["skipped"]) == (2, 3)
    assert summary["spent"] == {
        "videos": 2,
        "video_seconds": 10,
        "usage_tokens": sum(r["usage"]["total_tokens"] for r in _rows(tmp_path)[:2]),
    }


@pytest.mark.parametrize("max_in_flight", [1, 4])
def test_the_token_limit_is_passed_by_at_most_what_is_in_flight(
    emu: Any, tmp_path: Path, max_in_flight: int
) -> None:
    prompts = [f"budget tokens {i}" for i in range(8)]
    result = run_dag(f"it_budget_tokens_{max_in_flight}", prompts=prompts, destination=str(tmp_path))

    assert result.state == "success"
    rows = _rows(tmp_path)
    made = [r for r in rows if r["status"] == "succeeded"]
    per_video = {r["usage"]["total_tokens"] for r in made}
    assert per_video == {TOKENS_PER_VIDEO}  # what the emulator reported, for every video
    spent = result.xcom("batch")["spent"]
    assert spent["usage_tokens"] == len(made) * TOKENS_PER_VIDEO and spent["videos"] == _creates(emu)
    # The documented bound: at most what is in flight when the limit is reached.
    assert spent["usage_tokens"] <= TOKEN_LIMIT + max_in_flight * TOKENS_PER_VIDEO
    if max_in_flight == 1:  # the first video gives the estimate: 2 x 69120 <= 172800 < 3 x 69120
        assert _creates(emu) == 2 and spent["usage_tokens"] <= TOKEN_LIMIT
    else:  # the first wave is created before any usage is known; then the estimate stops it
        assert _creates(emu) == 4 and spent["usage_tokens"] > TOKEN_LIMIT
    assert [r["error_kind"] for r in rows if r["status"] != "succeeded"] == ["budget"] * (8 - len(made))


def test_a_dry_run_creates_nothing_and_returns_the_plan(emu: Any, tmp_path: Path) -> None:
    prompts = ["dry 0", {"prompt": "dry 1", "duration": 10, "resolution": "720p", "ratio": "16:9"}, "dry 2"]
    result = run_dag("it_budget_dry_run", prompts=prompts, destination=str(tmp_path / "out"))

    assert result.state == "success"
    assert _creates(emu) == 0 and emu.stats()["requests"]["get"] == 0
    assert not (tmp_path / "out").exists()
    plan = result.xcom("batch")
    assert plan["kind"] == "plan" and (plan["videos"], plan["video_seconds"]) == (3, 20)
    assert plan["resolutions"] == {"default": 2, "720p 16:9": 1} and plan["within_limits"] == 2


def test_flex_batch_items_expire_with_their_timeout_and_an_expiry_is_reported_as_expired(
    emu: Any, tmp_path: Path
) -> None:
    prompts = ["flex 0", "flex late [[expire]]", {"prompt": "flex 2", "execution_expires_after": 86_400}]
    result = run_dag("it_budget_flex", prompts=prompts, destination=str(tmp_path))

    assert result.state == "success"  # one failure allowed
    sent = {t["prompt"]: t["request"] for t in emu.tasks()}
    assert sent["flex 0"]["service_tier"] == "flex" and sent["flex 0"]["execution_expires_after"] == 5_400
    assert sent["flex 2"]["execution_expires_after"] == 86_400  # given: kept
    rows = _rows(tmp_path)
    assert (rows[1]["status"], rows[1]["error_kind"]) == ("expired", "expired")


def test_a_flex_generate_expires_with_its_timeout_and_an_expiry_says_expired(
    emu: Any, tmp_path: Path
) -> None:
    ok = run_dag("it_flex_generate")
    assert ok.state == "success"
    (task,) = emu.tasks()
    assert task["request"]["execution_expires_after"] == 4_000

    log = tmp_path / "failures.log"
    late = run_dag("it_flex_generate", prompt="flex late [[expire]]", failure_log=str(log))
    assert late.state == "failed"
    if CALLBACKS_SEE_EXCEPTION:
        assert "GPTProtoTaskExpiredError" in log.read_text() and " expired " in log.read_text()
    (expired,) = [t for t in emu.tasks() if t["status"] == "expired"]
    with pytest.raises(GPTProtoTaskExpiredError, match=" expired "):  # what the operator raised
        GPTProtoHook().get_task(expired["id"]).raise_for_status()
