"""Spending limits decided from made-up journal entries: no I/O (models/budget.py, BatchPlan.decide)."""

from __future__ import annotations

import random

import pytest

from airflow_provider_gptproto.exceptions import GPTProtoRequestError, GPTProtoTaskExpiredError
from airflow_provider_gptproto.models import GenerationTask, TaskStatus
from airflow_provider_gptproto.models.batch_plan import (
    BatchPlan,
    Finish,
    ItemState,
    JournalEntry,
    in_flight,
    resume,
)
from airflow_provider_gptproto.models.budget import (
    Budget,
    Cost,
    dry_run_plan,
    item_cost,
    spent_by,
)
from airflow_provider_gptproto.models.request import VideoGenerationRequest

NOW = 1_000.0
FIVE = Cost(5, ("m", 5, None, None, None))
TEN = Cost(10, ("m", 10, None, None, None))


def plan(total: int, budget: Budget, costs: tuple[Cost, ...] | None = None, **kw: object) -> BatchPlan:
    return BatchPlan(
        total,
        kw.pop("max_in_flight", 3),
        60.0,
        NOW + 3_600,
        budget=budget,
        costs=costs or (FIVE,) * total,
        **kw,
    )  # type: ignore[arg-type]


def running(task_id: str) -> JournalEntry:
    return JournalEntry(ItemState.RUNNING, task_id, at=NOW)


def done(task_id: str, used: int | None = 100) -> JournalEntry:
    usage = None if used is None else {"completion_tokens": used, "total_tokens": used}
    return JournalEntry(ItemState.DONE, task_id, nbytes=1, sha256="ab", usage=usage)


def skipped(entries: dict[int, JournalEntry]) -> list[int]:
    return sorted(i for i, e in entries.items() if e.kind == "budget" and e.status == "skipped")


def test_max_videos_counts_every_create_that_may_have_been_paid() -> None:
    entries = {
        0: done("t0"),
        1: running("t1"),
        2: JournalEntry(ItemState.FAILED, "t2", status="failed", kind="remote"),  # created, then failed
        3: JournalEntry(ItemState.FAILED, None, status="failed", kind="ambiguous"),  # reply lost
        4: JournalEntry(ItemState.FAILED, None, status="failed", kind="create"),  # refused: no task
        5: JournalEntry(ItemState.FAILED, None, status="failed", kind="policy"),  # refused at create
    }
    actions = plan(9, Budget(max_videos=5)).decide(entries, NOW)
    assert actions.create == (6,)  # four counted (0-3), one more allowed
    assert skipped(actions.changes) == [7, 8]
    assert "max_videos=5 (the next create would bring it to 6)" in actions.changes[7].error  # type: ignore[operator]


def test_max_video_seconds_counts_the_requested_seconds_of_creates() -> None:
    costs = (TEN, FIVE, TEN, FIVE, FIVE)
    actions = plan(5, Budget(max_video_seconds=20), costs).decide({0: done("t0")}, NOW)
    assert actions.create == (1,)  # 10 + 5 = 15; item 2 would make 25
    assert skipped(actions.changes) == [2, 3, 4]  # nothing after the stop is created, even if it fits
    assert "max_video_seconds=20" in str(actions.changes[2].error)


def test_max_usage_tokens_counts_reported_usage_and_estimates_in_flight_items_of_the_same_shape() -> None:
    budget = Budget(max_usage_tokens=450)
    costs = (FIVE, FIVE, FIVE, TEN, FIVE, FIVE)
    entries = {0: done("t0", 100), 1: running("t1"), 2: running("t2")}
    # 100 reported + 2 x 100 estimated in flight = 300; item 3 has no finished shape (1 token),
    # item 4 is estimated at 100 (401), item 5 would make 501.
    actions = plan(6, budget, costs, max_in_flight=6).decide(entries, NOW)
    assert actions.create == (3, 4)
    assert skipped(actions.changes) == [5]

    # Nothing finished: no estimate, only reported usage counts (one token per create).
    assert plan(6, budget, costs, max_in_flight=6).decide({}, NOW).create == (0, 1, 2, 3, 4, 5)


def test_the_estimate_is_the_largest_usage_reported_for_the_shape_and_a_done_item_without_usage_gets_it() -> (
    None
):
    budget = Budget(max_usage_tokens=1_000)
    entries = {0: done("t0", 300), 1: done("t1", 500), 2: done("t2", None)}
    # 800 reported + 500 estimated for the done item the reply carried no usage for = 1300 > 1000.
    actions = plan(4, budget).decide(entries, NOW)
    assert actions.create == () and skipped(actions.changes) == [3]


@pytest.mark.parametrize("max_in_flight", [1, 2, 4, 7])
@pytest.mark.parametrize("seed", range(5))
def test_overshoot_is_bounded_by_what_is_in_flight_when_the_limit_is_reached(
    max_in_flight: int, seed: int
) -> None:
    """A batch played out with a random order of finishing: the videos and seconds limits are never
    passed; the tokens limit by at most ``max_in_flight`` items' usage."""
    rng = random.Random(seed)
    total, per_item = 20, 100
    for budget in (Budget(max_videos=6), Budget(max_video_seconds=32), Budget(max_usage_tokens=450)):
        batch = plan(total, budget, max_in_flight=max_in_flight)
        entries: dict[int, JournalEntry] = {}
        creates = 0
        while True:
            actions = batch.decide(entries, NOW)
            entries.update(actions.changes)
            for index in actions.create:
                entries[index] = running(f"t{index}")
                creates += 1
            running_now = list(in_flight(entries).values())
            assert len(running_now) <= max_in_flight
            if not running_now:
                break
            for index in rng.sample(running_now, rng.randint(1, len(running_now))):
                entries[index] = entries[index].done(1, "ab", None, {"total_tokens": per_item})
        finish = batch.wait_or_finish(entries)
        assert isinstance(finish, Finish) and finish.error is None and finish.failed == ()
        assert len(finish.skipped) == total - creates > 0
        spent = spent_by(entries, batch.costs)
        assert spent["videos"] == creates
        if budget.max_videos is not None:
            assert creates == 6  # never passed, and not stopped early
        elif budget.max_video_seconds is not None:
            assert spent["video_seconds"] == 30  # 6 x 5 s; a seventh would make 35
        else:
            assert budget.max_usage_tokens is not None
            assert spent["usage_tokens"] <= budget.max_usage_tokens + max_in_flight * per_item
            if max_in_flight == 1:  # once an estimate exists, nothing in flight is unknown
                assert spent["usage_tokens"] <= budget.max_usage_tokens


def test_skipped_items_are_not_failures_and_the_batch_finishes_within_max_failed_items() -> None:
    batch = plan(4, Budget(max_videos=2), max_failed_items=0)
    entries = {0: done("t0"), 1: done("t1")}
    entries.update(batch.decide(entries, NOW).changes)
    finish = batch.wait_or_finish(entries)
    assert finish == Finish(failed=(), error=None, skipped=(2, 3))


def test_a_new_try_counts_what_earlier_attempts_spent_and_rechecks_skipped_items() -> None:
    entries = {
        0: JournalEntry(ItemState.FAILED, "t0", status="failed", kind="remote", usage={"total_tokens": 40}),
        1: JournalEntry(ItemState.FAILED, None, status="skipped", kind="budget", error="not created"),
    }
    retried = resume(entries, retry_policy_failures=False, now=NOW, carry=True)
    assert retried[0] == JournalEntry(paid=1, paid_tokens=40)
    assert retried[1] == JournalEntry()  # skipped: back to be decided again, nothing spent
    assert spent_by(retried, (FIVE, FIVE)) == {"videos": 1, "video_seconds": 5, "usage_tokens": 40}

    actions = plan(2, Budget(max_videos=2)).decide(retried, NOW)
    assert actions.create == (0,) and skipped(actions.changes) == [1]  # the earlier create counts
    # With higher limits (the DAG changed, the task cleared), the skipped item is created too.
    assert plan(2, Budget(max_videos=3)).decide(retried, NOW).create == (0, 1)


def test_an_in_task_retry_counts_the_failed_attempt_and_a_skipped_item_is_not_retried() -> None:
    batch = plan(2, Budget(max_videos=2), item_retries=3, max_in_flight=1, chain=True)
    failed = JournalEntry(ItemState.FAILED, "t0", seed=5, status="failed", kind="remote")
    actions = batch.decide({0: failed}, NOW)
    assert actions.create == (0,) and actions.changes[0].paid == 1
    entries = {0: actions.changes[0].running("t1", NOW, 6, 1).failed("remote", "boom")}
    again = batch.decide(entries, NOW)
    assert again.create == () and skipped(again.changes) == [0, 1]  # a third create would pass 2
    entries.update(again.changes)
    assert batch.retries(entries, NOW) == {}  # a budget skip is final within the task


def test_expired_tasks_are_recorded_as_expired() -> None:
    batch = BatchPlan(1, 1, 60.0, NOW + 60)
    task = GenerationTask(task_id="t0", status=TaskStatus.EXPIRED, error_message="not run in time")
    changes = batch.observe({0: running("t0")}, {"t0": task}, (), ()).changes
    assert (changes[0].kind, changes[0].status) == ("expired", "expired")
    assert resume(changes, False, NOW) == {0: JournalEntry()}  # a new try creates it again
    with pytest.raises(GPTProtoTaskExpiredError, match="t0 expired"):
        task.raise_for_status()


@pytest.mark.parametrize(
    ("params", "seconds"),
    [
        ({}, 5),
        ({"duration": "10s"}, 10),
        ({"duration": 7}, 7),
        ({"duration": -1}, 15),
        ({"frames": 121}, 121 / 24),
        ({"prompt": "a lake --rs 720p --dur 10"}, 10),
    ],
)
def test_the_seconds_of_a_create(params: dict[str, object], seconds: float) -> None:
    request = VideoGenerationRequest.build(**{"prompt": "a lake", **params})
    assert item_cost(request).seconds == seconds


def test_shapes_tell_models_durations_and_sizes_apart() -> None:
    def shape(**params: object) -> object:
        return item_cost(VideoGenerationRequest.build(prompt="x", **params)).shape

    assert shape(duration=5) == shape(duration=5) != shape(duration=6)
    assert shape(resolution="720p") != shape(resolution="1080p")
    assert shape(model="a") != shape(model="b")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_videos", -1),
        ("max_videos", 2.5),
        ("max_videos", True),
        ("max_videos", "3"),
        ("max_video_seconds", -0.5),
        ("max_video_seconds", "10"),
        ("max_usage_tokens", -5),
        ("max_usage_tokens", 1e6),
    ],
)
def test_bad_limits_name_the_field_and_what_is_allowed(field: str, value: object) -> None:
    with pytest.raises(
        GPTProtoRequestError, match=rf"{field} must be None or an? (integer|number) >= 0"
    ) as err:
        Budget.checked(**{field: value})
    assert err.value.field == field


def test_on_budget_is_fail_or_succeed() -> None:
    assert Budget.checked("fail") == Budget.checked("succeed", max_videos=None) == Budget()
    with pytest.raises(
        GPTProtoRequestError, match="on_budget must be one of 'fail', 'succeed', got 'stop'"
    ) as err:
        Budget.checked("stop")
    assert err.value.field == "on_budget"


def test_a_dry_run_plan_says_what_would_be_created_and_what_the_limits_allow() -> None:
    hd = Cost(5, ("m", 5, "720p", "16:9", None))
    costs = [hd, hd, Cost(10, ("m", 10, "720p", "16:9", None)), Cost(10, ("other", 10, None, None, None))]
    known = {hd.shape: 100, costs[2].shape: 200}
    result = dry_run_plan(Budget(max_usage_tokens=350), costs, known)
    assert result == {
        "kind": "plan",
        "videos": 4,
        "video_seconds": 30,
        "resolutions": {"720p 16:9": 3, "default": 1},
        "usage_tokens_estimate": 400,
        "estimated": 3,
        "within_limits": 2,  # 100 + 100; the third would make 400
        "stopped_by": "max_usage_tokens=350 (the next create would bring it to 400)",
    }
    assert dry_run_plan(Budget(), costs, {})["usage_tokens_estimate"] is None


@pytest.mark.parametrize(
    ("params", "wait", "expected"),
    [
        ({"service_tier": "flex"}, 7_200, 7_200),
        ({"service_tier": "flex"}, 7_200.2, 7_201),  # never shorter than the wait
        ({"service_tier": "flex"}, 60, 3_600),  # the API's minimum
        ({"service_tier": "flex"}, 10**7, 259_200),  # the API's maximum
        ({"service_tier": "flex", "execution_expires_after": 86_400}, 7_200, 86_400),  # given: kept
        ({"service_tier": "default"}, 7_200, None),
        ({}, 7_200, None),
    ],
)
def test_flex_requests_expire_with_the_wait(
    params: dict[str, object], wait: float, expected: int | None
) -> None:
    request = VideoGenerationRequest.build(prompt="a lake", **params).expiring_within(wait)
    assert request.execution_expires_after == expected
    assert request.to_payload().get("execution_expires_after") == expected
