"""Issue 14 against the emulator over loopback: what a newcomer does first, and real outages.

The outages are real: the emulator process is stopped and started again on the same port with its
state file, for longer than the connection's ``retry_limit`` attempts last.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from airflow_provider_gptproto.emulator.harness import EmulatorProcess, wait_for
from airflow_provider_gptproto.hooks.gptproto import GPTProtoHook
from tests.integration.dagrun import run_dag
from tests.integration.versions import AIRFLOW_VERSION, HAS_TASK_STATE_STORE
from tests.support.reliability_stack import RestartableEmulator

pytestmark = pytest.mark.usefixtures("airflow_db")
API_KEY = "it14-key"
RETRY_LIMIT = 2  # each status check may try twice; the outages below last far longer
OUTAGE_SECONDS = 6.0


def _use(monkeypatch: pytest.MonkeyPatch, url: str, api_key: str, **extra: Any) -> None:
    conn = {"conn_type": "gptproto", "host": url, "password": api_key, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_GPTPROTO_DEFAULT", json.dumps(conn))


@pytest.fixture
def restartable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RestartableEmulator]:
    emu = RestartableEmulator(tmp_path, API_KEY, queue_seconds=0.2, run_seconds=4.0)
    emu.start()
    _use(monkeypatch, emu.url, API_KEY, retry_limit=RETRY_LIMIT, timeout=2)
    try:
        yield emu
    finally:
        emu.stop()


def _outage_once(emu: RestartableEmulator, when: Any) -> threading.Thread:
    """In the background: once ``when()`` holds, stop the API for OUTAGE_SECONDS, then restart it."""

    def run() -> None:
        wait_for(when, timeout=60, interval=0.05, what="the outage's start")
        emu.kill()
        time.sleep(OUTAGE_SECONDS)
        emu.start()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _remote(emu: RestartableEmulator) -> list[dict[str, Any]]:
    return emu.current.tasks()


def _failures(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.exists() else ""


# ------------------------------------------------------------------------------ outages


def test_hook_wait_rides_out_an_outage_longer_than_retry_limit(
    restartable: RestartableEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    hook = GPTProtoHook()
    task = hook.create_task(prompt="a hook waiting through an outage")
    outage = _outage_once(restartable, lambda: True)

    done = hook.wait_for_task(task.task_id, poll_interval=0.2, timeout=120)

    outage.join(30)
    assert done.status.value == "succeeded" and done.video_url
    assert len(restartable.processes) == 2  # it really came back after the outage
    out, err = capfd.readouterr()
    backoffs = [line for line in (out + err).splitlines() if "transient, failure" in line]
    assert len(backoffs) > RETRY_LIMIT, out + err  # each backoff is logged
    assert "works again after" in out + err
    assert restartable.current.stats()["tasks_created"] == 0  # nothing created again


def test_sync_generate_rides_out_an_outage_in_one_try(
    restartable: RestartableEmulator, tmp_path: Path
) -> None:
    failure_log = tmp_path / "failures.txt"
    first = restartable.current
    outage = _outage_once(restartable, lambda: any(t["status"] == "running" for t in first.tasks()))

    result = run_dag("it14_sync_outage", failure_log=str(failure_log))

    outage.join(30)
    assert len(restartable.processes) == 2
    assert result.state == "success", _failures(failure_log)
    assert result.tries("generate") == 1  # no Airflow retry spent on the outage
    assert result.xcom("generate")["status"] == "succeeded"
    (remote,) = _remote(restartable)
    assert remote["id"] == result.xcom("generate", "gptproto_task_id")


# Airflow 3.0's `dag test` hands a rescheduled sensor its first reschedule date as a string, so
# BaseSensorOperator's own run_duration() fails with a TypeError before any poke: not ours to test there.
RESCHEDULE = pytest.param(
    "reschedule",
    marks=pytest.mark.skipif(
        Version("3.1") > AIRFLOW_VERSION, reason="Airflow 3.0 dag test: reschedule date arrives as a string"
    ),
)


@pytest.mark.parametrize("mode", ["poke", RESCHEDULE])
def test_sensor_rides_out_an_outage(restartable: RestartableEmulator, tmp_path: Path, mode: str) -> None:
    task_id = GPTProtoHook().create_task(prompt=f"a sensor in {mode} mode").task_id
    failure_log = tmp_path / "failures.txt"
    outage = _outage_once(restartable, lambda: True)

    result = run_dag(f"it14_sensor_{mode}", task_id=task_id, failure_log=str(failure_log))

    outage.join(30)
    assert len(restartable.processes) == 2
    assert result.state == "success", _failures(failure_log)
    assert _failures(failure_log) == ""  # no try failed on the way
    assert result.xcom("wait")["task_id"] == task_id
    assert result.xcom("wait")["status"] == "succeeded"


# ------------------------------------------------------------------------------ the hook in a @task


def test_example_dag_with_the_hook_in_a_task(emulator: EmulatorProcess, tmp_path: Path) -> None:
    result = run_dag("gptproto_hook_in_task", prompt="a paper boat", output_dir=str(tmp_path))

    assert result.state == "success"
    saved = result.xcom("generate_and_save")
    (path,) = tmp_path.glob("paper-boat-*.mp4")
    assert saved["uri"] == str(path)
    assert path.stat().st_size == saved["bytes"] > 0
    assert path.read_bytes()[4:8] == b"ftyp"
    assert emulator.stats()["tasks_created"] == 1
    (made,) = emulator.tasks()
    assert saved["seed"] == made["seed"] and saved["request"]["prompt"] == "a paper boat"


def test_the_hook_in_a_task_checks_an_s3_destination_before_paying(
    emulator: EmulatorProcess, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    result = run_dag("gptproto_hook_in_task", prompt="a paper boat", output_dir="s3://aws_default@videos/")

    assert result.state == "failed"
    assert emulator.stats()["tasks_created"] == 0  # refused before the create: nothing paid
    out, err = capfd.readouterr()
    # Refused for the right reason: the task log names the package to install.
    assert 'pip install "apache-airflow-providers-amazon[s3fs]"' in out + err


# ------------------------------------------------------------------------------ no list endpoint


@pytest.mark.skipif(
    not HAS_TASK_STATE_STORE, reason="the lost-create reconcile needs Airflow 3.3's task state store"
)
def test_lost_create_without_a_list_endpoint_fails_clearly_without_paying_twice(
    gptproto_emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    emu = gptproto_emulator_factory(no_list_endpoint=True, api_key=API_KEY)
    _use(monkeypatch, emu.url, API_KEY, timeout=1)  # the reconcile waits one request timeout
    emu.add_fault(endpoint="create", action="drop_after", count=1)  # created, reply lost
    failure_log = tmp_path / "failures.txt"

    result = run_dag("it14_lost_create", failure_log=str(failure_log))

    assert result.state == "failed"
    assert result.tries("generate") == 2
    assert emu.stats()["tasks_created"] == 1  # the retry did not create another
    failures = _failures(failure_log)
    assert "a paid task may have been created" in failures  # try 1
    second = failures.splitlines()[-1]
    assert "cannot verify whether a paid task was created" in second
    assert "Look in your GPTProto account" in second
    assert "state store key 'gptproto_task'" in second
    assert "Not Found" not in second


# ------------------------------------------------------------------------------ downloads, logs


def test_download_skip_keeps_an_existing_file(emulator: EmulatorProcess, tmp_path: Path) -> None:
    dest = tmp_path / "video.mp4"
    dest.write_bytes(b"kept")

    result = run_dag("it14_download_skip", dest=str(dest))

    assert result.state == "success"
    assert dest.read_bytes() == b"kept"
    assert result.xcom("download")["bytes"] == 4
    # Only the generate step's HEAD (the size it logs) reached the video: nothing was downloaded.
    assert [r["method"] for r in emulator.requests_log(endpoint="video")] == ["HEAD"]


def test_download_fail_refuses_to_replace_and_names_the_file(
    emulator: EmulatorProcess,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    dest = tmp_path / "video.mp4"
    dest.write_bytes(b"kept")

    result = run_dag("it14_download_fail", dest=str(dest))

    assert result.state == "failed"
    assert result.ti_state("download") == "failed"
    assert dest.read_bytes() == b"kept"
    # The task log (Airflow 3.1 gives callbacks no exception): on stdout, or through logging on 3.0.
    out, err = capfd.readouterr()
    said = f"Destination {dest} already exists and if_exists='fail'"
    if Version("3.1") <= AIRFLOW_VERSION:  # Airflow 3.0's `dag test` prints no task exception
        assert said in out + err + caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["video.mp4"]  # no .part left


def test_a_failing_generate_logs_no_missing_xcom_error(
    emulator: EmulatorProcess, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """A create refused (bad key): the task fails before any video URL exists, which is expected."""
    emulator.add_fault(endpoint="create", action="status", status=401, count=5)

    result = run_dag("it14_lost_create")

    assert result.state == "failed"
    out, err = capfd.readouterr()
    text = out + err + "\n".join(r.getMessage() for r in caplog.records)
    assert "401" in text  # the real failure is in the log ...
    assert "XCom not found" not in text  # ... and no second, false one
    assert "gptproto_video_url" not in text
