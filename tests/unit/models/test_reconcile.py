"""The one answer to "did a create whose reply was lost land?", driven with made-up listings."""

from __future__ import annotations

from datetime import datetime, timezone

from airflow_provider_gptproto.models import GenerationTask, TaskStatus
from airflow_provider_gptproto.models.reconcile import (
    RECONCILE_SETTLE_SECONDS,
    RECONCILE_SKEW_SECONDS,
    Landing,
    LostCreate,
    Reconciled,
    reconcile,
)

SENT = 1_800_000_000.0
LOST = LostCreate(SENT, "m1")


def listed(task_id: str, created: float | None) -> GenerationTask:
    when = None if created is None else datetime.fromtimestamp(created, tz=timezone.utc)
    return GenerationTask(task_id=task_id, status=TaskStatus.RUNNING, created_at=when)


def test_a_task_created_after_the_request_landed() -> None:
    assert reconcile(LOST, [listed("t1", SENT + 3.0)]) == Reconciled(Landing.LANDED, candidates=("t1",))


def test_an_empty_listing_means_not_landed() -> None:
    assert reconcile(LOST, []) == Reconciled(Landing.NOT_LANDED)


def test_a_task_just_outside_the_window_is_not_a_candidate_and_one_just_inside_is() -> None:
    window_start = SENT - RECONCILE_SKEW_SECONDS
    assert reconcile(LOST, [listed("old", window_start - 0.001)]).landing is Landing.NOT_LANDED
    assert reconcile(LOST, [listed("edge", window_start)]).candidates == ("edge",)


def test_two_candidates_are_both_named_newest_first() -> None:
    found = reconcile(
        LOST, [listed("newer", SENT + 9.0), listed("older", SENT + 1.0), listed("old", SENT - 60)]
    )
    assert found == Reconciled(Landing.LANDED, candidates=("newer", "older"))


def test_a_task_without_a_creation_time_is_never_dropped() -> None:
    assert reconcile(LOST, [listed("undated", None)]).candidates == ("undated",)


def test_tasks_already_known_are_not_candidates() -> None:
    tasks = [listed("ours", SENT + 1.0), listed("stranger", SENT + 2.0)]
    assert reconcile(LOST, tasks, known={"ours"}).candidates == ("stranger",)
    assert reconcile(LOST, tasks[:1], known={"ours"}).landing is Landing.NOT_LANDED


def test_an_unreadable_list_cannot_tell_and_says_why() -> None:
    found = reconcile(LOST, None, unreadable="GET /tasks answered HTTP 404")
    assert found == Reconciled(Landing.UNKNOWN, reason="GET /tasks answered HTTP 404")
    assert reconcile(LOST, None).reason  # a reason even when the caller gave none


def test_the_list_is_trusted_only_once_the_lost_request_must_have_finished() -> None:
    assert LOST.settle_seconds(30.0, SENT + 10.0) == 30.0 + RECONCILE_SETTLE_SECONDS - 10.0
    assert LOST.settle_seconds(30.0, SENT + 1000.0) == 0.0
