"""The batch plan decides from made-up journal states and observations alone: no I/O, time passed in."""

from __future__ import annotations

from airflow_provider_gptproto.models import GenerationTask, TaskStatus
from airflow_provider_gptproto.models.batch_plan import (
    Actions,
    BatchPlan,
    Finish,
    ItemState,
    JournalEntry,
    Wait,
    next_seed,
    resume,
)

NOW = 1_000.0
PLAN = BatchPlan(total=7, max_in_flight=3, timeout=60.0, deadline=NOW + 3_600, max_failed_items=1)


def running(task_id: str, at: float = NOW) -> JournalEntry:
    return JournalEntry(ItemState.RUNNING, task_id, at=at, seed=5)


def done(task_id: str) -> JournalEntry:
    return JournalEntry(ItemState.DONE, task_id, nbytes=10, sha256="ab")


def failed(kind: str, task_id: str | None = None) -> JournalEntry:
    return JournalEntry(ItemState.FAILED, task_id, status="failed", error="boom", kind=kind)


def test_a_fresh_batch_creates_up_to_max_in_flight() -> None:
    assert PLAN.decide({}, NOW) == Actions(create=(0, 1, 2))


def test_running_items_bound_the_next_wave_and_the_wait_watches_their_ids() -> None:
    entries = {0: done("t0"), 1: running("t1", at=NOW - 10), 2: running("t2", at=NOW)}
    assert PLAN.decide(entries, NOW) == Actions(create=(3,))

    wait = PLAN.wait_or_finish(entries)
    assert wait == Wait({"t1": NOW + 50, "t2": NOW + 60}, min_finished=1)  # half, items remain to create


def test_with_nothing_left_to_create_the_wait_is_for_all_and_capped_by_the_deadline() -> None:
    plan = BatchPlan(total=3, max_in_flight=3, timeout=600.0, deadline=NOW + 100)
    entries = {0: done("t0"), 1: running("t1"), 2: running("t2", at=NOW - 590)}
    assert plan.decide(entries, NOW) == Actions()
    assert plan.wait_or_finish(entries) == Wait({"t1": NOW + 100, "t2": NOW + 10}, min_finished=2)


def test_finished_items_are_downloaded_and_the_rest_recorded() -> None:
    entries = {i: running(f"t{i}") for i in range(5)} | {5: done("t5")}
    policy = GenerationTask(
        task_id="t1", status=TaskStatus.FAILED, error_code="OutputVideoSensitiveContentDetected", seed=9
    )
    ok = GenerationTask(task_id="t0", status=TaskStatus.SUCCEEDED, video_url="http://v/t0.mp4")
    tasks = {
        "t0": ok,
        "t1": policy,
        "t2": GenerationTask(task_id="t2", status=TaskStatus.RUNNING),
        "t5": GenerationTask(task_id="t5", status=TaskStatus.SUCCEEDED),  # not running here: ignored
        "stranger": GenerationTask(task_id="stranger", status=TaskStatus.SUCCEEDED),
    }
    seen = PLAN.observe(entries, tasks, late=["t3", "gone"], missing=["t4"])

    assert seen.download == ((0, ok),)
    assert seen.cancel == ("t3",)
    assert sorted(seen.changes) == [1, 3, 4]  # t2 still runs
    assert seen.changes[1].kind == "policy" and seen.changes[1].seed == 9
    assert seen.changes[1].error is not None and seen.changes[1].error.startswith("OutputVideoSensitive")
    assert (seen.changes[3].kind, seen.changes[3].error) == ("timeout", "not finished within timeout=60 s")
    assert seen.changes[3].task_id == "t3" and seen.changes[3].seed == 5  # the seed sent is kept
    assert seen.changes[4].kind == "remote" and "t4 is unknown" in (seen.changes[4].error or "")


def test_failures_beyond_the_budget_fail_with_a_message_naming_the_items() -> None:
    entries = {0: done("t0"), 1: failed("remote", "t1"), 2: done("t2"), 3: failed("policy", "t3")}
    entries |= {i: done(f"t{i}") for i in range(4, 7)}
    finish = PLAN.wait_or_finish(entries)
    assert isinstance(finish, Finish) and finish.failed == (1, 3)
    assert finish.error == "2 of 7 items failed, over max_failed_items=1 (1 allowed): items 1, 3"


def test_failures_within_the_budget_finish_cleanly_and_all_done_finishes() -> None:
    entries = {i: done(f"t{i}") for i in range(7)}
    assert PLAN.wait_or_finish(entries) == Finish(failed=(), error=None)
    entries[4] = failed("timeout", "t4")
    assert PLAN.wait_or_finish(entries) == Finish(failed=(4,), error=None)


def test_many_failures_are_named_up_to_ten() -> None:
    plan = BatchPlan(total=12, max_in_flight=3, timeout=60.0, deadline=NOW + 60)
    finish = plan.wait_or_finish({i: failed("remote") for i in range(12)})
    assert isinstance(finish, Finish) and finish.error is not None
    assert finish.error.endswith("items 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 and 2 more")


def test_an_interrupted_create_is_reconciled_before_anything_else() -> None:
    entries = {0: running("t0"), 1: JournalEntry(ItemState.CREATING, at=NOW - 5)}
    assert PLAN.decide(entries, NOW) == Actions(reconcile=(1,))  # no create despite free slots
    assert PLAN.decide(entries, PLAN.deadline + 1) == Actions(reconcile=(1,))  # nor expiry
    assert not isinstance(PLAN.wait_or_finish(entries), Finish)  # unconfirmed is not ended


def test_at_the_deadline_running_items_are_cancelled_and_the_rest_skipped() -> None:
    plan = BatchPlan(total=4, max_in_flight=3, timeout=60.0, deadline=NOW)
    entries = {0: done("t0"), 1: running("t1")}
    actions = plan.decide(entries, NOW)
    assert actions.cancel == ("t1",) and actions.create == ()
    assert {i: (e.state, e.status, e.kind) for i, e in actions.changes.items()} == {
        1: (ItemState.FAILED, "cancelled", "timeout"),
        2: (ItemState.FAILED, "skipped", "timeout"),
        3: (ItemState.FAILED, "skipped", "timeout"),
    }
    assert actions.changes[1].task_id == "t1"
    finish = plan.wait_or_finish({**entries, **actions.changes})
    assert isinstance(finish, Finish) and finish.failed == (1, 2, 3)


def test_resume_from_a_half_done_journal() -> None:
    entries = {
        0: done("t0"),
        1: failed("remote", "t1"),
        2: failed("policy", "t2"),
        3: failed("download", "t3"),
        4: failed("ambiguous"),
        5: running("t5", at=1.0),
        6: failed("timeout", "t6"),
    }
    changes = resume(entries, retry_policy_failures=False, now=NOW)
    assert changes == {1: JournalEntry(), 3: JournalEntry(ItemState.RUNNING, "t3", at=NOW), 6: JournalEntry()}
    assert sorted(resume(entries, retry_policy_failures=True, now=NOW)) == [1, 2, 3, 6]

    resumed = {i: e for i, e in {**entries, **changes}.items() if e.state is not ItemState.TODO}
    plan = BatchPlan(total=9, max_in_flight=4, timeout=60.0, deadline=NOW + 60)
    assert plan.decide(resumed, NOW) == Actions(create=(1, 6))  # t3 and t5 hold two slots
    assert plan.wait_or_finish(resumed) == Wait({"t3": NOW + 60, "t5": 61.0}, min_finished=1)


# ---------------------------------------------------------------------------------- chains and retries
CHAIN = BatchPlan(total=4, max_in_flight=3, timeout=60.0, deadline=NOW + 3_600, chain=True)


def test_a_chain_creates_one_item_at_a_time_each_after_the_one_before_is_done() -> None:
    assert CHAIN.decide({}, NOW) == Actions(create=(0,))  # not up to max_in_flight
    assert CHAIN.decide({0: running("t0")}, NOW) == Actions()  # nothing while one renders
    assert CHAIN.wait_or_finish({0: running("t0")}) == Wait({"t0": NOW + 60}, min_finished=1)
    assert CHAIN.decide({0: done("t0")}, NOW) == Actions(create=(1,))
    assert CHAIN.decide({0: done("t0"), 1: done("t1"), 2: running("t2")}, NOW) == Actions()


def test_a_chain_stops_at_a_failure_without_retries_and_finishes_naming_it() -> None:
    entries = {0: done("t0"), 1: failed("policy", "t1")}
    assert CHAIN.decide(entries, NOW) == Actions()  # items 2 and 3 start from 1's result: never created
    finish = CHAIN.wait_or_finish(entries)
    assert isinstance(finish, Finish) and finish.failed == (1,) and finish.error is not None
    # Without the chain, the same state creates the next items and waits for the rest.
    free = BatchPlan(total=4, max_in_flight=3, timeout=60.0, deadline=NOW + 3_600)
    assert free.decide(entries, NOW) == Actions(create=(2, 3))


def test_a_failed_item_with_retries_left_goes_back_with_a_new_recorded_seed() -> None:
    plan = BatchPlan(total=3, max_in_flight=3, timeout=60.0, deadline=NOW + 60, chain=True, item_retries=2)
    first = JournalEntry(ItemState.FAILED, "t1", seed=77, status="failed", error="boom", kind="remote")
    actions = plan.decide({0: done("t0"), 1: first}, NOW)
    assert actions.changes == {1: JournalEntry(seed=next_seed(77), attempt=1)} and actions.create == (1,)
    assert len({77, next_seed(77), next_seed(next_seed(77))}) == 3

    second = JournalEntry(ItemState.FAILED, "t2", seed=next_seed(77), error="boom", kind="policy", attempt=1)
    again = plan.decide({0: done("t0"), 1: second}, NOW)
    assert again.changes == {1: JournalEntry(seed=next_seed(next_seed(77)), attempt=2)}  # content policy too

    last = JournalEntry(ItemState.FAILED, "t3", seed=1, error="boom", kind="remote", attempt=2)
    assert plan.decide({0: done("t0"), 1: last}, NOW) == Actions()  # retries used up: stopped
    assert isinstance(plan.wait_or_finish({0: done("t0"), 1: last}), Finish)


def test_retries_never_repeat_an_ambiguous_create_and_fetch_a_failed_download_again() -> None:
    plan = BatchPlan(total=3, max_in_flight=3, timeout=60.0, deadline=NOW + 60, item_retries=1)
    entries = {0: failed("ambiguous"), 1: failed("download", "t1"), 2: done("t2")}
    assert plan.retries(entries, NOW) == {1: JournalEntry(ItemState.RUNNING, "t1", at=NOW, attempt=1)}


# ------------------------------------------------------------------------------------- takes
# Three shots in two takes: items 0, 2, 4 are take 1's chain, items 1, 3, 5 take 2's.
TAKES = BatchPlan(total=6, max_in_flight=4, timeout=60.0, deadline=NOW + 3_600, chain=True, takes=2)


def test_each_take_is_its_own_chain_and_the_takes_run_side_by_side() -> None:
    assert TAKES.decide({}, NOW) == Actions(create=(0, 1))  # both takes' first shots
    entries = {0: done("t0"), 1: running("t1")}
    assert TAKES.decide(entries, NOW) == Actions(create=(2,))  # take 1 goes on; take 2 waits for t1
    assert TAKES.wait_or_finish(entries) == Wait({"t1": NOW + 60}, min_finished=1)


def test_a_failed_take_stops_its_own_chain_only() -> None:
    entries = {0: done("t0"), 1: failed("remote", "t1"), 2: running("t2")}
    assert TAKES.decide(entries, NOW) == Actions()  # take 2 stopped; take 1's next waits on t2
    entries |= {2: done("t2")}
    assert TAKES.decide(entries, NOW) == Actions(create=(4,))
    finish = TAKES.wait_or_finish(entries | {4: done("t4")})
    assert isinstance(finish, Finish) and finish.failed == (1,) and finish.error


def test_chains_of_takes_share_max_in_flight() -> None:
    plan = BatchPlan(total=8, max_in_flight=2, timeout=60.0, deadline=NOW + 3_600, chain=True, takes=4)
    assert plan.decide({}, NOW) == Actions(create=(0, 1))
    assert plan.decide({0: running("t0"), 1: done("t1")}, NOW) == Actions(create=(2,))


def test_a_retried_shot_gets_a_seed_no_other_take_has() -> None:
    plan = BatchPlan(total=2, max_in_flight=2, timeout=60.0, deadline=NOW + 3_600, item_retries=1, takes=2)
    entry = JournalEntry(ItemState.FAILED, "t0", seed=100, kind="remote")
    (retried,) = plan.retries({0: entry}, NOW).values()
    take_seeds = {100, next_seed(100)}  # take 1's and take 2's
    assert retried.seed == next_seed(100, 2) and retried.seed not in take_seeds


def test_take_seeds_derive_from_take_ones_or_are_given() -> None:
    from airflow_provider_gptproto.models.batch_plan import take_seeds

    assert take_seeds(7, 3) == [7, next_seed(7), next_seed(next_seed(7))]
    assert take_seeds(7, 2, [9, 8]) == [9, 8]
    assert len(set(take_seeds(2_147_483_000, 50))) == 50
