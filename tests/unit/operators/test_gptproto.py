"""The operators with a mocked hook (and, for generate, a dict-backed task state store).

Covers what the emulator-backed integration tests cannot reach cheaply: every branch of reattach
and of the lost-create reconcile, timeout-then-cancel on both paths, each trigger event status in
``execute_complete``, ``on_kill``, and one hook per execution, closed in every path.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, ObjectStoragePath, TaskDeferred

from airflow_provider_gptproto.assets import GPTPROTO_VIDEOS
from airflow_provider_gptproto.exceptions import (
    GPTProtoAuthError,
    GPTProtoBadRequestError,
    GPTProtoError,
    GPTProtoNotFoundError,
    GPTProtoTaskContentPolicyError,
    GPTProtoTaskFailedError,
    GPTProtoTaskMayExistError,
    GPTProtoTimeoutError,
)
from airflow_provider_gptproto.hooks.gptproto import RECONCILE_SKEW_SECONDS
from airflow_provider_gptproto.models import GenerationTask, TaskStatus
from airflow_provider_gptproto.operators import gptproto as operator_module
from airflow_provider_gptproto.operators.gptproto import (
    KILL_CANCEL_TIMEOUT_SECONDS,
    RECONCILE_SETTLE_SECONDS,
    GPTProtoDownloadVideoOperator,
    GPTProtoGenerateVideoOperator,
)
from airflow_provider_gptproto.storage import DownloadedVideo
from airflow_provider_gptproto.utils.results import TASK_ID_XCOM_KEY
from airflow_provider_gptproto.utils.task_state import TASK_KEY
from tests.unit.conftest import Sleeps
from tests.unit.fakes import (
    REQUEST_TIMEOUT,
    VIDEO_URL,
    CountingStore,
    HookFactory,
    make_context,
    patch_hook,
    task,
    trigger_event,
)

VIDEO_URL_KEY = "gptproto_video_url"
TIMEOUT = 600.0
POLICY_CODE = "OutputVideoSensitiveContentDetected"


pytestmark = pytest.mark.usefixtures("no_real_sleep")


@pytest.fixture
def factory(monkeypatch: pytest.MonkeyPatch) -> HookFactory:
    return patch_hook(monkeypatch, operator_module)


@pytest.fixture
def store() -> CountingStore:
    return CountingStore()


def make_operator(**kwargs: Any) -> GPTProtoGenerateVideoOperator:
    params: dict[str, Any] = {
        "task_id": "generate",
        "prompt": "a calm lake at dusk",
        "seed": 42,
        "poll_interval": 5.0,
        "timeout": TIMEOUT,
        "gptproto_conn_id": "gptproto_unit",
    }
    params.update(kwargs)
    return GPTProtoGenerateVideoOperator(**params)


def by_id(**tasks: GenerationTask | Exception) -> Any:
    """A get_task side effect answering per remote id (raising what is given as an exception)."""

    def get_task(task_id: str) -> GenerationTask:
        found = tasks[task_id.replace("-", "_")]
        if isinstance(found, Exception):
            raise found
        return found

    return get_task


# ------------------------------------------------------------------------------------- create


def test_create_only_records_nothing_and_returns_the_new_task(
    factory: HookFactory, store: CountingStore
) -> None:
    hook = factory.hook
    hook.create_task.return_value = task("task-1", "pending")
    context = make_context(store)

    result = make_operator(wait_for_completion=False).execute(context)

    assert result == {"kind": "generate", **task("task-1", "pending").to_dict(), "take": 1, "takes": 1}
    request = hook.create_task.call_args.args[0]
    assert (request.prompt, request.seed) == ("a calm lake at dusk", 42)
    assert context["ti"].xcom(TASK_ID_XCOM_KEY) == "task-1"
    # marker, record, then forgotten: nothing is left for a later try to reattach to
    assert store.calls == [f"get {TASK_KEY}", f"set {TASK_KEY}", f"set {TASK_KEY}", f"delete {TASK_KEY}"]
    assert TASK_KEY not in store.data
    hook.get_task.assert_not_called()
    hook.wait_for_task.assert_not_called()


def test_create_then_wait_in_the_worker_records_the_id_before_waiting(
    factory: HookFactory, store: CountingStore
) -> None:
    hook = factory.hook
    factory.creates()
    recorded: list[Any] = []

    def wait_for_task(
        task_id: str, poll_interval: float, *, deadline: float, raise_on_failure: bool
    ) -> GenerationTask:
        assert raise_on_failure is False  # the operator reports a failed task itself
        recorded.append(dict(store.data[TASK_KEY]))
        return task("task-1", "succeeded")

    hook.wait_for_task.side_effect = wait_for_task
    context = make_context(store)
    before = time.time()

    result = make_operator().execute(context)

    after = time.time()
    assert result is not None
    assert result["kind"] == "generate" and result["status"] == "succeeded"
    assert result["video_url"] == VIDEO_URL
    assert result["request"]["prompt"] == "a calm lake at dusk" and result["request"]["seed"] == 42
    # The retry-surviving record (id + absolute deadline) is durable before the wait starts.
    assert recorded[0]["task_id"] == "task-1"
    assert before + TIMEOUT <= recorded[0]["deadline"] <= after + TIMEOUT
    hook.wait_for_task.assert_called_once_with(
        "task-1", 5.0, deadline=recorded[0]["deadline"], raise_on_failure=False
    )
    assert context["ti"].xcom(VIDEO_URL_KEY) == VIDEO_URL
    assert TASK_KEY not in store.data  # delivered: clearing the task in Airflow regenerates


def test_the_result_carries_the_seed_asked_for_when_the_api_reports_none(
    factory: HookFactory, store: CountingStore
) -> None:
    factory.creates()
    factory.hook.wait_for_task.return_value = task("task-1", "succeeded")  # no seed in the reply

    result = make_operator(seed=1234).execute(make_context(store))

    assert result is not None and result["seed"] == 1234


def test_without_a_seed_every_phase_sends_and_reports_one_drawn_seed(factory: HookFactory) -> None:
    """Deferred: the create in one worker phase, the result in another (a new operator object)."""
    factory.creates()
    store = CountingStore()
    with pytest.raises(TaskDeferred):
        make_operator(seed=None, deferrable=True).execute(make_context(store))
    sent = factory.hook.create_task.call_args.args[0].seed
    assert isinstance(sent, int) and 1 <= sent <= 2_147_483_647

    result = make_operator(seed=None).execute_complete(
        make_context(store), trigger_event("success", task("task-1", "succeeded"))
    )
    assert result["seed"] == sent and result["request"]["seed"] == sent


def test_one_hook_per_execution_built_from_the_connection_and_closed(
    factory: HookFactory, store: CountingStore
) -> None:
    factory.creates()
    factory.hook.wait_for_task.return_value = task("task-1", "succeeded")

    make_operator().execute(make_context(store))

    assert factory.calls == [(("gptproto_unit",), {})]
    factory.hook.close.assert_called_once_with()


def test_a_short_task_is_finished_without_deferring(factory: HookFactory, store: CountingStore) -> None:
    factory.creates(then="succeeded")

    result = make_operator(deferrable=True).execute(make_context(store))

    assert result is not None and result["status"] == "succeeded"
    factory.hook.wait_for_task.assert_not_called()


def test_deferrable_defers_to_the_trigger_with_the_recorded_deadline(
    factory: HookFactory, store: CountingStore
) -> None:
    factory.creates()

    with pytest.raises(TaskDeferred) as deferred:
        make_operator(deferrable=True, cancel_on_kill=False).execute(make_context(store))

    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.trigger.serialize() == (
        "airflow_provider_gptproto.triggers.gptproto.GPTProtoTaskTrigger",
        {
            "gptproto_task_id": "task-1",
            "gptproto_conn_id": "gptproto_unit",
            "poll_interval": 5.0,
            "deadline": store.data[TASK_KEY]["deadline"],  # kept for a retry to reattach
            "cancel_on_kill": False,
        },
    )
    factory.hook.wait_for_task.assert_not_called()
    factory.hook.close.assert_called_once_with()


@pytest.mark.parametrize(
    ("error", "marker_kept"),
    [
        (GPTProtoBadRequestError("prompt rejected", http_status=400), False),
        (GPTProtoAuthError("bad key", http_status=401), False),
        (GPTProtoTaskMayExistError("reply lost"), True),
    ],
    ids=["bad-request", "auth", "may-exist"],
)
def test_a_failed_create_keeps_the_marker_only_when_a_task_may_exist(
    factory: HookFactory, store: CountingStore, error: GPTProtoError, marker_kept: bool
) -> None:
    factory.hook.create_task.side_effect = error

    with pytest.raises(type(error)):
        make_operator().execute(make_context(store))

    if marker_kept:
        assert set(store.data[TASK_KEY]) == {"create_started", "model"}
    else:
        assert TASK_KEY not in store.data
    factory.hook.close.assert_called_once_with()


def test_bad_input_fails_before_any_request(factory: HookFactory, store: CountingStore) -> None:
    op = make_operator(ratio="{{ params.ratio }}")  # templated: checked at run time, not parse time
    op.ratio = "2:1"

    with pytest.raises(GPTProtoError, match="ratio must be one of"):
        op.execute(make_context(store))

    factory.hook.create_task.assert_not_called()
    assert store.calls == []


# ------------------------------------------------------------------------------------- reattach


def record(task_id: str = "old-1", deadline: float | None = None) -> CountingStore:
    return CountingStore({TASK_KEY: {"task_id": task_id, "deadline": deadline}})


def test_reattach_to_a_running_task_keeps_its_deadline(factory: HookFactory) -> None:
    deadline = time.time() + 123.0
    store = record("old-1", deadline)
    hook = factory.hook
    hook.get_task.return_value = task("old-1", "running")
    hook.wait_for_task.return_value = task("old-1", "succeeded")
    context = make_context(store)

    result = make_operator().execute(context)

    assert result is not None and result["task_id"] == "old-1"
    hook.create_task.assert_not_called()
    hook.find_tasks_created_since.assert_not_called()
    hook.wait_for_task.assert_called_once_with("old-1", 5.0, deadline=deadline, raise_on_failure=False)
    assert context["ti"].xcom(TASK_ID_XCOM_KEY) == "old-1"
    assert TASK_KEY not in store.data


def test_reattach_to_a_record_without_deadline_starts_a_fresh_budget(factory: HookFactory) -> None:
    store = record("old-1", None)
    factory.hook.get_task.return_value = task("old-1", "running")
    before = time.time()

    with pytest.raises(TaskDeferred) as deferred:
        make_operator(deferrable=True).execute(make_context(store))

    assert before + TIMEOUT <= deferred.value.trigger.deadline <= time.time() + TIMEOUT
    factory.hook.create_task.assert_not_called()


def test_reattach_to_a_succeeded_task_delivers_it_without_waiting(factory: HookFactory) -> None:
    store = record("old-1", time.time() + 100)
    factory.hook.get_task.return_value = task("old-1", "succeeded")
    context = make_context(store)

    result = make_operator().execute(context)

    assert result is not None and result["status"] == "succeeded" and result["task_id"] == "old-1"
    factory.hook.get_task.assert_called_once_with("old-1")
    factory.hook.create_task.assert_not_called()
    factory.hook.wait_for_task.assert_not_called()
    assert context["ti"].xcom(VIDEO_URL_KEY) == VIDEO_URL


@pytest.mark.parametrize(
    "earlier",
    [
        task("old-1", "failed", error_code="InternalError"),
        task("old-1", "expired"),
        task("old-1", "cancelled"),
        GPTProtoNotFoundError("no such task", http_status=404),
    ],
    ids=["failed", "expired", "cancelled", "gone"],
)
def test_an_earlier_task_that_cannot_deliver_is_replaced_by_a_new_one(
    factory: HookFactory, earlier: GenerationTask | Exception
) -> None:
    store = record("old-1", time.time() + 100)
    factory.hook.get_task.side_effect = by_id(old_1=earlier, task_2=task("task-2", "running"))
    factory.hook.create_task.return_value = task("task-2", "pending")
    factory.hook.wait_for_task.return_value = task("task-2", "succeeded")
    context = make_context(store)

    result = make_operator().execute(context)

    assert result is not None and result["task_id"] == "task-2"
    factory.hook.create_task.assert_called_once()
    factory.hook.find_tasks_created_since.assert_not_called()  # a record, not a marker: nothing to reconcile
    assert context["ti"].xcom(TASK_ID_XCOM_KEY) == "task-2"
    assert f"set {TASK_KEY}" in store.calls


# ------------------------------------------------------------------------------------- reconcile


def marker(started: float, model: str = "seedance-1-0-lite-i2v-250428") -> CountingStore:
    return CountingStore({TASK_KEY: {"create_started": started, "model": model}})


def listed_since(started: float, task_id: str, status: str = "running") -> GenerationTask:
    """A task the list shows as created just after ``started``, as find_tasks_created_since returns."""
    return task(task_id, status).model_copy(
        update={"created_at": datetime.fromtimestamp(started + 1.0, tz=timezone.utc)}
    )


def test_reconcile_that_finds_nothing_creates(factory: HookFactory, sleeps: Sleeps) -> None:
    started = time.time() - 1000.0
    store = marker(started, "m1")
    hook = factory.hook
    hook.find_tasks_created_since.return_value = []
    hook.create_task.return_value = task("task-1", "pending")

    result = make_operator(model="m1", wait_for_completion=False).execute(make_context(store))

    assert result is not None and result["task_id"] == "task-1"
    hook.find_tasks_created_since.assert_called_once_with(started - RECONCILE_SKEW_SECONDS, model="m1")
    hook.create_task.assert_called_once()
    assert sleeps.calls == []  # long settled: no wait


def test_reconcile_waits_until_the_lost_create_must_have_finished(
    factory: HookFactory, sleeps: Sleeps
) -> None:
    store = marker(time.time() - 10.0, "")
    factory.hook.find_tasks_created_since.return_value = []
    factory.hook.create_task.return_value = task("task-1", "pending")

    make_operator(wait_for_completion=False).execute(make_context(store))

    # the lost request's own timeout plus the margin, minus the 10 s already gone
    settle = REQUEST_TIMEOUT + RECONCILE_SETTLE_SECONDS - 10.0
    assert len(sleeps.calls) == 1
    assert settle - 5.0 < sleeps.calls[0] <= settle
    assert factory.hook.find_tasks_created_since.call_args.kwargs == {"model": None}  # marker had none


def test_reconcile_that_finds_candidates_refuses_to_pay_twice(factory: HookFactory) -> None:
    started = time.time() - 1000.0
    store = marker(started)
    factory.hook.find_tasks_created_since.return_value = [
        listed_since(started, "maybe-1"),
        listed_since(started, "maybe-2", "succeeded"),
    ]

    with pytest.raises(AirflowFailException) as failed:
        make_operator().execute(make_context(store))

    assert "maybe-1" in str(failed.value) and "maybe-2" in str(failed.value)
    assert "gptproto_task" in str(failed.value)  # tells the user which state key to delete
    factory.hook.create_task.assert_not_called()
    assert "create_started" in store.data[TASK_KEY]  # the next try must still reconcile
    factory.hook.close.assert_called_once_with()


def test_reconcile_without_a_list_endpoint_fails_without_creating(factory: HookFactory) -> None:
    # Some deployments have no list endpoint (404). Whatever the error says, the create must not
    # be sent blindly and the marker must survive for the next try.
    store = marker(time.time() - 1000.0)
    factory.hook.find_tasks_created_since.side_effect = GPTProtoNotFoundError("Not Found", http_status=404)

    # The exact type and message are being made clearer (helper 14a): assert the family only.
    with pytest.raises(Exception) as failed:
        make_operator().execute(make_context(store))

    assert isinstance(failed.value, (GPTProtoError, AirflowFailException))
    factory.hook.create_task.assert_not_called()
    assert "create_started" in store.data[TASK_KEY]
    factory.hook.close.assert_called_once_with()


def test_an_interrupted_create_is_seen_by_the_next_try(factory: HookFactory, sleeps: Sleeps) -> None:
    store = CountingStore()
    factory.hook.create_task.side_effect = GPTProtoTaskMayExistError("reply lost")
    with pytest.raises(GPTProtoTaskMayExistError):
        make_operator().execute(make_context(store))
    started = store.data[TASK_KEY]["create_started"]
    factory.hook.find_tasks_created_since.return_value = [listed_since(started, "landed-1")]

    with pytest.raises(AirflowFailException, match="landed-1"):
        make_operator().execute(make_context(store))  # the retry (a new operator, the same store)

    factory.hook.find_tasks_created_since.assert_called_once_with(
        started - RECONCILE_SKEW_SECONDS, model="seedance-1-0-lite-i2v-250428"
    )
    assert factory.hook.create_task.call_count == 1
    assert len(sleeps.calls) == 1  # the retry came at once: it let the lost create settle first


# ------------------------------------------------------------------------------- timeout + cancel


def test_sync_timeout_cancels_the_remote_task_then_fails(factory: HookFactory, store: CountingStore) -> None:
    factory.creates()
    factory.hook.wait_for_task.side_effect = GPTProtoTimeoutError("still running at its deadline")

    with pytest.raises(GPTProtoTimeoutError, match="still running"):
        make_operator().execute(make_context(store))

    # The hook cancels, logging a refusal rather than raising (tests/unit/hooks/test_hook_api.py).
    factory.hook.cancel_after_timeout.assert_called_once_with("task-1")
    factory.hook.close.assert_called_once_with()


@pytest.mark.parametrize("remote", [task("task-1", "running"), None], ids=["with-task", "without-task"])
def test_execute_complete_timeout_cancels_then_fails(
    factory: HookFactory, store: CountingStore, remote: GenerationTask | None
) -> None:
    with pytest.raises(GPTProtoTimeoutError, match=r"timeout 600 s"):
        make_operator().execute_complete(make_context(store), trigger_event("timeout", remote))

    factory.hook.cancel_after_timeout.assert_called_once_with("task-1")
    factory.hook.close.assert_called_once_with()


def test_execute_complete_timeout_fails_even_when_the_cancel_fails(
    factory: HookFactory, store: CountingStore
) -> None:
    factory.hook.cancel_task.side_effect = GPTProtoError("unreachable")

    with pytest.raises(GPTProtoTimeoutError):
        make_operator().execute_complete(make_context(store), trigger_event("timeout", task("task-1")))

    factory.hook.close.assert_called_once_with()


# -------------------------------------------------------------------------------- execute_complete


def test_execute_complete_success_uses_the_measured_size_and_needs_no_hook(
    factory: HookFactory,
) -> None:
    store = record("task-1", time.time() + 100)
    context = make_context(store)

    result = make_operator().execute_complete(
        context, trigger_event("success", task("task-1", "succeeded"), video_bytes=3 * 1_048_576)
    )

    assert result["task_id"] == "task-1" and result["status"] == "succeeded"
    assert result["request"]["prompt"] == "a calm lake at dusk"
    assert context["ti"].xcom(VIDEO_URL_KEY) == VIDEO_URL
    assert TASK_ID_XCOM_KEY not in dict(context["ti"].pushes)  # pushed before the deferral
    assert TASK_KEY not in store.data
    assert factory.calls == []  # no connection lookup, no session, no HEAD in the worker


def test_execute_complete_failed_task_fails_the_try(factory: HookFactory) -> None:
    failed = task("task-1", "failed", error_code="InternalError", error_message="GPU fell over")

    with pytest.raises(GPTProtoTaskFailedError, match="GPU fell over") as error:
        make_operator().execute_complete(make_context(CountingStore()), trigger_event("failed", failed))

    assert not isinstance(error.value, GPTProtoTaskContentPolicyError)
    assert factory.calls == []


def test_execute_complete_content_policy_fails_without_retries(factory: HookFactory) -> None:
    rejected = task("task-1", "failed", error_code=POLICY_CODE)

    with pytest.raises(AirflowFailException, match="not retried") as error:
        make_operator().execute_complete(make_context(CountingStore()), trigger_event("failed", rejected))

    assert isinstance(error.value.__cause__, GPTProtoTaskContentPolicyError)


def test_execute_complete_content_policy_is_retried_when_asked(factory: HookFactory) -> None:
    rejected = task("task-1", "failed", error_code=POLICY_CODE)
    op = make_operator(retry_on_content_policy=True)

    with pytest.raises(GPTProtoTaskContentPolicyError):
        op.execute_complete(make_context(CountingStore()), trigger_event("failed", rejected))


def test_execute_complete_error_event_fails_with_its_message(factory: HookFactory) -> None:
    with pytest.raises(GPTProtoError, match="GPTProto task task-1 error"):
        make_operator().execute_complete(make_context(CountingStore()), trigger_event("error", None))

    factory.hook.cancel_task.assert_not_called()
    assert factory.calls == []


@pytest.mark.parametrize(
    "payload",
    [None, {}, {"status": "done", "task_id": "task-1"}, "success", ["success"]],
    ids=["none", "empty", "unknown-status", "string", "list"],
)
def test_execute_complete_malformed_event_fails_clearly(factory: HookFactory, payload: Any) -> None:
    with pytest.raises(GPTProtoError, match="Unexpected event from GPTProtoTaskTrigger"):
        make_operator().execute_complete(make_context(CountingStore()), payload)

    factory.hook.cancel_task.assert_not_called()


def test_execute_complete_success_without_task_is_an_error(factory: HookFactory) -> None:
    with pytest.raises(GPTProtoError):
        make_operator().execute_complete(make_context(CountingStore()), trigger_event("success", None))


# ------------------------------------------------------------------------------------------ kill


def test_on_kill_cancels_the_remote_task_with_a_short_bounded_hook(
    factory: HookFactory, store: CountingStore
) -> None:
    factory.creates()
    op = make_operator(deferrable=True)
    with pytest.raises(TaskDeferred):
        op.execute(make_context(store))
    factory.hook.cancel_task.reset_mock()
    factory.hook.close.reset_mock()

    op.on_kill()

    assert factory.calls[-1] == (
        ("gptproto_unit",),
        {"timeout": KILL_CANCEL_TIMEOUT_SECONDS, "retry_limit": 1},
    )
    factory.hook.cancel_task.assert_called_once_with("task-1")
    factory.hook.close.assert_called_once_with()  # the kill's own session is released too


def test_on_kill_swallows_a_refused_cancel(factory: HookFactory) -> None:
    op = make_operator()
    op._remote_task_id = "task-1"
    factory.hook.cancel_task.side_effect = GPTProtoError("already running")

    op.on_kill()  # must not raise: the kill goes on

    factory.hook.cancel_task.assert_called_once_with("task-1")


@pytest.mark.parametrize(
    ("cancel_on_kill", "remote_id"), [(False, "task-1"), (True, None)], ids=["opted-out", "nothing-created"]
)
def test_on_kill_cancels_nothing_it_does_not_own(
    factory: HookFactory, cancel_on_kill: bool, remote_id: str | None
) -> None:
    op = make_operator(cancel_on_kill=cancel_on_kill)
    op._remote_task_id = remote_id

    op.on_kill()

    assert factory.calls == []
    factory.hook.cancel_task.assert_not_called()


def test_status_words_of_the_fakes_are_the_models() -> None:
    # Guards the fakes themselves: a typo in a status word must not silently become "running".
    assert task(status="succeeded").status is TaskStatus.SUCCEEDED
    with pytest.raises(GPTProtoError):
        task(status="finished")


# ------------------------------------------------------------------------------------- download


class OutletEvents:
    """context["outlet_events"]: one event per asset, keyed by name and URI (Asset is not hashable
    on every Airflow version we support)."""

    def __init__(self) -> None:
        self.events: dict[tuple[str, str], SimpleNamespace] = {}

    def __getitem__(self, asset: Any) -> SimpleNamespace:
        return self.events.setdefault((asset.name, asset.uri), SimpleNamespace(extra={}))


def download_context() -> dict[str, Any]:
    context = make_context()
    context["outlet_events"] = OutletEvents()
    return context


def saved(destination: Any) -> DownloadedVideo:
    return DownloadedVideo(str(destination), 1234, "ab" * 32, "video/mp4")


def test_download_lands_the_video_and_describes_it_in_the_asset_event(
    factory: HookFactory, tmp_path: Path
) -> None:
    hook = factory.hook
    usage = {"completion_tokens": 108900, "total_tokens": 108900}
    hook.get_task.return_value = task("task-1", "succeeded", model="m1", usage=usage)
    hook.download_task_video.side_effect = lambda remote, destination, **options: saved(destination)
    generated = {"task_id": "task-1", "request": {"prompt": "a lake", "duration": 5, "ratio": "16:9"}}
    op = GPTProtoDownloadVideoOperator(
        task_id="download", gptproto_task=generated, destination=f"{tmp_path}/videos/", max_bytes=10_000
    )
    context = download_context()

    result = op.execute(context)

    # The hook owns the download (and its one refetch of an expired URL: tests/unit/hooks).
    remote, destination = hook.download_task_video.call_args.args
    assert remote.video_url == VIDEO_URL and hook.download_task_video.call_args.kwargs == {
        "max_bytes": 10_000,
        "if_exists": "overwrite",
    }
    assert isinstance(destination, ObjectStoragePath)
    assert str(destination).endswith("videos/task-1.mp4") and (tmp_path / "videos").is_dir()
    assert result == {
        "kind": "download",
        "task_id": "task-1",
        "prompt": "a lake",
        "model": "m1",
        "seed": None,
        "duration": 5,
        "dimension": "16:9",
        "sha256": "ab" * 32,
        "bytes": 1234,
        "uri": str(destination),
        "usage": usage,
    }
    assert context["outlet_events"][GPTPROTO_VIDEOS].extra == result
    assert context["ti"].xcom(VIDEO_URL_KEY) == VIDEO_URL
    hook.close.assert_called_once_with()


def test_download_of_a_failed_task_downloads_nothing(factory: HookFactory, tmp_path: Path) -> None:
    factory.hook.get_task.return_value = task("task-1", "failed", error_message="GPU fell over")
    op = GPTProtoDownloadVideoOperator(
        task_id="download", gptproto_task_id="task-1", destination=str(tmp_path / "v.mp4")
    )

    with pytest.raises(GPTProtoTaskFailedError):
        op.execute(download_context())

    factory.hook.download_video.assert_not_called()
    factory.hook.close.assert_called_once_with()


@pytest.mark.parametrize("given", [{"gptproto_task_id": "  "}, {"gptproto_task": {"task_id": None}}])
def test_download_without_a_task_id_fails_before_any_request(
    factory: HookFactory, tmp_path: Path, given: dict[str, Any]
) -> None:
    op = GPTProtoDownloadVideoOperator(task_id="download", destination=str(tmp_path), **given)

    with pytest.raises(GPTProtoError, match="gptproto_task_id must be a non-empty task id"):
        op.execute(download_context())

    factory.hook.get_task.assert_not_called()


# ------------------------------------------------------------------------------------- takes
def _takes_hook(factory: HookFactory, finished: str = "succeeded") -> Any:
    """Creates answer task-1, task-2, ... in order; every task reads back ``finished``, no seed."""
    hook = factory.hook
    hook.create_task.side_effect = lambda request: task(f"task-{hook.create_task.call_count}", "pending")
    hook.get_tasks.side_effect = lambda ids: {i: task(i, finished) for i in ids}
    return hook


def _batch_event(tasks: dict[str, GenerationTask], timed_out: list[str] | None = None) -> dict[str, Any]:
    return {
        "status": "ready",
        "tasks": {i: t.to_dict() for i, t in tasks.items()},
        "timed_out": timed_out or [],
        "missing": [],
        "message": "",
    }


def test_takes_create_one_task_per_take_with_its_own_seed_and_return_them_in_order(
    factory: HookFactory, store: CountingStore
) -> None:
    from airflow_provider_gptproto.models.batch_plan import next_seed

    hook = _takes_hook(factory)
    results = make_operator(takes=3).execute(make_context(store))

    sent = [call.args[0].seed for call in hook.create_task.call_args_list]
    assert sent == [42, next_seed(42), next_seed(42, 2)]  # seed is take 1's; the others derived
    assert isinstance(results, list)
    assert [(r["task_id"], r["take"], r["takes"], r["seed"]) for r in results] == [
        (f"task-{k}", k, 3, seed) for k, seed in enumerate(sent, 1)
    ]
    assert [r["request"]["seed"] for r in results] == sent and {r["status"] for r in results} == {"succeeded"}
    hook.wait_for_task.assert_not_called()  # one wait for all takes, not one per take
    assert hook.get_tasks.call_args_list[0].args[0] == ["task-1", "task-2", "task-3"]
    assert [c for c in store.calls if c.startswith("set")] == [
        f"set {TASK_KEY}.take-{k}"
        for k in (1, 1, 2, 2, 3, 3)  # marker, then record, per take
    ]
    assert store.data == {}  # delivered: clearing the task regenerates


def test_takes_without_a_seed_draw_distinct_ones_stable_across_tries(factory: HookFactory) -> None:
    hook = _takes_hook(factory)
    make_operator(seed=None, takes=2).execute(make_context(CountingStore()))
    make_operator(seed=None, takes=2).execute(make_context(CountingStore()))
    sent = [call.args[0].seed for call in hook.create_task.call_args_list]
    assert sent[:2] == sent[2:] and len(set(sent[:2])) == 2
    make_operator(seed=None, seeds=[5, 6], takes=2).execute(make_context(CountingStore()))
    assert [call.args[0].seed for call in hook.create_task.call_args_list[4:]] == [5, 6]


def test_a_retry_of_takes_reattaches_every_recorded_take_and_pays_only_for_the_rest(
    factory: HookFactory,
) -> None:
    hook = _takes_hook(factory)
    store = CountingStore(
        {
            f"{TASK_KEY}.take-1": {"task_id": "old-1", "deadline": time.time() + 100},
            f"{TASK_KEY}.take-2": {"task_id": "old-2", "deadline": time.time() + 100},
        }
    )
    hook.get_task.side_effect = by_id(old_1=task("old-1", "running"), old_2=task("old-2", "succeeded"))

    results = make_operator(takes=3).execute(make_context(store))

    assert hook.create_task.call_count == 1  # take 3 only
    assert [r["task_id"] for r in results] == ["old-1", "old-2", "task-1"]  # type: ignore[index]


def test_a_failed_take_fails_the_try_and_keeps_every_take_for_the_retry(factory: HookFactory) -> None:
    hook = _takes_hook(factory)
    hook.get_tasks.side_effect = lambda ids: {
        i: task(i, "failed" if i == "task-2" else "succeeded", error_code="InternalError") for i in ids
    }
    store = CountingStore()
    with pytest.raises(GPTProtoTaskFailedError):
        make_operator(takes=3).execute(make_context(store))
    assert [store.data[f"{TASK_KEY}.take-{k}"]["task_id"] for k in (1, 2, 3)] == [
        "task-1",
        "task-2",
        "task-3",
    ]


def test_deferrable_takes_wait_in_one_batch_trigger_and_finish_in_take_order(
    factory: HookFactory, store: CountingStore
) -> None:
    from airflow_provider_gptproto.triggers.batch import GPTProtoBatchTrigger

    _takes_hook(factory)
    first = make_context(store)
    with pytest.raises(TaskDeferred) as deferred:
        make_operator(takes=3, deferrable=True).execute(first)
    first = first["ti"]
    trigger = deferred.value.trigger
    assert isinstance(trigger, GPTProtoBatchTrigger)
    assert list(trigger.watch) == ["task-1", "task-2", "task-3"] and trigger.min_finished == 3
    context = make_context(store)
    context["ti"].pushes = list(first.pushes)  # XComs of the try survive its deferral

    finished = {f"task-{k}": task(f"task-{k}", "succeeded", seed=k) for k in (3, 1, 2)}  # any order
    results = make_operator(takes=3).execute_complete(context, _batch_event(finished))
    assert [(r["task_id"], r["take"], r["seed"]) for r in results] == [  # type: ignore[index]
        ("task-1", 1, 1),
        ("task-2", 2, 2),
        ("task-3", 3, 3),
    ]
    assert store.data == {}


def test_a_take_past_its_deadline_is_cancelled_and_fails_the_try(factory: HookFactory) -> None:
    from airflow_provider_gptproto.operators.gptproto import TAKE_IDS_XCOM_KEY

    store = CountingStore({f"{TASK_KEY}.take-{k}": {"task_id": f"task-{k}", "deadline": 1.0} for k in (1, 2)})
    event = _batch_event({"task-1": task("task-1", "succeeded")}, timed_out=["task-2"])
    context = make_context(store)
    context["ti"].xcom_push(TAKE_IDS_XCOM_KEY, ["task-1", "task-2"])
    with pytest.raises(GPTProtoTimeoutError, match=r"Takes \[2\]"):
        make_operator(takes=2).execute_complete(context, event)
    factory.hook.cancel_after_timeout.assert_called_once_with("task-2")
    assert f"{TASK_KEY}.take-1" in store.data  # the finished take is reattached by the retry


def test_on_kill_cancels_every_take(factory: HookFactory) -> None:
    op = make_operator(takes=2)
    op._take_ids = ["task-1", "task-2"]
    op.on_kill()
    assert [c.args for c in factory.hook.cancel_task.call_args_list] == [("task-1",), ("task-2",)]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"takes": 0}, "takes"), ({"takes": 2.0}, "takes"), ({"takes": 2, "seeds": [1, 2, 3]}, "seeds")],
)
def test_bad_takes_fail_naming_the_field(factory: HookFactory, kwargs: dict[str, Any], field: str) -> None:
    from airflow_provider_gptproto.exceptions import GPTProtoRequestError

    with pytest.raises(GPTProtoRequestError, match=field) as caught:
        make_operator(**{"seed": None, **kwargs})
    assert caught.value.field == field
    factory.hook.create_task.assert_not_called()
