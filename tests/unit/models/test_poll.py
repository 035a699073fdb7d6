"""The poll plans (models/poll.py) driven by hand: made-up replies and times, no HTTP, no sleeping."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import pytest

from airflow_provider_gptproto.exceptions import (
    GPTProtoAuthError,
    GPTProtoConnectionError,
    GPTProtoError,
    GPTProtoNotFoundError,
    GPTProtoRateLimitError,
    GPTProtoRequestError,
    GPTProtoResponseError,
    GPTProtoServerError,
)
from airflow_provider_gptproto.models import GenerationTask, TaskStatus, parse_task
from airflow_provider_gptproto.models.poll import (
    MAX_POLL_BACKOFF_SECONDS,
    BatchWait,
    Check,
    Note,
    Pause,
    Plan,
    Reply,
    TaskEnd,
    poll_task,
)

START = 1_800_000_000.0


def task(status: str, task_id: str = "t1") -> GenerationTask:
    return GenerationTask(task_id=task_id, status=TaskStatus(status))


def unknown_status() -> GPTProtoError:
    """The error the real parser raises for a status word it does not know."""
    with pytest.raises(GPTProtoResponseError) as caught:
        parse_task({"id": "t1", "status": "mystery_state"})
    return caught.value


def drive(
    plan: Plan[Any],
    replies: Iterable[Reply],
    check_seconds: float = 0.0,
    held: list[set[int]] | None = None,
) -> tuple[Any, list[Any]]:
    """Run ``plan``: checks get ``replies`` in order and take ``check_seconds``; pauses move the clock.

    Returns the plan's end and every step it took, in order. With ``held``, the ids of the plan's
    local values during each pause are appended to it (what a wait keeps alive across a pause).
    """
    now, answers, steps = START, iter(replies), []
    try:
        step = next(plan)
        while True:
            steps.append(step)
            reply = None
            if isinstance(step, Check):
                now += check_seconds
                reply = next(answers, None)
                assert reply is not None, "the plan checked more often than the test has replies"
            elif isinstance(step, Pause):
                now += step.seconds
                if held is not None:
                    assert plan.gi_frame is not None
                    held.append({id(v) for v in plan.gi_frame.f_locals.values()})
            step = plan.send((now, reply))
    except StopIteration as done:
        return done.value, steps


def pauses(steps: list[Any]) -> list[float]:
    return [s.seconds for s in steps if isinstance(s, Pause)]


def checks(steps: list[Any]) -> int:
    return sum(isinstance(s, Check) for s in steps)


def notes(steps: list[Any], *, level: int | None = None) -> list[str]:
    return [s.text for s in steps if isinstance(s, Note) and level in (None, s.level)]


# ----------------------------------------------------------------------------- one task


def test_running_then_succeeded_pauses_one_interval_per_check() -> None:
    end, steps = drive(
        poll_task("t1", 10, START, deadline=START + 3600),
        [task("pending"), task("running"), task("succeeded")],
    )

    assert end == TaskEnd("success", task("succeeded"), "GPTProto task t1 has succeeded")
    assert pauses(steps) == [10, 10]
    assert notes(steps) == [
        "GPTProto task t1 is queued (0.0 s elapsed)",
        "GPTProto task t1 is running (10.0 s elapsed)",
        "GPTProto task t1 has succeeded (20.0 s elapsed)",
    ]


@pytest.mark.parametrize("status", ["failed", "cancelled", "expired"])
def test_a_task_that_ends_without_a_video_is_finished_at_once(status: str) -> None:
    end, steps = drive(poll_task("t1", 10, START, deadline=START + 3600), [task(status)])

    assert (end.status, end.task, end.error) == ("failed", task(status), None)
    assert pauses(steps) == []


def test_transient_errors_back_off_and_a_good_reply_resets_the_backoff() -> None:
    end, steps = drive(
        poll_task("t1", 1, START, deadline=START + 3600),
        [
            GPTProtoServerError("bad gateway", http_status=502),
            GPTProtoConnectionError("reset", request_sent=True),
            task("running"),
            GPTProtoRateLimitError("slow down", http_status=429),
            GPTProtoResponseError("garbled body"),
            task("succeeded"),
        ],
    )

    assert end.status == "success"
    assert [(p.seconds, p.failures) for p in steps if isinstance(p, Pause)] == [
        (2, 1),
        (4, 2),
        (1, 0),
        (2, 1),
        (4, 2),
    ]
    warnings = notes(steps, level=logging.WARNING)
    assert len(warnings) == 4
    assert warnings[1] == (
        "Checking GPTProto task t1 failed (reset); transient, failure 2 in a row, next check in 4.0 s"
    )
    assert (
        notes(steps, level=logging.INFO).count("Checking GPTProto task t1 works again after 2 failed checks")
        == 2
    )


def test_the_backoff_is_capped_and_honours_a_longer_retry_after() -> None:
    outage = GPTProtoServerError("unavailable", http_status=503)
    _, steps = drive(poll_task("t1", 100, START), [outage, outage, outage, task("succeeded")])
    assert pauses(steps) == [200, MAX_POLL_BACKOFF_SECONDS, MAX_POLL_BACKOFF_SECONDS]

    hint = GPTProtoRateLimitError("slow", http_status=429, retry_after=45)
    _, steps = drive(poll_task("t1", 1, START), [hint, task("succeeded")])
    assert pauses(steps) == [45]


def test_earlier_failures_carry_into_the_plan() -> None:
    """The sensor starts each poke's plan with the failures it stored after the last one."""
    plan = poll_task("t1", 2, START, failures=3)
    assert next(plan) == Check()
    assert plan.send((START, GPTProtoServerError("down", http_status=500))).level == logging.WARNING  # type: ignore[union-attr]
    assert next(plan) == Pause(32, 4)  # 2 * 2**4

    plan = poll_task("t1", 2, START, failures=3, where="")
    assert next(plan) == Check()
    assert plan.send((START, task("running"))) == Note(
        "Checking GPTProto task t1 works again after 3 failed checks"
    )
    assert next(plan) == Note("GPTProto task t1 is running")  # no time in the line
    assert next(plan) == Pause(2, 0)


@pytest.mark.parametrize(
    "error",
    [
        GPTProtoAuthError("bad key", http_status=401),
        GPTProtoNotFoundError("no such task", http_status=404),
        GPTProtoRequestError("[gptproto] connections_per_loop must be ...", field="connections_per_loop"),
    ],
    ids=["auth", "not-found", "bad-setting"],
)
def test_a_permanent_error_ends_the_wait_with_the_last_task_seen(error: GPTProtoError) -> None:
    end, steps = drive(poll_task("t1", 10, START, deadline=START + 3600), [task("running"), error])

    assert end == TaskEnd("error", task("running"), f"Polling GPTProto task t1 failed: {error}", error)
    assert pauses(steps) == [10]


def test_no_check_starts_at_the_deadline() -> None:
    # Checks at 0 and 10; the pause to 20 ends at the deadline, and the wait times out there.
    end, steps = drive(poll_task("t1", 10, START, deadline=START + 20), [task("running"), task("running")])

    assert checks(steps) == 2
    assert pauses(steps) == [10, 10]
    assert isinstance(steps[-1], Pause)  # the timeout comes right after the last pause, no check
    assert end == TaskEnd(
        "timeout",
        task("running"),
        "GPTProto task t1 did not finish by its deadline (still running, 20 s waited)",
    )


def test_a_reply_that_arrives_past_the_deadline_times_out_without_a_pause() -> None:
    replies = [task("running"), task("running")]
    end, steps = drive(poll_task("t1", 1, START, deadline=START + 10), replies, check_seconds=8)

    # answered at 8 s and, after half an interval (the check outlasted its interval), at 16.5 s
    assert checks(steps) == 2
    assert pauses(steps) == [0.5]
    assert end.status == "timeout"
    assert "(still running, 16 s waited)" in end.message


def test_the_deadline_falling_during_a_backoff_cuts_the_pause_and_times_out_right_after() -> None:
    down = GPTProtoServerError("down", http_status=500)
    end, steps = drive(poll_task("t1", 1, START, deadline=START + 5), [down, down])

    # 2 s after the first failure; the second earns 4 s, which would pass the deadline at 5 s.
    assert pauses(steps) == [2, 3]
    assert [type(s) for s in steps[-2:]] == [Note, Pause]  # the warning, the cut pause, then the end
    assert end.status == "timeout" and end.task is None
    assert end.message == (
        "GPTProto task t1 did not finish by its deadline"
        f" (never seen, 5 s waited; the last check failed: {down})"
    )


def test_the_first_check_is_made_even_past_the_deadline() -> None:
    end, steps = drive(poll_task("t1", 10, START, deadline=START - 1), [task("succeeded")])
    assert end.status == "success"

    end, steps = drive(poll_task("t1", 10, START, deadline=START - 1), [task("running")])
    assert (end.status, checks(steps), pauses(steps)) == ("timeout", 1, [])


def test_an_unknown_status_word_is_waited_out_and_named_at_the_deadline() -> None:
    end, steps = drive(
        poll_task("t1", 1, START, deadline=START + 3600), [unknown_status(), task("succeeded")]
    )
    assert (end.status, pauses(steps)) == ("success", [2])

    end, _ = drive(poll_task("t1", 1, START, deadline=START + 10), [task("running"), *[unknown_status()] * 3])
    assert end.status == "timeout"
    assert (
        "(still running, 10 s waited; the last check failed: Unknown GPTProto task status 'mystery_state'"
        in (end.message)
    )


def test_without_a_deadline_the_wait_never_times_out() -> None:
    end, steps = drive(poll_task("t1", 60, START), [*[task("running")] * 500, task("succeeded")])
    assert (end.status, checks(steps)) == ("success", 501)


def test_jitter_spreads_each_pause_around_the_interval_but_never_a_backoff() -> None:
    outage = GPTProtoConnectionError("down", request_sent=False)
    replies = [*[task("running")] * 400, outage, task("succeeded")]
    end, steps = drive(poll_task("t1", 10, START, jitter=0.1), replies)
    spread, backoff = pauses(steps)[:400], pauses(steps)[400]
    assert end.status == "success"
    assert all(9.0 <= p <= 11.0 for p in spread)
    assert min(spread) < 9.5 and max(spread) > 10.5  # both ways, so the mean stays the interval
    assert abs(sum(spread) / len(spread) - 10.0) < 0.2
    assert backoff == 20.0  # the first failure's backoff: exact


def test_without_jitter_every_pause_is_the_interval() -> None:
    _, steps = drive(poll_task("t1", 10, START), [*[task("running")] * 50, task("succeeded")])
    assert set(pauses(steps)) == {10.0}


# ----------------------------------------------------------------------------- the cadence


def check_starts(
    interval: float,
    took: Iterable[float],
    *,
    overruns: dict[int, float] | None = None,
    fail: Iterable[int] = (),
) -> tuple[list[float], list[float]]:
    """Run a wait whose checks take ``took`` seconds each (answering "running", then "succeeded");
    pause ``k`` lasts ``overruns[k]`` seconds longer than asked (a loop stall), and the checks
    numbered in ``fail`` raise a transient error. Returns when each check started (from START)
    and every pause asked for."""
    durations, overrun, failing = list(took), overruns or {}, set(fail)
    plan, now, starts, asked = poll_task("t1", interval, START), START, [], []
    step = next(plan)
    try:
        while True:
            reply: Reply = None
            if isinstance(step, Check):
                k = len(starts)
                starts.append(round(now - START, 6))
                now += durations[k]
                done = k == len(durations) - 1
                reply = (
                    GPTProtoServerError("bad gateway", http_status=502)
                    if k in failing
                    else task("succeeded" if done else "running")
                )
            elif isinstance(step, Pause):
                asked.append(round(step.seconds, 6))
                now += step.seconds + overrun.get(len(asked) - 1, 0.0)
            step = plan.send((now, reply))
    except StopIteration:
        return starts, asked


def test_a_check_is_due_every_interval_whatever_each_check_took() -> None:
    starts, _ = check_starts(5, [0.3, 1.2, 0.1, 2.0, 0.0])
    assert starts == [0, 5, 10, 15, 20]


def test_a_check_a_stall_made_late_puts_the_next_one_back_on_its_schedule() -> None:
    starts, _ = check_starts(5, [0.0] * 5, overruns={1: 1.5})
    assert starts == [0, 5, 11.5, 15, 20]


def test_a_check_later_than_half_an_interval_rests_half_an_interval_then_keeps_its_new_step() -> None:
    starts, asked = check_starts(10, [0.0] * 5, overruns={1: 8.0})
    assert starts == [0, 10, 28, 33, 43]
    assert asked == [10, 10, 5, 10]


def test_a_slow_server_is_polled_half_an_interval_after_each_reply_never_back_to_back() -> None:
    starts, asked = check_starts(5, [8.0] * 4)
    assert starts == [0, 10.5, 21, 31.5]
    assert asked == [2.5, 2.5, 2.5]


def test_a_zero_interval_never_gives_a_negative_pause() -> None:
    starts, asked = check_starts(0, [0.5] * 4)
    assert asked == [0.0, 0.0, 0.0]
    assert starts == [0, 0.5, 1.0, 1.5]


def test_a_clock_stepped_back_never_stretches_a_pause_past_the_interval() -> None:
    # The second check "takes" an hour backwards: the wall clock was stepped back during it.
    starts, asked = check_starts(5, [0.0, -3600.0, 0.0, 0.0])
    assert asked == [5, 5, 5]
    assert starts == [0, 5, 5 - 3600 + 5, 5 - 3600 + 10]


def test_a_backoff_counts_from_the_failed_reply_and_the_cadence_resumes_after_it() -> None:
    starts, asked = check_starts(5, [0.5] * 5, fail=[1])
    # the failed check starts at 5 and replies at 5.5; its backoff (2 intervals) is exact from there
    assert starts == [0, 5, 15.5, 20.5, 25.5]
    assert asked == [4.5, 10.0, 4.5, 4.5]


def test_a_pause_holds_only_the_first_reply_of_each_status() -> None:
    """What a wait holds across its pause outlives young collections (see models/poll.py)."""
    first, second, third = task("pending"), task("running"), task("running")
    held: list[set[int]] = []
    drive(poll_task("t1", 5, START), [first, second, third, task("succeeded")], held=held)
    assert id(first) in held[0]
    assert id(second) in held[1] and id(first) not in held[1]
    assert id(second) in held[2] and id(third) not in held[2]


def test_a_timeout_reports_the_first_record_of_the_last_status_seen() -> None:
    first = task("running").model_copy(update={"seed": 1})
    later = task("running").model_copy(update={"seed": 2})
    end, _ = drive(poll_task("t1", 10, START, deadline=START + 25), [task("pending"), first, later])
    assert end.status == "timeout"
    assert end.task is first


# ----------------------------------------------------------------------------- a batch


def reads(steps: list[Any]) -> list[list[str]]:
    return [list(s.ids) for s in steps if isinstance(s, Check)]


def statuses(**by_id: str) -> dict[str, GenerationTask]:
    return {i: task(s, i) for i, s in by_id.items()}


def test_a_batch_fires_once_enough_ended_reading_only_the_unfinished() -> None:
    wait = BatchWait(dict.fromkeys("abcd"), 10, START + 3600, min_finished=2)
    end, steps = drive(
        wait.plan(START),
        [
            statuses(a="succeeded", b="running", c="running", d="running"),
            statuses(b="failed", c="running", d="running"),
        ],
    )

    assert end == ("ready", "2 tasks finished")
    assert reads(steps) == [["a", "b", "c", "d"], ["b", "c", "d"]]
    assert pauses(steps) == [10]
    assert sorted(wait.done) == ["a", "b"] and wait.finished == {"a", "b"}


def test_late_and_missing_ids_end_without_ending_the_batch_and_late_ones_are_not_read() -> None:
    wait = BatchWait({"late": START + 5, "gone": None, "slow": None}, 10, START + 15, min_finished=3)
    end, steps = drive(wait.plan(START), [statuses(late="running", slow="running"), statuses(slow="running")])

    assert reads(steps) == [["late", "gone", "slow"], ["slow"]]  # late passed its deadline before the 2nd
    assert (wait.missing, wait.timed_out) == (["gone"], ["late"])
    assert pauses(steps) == [10, 5]
    assert end == ("deadline", "the batch reached its deadline")


def test_a_batch_waits_out_transient_errors_and_ends_on_a_permanent_one() -> None:
    wait = BatchWait(dict.fromkeys("ab"), 1, START + 3600, min_finished=2)
    end, steps = drive(
        wait.plan(START),
        [GPTProtoServerError("boom", http_status=500), statuses(a="succeeded", b="succeeded")],
    )
    assert end[0] == "ready"
    assert pauses(steps) == [2]

    wait = BatchWait(dict.fromkeys("ab"), 1, START + 3600)
    end, _ = drive(wait.plan(START), [GPTProtoAuthError("bad key", http_status=401)])
    assert end == ("error", "Polling the batch failed: HTTP 401: bad key")


def test_the_batch_deadline_falling_during_a_backoff_cuts_the_pause() -> None:
    wait = BatchWait(dict.fromkeys("ab"), 1, START + 5, min_finished=2)
    down = GPTProtoServerError("down", http_status=503)
    end, steps = drive(wait.plan(START), [statuses(a="succeeded", b="running"), down, down])

    assert pauses(steps) == [1, 2, 2]  # the second backoff (4 s) is cut to the deadline
    assert isinstance(steps[-1], Pause)  # no read after it
    assert end == ("deadline", "the batch reached its deadline")
    assert list(wait.done) == ["a"]  # what ended travels with the deadline


def test_a_finished_task_does_not_wait_longer_than_max_wait_ready() -> None:
    wait = BatchWait(dict.fromkeys("abc"), 10, None, min_finished=3, max_wait_ready=25)
    running = statuses(b="running", c="running")
    end, steps = drive(
        wait.plan(START), [statuses(a="succeeded", b="running", c="running"), running, running, running]
    )

    assert end == ("ready", "1 tasks finished")
    assert pauses(steps) == [10, 10, 10]  # fires at the first round 25 s or more after "a" ended


def test_an_empty_batch_is_a_timer_cut_to_the_deadline() -> None:
    end, steps = drive(BatchWait({}, 10, START + 4).plan(START), [])
    assert (end, pauses(steps), checks(steps)) == (("ready", "nothing in flight; resuming"), [4], 0)


def test_a_batch_keeps_the_cadence_and_holds_no_reply_across_its_pause() -> None:
    wait = BatchWait(dict.fromkeys("ab"), 10, START + 3600, min_finished=2)
    running = statuses(a="running", b="running")
    held: list[set[int]] = []
    end, steps = drive(
        wait.plan(START), [running] * 3 + [statuses(a="succeeded", b="succeeded")], 3.0, held=held
    )
    assert end == ("ready", "2 tasks finished")
    assert pauses(steps) == [7.0, 7.0, 7.0]  # reads due every 10 s, whatever they took (3 s each)
    assert len(held) == 3 and all(id(running) not in ids for ids in held)
